"""The terminal's part of a run's results: one summary table, then the results folder and the headline metric.

Iterative clicks keep the console compact: one line, the last click ``I@K`` (every other strategy, S1-S6
and the modes M1-M5, has its own line), and below the table one note with NoC@85 per phase and its failure
rate; the per-click table is ``clicks.csv``, the NoC per object ``noc.csv``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from sam4med.evaluation.rows import Phase
from sam4med.results.clicks import final_click
from sam4med.results.comparison import ALL_TARGETS, comparison, improvement
from sam4med.results.figures import distance, label, phases
from sam4med.results.noc import max_clicks, noc_summary, noc_table
from sam4med.results.statistics import TOO_SMALL, format_change, format_p, notes
from sam4med.results.tables import strategy_order
from sam4med.run_files import ResultsFolder

HEADLINE_STRATEGY = "S5"


def summary_table(frame: pd.DataFrame, comp: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per strategy: instances, mean Dice, NSD and HD of each phase and, with both phases, the change.

    The change columns come from the ``all targets`` rows of :func:`comparison`: the unit resampled and
    tested and their number (``unit``, ``n units``), the Dice change with its bootstrap interval (``change
    CI low``/``high``), the unit-level Wilcoxon and permutation p-values, then the targets improved and
    the sign test's p-value (``comp``: the comparison when already computed). A comparison of an older
    version, without ``n_units``, leaves those two columns out. Column names carry the phase and the
    distance unit (``dice zero-shot``, ``nsd zero-shot``, ``hd_mm fine-tuned`` ...); the NSD columns stand
    beside the HD ones (a frame without ``nsd``, read back from an older ``metrics.csv``, has none).
    :func:`formatted_summary` prints it.
    Iterative clicks are one row, their last click ``I@K``.
    """
    frame = final_click(frame)
    names = phases(frame)
    column, hd_name = distance(frame)
    order = strategy_order(frame)
    grouped = frame.groupby(["strategy", "phase"])
    dice, hd = grouped["dice"].mean().unstack("phase"), grouped[column].mean().unstack("phase")
    table = pd.DataFrame(index=pd.Index(order, name="strategy"))
    table["n"] = frame.groupby("strategy")["object_key"].nunique().reindex(order).astype(int)
    for phase in names:
        table[f"dice {label(phase)}"] = dice[phase].reindex(order)
    if names == [Phase.ZERO_SHOT, Phase.FINETUNED]:
        comp = comparison(frame) if comp is None else comp
        totals = comp[comp["target"] == ALL_TARGETS].set_index("strategy").reindex(order)
        if "n_units" in totals:
            table["unit"], table["n units"] = totals["unit"], totals["n_units"]
        table["dice change"] = totals["dice_delta"]
        table["change CI low"], table["change CI high"] = totals["dice_delta_ci_low"], totals["dice_delta_ci_high"]
        table["p wilcoxon"] = totals["p_wilcoxon"]
        if "p_permutation" in totals:
            table["p permutation"] = totals["p_permutation"]
        counts = improvement(comp).set_index("strategy")
        table["improved targets"] = [f"{counts.loc[s, 'improved']}/{counts.loc[s, 'targets']}" for s in order]
        table["p sign"] = totals["p_sign"]
    if "nsd" in frame:
        nsd = grouped["nsd"].mean().unstack("phase")
        for phase in names:
            table[f"nsd {label(phase)}"] = nsd[phase].reindex(order)
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


