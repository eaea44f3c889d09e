"""The figure and ``report.html`` of a multirun sweep: its runs side by side.

:func:`sweep_means` draws the mean Dice per strategy of every run, one panel per phase (zero-shot,
then fine-tuned), one colour per run. :func:`write_sweep_report` writes it into ``<sweep>/figures/``
and ``<sweep>/report.html`` with the sweep tables (see :mod:`sam4med.results.sweep`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sam4med.files import write_text
from sam4med.results.figures import label, legend_below, phases, save_figure
from sam4med.results.page import render
from sam4med.results.tables import strategy_order
from sam4med.run_files import ResultsFolder

# run colours: tab10 without its blue and orange, which mean zero-shot and fine-tuned in every other figure
RUN_COLOURS = ("#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def run_bars(
    ax: plt.Axes, order: Sequence[str], bars: Sequence[tuple[str, np.ndarray, np.ndarray]], *, title: str
) -> None:
    """Mean Dice per strategy of ``order`` on ``ax``, one bar per run side by side: ``bars`` holds per run its
    label, its means and its error bars (one value or 2 x S lower/upper lengths per strategy, in ``order``).
    """
    x = np.arange(len(order))
    width = 0.8 / len(bars)
    for k, (name, mean, yerr) in enumerate(bars):
        ax.bar(
            x + (k - (len(bars) - 1) / 2) * width,
            mean,
            width,
            yerr=yerr,
            capsize=2,
            color=RUN_COLOURS[k % len(RUN_COLOURS)],
            label=name,
            error_kw={"elinewidth": 0.8, "ecolor": "#333333"},
        )
    ax.set_xticks(x, order)
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def sweep_means(frame: pd.DataFrame) -> Figure:
    """Mean Dice per strategy over all object instances, runs side by side (``frame`` has a ``run`` column).

    One panel per phase; error bars are one standard deviation over the objects.
    """
    runs = list(dict.fromkeys(frame["run"]))
    order = strategy_order(frame)
    names = phases(frame)
    fig, axes = plt.subplots(
        1, len(names), figsize=(1.5 + (0.9 + 0.25 * len(runs)) * len(order) * len(names), 3.8), squeeze=False
    )
    for ax, phase in zip(axes[0], names, strict=True):
        grouped = frame[frame["phase"] == phase].groupby(["strategy", "run"], sort=False)["dice"]
        mean = grouped.mean().unstack("run").reindex(index=order, columns=runs)
        std = grouped.std(ddof=0).unstack("run").reindex(index=order, columns=runs)
        bars = [(run, mean[run].to_numpy(), std[run].to_numpy()) for run in runs]
        run_bars(ax, order, bars, title=label(phase))
    axes[0, 0].set_ylabel("mean Dice")
    fig.suptitle("Mean Dice per strategy, runs side by side (error bars: one std)", fontsize=10, x=0.02, ha="left")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    legend_below(fig, handles, labels, fontsize=8)
    return fig


def write_sweep_report(
    sweep_dir: Path,
    frame: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    runs: str,
    *,
    figures: Sequence[tuple[str, Path]] = (),
    notes: Mapping[str, Sequence[str]] | None = None,
) -> Path:
    """Draw :func:`sweep_means` into ``<sweep_dir>/figures`` and write ``<sweep_dir>/report.html``.

    Args:
        sweep_dir: the sweep folder.
        frame: the merged results of its runs (with a ``run`` column).
        tables: the sweep tables by heading, in the order the page shows them.
        runs: one line naming the runs (label and job folder).
        figures: further (caption, PNG) figures shown after the runs side by side (e.g. the backbones').
        notes: lines under a table, by heading.
    """
    fig = sweep_means(frame)
    folder = ResultsFolder(sweep_dir)  # a sweep folder holds its figures and page under the same names as a run
    png = save_figure(fig, folder.figures, "sweep_means")
    plt.close(fig)
    page = render(
        title=f"Sweep {sweep_dir.resolve().name}",
        intro=f"Runs: {runs}. Every run has its own report.html in <job>/results/.",
        tables=tables,
        figures=[("Mean Dice per strategy, runs side by side", png), *figures],
        overlays=[],
        settings={},
        notes=notes,
    )
    write_text(folder.report, page)
    return folder.report
