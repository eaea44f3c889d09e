"""The one evaluation flow: score a split -> results frame -> description of the run -> results folder.

``evaluate.py`` runs it for one phase (``zero_shot``, or ``finetuned`` with a trained decoder); the
before/after callback runs it for both phases on the same prompts, each DDP rank on its share of the
images. Sharding and gathering are the callback's; this module knows nothing of ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from sam4med.compute import Compute
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError, DataError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.results import ObjectResult, to_frame, write_results
from sam4med.evaluation.runner import ALL_STRATEGIES, s1_empty_images, score_dataset
from sam4med.evaluation.zero_shot_store import ZeroShotStore
from sam4med.models.multimask import Multimask
from sam4med.models.sam_model import SamModel
from sam4med.prompts.store import PromptStore

LOG_NAME = "evaluation_log.jsonl"


@dataclass(frozen=True)
class EvaluationSettings:
    """What is scored and how, the same in every phase of a run.

    Attributes:
        strategies: any of ``S1`` ... ``S6``, in the order they are reported.
        multimask: mask selection for S2–S6.
        everything: S1 generator settings (``EverythingSettings()`` are SAM's defaults).
        split: the dataset split scored (``test`` ...).
        compute: decoder call size and bf16 autocast (:class:`~sam4med.compute.Compute`; the device is
            the model's).
    """

    strategies: tuple[str, ...]
    multimask: Multimask
    everything: EverythingSettings
    split: str = "test"
    compute: Compute = Compute()

    @classmethod
    def build(
        cls,
        *,
        strategies: Sequence[str],
        multimask: Multimask | str,
        everything: EverythingSettings,
        split: str,
        compute: Compute | None = None,
    ) -> EvaluationSettings:
        """Settings from config values, checked: no, unknown or repeated strategies and unknown mask selections
        are refused.
        """
        if isinstance(strategies, str) or not strategies:
            raise ConfigError(f"strategies must be a non-empty list of {', '.join(ALL_STRATEGIES)}; got {strategies!r}")
        unknown = [s for s in strategies if s not in ALL_STRATEGIES]
        if unknown:
            raise ConfigError(f"unknown strategies {unknown}; available: {', '.join(ALL_STRATEGIES)}")
        if len(set(strategies)) != len(strategies):
            raise ConfigError(f"strategies {list(strategies)} name a strategy twice")
        return cls(tuple(strategies), Multimask.parse(multimask), everything, split, compute or Compute())


class EvaluationSession:
    """Scores phases of one run into one results folder, every phase on the same prompts.

    Args:
        results_dir: the results folder (``metrics.csv``, ``summary.json``, tables, ``prompts.json``...).
        settings: strategies, mask selection, S1 settings and split.
        prompts: the prompt store every phase draws from.
        cache: embedding cache (each image is encoded once for all strategies and phases).
        zero_shot_dir: folder of zero-shot rows shared between runs (a sweep scores its baseline once,
            see :mod:`sam4med.evaluation.zero_shot_store`); None: every run scores its own.
    """

    def __init__(
        self,
        results_dir: str | Path,
        settings: EvaluationSettings,
        *,
        prompts: PromptStore,
        cache: EmbeddingCache,
        zero_shot_dir: str | Path | None = None,
    ) -> None:
        self.results_dir = Path(results_dir)
        self.settings = settings
        self.prompts = prompts
        self.cache = cache
        self.zero_shot_store = ZeroShotStore(zero_shot_dir) if zero_shot_dir else None

    def score(
        self,
        model: SamModel,
        dataset: CosmosDataset,
        *,
        phase: str,
        log_name: str | None = LOG_NAME,
        progress: bool = True,
    ) -> list[ObjectResult]:
        """Rows of every object of ``dataset`` under every strategy.

        Rows are appended to ``<results>/<log_name>`` as each image finishes, and a re-run resumes from
        it; ``log_name=None`` keeps them in memory only. A split of images without a single object to
        score (every label empty, or every object below ``min_object_area``) is a :class:`DataError`,
        never an empty result.
        """
        rows = score_dataset(
            model,
            dataset,
            strategies=self.settings.strategies,
            phase=phase,
            cache=self.cache,
            prompts=self.prompts,
            multimask=self.settings.multimask,
            everything=self.settings.everything,
            prompts_per_call=self.settings.compute.prompts_per_call,
            bf16=self.settings.compute.bf16,
            shared_work=self.settings.compute.shared_decoder,
            log_path=self.results_dir / log_name if log_name else None,
            progress=progress,
            zero_shot_store=self.zero_shot_store,
        )
        if not rows and len(dataset):
            raise DataError(
                f"{dataset.root}: the {len(dataset)} images of split '{self.settings.split}' hold no object to score "
                f"(every label map is empty, or every object is smaller than min_object_area="
                f"{dataset.min_object_area})"
            )
        return rows

    def describe(self, model: SamModel, rows: Sequence[ObjectResult], *, title: str, finetuned: str = "") -> dict:
        """What the results were made with, written into ``summary.json`` and ``comparison.md``."""
        settings = self.settings
        empty, s1_images = s1_empty_images(rows)
        units = sorted({r.hd_unit for r in rows})
        return {
            "title": title,
            "backbone": model.name,
            "weights": model.weights_source,
            "finetuned": finetuned,
            "split": settings.split,
            "strategies": ",".join(settings.strategies),
            "multimask": settings.multimask.value,
            "prompt_seed": self.prompts.seed,
            "prompt_sampling": self.prompts.sampling,
            "everything": ", ".join(f"{k}={v}" for k, v in asdict(settings.everything).items()),
            "s1_empty_images": f"{empty} of {s1_images}" if "S1" in settings.strategies else "",
            "embedding_cache": f"{self.cache.directory or 'memory'} ({str(self.cache.dtype).removeprefix('torch.')})",
            "hd_unit": ", ".join(units),
        }

    def write(self, rows: Sequence[ObjectResult], meta: dict) -> pd.DataFrame:
        """Write the results folder (atomically, file by file) and the prompts; returns the results frame."""
        frame = to_frame(rows)
        write_results(frame, self.results_dir, meta=meta)
        self.prompts.save()
        return frame