def formatted_summary(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`summary_table` as printed (text cells): the units (``8 images``), the interval beside the
    change, p-values with two significant digits, a ``†`` with 5-9 units, and below 5 units ``(n too
    small)`` beside the change and ``–`` for the p-values (see :mod:`sam4med.results.statistics`), HD with
    one decimal.
    """
    table = table.copy()
    units = table["n units"] if "n units" in table else pd.Series(math.inf, index=table.index)
    if "dice change" in table:
        table["dice change"] = [
            format_change(d, lo, hi, n)
            for d, lo, hi, n in zip(
                table["dice change"], table["change CI low"], table["change CI high"], units, strict=True
            )
        ]
        table = table.drop(columns=["change CI low", "change CI high"]).rename(
            columns={"dice change": "dice change [95% CI]"}
        )
    if "n units" in table:
        table["n units"] = [
            f"{int(n)} {u}{'s' if n != 1 else ''}" for n, u in zip(units, table.pop("unit"), strict=True)
        ]
        table = table.rename(columns={"n units": "units"})
    cells = {}
    for name in table.columns:
        if name.startswith("p ") and name != "p sign":  # the change cell says "n too small" for the row
            cells[name] = [format_p(p, n).replace(TOO_SMALL, "–") for p, n in zip(table[name], units, strict=True)]
        elif name == "p sign":
            cells[name] = [f"{p:.2g}" for p in table[name]]
        elif name.startswith("hd"):
            cells[name] = [f"{v:.1f}" for v in table[name]]
        else:
            cells[name] = [_cell(v) for v in table[name]]
    return pd.DataFrame(cells, columns=table.columns)


def summary_notes(frame: pd.DataFrame, comp: pd.DataFrame | None) -> list[str]:
    """The lines printed under the summary table (see :func:`~sam4med.results.statistics.notes`), then the
    NoC line of the iterative clicks (:func:`noc_line`).
    """
    lines = []
    if comp is not None and "n_units" in comp and "target" in comp:
        lines = notes(frame, comp[comp["target"] == ALL_TARGETS])
    return lines + noc_line(frame)


def noc_line(frame: pd.DataFrame, threshold: int = 85) -> list[str]:
    """With ``I@k`` rows, one line: the mean NoC@85 over all objects per phase with the share not reached."""
    clicks = max_clicks(frame)
    if clicks == 0:
        return []
    totals = noc_summary(noc_table(frame))
    totals = totals[totals["target"] == ALL_TARGETS].to_dict(orient="records")
    parts = [
        f"{label(row['phase'])} {row[f'noc{threshold}']:.2f} (not reached {row[f'failed{threshold}']:.0%})"
        for row in totals
    ]
    return [
        f"I@{clicks}: the last of {clicks} iterative clicks. NoC@{threshold} (clicks to IoU >= 0.{threshold}, lower is "
        f"better, {clicks + 1} when not reached): {', '.join(parts)}. Per click: clicks.csv; per object: noc.csv."
    ]


def print_summary(frame: pd.DataFrame, *, title: str, comp: pd.DataFrame | None = None) -> None:
    """The one table printed at the end of a run (see :func:`formatted_summary`), then its notes."""
    if set(Phase) <= set(frame["phase"]) and comp is None:
        comp = comparison(frame)
    table = formatted_summary(summary_table(frame, comp))
    out = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), collapse_padding=True, pad_edge=False)
    for name in table.columns:
        out.add_column(name.replace(" ", "\n", 1), justify="left" if name == "strategy" else "right", no_wrap=True)
    for row in table.itertuples(index=False):
        out.add_row(*row)
    console = Console()
    # a log file or pipe gets the whole table (rich would squeeze it into 80 columns; with NSD it is about 160
    # wide); a terminal its width
    console = console if console.is_terminal else Console(width=max(console.width, 180))
    console.print(out)
    for line in summary_notes(frame, comp):
        console.print(line, highlight=False)


def conclude(results_dir: str | Path) -> float:
    """Print where the results are and the headline metric; returns it (NaN without results).

    What ``train.py`` and ``evaluate.py`` return from ``main``, so a Hydra sweeper can optimise it.
    """
    folder = ResultsFolder(Path(results_dir).resolve())
    metrics = folder.metrics
    frame = pd.read_csv(metrics) if metrics.is_file() and metrics.stat().st_size else pd.DataFrame()
    name, value = headline(frame)
    report = folder.report
    print(f"results: {folder.path}" + (f"  (open {report.name})" if report.is_file() else ""))
    if not math.isnan(value):
        print(f"headline: {name} = {value:.4f}")
    return value
