"""Writing a run's result tables: ``metrics.csv``, ``summary.json``, the comparison and the paper's tables."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from sam4med.files import write_text
from sam4med.results.clicks import ClickTables, click_tables
from sam4med.results.comparison import comparison, improvement
from sam4med.results.frame import means_per_target, overall
from sam4med.results.statistics import (
    SMALL,
    SMALL_MARK,
    TOO_SMALL,
    StatisticsSettings,
    format_p,
    notes,
    small_n,
)
from sam4med.results.tables import (
    markdown_table,
    modality_table,
    s1_empty_table,
    strategy_table,
    target_table,
)
from sam4med.run_files import ResultsFolder


def write_results(
    frame: pd.DataFrame,
    folder: ResultsFolder,
    *,
    meta: dict,
    comp: pd.DataFrame | None = None,
    statistics: StatisticsSettings | None = None,
    clicks: ClickTables | None = None,
) -> dict[str, Path]:
    """Write ``metrics.csv``, ``summary.json``, ``comparison.md``/``.csv`` and the paper's tables (atomically).

    The tables (see :mod:`sam4med.results.tables`) are ``table_dice``, ``table_nsd`` (where the rows have NSD),
    ``table_hd``, ``per_modality``, ``per_strategy`` and ``s1_empty`` as CSV, and all of them in ``tables.md``.
    With a zero-shot and a fine-tuned phase, ``improvement.csv`` counts the targets whose mean Dice rose, per
    strategy. ``comp`` is :func:`~sam4med.results.comparison.comparison` of ``frame`` when already computed
    (None: computed with ``statistics``, the defaults when None). ``comparison.md`` shows the statistics as printed (see
    :func:`comparison_markdown`) with the notes on the unit and the small-n marks below the table.

    With iterative-click rows (``I@k``) also the tables of :mod:`sam4med.results.clicks`: ``noc.csv``,
    ``noc_summary.csv``, ``clicks.csv`` and, with both phases, ``noc_comparison.csv`` (also in
    ``comparison.md``); ``clicks`` is :func:`~sam4med.results.clicks.click_tables` of ``frame`` when already
    computed (None: computed with ``statistics``).
    """
    folder.path.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": folder.metrics,
        "summary": folder.summary,
        "comparison_md": folder.comparison_md,
        "comparison_csv": folder.comparison_csv,
    }

    write_text(paths["metrics"], frame.to_csv(index=False))
    summary = means_per_target(frame) if len(frame) else pd.DataFrame()
    means = overall(frame) if len(frame) else pd.DataFrame()
    write_text(
        paths["summary"],
        json.dumps(
            {
                "meta": meta,
                "means": summary.to_dict(orient="records"),
                "overall": means.to_dict(orient="records"),
                "s1_empty_images": s1_empty_table(frame).to_dict(orient="records") if len(frame) else [],
            },
            indent=2,
        ),
    )
    if comp is None:
        comp = comparison(frame, statistics=statistics) if len(frame) else pd.DataFrame()
    write_text(paths["comparison_csv"], comp.to_csv(index=False))
    lines = [f"# {meta.get('title', 'Results')}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "title"]
    lines += [
        "",
        "## Mean per strategy (over object instances)",
        "",
        markdown_table(means) if len(frame) else "",
    ]
    lines += ["", "## Per target", "", markdown_table(comparison_markdown(comp)) if len(comp) else "", ""]
    lines += [f"{line}\n" for line in notes(frame, comp)]
    if clicks is None:
        clicks = click_tables(frame, statistics)
    if clicks is not None and not clicks.comparison.empty:
        lines += click_comparison_section(frame, clicks.comparison)
    write_text(paths["comparison_md"], "\n".join(lines))
    if "dice_delta" in comp:
        paths["improvement"] = folder.improvement
        write_text(paths["improvement"], improvement(comp).to_csv(index=False))
    for name, table in (clicks.named if clicks is not None else {}).items():
        paths[name] = folder.table(name)
        write_text(paths[name], table.to_csv(index=False))
    if len(frame):
        paths.update(write_tables(frame, folder, clicks=clicks))
    return paths


def click_comparison_title(table: pd.DataFrame) -> str:
    """The heading of ``noc_comparison`` in ``comparison.md`` and ``report.html``: the clicks compared and
    which way is better.
    """
    counts = [int(m.removeprefix("Dice@")) for m in dict.fromkeys(table["measure"]) if m.startswith("Dice@")]
    clicks = ", ".join(map(str, counts))
    return f"Iterative clicks: NoC and Dice at {clicks} clicks, zero-shot vs fine-tuned (lower NoC is better)"


CLICK_NOTE = (
    "NoC@t: the first click whose IoU reaches t (0.80, 0.85, 0.90); an object that does not reach it within the "
    "run's clicks counts clicks + 1 and as failed (failed_zero_shot, failed_finetuned: the failure rates). "
    "delta is fine-tuned minus zero-shot: a negative NoC delta and a positive Dice delta are improvements. "
    "Paired by object, with the units and small-n rules of the comparison above."
)


def click_comparison_section(frame: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The lines of ``comparison.md`` for ``noc_comparison``: heading, table as printed, notes."""
    lines = ["", f"## {click_comparison_title(table)}", "", markdown_table(comparison_markdown(table, delta="delta"))]
    return lines + ["", CLICK_NOTE, ""] + [f"{line}\n" for line in notes(frame, table)]


