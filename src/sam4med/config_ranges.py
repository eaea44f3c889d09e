"""Every size, count, step, threshold and weight of the configs with its allowed range, in one place.

:func:`check_ranges` reads a composed config (before anything is instantiated, so a job fails in its
first second, not after the zero-shot evaluation) and refuses the first value outside its range in
one line: ``dataset.batch_size=0: must be an integer >= 1``. A key absent from the config (another
entry point, another dataset) is skipped; ``null`` is accepted only where :class:`Range` allows it.
The constructors keep their own checks for values given in code.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from sam4med.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """An allowed range: ``low <= value <= high`` (None: unbounded), an integer where ``integer``."""

    low: float | None = None
    high: float | None = None
    integer: bool = False
    nullable: bool = False

    def problem(self, value: object) -> str | None:
        """Why ``value`` is outside the range, or None when it is inside."""
        if value is None:
            return None if self.nullable else f"must be {self.describe()}, not null"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"must be {self.describe()}"
        if not math.isfinite(value) or (self.integer and not isinstance(value, int)):
            return f"must be {self.describe()}"
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            return f"must be {self.describe()}"
        return None

    def describe(self) -> str:
        """The range in words: ``an integer >= 1``, ``a number in [0, 1]`` ..."""
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            bounds = f" in [{self.low:g}, {self.high:g}]"
        elif self.low is not None:
            bounds = f" >= {self.low:g}"
        elif self.high is not None:
            bounds = f" <= {self.high:g}"
        else:
            bounds = ""
        return kind + bounds + (" or null" if self.nullable else "")


COUNT = Range(1, integer=True)  # sizes, counts, steps: at least one
NONNEGATIVE_COUNT = Range(0, integer=True)
FRACTION = Range(0, 1)
WEIGHT = Range(0)

RANGES: dict[str, Range] = {
    "seed": NONNEGATIVE_COUNT,
    # dataset (CosmosDataModule) and its preparer
    "dataset.batch_size": COUNT,
    "dataset.num_workers": NONNEGATIVE_COUNT,
    "dataset.block_size": COUNT,
    "dataset.gap": NONNEGATIVE_COUNT,
    "dataset.split_seed": NONNEGATIVE_COUNT,
    "dataset.folds": Range(2, integer=True, nullable=True),
    "dataset.fold": NONNEGATIVE_COUNT,
    "dataset.min_object_area": NONNEGATIVE_COUNT,
    "dataset.box_jitter": Range(0),
    "dataset.preparer.every_nth_slice": COUNT,
    "dataset.preparer.min_label_sum": Range(0),
    "dataset.preparer.min_object_area": NONNEGATIVE_COUNT,
    "dataset.preparer.max_components": NONNEGATIVE_COUNT,
    "dataset.preparer.n_images": COUNT,
    # embedding cache
    "embeddings.batch_size": COUNT,
    "embeddings.workers": NONNEGATIVE_COUNT,
    # S1 (EverythingSettings)
    "everything.points_per_side": COUNT,
    "everything.points_per_batch": COUNT,
    "everything.pred_iou_thresh": FRACTION,
    "everything.stability_score_thresh": FRACTION,
    "everything.stability_score_offset": Range(0),
    "everything.box_nms_thresh": FRACTION,
    "everything.min_mask_region_area": NONNEGATIVE_COUNT,
    # compute and evaluation
    "compute.prompts_per_call": Range(1, integer=True, nullable=True),
    "evaluation.overlays": NONNEGATIVE_COUNT,
    "evaluation.interactive.clicks": COUNT,
    "statistics.resamples": COUNT,
    "metrics.nsd_tolerance": Range(0),  # mm, or pixels without spacing
    # training
    "module.dice_weight": WEIGHT,
    "module.bce_weight": WEIGHT,
    "module.iou_weight": WEIGHT,
    "module.iterations": NONNEGATIVE_COUNT,
    "module.lora.rank": COUNT,
    "module.lora.alpha": Range(0),  # above 0: LoraSettings
    "module.lora.dropout": FRACTION,  # below 1: LoraSettings
    "module.optimizer.lr": Range(0),
    "module.optimizer.weight_decay": WEIGHT,
    "trainer.max_epochs": Range(1, integer=True, nullable=True),
    "trainer.log_every_n_steps": COUNT,
}


_ABSENT = object()


def check_ranges(cfg: DictConfig) -> None:
    """Refuse the first value of ``cfg`` outside its :data:`RANGES` entry (a :class:`ConfigError`, one line).

    Also: ``dataset.fractions`` are three numbers in [0, 1] (train, val, test), and a learning rate must be
    above 0, not just at least 0.
    """
    for key, allowed in RANGES.items():
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=False)  # absent or ??? : skipped
        if value is _ABSENT:
            continue
        problem = allowed.problem(value)
        if problem is None and key == "module.optimizer.lr" and value == 0:
            problem = "must be a number > 0"
        if problem:
            raise ConfigError(f"{key}={value}: {problem}")
    fractions = OmegaConf.select(cfg, "dataset.fractions", default=None)
    if fractions is not None:
        values = list(fractions)
        if len(values) != 3 or any(FRACTION.problem(v) for v in values):
            raise ConfigError(f"dataset.fractions={values}: must be three numbers in [0, 1] (train, val, test)")
