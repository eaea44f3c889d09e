"""What every analysis suite takes and gives: :class:`AnalysisInput` in, :class:`AnalysisOutput` out.

An analysis (``evaluate.py analysis=robustness``, ``grid``, ``timing``, ``factors``; or
``train.py callbacks.before_after.analyses=[robustness]``) runs after the run's own scoring, on the same
model, split, saved prompts and embedding cache, once per phase the run scored. It returns tables (by
file name: ``robustness`` is written as ``robustness.csv`` and ``robustness.md``) and figures (by file
name, PNG + SVG), which :func:`sam4med.results.finish.finish` writes, shows in ``report.html`` and sends
to the loggers with the run's own.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd
from matplotlib.figure import Figure

from sam4med.data.dataset import CosmosDataset
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.models.finetuned import PhaseState, use_state
from sam4med.models.sam_model import SamModel
from sam4med.results.statistics import StatisticsSettings
from sam4med.run_files import ResultsFolder


@dataclass(frozen=True)
class AnalysisInput:
    """What a suite works from: the run's model, split, scoring session and scored rows.

    Attributes:
        model: the scored model (its mask decoder is swapped per phase with :func:`phase_decoder`).
        dataset: the scored split.
        session: the run's scoring session: its settings (strategies, multimask, compute, S1's
            settings), its saved prompts (``session.prompts``) and its embedding cache (``session.cache``).
        decoders: per phase the run scored, the mask-decoder state it predicts with (None: the model's
            current weights), or the states of every trained part
            (:class:`~sam4med.models.finetuned.PartStates`, where the prompt encoder or LoRA were trained too).
            ``evaluate.py`` gives its one phase; the before/after callback both.
        frame: the run's results frame (:func:`~sam4med.results.frame.to_frame`), every phase.
        statistics: the run's statistics settings (unit, resamples, seed; None: the defaults).
    """

    model: SamModel
    dataset: CosmosDataset
    session: EvaluationSession
    decoders: Mapping[Phase, PhaseState | None]
    frame: pd.DataFrame
    statistics: StatisticsSettings | None = None

    @property
    def folder(self) -> ResultsFolder:
        """The run's results folder (a suite keeps its own logs and per-object files here)."""
        return self.session.results


@dataclass
class AnalysisOutput:
    """A suite's tables and figures, each by file name (unique across the suites of a run).

    Attributes:
        tables: file name -> table (written as ``<name>.csv`` and ``<name>.md`` in the results folder).
        figures: file name -> figure (written as ``figures/<name>.png`` and ``.svg``; closed when written).
        notes: sentences a reader needs beside the tables (shown on the terminal when the run ends).
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Figure] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, other: AnalysisOutput) -> None:
        """Take ``other``'s tables, figures and notes; a file name both hold is a ``ValueError``."""
        for mine, theirs in ((self.tables, other.tables), (self.figures, other.figures)):
            clash = sorted(set(mine) & set(theirs))
            if clash:
                raise ValueError(f"two analyses write {', '.join(clash)}")
            mine.update(theirs)
        self.notes += other.notes


class Analysis(Protocol):
    """A suite: ``name`` (its ``conf/analysis/<name>.yaml``), ``check`` and ``run``."""

    name: str

    def check(self, settings: EvaluationSettings) -> None:
        """Refuse settings that do not fit the run's (e.g. a strategy it does not score) before any work."""
        ...

    def run(self, inputs: AnalysisInput) -> AnalysisOutput:
        """Score what the suite measures and return its tables and figures."""
        ...


@contextmanager
def phase_decoder(model: SamModel, state: PhaseState | None) -> Iterator[None]:
    """Predict with the phase's ``state`` inside the block (a mask-decoder state dict or the states of several
    parts; None: the current weights), then restore the model's own (:func:`~sam4med.models.finetuned.use_state`).
    """
    with use_state(model, state):
        yield


def run_analyses(suites: Sequence[Analysis], inputs: AnalysisInput) -> AnalysisOutput:
    """Every suite on ``inputs``, their outputs together (none: an empty output)."""
    out = AnalysisOutput()
    for suite in suites:
        out.add(suite.run(inputs))
    return out
