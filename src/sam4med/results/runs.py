"""Reading a run's results (for the notebooks and scripts).

A run is named by its folder: the results folder itself (holding ``metrics.csv``) or the run folder
above it (``<run>/results/metrics.csv``), wherever it was written (``outputs/<date>/<time>``, a custom
``hydra.run.dir``, a sweep job ``multirun/<date>/<time>/<job>``). Nothing is guessed from dates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sam4med.errors import ConfigError
from sam4med.run_files import ResultsFolder


def results_folder(path: str | Path) -> Path:
    """The results folder of ``path`` (a results folder or the run folder holding ``results/``)."""
    return ResultsFolder.find(path).path


def load_results(path: str | Path, *, phases: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """(results frame, run description from ``summary.json``) of a run; ``phases`` it must hold, else an error."""
    folder = ResultsFolder.find(path)
    frame = pd.read_csv(folder.metrics)
    missing = [p for p in phases if p not in set(frame["phase"])]
    if missing:
        raise ConfigError(
            f"{folder.path} holds the phases {sorted(set(frame['phase']))}, not {missing}: "
            "give the results of a train.py run"
        )
    meta = json.loads(folder.summary.read_text()).get("meta", {}) if folder.summary.is_file() else {}
    return frame, meta
