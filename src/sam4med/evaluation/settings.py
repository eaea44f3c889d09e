"""What a run scores and how: the ``evaluation`` config node, built once into :class:`EvaluationSettings`.

``conf/evaluation/default.yaml`` mirrors :meth:`EvaluationSettings.build`; ``train.py`` (its
before/after callback) and ``evaluate.py`` both instantiate that one node, so both score the same way,
and the :class:`~sam4med.compute.Compute` inside it is the run's only one (training takes its encoder
options from it too).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sam4med.compute import Compute
from sam4med.errors import ConfigError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.interactive import INTERACTIVE, InteractiveSettings, row_strategies
from sam4med.evaluation.outputs import OutputSettings
from sam4med.evaluation.runner import STRATEGY_NAMES
from sam4med.evaluation.scoring import MetricSettings
from sam4med.models.multimask import Multimask
from sam4med.prompts.generate import check_sampling
from sam4med.prompts.store import PromptStore

__all__ = ["EvaluationSettings", "InteractiveSettings", "MetricSettings", "PromptSettings"]
# InteractiveSettings (evaluation.interactive) lives in sam4med.evaluation.interactive, which the runner
# imports (this module imports the runner); the config names it here, beside the other settings. So does
# MetricSettings (the top-level `metrics` group, evaluation.metrics: ${metrics}), which lives with the scoring.


@dataclass(frozen=True)
class PromptSettings:
    """Where S2-S6 prompts come from.

    Attributes:
        seed: seed of the prompts drawn. With :attr:`file`, that file's own seed (and sampling) wins; a run
            resumed in its folder must ask for the seed and sampling of its own saved prompts (another is a
            ``ConfigError``: a new seed needs a new run folder).
        sampling: point sampling, ``random`` or ``strided`` (the COSMOS authors' evenly spaced points).
        file: a ``prompts.json`` of an earlier run to score on exactly its prompts (a prompt it lacks is an
            error), or None: the run draws its own and saves them in its results folder.
    """

    seed: int = 0
    sampling: str = "random"
    file: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampling", check_sampling(self.sampling))
        if self.file is not None and not Path(self.file).is_file():
            raise ConfigError(f"evaluation.prompts.file={self.file}: file does not exist")

    def store(self, saved: Path, *, write: bool = True) -> PromptStore:
        """The prompt store of a run whose prompts are saved as ``saved`` (written only where ``write``).

        Without :attr:`file`, the run's own saved prompts are read back first (a resumed run draws none
        anew), and they must be of this seed and sampling (:class:`PromptStore` ``same_seed``); with it,
        every prompt comes from that file (its seed wins) and is copied to ``saved``.
        """
        write_to = saved if write else None
        if self.file:
            return PromptStore(
                seed=self.seed, sampling=self.sampling, read_from=self.file, write_to=write_to, only_stored=True
            )
        return PromptStore(seed=self.seed, sampling=self.sampling, read_from=saved, write_to=write_to, same_seed=True)


@dataclass(frozen=True)
class EvaluationSettings:
    """What is scored and how, the same in every phase of a run.

    Attributes:
        strategies: any of ``S1`` ... ``S6`` and ``I`` (iterative clicks), in the order they are reported.
        multimask: mask selection for S2–S6 and every click of ``I``.
        everything: S1 generator settings (``EverythingSettings()`` are SAM's defaults).
        split: the dataset split scored (``test`` ...).
        compute: device, decoder call size, bf16, shared-work decoder, SDPA (:class:`~sam4med.compute.Compute`).
        prompts: prompt seed, sampling and an optional prompts file (:class:`PromptSettings`).
        zero_shot_dir: folder of zero-shot rows shared between runs (a sweep scores its baseline once, see
            :mod:`sam4med.evaluation.zero_shot_store`); None: every run scores its own. Never used with a
            prompts file, whose prompts may come from another seed.
        overlays: at most this many targets get a prediction-overlay figure (0: none).
        overlay_strategy: the strategy whose prompts the overlays draw (None: S6, else S4, S5, S3, S2).
        interactive: how ``I`` clicks (:class:`~sam4med.evaluation.interactive.InteractiveSettings`).
        metrics: NSD tolerance and rule of every row (:class:`~sam4med.evaluation.scoring.MetricSettings`).
    """

    strategies: tuple[str, ...]
    multimask: Multimask
    everything: EverythingSettings
    split: str = "test"
    compute: Compute = field(default_factory=Compute)
    prompts: PromptSettings = field(default_factory=PromptSettings)
    zero_shot_dir: Path | None = None
    overlays: int = 16
    overlay_strategy: str | None = None
    interactive: InteractiveSettings = field(default_factory=InteractiveSettings)
    metrics: MetricSettings = field(default_factory=MetricSettings)
    outputs: OutputSettings = field(default_factory=OutputSettings)  # saved masks, volume scores (evaluation.outputs)

    @classmethod
    def build(
        cls,
        *,
        strategies: Sequence[str],
        multimask: Multimask | str,
        everything: EverythingSettings,
        split: str = "test",
        compute: Compute | None = None,
        prompts: PromptSettings | None = None,
        zero_shot_dir: str | Path | None = None,
        overlays: int = 16,
        overlay_strategy: str | None = None,
        interactive: InteractiveSettings | None = None,
        metrics: MetricSettings | None = None,
        outputs: OutputSettings | None = None,
    ) -> EvaluationSettings:
        """Settings from config values, checked: no, unknown or repeated strategies, unknown mask selections
        and an overlay strategy that is not scored (or is S1 or ``I``, which have no fixed prompts to
        redraw) are refused.
        """
        if isinstance(strategies, str) or not strategies:
            raise ConfigError(f"strategies must be a non-empty list of {', '.join(STRATEGY_NAMES)}; got {strategies!r}")
        unknown = [s for s in strategies if s not in STRATEGY_NAMES]
        if unknown:
            raise ConfigError(f"unknown strategies {unknown}; available: {', '.join(STRATEGY_NAMES)}")
        if len(set(strategies)) != len(strategies):
            raise ConfigError(f"strategies {list(strategies)} name a strategy twice")
        unprompted = ("S1", INTERACTIVE)  # no fixed prompt per object to redraw
        if overlay_strategy is not None and (overlay_strategy in unprompted or overlay_strategy not in strategies):
            raise ConfigError(
                f"overlay_strategy={overlay_strategy} must be one of the prompted strategies scored "
                f"({', '.join(s for s in strategies if s not in unprompted) or 'none'})"
            )
        if int(overlays) < 0:
            raise ConfigError(f"overlays must be 0 (none) or more; got {overlays}")
        return cls(
            strategies=tuple(strategies),
            multimask=Multimask.parse(multimask),
            everything=everything,
            split=split,
            compute=compute or Compute(),
            prompts=prompts or PromptSettings(),
            zero_shot_dir=Path(zero_shot_dir) if zero_shot_dir else None,
            overlays=int(overlays),
            overlay_strategy=overlay_strategy,
            interactive=interactive or InteractiveSettings(),
            metrics=metrics or MetricSettings(),
            outputs=outputs or OutputSettings(),
        )

    @property
    def row_strategies(self) -> tuple[str, ...]:
        """The strategies of the rows, in report order: ``I`` becomes ``I@1`` ... ``I@<clicks>``."""
        return tuple(r for s in self.strategies for r in row_strategies(s, self.interactive.clicks))

    @property
    def shared_zero_shot_dir(self) -> Path | None:
        """The zero-shot store's folder, or None where rows are not shared (none set, or a prompts file)."""
        return None if self.prompts.file else self.zero_shot_dir