def comparison_markdown(comp: pd.DataFrame, *, delta: str = "dice_delta") -> pd.DataFrame:
    """``comp`` as ``comparison.md`` shows it: intervals and p-values as text, ``n too small`` where there are
    fewer than 5 units and a ``†`` beside the change and the p-values with 5 to 9 (the CSV keeps numbers).
    ``delta`` names the change column (its interval: ``<delta>_ci_low``/``_high``).
    """
    if "n_units" not in comp:
        return comp
    shown = comp.astype(object)
    for k, row in comp.iterrows():
        flag = small_n(row["n_units"])
        for column in (f"{delta}_ci_low", f"{delta}_ci_high"):
            shown.at[k, column] = TOO_SMALL if flag == TOO_SMALL else row[column]
        for column in ("p_wilcoxon", "p_permutation"):
            shown.at[k, column] = format_p(row[column], row["n_units"])
        if flag == SMALL:
            shown.at[k, delta] = f"{row[delta]:.3f} {SMALL_MARK}"
        shown.at[k, "p_sign"] = "" if pd.isna(row["p_sign"]) else f"{row['p_sign']:.2g}"
    return shown


def write_tables(
    frame: pd.DataFrame, folder: ResultsFolder, *, digits: int = 3, clicks: ClickTables | None = None
) -> dict[str, Path]:
    """Write every table as CSV and all of them into ``tables.md``, with the NoC per target and the means per
    click of ``clicks`` (written by :func:`write_results`) at the end; returns the paths by name.
    """
    folder.path.mkdir(parents=True, exist_ok=True)
    tables = {
        "table_dice": ("Mean Dice per target and strategy (Table 2)", target_table(frame, "dice")),
        "table_nsd": (
            "Mean NSD (normalised surface distance, the run's tolerance in `hd_unit`) per target and strategy",
            target_table(frame, "nsd") if "nsd" in frame else None,
        ),
        "table_hd": (
            "Mean Hausdorff distance in pixels per target and strategy (Table 3)",
            target_table(frame, "hd_px"),
        ),
        "per_modality": ("Mean and std per modality (Fig. 10)", modality_table(frame)),
        "per_strategy": ("Mean and std per strategy over all object instances (Fig. 6)", strategy_table(frame)),
        "s1_empty": (
            "S1: images where no mask survived the generator's filters (scored Dice 0)",
            s1_empty_table(frame),
        ),
    }
    paths = {}
    lines = [
        "# Result tables",
        "",
        "Dice, NSD and IoU are fractions; `hd`/`hd95` (and NSD's tolerance) in mm where the spacing is known.",
        "",
    ]
    for name, (title, table) in tables.items():
        if table is None:  # no NSD in a metrics.csv written before it was scored
            continue
        paths[name] = folder.table(name)
        write_text(paths[name], table.to_csv(index=False))
        lines += [f"## {title}", "", markdown_table(table, digits=digits) if len(table) else "(none)", ""]
    if clicks is not None:
        for title, table in click_headings(clicks).items():
            lines += [f"## {title}", "", markdown_table(table, digits=digits) if len(table) else "(none)", ""]
    paths["markdown"] = folder.tables_md
    write_text(paths["markdown"], "\n".join(lines))
    return paths


def click_headings(clicks: ClickTables) -> dict[str, pd.DataFrame]:
    """The per-target NoC and the per-click means by heading, as ``tables.md`` and ``report.html`` show them."""
    return {
        "NoC per target: clicks to reach IoU 0.80 / 0.85 / 0.90 (lower is better; not reached: clicks + 1, "
        "failed: the failure rate)": clicks.noc_summary,
        "Mean Dice and IoU per click (95 % bootstrap CI over units)": clicks.clicks,
    }
