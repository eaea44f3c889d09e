"""Side-by-side tables of the runs of a Hydra multirun sweep (e.g. ``python evaluate.py -m model=vit_b,vit_h``).

Each job of a sweep writes ``<sweep dir>/<job>/results/metrics.csv``. :func:`write_sweep_tables` reads
them all and writes, into the sweep folder, the targets x (run, strategy) tables of mean Dice and mean
HD in pixels (laid out like the paper's Tables 2 and 3, ViT-B next to ViT-H), the per-strategy means
of every run, and ``report.html`` with a figure of the runs side by side. A run is labelled by its
backbone when the backbones differ between runs, otherwise by the overrides that differ. When every run
has its own backbone, ``backbones.csv``/``.md`` and ``figures/backbones`` compare them on identical prompts
(:mod:`sam4med.results.backbones`).
:class:`MergeSweepResults` calls it when a multirun ends (``conf/evaluate.yaml``, ``conf/train.yaml``);
``python -m sam4med.results.sweep DIR`` does it by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig

from sam4med.results.backbones import write_backbone_tables
from sam4med.results.comparison import ALL_TARGETS
from sam4med.results.folds import write_fold_tables
from sam4med.results.regimes import group_runs, write_regime_tables
from sam4med.results.statistics import StatisticsSettings, notes, pair, paired_delta, sign_test
from sam4med.results.sweep_page import write_sweep_report
from sam4med.results.tables import check_complete, markdown_table, strategy_order
from sam4med.results.write import comparison_markdown
from sam4med.run_files import METRICS_CSV, RunFolder


def find_runs(sweep_dir: Path) -> list[Path]:
    """Job folders under ``sweep_dir`` holding ``results/metrics.csv``, in job order."""
    runs = [p.parent.parent for p in Path(sweep_dir).glob(f"*/results/{METRICS_CSV}")]
    return sorted(runs, key=lambda p: (0, int(p.name)) if p.name.isdigit() else (1, p.name))


def _backbone(run: Path) -> str:
    summary = RunFolder(run).results.summary
    if summary.is_file():
        return str(json.loads(summary.read_text()).get("meta", {}).get("backbone", run.name))
    return run.name


def _overrides(run: Path) -> list[str]:
    path = RunFolder(run).overrides
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
    frames = [
        pd.read_csv(RunFolder(run).results.metrics, dtype={"source": str}).assign(run=labels[run]) for run in runs
    ]
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


def run_seed(run: Path) -> int | None:
    """The ``seed`` of a run's composed config (``.hydra/config.yaml``), or None."""
    path = RunFolder(run).hydra_config
    if not path.is_file():
        return None
    seed = (yaml.safe_load(path.read_text()) or {}).get("seed")
    return int(seed) if seed is not None else None


def seed_table(frame: pd.DataFrame, seeds: dict[str, int]) -> pd.DataFrame:
    """Per phase x strategy x target (and ``all targets``): mean, sd and n of the mean Dice over seeds.

    Args:
        frame: merged results with a ``run`` column.
        seeds: the seed of each run label.

    Returns:
        Columns phase, strategy, target, mean, sd (sample standard deviation, ddof=1; NaN for one seed),
        n (seeds), then ``seed_<k>``: the mean Dice of each seed's run.
    """
    frame = frame.assign(seed=frame["run"].map(seeds))
    per_target = frame.groupby(["phase", "strategy", "target", "seed"])["dice"].mean()
    per_all = frame.groupby(["phase", "strategy", "seed"])["dice"].mean()
    per_all = pd.concat({ALL_TARGETS: per_all}, names=["target"]).reorder_levels(
        ["phase", "strategy", "target", "seed"]
    )
    wide = pd.concat([per_target, per_all]).unstack("seed")
    wide.columns = [f"seed_{c}" for c in wide.columns]
    values = wide.to_numpy(dtype=float)
    stats = pd.DataFrame(
        {
            "mean": np.nanmean(values, axis=1),
            "sd": pd.DataFrame(values).std(axis=1, ddof=1).to_numpy(),
            "n": np.isfinite(values).sum(axis=1),
        },
        index=wide.index,
    )
    table = pd.concat([stats, wide], axis=1).reset_index()
    order = {s: k for k, s in enumerate(strategy_order(frame))}
    table["_s"] = table["strategy"].map(order)
    table["_t"] = table["target"] == ALL_TARGETS
    return table.sort_values(["phase", "_s", "_t", "target"]).drop(columns=["_s", "_t"]).reset_index(drop=True)


def run_statistics(frame: pd.DataFrame, statistics: StatisticsSettings | None = None) -> pd.DataFrame:
    """Per phase x strategy, every run against the first: paired Dice difference, its interval and tests.

    Objects are paired by key (the runs must score the same objects; unpaired ones are left out). The
    unit, the interval, the unit-level Wilcoxon and permutation tests and the small-n rules are those of
    a run's comparison (:mod:`sam4med.results.statistics`, ``statistics``: None for the defaults); the
    sign test is over the targets' mean differences.
    """
    runs = list(dict.fromkeys(frame["run"]))
    rows = []
    for phase in sorted(set(frame["phase"])):
        part = frame[frame.phase == phase]
        for other in runs[1:]:
            pairs = pair(part, runs[0], other, side="run")
            for strategy in strategy_order(part):
                sp = pairs[pairs.strategy == strategy]
                if sp.empty:
                    continue
                stat = paired_delta(sp, statistics)
                target_delta = sp.groupby("target").apply(lambda g: (g["after"] - g["before"]).mean())
                rows.append(
                    {
                        "phase": phase,
                        "strategy": strategy,
                        "reference": runs[0],
                        "run": other,
                        "n": stat.objects,
                        "dice_reference": float(sp["before"].mean()),
                        "dice_run": float(sp["after"].mean()),
                        "dice_delta": stat.delta,
                        **stat.columns(),
                        "p_sign": sign_test(target_delta),
                    }
                )
    return pd.DataFrame(rows)


