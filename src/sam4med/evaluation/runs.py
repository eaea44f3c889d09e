"""Finding and reading a run's results folder (for the notebooks and scripts).

A run is named by its folder: the results folder itself (holding ``metrics.csv``) or the run folder
above it (``<run>/results/metrics.csv``), wherever it was written (``outputs/<date>/<time>``, a custom
``hydra.run.dir``, a sweep job ``multirun/<date>/<time>/<job>``). Nothing is guessed from dates.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sam4med.errors import ConfigError


def results_folder(path: str | Path) -> Path:
    """The results folder of ``path`` (a results folder or the run folder holding ``results/``)."""
    path = Path(path).expanduser()
    for candidate in (path, path / "results"):
        if (candidate / "metrics.csv").is_file():
            return candidate.resolve()
    raise ConfigError(f"{path}: no metrics.csv there or in {path / 'results'}; give a run's results folder")


def load_results(path: str | Path, *, phases: tuple[str, ...] = ()) -> tuple[pd.DataFrame, dict]:
    """(results frame, run description from ``summary.json``) of a run; ``phases`` it must hold, else an error."""
    folder = results_folder(path)
    frame = pd.read_csv(folder / "metrics.csv")
    missing = [p for p in phases if p not in set(frame["phase"])]
    if missing:
        raise ConfigError(
            f"{folder} holds the phases {sorted(set(frame['phase']))}, not {missing}: "
            "give the results of a train.py run"
        )
    summary = folder / "summary.json"
    meta = json.loads(summary.read_text()).get("meta", {}) if summary.is_file() else {}
    return frame, meta
