"""Side-by-side tables of the runs of a Hydra multirun sweep (e.g. ``python evaluate.py -m model=vit_b,vit_h``).

Each job of a sweep writes ``<sweep dir>/<job>/results/metrics.csv``. :func:`write_sweep_tables` reads
them all and writes, into the sweep folder, the targets x (run, strategy) tables of mean Dice and mean
HD in pixels (laid out like the paper's Tables 2 and 3, ViT-B next to ViT-H) and the per-strategy means
of every run. A run is labelled by its backbone when the backbones differ between runs, otherwise by the
overrides that differ. :class:`MergeSweepResults` calls it when a multirun ends (``conf/evaluate.yaml``);
``python -m sam4med.evaluation.sweep DIR`` does it by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from sam4med.evaluation.tables import check_complete, markdown_table, strategy_order


def find_runs(sweep_dir: Path) -> list[Path]:
    """Job folders under ``sweep_dir`` holding ``results/metrics.csv``, in job order."""
    runs = [p.parent.parent for p in Path(sweep_dir).glob("*/results/metrics.csv")]
    return sorted(runs, key=lambda p: (0, int(p.name)) if p.name.isdigit() else (1, p.name))


def _backbone(run: Path) -> str:
    summary = run / "results" / "summary.json"
    if summary.is_file():
        return str(json.loads(summary.read_text()).get("meta", {}).get("backbone", run.name))
    return run.name


def _overrides(run: Path) -> list[str]:
    path = run / ".hydra" / "overrides.yaml"
    return list(yaml.safe_load(path.read_text()) or []) if path.is_file() else []


def run_labels(runs: list[Path]) -> dict[Path, str]:
    """A short unique label per run: its backbone, else its overrides that differ, else its folder name."""
    backbones = {run: _backbone(run) for run in runs}
    if len(set(backbones.values())) == len(runs):
        return backbones
    overrides = {run: _overrides(run) for run in runs}
    common = set.intersection(*(set(o) for o in overrides.values())) if runs else set()
    labels = {run: " ".join(o for o in overrides[run] if o not in common) or run.name for run in runs}
    if len(set(labels.values())) == len(runs):
        return labels
    return {run: run.name for run in runs}


def merge_runs(runs: list[Path], labels: dict[Path, str]) -> pd.DataFrame:
    """The long results of all runs, with a ``run`` column holding each run's label (see :func:`run_labels`)."""
    frames = [pd.read_csv(run / "results" / "metrics.csv").assign(run=labels[run]) for run in runs]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def side_by_side(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per phase x target, one column per run and strategy (``<run> <strategy>``): mean ``metric``."""
    check_complete(frame, (metric,))
    table = frame.pivot_table(index=["phase", "target"], columns=["run", "strategy"], values=metric, aggfunc="mean")
    runs = list(dict.fromkeys(frame["run"]))
    columns = [(r, s) for r in runs for s in strategy_order(frame) if (r, s) in table.columns]
    table = table[columns]
    table.columns = [f"{r} {s}" for r, s in columns]
    return table.reset_index()


def overall_by_run(frame: pd.DataFrame) -> pd.DataFrame:
    """Per run x phase x strategy: instances and the means of Dice, IoU and HD (pixels) over them."""
    check_complete(frame, ("dice", "iou", "hd_px"))
    grouped = frame.groupby(["run", "phase", "strategy"], sort=False)
    out = grouped[["dice", "iou", "hd_px"]].mean()
    out.insert(0, "n", grouped.size())
    return out.reset_index()


def write_sweep_tables(sweep_dir: str | Path) -> dict[str, Path]:
    """Merge the runs under ``sweep_dir`` and write ``sweep_dice``, ``sweep_hd``, ``sweep_overall`` (.csv, .md)."""
    sweep_dir = Path(sweep_dir)
    runs = find_runs(sweep_dir)
    if not runs:
        return {}
    labels = run_labels(runs)
    frame = merge_runs(runs, labels)
    runs_line = ", ".join(f"{label} ({run.name})" for run, label in labels.items())
    tables = {
        "sweep_dice": ("Mean Dice per target, runs side by side", side_by_side(frame, "dice")),
        "sweep_hd": ("Mean HD (pixels) per target, runs side by side", side_by_side(frame, "hd_px")),
        "sweep_overall": ("Means per run and strategy over all object instances", overall_by_run(frame)),
    }
    paths = {}
    for name, (title, table) in tables.items():
        paths[f"{name}_csv"] = sweep_dir / f"{name}.csv"
        paths[f"{name}_md"] = sweep_dir / f"{name}.md"
        table.to_csv(paths[f"{name}_csv"], index=False)
        paths[f"{name}_md"].write_text(f"# {title}\n\nRuns: {runs_line}\n\n{markdown_table(table)}\n")
    return paths


class MergeSweepResults(Callback):
    """Hydra callback: after the last job of a multirun, write the side-by-side tables into the sweep folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Merge the sweep's results (see :func:`write_sweep_tables`)."""
        paths = write_sweep_tables(config.hydra.sweep.dir)
        if paths:
            print(f"side-by-side tables in {Path(config.hydra.sweep.dir).resolve()}: sweep_dice.md, sweep_hd.md")


if __name__ == "__main__":
    for written in write_sweep_tables(sys.argv[1]).values():
        print(written)
