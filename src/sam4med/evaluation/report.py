"""Printing results on the terminal: one summary table per run, the headline metric, the results folder."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from sam4med.evaluation.figures import distance, label, phases
from sam4med.evaluation.results import ALL_TARGETS, comparison, improvement
from sam4med.evaluation.tables import strategy_order, strategy_table, target_table

HEADLINE_STRATEGY = "S5"


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy: instances, mean Dice and HD of each phase and, with both phases, the change.

    The change columns come from the ``all targets`` rows of :func:`comparison`: the Dice change with its
    95 % bootstrap CI (``change CI low``/``high``) and Wilcoxon p-value, then the targets improved and the
    sign test's p-value. Column names carry the phase and the distance unit (``dice zero-shot``,
    ``hd_mm fine-tuned`` ...).
    """
    names = phases(frame)
    column, hd_name = distance(frame)
    order = strategy_order(frame)
    grouped = frame.groupby(["strategy", "phase"])
    dice, hd = grouped["dice"].mean().unstack("phase"), grouped[column].mean().unstack("phase")
    table = pd.DataFrame(index=pd.Index(order, name="strategy"))
    table["n"] = frame.groupby("strategy")["object_key"].nunique().reindex(order).astype(int)
    for phase in names:
        table[f"dice {label(phase)}"] = dice[phase].reindex(order)
    if len(names) == 2 and "zero_shot" in names and "finetuned" in names:
        comp = comparison(frame)
        totals = comp[comp["target"] == ALL_TARGETS].set_index("strategy").reindex(order)
        table["dice change"] = totals["dice_delta"]
        table["change CI low"], table["change CI high"] = totals["dice_delta_ci_low"], totals["dice_delta_ci_high"]
        table["p wilcoxon"] = totals["p_wilcoxon"]
        counts = improvement(comp).set_index("strategy")
        table["improved targets"] = [f"{counts.loc[s, 'improved']}/{counts.loc[s, 'targets']}" for s in order]
        table["p sign"] = totals["p_sign"]
    for phase in names:
        table[f"{hd_name} {label(phase)}"] = hd[phase].reindex(order)
    return table.reset_index()


def headline(frame: pd.DataFrame) -> tuple[str, float]:
    """The run's headline metric and its name: mean Dice of the last phase under S5 (else the last strategy)."""
    if frame.empty:
        return "dice", math.nan
    phase = phases(frame)[-1]
    strategy = HEADLINE_STRATEGY if HEADLINE_STRATEGY in set(frame["strategy"]) else strategy_order(frame)[-1]
    rows = frame[(frame["phase"] == phase) & (frame["strategy"] == strategy)]
    return f"{phase}/{strategy}/dice", float(rows["dice"].mean())


def _cell(value: object) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def print_summary(frame: pd.DataFrame, *, title: str) -> None:
    """The one table printed at the end of a run (see :func:`summary_table`; the CI goes beside the change)."""
    table = summary_table(frame)
    if "dice change" in table:
        table["dice change"] = [
            f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"
            for d, lo, hi in zip(table["dice change"], table["change CI low"], table["change CI high"], strict=True)
        ]
        table = table.drop(columns=["change CI low", "change CI high"]).rename(
            columns={"dice change": "dice change [95% CI]"}
        )
    out = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False)
    for name in table.columns:
        out.add_column(name.replace(" ", "\n", 1), justify="left" if name == "strategy" else "right", no_wrap=True)
    for row in table.itertuples(index=False):
        cells = []
        for name, value in zip(table.columns, row, strict=True):
            if name.startswith("p "):
                cells.append(f"{value:.2g}")
            else:
                cells.append(f"{value:.1f}" if name.startswith("hd") else _cell(value))
        out.add_row(*cells)
    console = Console()
    # a log file or pipe gets the whole table (rich would squeeze it into 80 columns); a terminal its width
    (console if console.is_terminal else Console(width=max(console.width, 120))).print(out)


def print_strategy_table(frame: pd.DataFrame, *, title: str, metric: str = "dice") -> None:
    """Targets x strategies (the paper's Table 2 layout) of one phase or more, then the overall means."""
    console = Console()
    table = target_table(frame, metric)
    strategies = [c for c in table.columns if c not in ("phase", "target", "n")]
    names = table["phase"].unique()
    out = Table(title=f"{title}: mean {metric} per target")
    for name in [*(["phase"] if len(names) > 1 else []), "target", "n", *strategies]:
        out.add_column(name, justify="left" if name in ("phase", "target") else "right")
    means = strategy_table(frame, (metric,)).set_index(["phase", "strategy"])[f"{metric}_mean"]
    for phase in names:
        rows = table[table["phase"] == phase]
        for row in rows.to_dict(orient="records"):
            cells = [str(row["target"]), str(row["n"])] + [f"{row[s]:.3f}" for s in strategies]
            out.add_row(*([phase] if len(names) > 1 else []), *cells)
        overall = [f"{means.get((phase, s), float('nan')):.3f}" for s in strategies]
        out.add_row(*([phase] if len(names) > 1 else []), "all instances", str(int(rows["n"].sum())), *overall)
    console.print(out)


def conclude(results_dir: str | Path) -> float:
    """Print where the results are and the headline metric; returns it (NaN without results).

    What ``train.py`` and ``evaluate.py`` return from ``main``, so a Hydra sweeper can optimise it.
    """
    results_dir = Path(results_dir).resolve()
    metrics = results_dir / "metrics.csv"
    frame = pd.read_csv(metrics) if metrics.is_file() and metrics.stat().st_size else pd.DataFrame()
    name, value = headline(frame)
    report = results_dir / "report.html"
    print(f"results: {results_dir}" + (f"  (open {report.name})" if report.is_file() else ""))
    if not math.isnan(value):
        print(f"headline: {name} = {value:.4f}")
    return value
