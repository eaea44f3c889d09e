"""Printing results as tables on the terminal."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table

from sam4med.evaluation.results import comparison, overall
from sam4med.evaluation.tables import strategy_table, target_table


def print_comparison(frame: pd.DataFrame, *, title: str) -> None:
    """Per target and strategy: mean Dice of each phase (and the change), then the overall means."""
    console = Console()
    comp = comparison(frame)
    phases = [c[len("dice_") :] for c in comp.columns if c.startswith("dice_") and not c.startswith("dice_delta")]
    table = Table(title=f"{title}: mean Dice per target")
    for name in ["strategy", "target", "n", *[f"Dice {p}" for p in phases]] + (
        ["change [95% CI]"] if "dice_delta" in comp else []
    ):
        table.add_column(name, justify="left" if name in ("strategy", "target") else "right")
    for row in comp.to_dict(orient="records"):
        cells = [row["strategy"], row["target"], str(row["n"])] + [f"{row[f'dice_{p}']:.3f}" for p in phases]
        if "dice_delta" in row:
            ci = f" [{row['dice_delta_ci_low']:+.3f}, {row['dice_delta_ci_high']:+.3f}]"
            cells.append(f"{row['dice_delta']:+.3f}{ci}")
        table.add_row(*cells)
    console.print(table)
    means = Table(title=f"{title}: mean over object instances")
    for name in ("phase", "strategy", "n", "Dice", "IoU", "HD", "HD95"):
        means.add_column(name)
    for row in overall(frame).to_dict(orient="records"):
        means.add_row(
            row["phase"],
            row["strategy"],
            str(row["n"]),
            f"{row['dice']:.3f}",
            f"{row['iou']:.3f}",
            f"{row['hd']:.1f}",
            f"{row['hd95']:.1f}",
        )
    console.print(means)


def print_strategy_table(frame: pd.DataFrame, *, title: str, metric: str = "dice") -> None:
    """Targets x strategies (the paper's Table 2 layout) of one phase or more, then the overall means."""
    console = Console()
    table = target_table(frame, metric)
    strategies = [c for c in table.columns if c not in ("phase", "target", "n")]
    phases = table["phase"].unique()
    out = Table(title=f"{title}: mean {metric} per target")
    for name in [*(["phase"] if len(phases) > 1 else []), "target", "n", *strategies]:
        out.add_column(name, justify="left" if name in ("phase", "target") else "right")
    means = strategy_table(frame, (metric,)).set_index(["phase", "strategy"])[f"{metric}_mean"]
    for phase in phases:
        rows = table[table["phase"] == phase]
        for row in rows.to_dict(orient="records"):
            cells = [str(row["target"]), str(row["n"])] + [f"{row[s]:.3f}" for s in strategies]
            out.add_row(*([phase] if len(phases) > 1 else []), *cells)
        overall = [f"{means.get((phase, s), float('nan')):.3f}" for s in strategies]
        out.add_row(*([phase] if len(phases) > 1 else []), "all instances", str(int(rows["n"].sum())), *overall)
    console.print(out)