def write_sweep_tables(
    sweep_dir: str | Path, statistics: StatisticsSettings | None = None, *, reference: str | None = None
) -> dict[str, Path]:
    """Merge the runs under ``sweep_dir`` and write the sweep tables into it (.csv and .md each).

    ``sweep_dice``, ``sweep_hd``, ``sweep_overall`` (runs side by side), ``sweep_stats`` (every run
    against the first, with statistics) and, when the runs have different seeds, ``seeds`` (mean, sd and
    per-seed values over the seeds); then ``figures/sweep_means`` and ``report.html`` (see
    :func:`~sam4med.results.sweep_page.write_sweep_report`). ``statistics``: the settings of
    ``sweep_stats`` and ``backbones`` (None: the defaults). When every run has its own backbone, also
    ``backbones`` and ``figures/backbones`` (:func:`~sam4med.results.backbones.write_backbone_tables`, every
    backbone against ``reference``, None: the first run's); otherwise, when the runs are regimes x seeds,
    ``regimes`` and ``figures/regimes`` (:func:`~sam4med.results.regimes.write_regime_tables`, every regime
    against ``reference``).
    """
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
    if len(runs) > 1:
        tables["sweep_stats"] = (
            "Mean Dice of every run against the first, paired by object (95 % bootstrap CI and tests over units)",
            run_statistics(frame, statistics),
        )
    seeds = {labels[run]: run_seed(run) for run in runs}
    if len(runs) > 1 and None not in seeds.values() and len(set(seeds.values())) == len(runs):
        tables["seeds"] = ("Mean Dice over seeds (sd: sample standard deviation over seeds)", seed_table(frame, seeds))
    paths = {}
    for name, (title, table) in tables.items():
        paths[f"{name}_csv"] = sweep_dir / f"{name}.csv"
        paths[f"{name}_md"] = sweep_dir / f"{name}.md"
        table.to_csv(paths[f"{name}_csv"], index=False)
        shown_table, lines = table, ""
        if name == "sweep_stats":  # the statistics as printed, with the unit and small-n notes
            shown_table = comparison_markdown(table)
            lines = "".join(f"\n{line}\n" for line in notes(frame, table))
        paths[f"{name}_md"].write_text(f"# {title}\n\nRuns: {runs_line}\n\n{markdown_table(shown_table)}\n{lines}")
    shown = {
        tables[n][0]: comparison_markdown(tables[n][1])
        for n in ("sweep_overall", "sweep_stats", "seeds")
        if n in tables
    }
    backbones = write_backbone_tables(sweep_dir, frame, labels, statistics=statistics, reference=reference)
    figures, page_notes = [], {}
    if backbones is not None:
        paths.update(backbones.paths)
        shown.update(backbones.tables)
        figures, page_notes = [backbones.figure], {next(iter(backbones.tables)): backbones.notes}
    else:  # runs of several regimes x seeds (train.py -m experiment=regimes): sam4med.results.regimes
        grouping = group_runs(labels, {run: _overrides(run) for run in runs}, {run: run_seed(run) for run in runs})
        regimes = write_regime_tables(sweep_dir, frame, labels, grouping, statistics=statistics, reference=reference)
        if regimes is not None:
            paths.update(regimes.paths)
            shown.update(regimes.tables)
            figures, page_notes = list(regimes.figures), {next(iter(regimes.tables)): regimes.notes}
    paths["report"] = write_sweep_report(sweep_dir, frame, shown, runs_line, figures=figures, notes=page_notes)
    # the folds of one k-fold (dataset.folds): folds.csv, folds_pooled.csv, folds.md (sam4med.results.folds)
    paths.update(write_fold_tables(sweep_dir, runs))
    return paths


class MergeSweepResults(Callback):
    """Hydra callback: after the last job of a multirun, write the side-by-side tables into the sweep folder
    (``sweep_stats`` with the sweep's ``statistics`` settings).
    """

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Merge the sweep's results (see :func:`write_sweep_tables`)."""
        statistics = instantiate(config.statistics) if config.get("statistics") else None
        paths = write_sweep_tables(config.hydra.sweep.dir, statistics)
        if paths:
            names = ", ".join(sorted({p.name for p in paths.values() if p.suffix == ".md"}))
            print(f"sweep tables in {Path(config.hydra.sweep.dir).resolve()}: {names} (open report.html)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Merge the runs of a multirun sweep into its side-by-side tables.")
    parser.add_argument("sweep_dir", help="the sweep folder (holding <job>/results/metrics.csv)")
    parser.add_argument(
        "--reference", help="the backbone or regime the others are compared with (default: the first run's)"
    )
    arguments = parser.parse_args()
    for written in write_sweep_tables(arguments.sweep_dir, reference=arguments.reference).values():
        print(written)
