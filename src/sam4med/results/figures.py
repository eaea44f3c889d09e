"""The paper's figures, drawn from the long results frame (one row per phase x strategy x object).

Every figure orders phases zero-shot -> fine-tuned and gives each phase one fixed colour
(:data:`PHASE_COLOURS`), so a figure of an ``evaluate.py`` run and one of a ``train.py`` run read alike.

* :func:`dice_boxes`: Dice distribution per target and strategy (COSMOS Figs. 7-8).
* :func:`strategy_means`: mean Dice, mean NSD and mean HD per strategy (Fig. 6, with NSD beside Dice).
* :func:`modality_means`: mean Dice per modality under one strategy, S5 by default (Fig. 10).
* :func:`before_after`: mean Dice per target before and after fine-tuning.
* :func:`dice_change`: the Dice change per target and over all targets, with the comparison's 95 % CI
  (Fig. 18; the caption names the bootstrap method and the unit resampled, :func:`ci_caption`).
* :func:`dice_vs_clicks`: mean Dice versus the number of clicks per phase with 95 % interval bands (the
  click curves of Mazurowski et al., Fig. 5), drawn only when the frame has iterative-click rows ``I@k``.

:func:`run_figures` makes all that apply to a frame; :func:`save_figure` writes one as PNG and SVG. The
other figures show the iterative clicks at their last click ``I@K`` only (:func:`~sam4med.results.clicks.final_click`):
the per-click detail is the click figure's.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import matplotlib

if "matplotlib.pyplot" not in sys.modules:  # a script: draw off-screen; a notebook keeps its inline backend
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sam4med import files  # noqa: E402
from sam4med.evaluation.rows import PHASE_LABELS, Phase  # noqa: E402
from sam4med.results.clicks import click_means, final_click  # noqa: E402
from sam4med.results.comparison import ALL_TARGETS  # noqa: E402
from sam4med.results.noc import max_clicks  # noqa: E402
from sam4med.results.statistics import TOO_SMALL, StatisticsSettings, format_p, small_n  # noqa: E402
from sam4med.results.tables import strategy_order  # noqa: E402

PHASE_ORDER = tuple(Phase)
PHASE_COLOURS = {Phase.ZERO_SHOT: "#4c72b0", Phase.FINETUNED: "#dd8452"}
OTHER_COLOUR = "#8c8c8c"
CI_COLUMNS = ("dice_delta_ci_low", "dice_delta_ci_high")
DPI = 110


def phases(frame: pd.DataFrame) -> list[str]:
    """The phases of ``frame``: zero-shot, then fine-tuned (as :class:`Phase`), then any other text, sorted."""
    present = set(frame["phase"])
    return [p for p in PHASE_ORDER if p in present] + sorted(present - set(PHASE_ORDER))


def colour(phase: str) -> str:
    """The fixed colour of a phase."""
    return PHASE_COLOURS.get(phase, OTHER_COLOUR)


def label(phase: str) -> str:
    """How a phase is written in legends and titles."""
    return PHASE_LABELS.get(phase, phase)


def distance(frame: pd.DataFrame) -> tuple[str, str]:
    """The Hausdorff column to draw and its name with unit: ``("hd", "hd_mm")`` when every row is in mm,
    else ``("hd_px", "hd_px")`` (pixels, which every row has).
    """
    units = set(frame["hd_unit"]) if "hd_unit" in frame else set()
    if units == {"mm"}:
        return "hd", "hd_mm"
    return ("hd_px", "hd_px") if "hd_px" in frame else ("hd", "hd_px")


def save_figure(fig: Figure, folder: Path, name: str) -> Path:
    """Write ``<folder>/<name>.png`` and ``.svg`` (atomically); returns the PNG's path (the figure stays open)."""
    folder.mkdir(parents=True, exist_ok=True)
    png = folder / f"{name}.png"
    files.save_figure(png, fig, dpi=DPI, bbox_inches="tight")
    files.save_figure(folder / f"{name}.svg", fig, bbox_inches="tight")
    return png


def legend_below(fig: Figure, handles: list, labels: list[str], **kwargs: object) -> None:
    """A legend centred below the panels, laid out with them (constrained layout): never over a title or a bar."""
    fig.set_layout_engine("constrained")
    fig.legend(handles, labels, loc="outside lower center", frameon=False, ncols=len(labels), **kwargs)


def _finish(fig: Figure, names: list[str]) -> None:
    """The phase legend below the panels, in phase order and colours."""
    legend_below(fig, [plt.Rectangle((0, 0), 1, 1, color=colour(p)) for p in names], [label(p) for p in names])


def _grouped_bars(ax: Axes, table: pd.DataFrame, err: pd.DataFrame | None, names: list[str]) -> None:
    """Bars of ``table`` (rows = groups on the x axis, columns = phases), one colour per phase."""
    x = np.arange(len(table))
    width = 0.8 / max(1, len(names))
    for k, phase in enumerate(names):
        if phase not in table:
            continue
        yerr = None
        if err is not None and phase in err:  # one std, cut at zero below: no metric here is negative
            std = err[phase].to_numpy(dtype=float)
            yerr = np.vstack([np.minimum(std, table[phase].to_numpy(dtype=float)), std])
        ax.bar(
            x + (k - (len(names) - 1) / 2) * width,
            table[phase].to_numpy(),
            width,
            yerr=yerr,
            capsize=2,
            color=colour(phase),
            error_kw={"elinewidth": 0.8, "ecolor": "#333333"},
        )
    ax.set_xticks(x, table.index, rotation=30 if len(table) > 6 else 0, ha="right" if len(table) > 6 else "center")
    ax.grid(axis="y", alpha=0.3)


def strategy_means(frame: pd.DataFrame) -> Figure:
    """Fig. 6: mean Dice (left), mean NSD (middle, where the frame has it) and mean HD (right) per strategy over
    all object instances, +- one std.
    """
    names = phases(frame)
    column, hd_name = distance(frame)
    panels = [("dice", "mean Dice"), (column, f"mean HD ({hd_name.split('_')[1]})")]
    if "nsd" in frame:
        panels.insert(1, ("nsd", "mean NSD"))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.5 + 0.8 * len(panels) * frame["strategy"].nunique(), 3.6))
    for ax, (metric, title) in zip(axes, panels, strict=True):
        grouped = frame.groupby(["strategy", "phase"])[metric]
        order = strategy_order(frame)
        mean = grouped.mean().unstack("phase").reindex(order)
        std = grouped.std(ddof=0).unstack("phase").reindex(order)
        _grouped_bars(ax, mean, std, names)
        ax.set_title(title)
        if metric in ("dice", "nsd"):
            ax.set_ylim(0, 1.05)
    fig.suptitle(
        "Mean per strategy over all object instances (error bars: one std; a missed object's HD is the image diagonal)",
        fontsize=10,
        x=0.02,
        ha="left",
    )
    _finish(fig, names)
    return fig


def modality_means(frame: pd.DataFrame, strategy: str = "S5") -> Figure:
    """Fig. 10: mean Dice per modality under ``strategy`` (the last strategy when it is absent), +- one std."""
    if strategy not in set(frame["strategy"]):
        strategy = strategy_order(frame)[-1]
    rows = frame[frame["strategy"] == strategy]
    names = phases(frame)
    grouped = rows.groupby(["modality", "phase"])["dice"]
    mean, std = grouped.mean().unstack("phase"), grouped.std(ddof=0).unstack("phase")
    fig, ax = plt.subplots(figsize=(2.5 + 1.1 * len(mean) * max(1, len(names)) / 2, 3.6))
    _grouped_bars(ax, mean, std, names)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("mean Dice")
    ax.set_title(f"Mean Dice per modality under {strategy} (error bars: one std)", fontsize=10, loc="left")
    _finish(fig, names)
    return fig


def _panels(count: int, width: float, height: float, columns: int = 3) -> tuple[Figure, list[Axes]]:
    cols = min(columns, count)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:count])


def dice_boxes(frame: pd.DataFrame) -> Figure:
    """Figs. 7-8: Dice of every object instance per target, one panel per strategy, one box per phase."""
    names = phases(frame)
    targets = sorted(frame["target"].unique())
    order = strategy_order(frame)
    width = 0.8 / max(1, len(names))
    fig, axes = plt.subplots(
        len(order),
        1,
        figsize=(max(7.0, 0.55 * len(targets) * len(names) + 2), 2.4 * len(order)),
        squeeze=False,
        sharex=True,
    )
    for ax, strategy in zip(axes[:, 0], order, strict=True):
        rows = frame[frame["strategy"] == strategy]
        for k, phase in enumerate(names):
            data = [rows.loc[(rows["phase"] == phase) & (rows["target"] == t), "dice"].to_numpy() for t in targets]
            positions = np.arange(len(targets)) + (k - (len(names) - 1) / 2) * width
            keep = [i for i, d in enumerate(data) if len(d)]
            if not keep:
                continue
            boxes = ax.boxplot(
                [data[i] for i in keep],
                positions=positions[keep],
                widths=width * 0.9,
                patch_artist=True,
                manage_ticks=False,
                flierprops={"markersize": 2},
            )
            for patch in boxes["boxes"]:
                patch.set(facecolor=colour(phase), alpha=0.8)
            for median in boxes["medians"]:
                median.set(color="black")
            for i in keep:  # every instance as a dot, so a target with few instances still shows its phase
                jitter = np.linspace(-0.25, 0.25, len(data[i])) * width if len(data[i]) > 1 else np.zeros(1)
                ax.scatter(
                    positions[i] + jitter,
                    data[i],
                    s=9,
                    color=colour(phase),
                    edgecolors="black",
                    linewidths=0.4,
                    zorder=3,
                )
        ax.set_ylim(-0.03, 1.03)
        ax.set_ylabel(f"{strategy} Dice")
        ax.grid(axis="y", alpha=0.3)
    last = axes[-1, 0]
    last.set_xticks(np.arange(len(targets)), targets, rotation=40, ha="right", fontsize=8)
    fig.suptitle("Dice per object instance, per target and strategy", fontsize=10, x=0.02, ha="left")
    _finish(fig, names)
    return fig


def before_after(frame: pd.DataFrame) -> Figure:
    """Mean Dice per target before and after fine-tuning, one panel per strategy (the levels behind Fig. 18)."""
    names = phases(frame)
    order = strategy_order(frame)
    targets = sorted(frame["target"].unique())
    fig, axes = _panels(len(order), 4.2, 1.2 + 0.22 * len(targets) * len(names))
    height = 0.8 / max(1, len(names))
    for ax, strategy in zip(axes, order, strict=True):
        means = frame[frame["strategy"] == strategy].groupby(["target", "phase"])["dice"].mean().unstack("phase")
        means = means.reindex(targets)
        y = np.arange(len(targets))
        for k, phase in enumerate(names):
            if phase in means:
                # zero-shot above fine-tuned in every target's pair (the y axis is inverted)
                ax.barh(y + (k - (len(names) - 1) / 2) * height, means[phase].to_numpy(), height, color=colour(phase))
        ax.set_yticks(y, targets if ax.get_subplotspec().is_first_col() else [""] * len(targets), fontsize=7)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(strategy, fontsize=9)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("Mean Dice per target before and after fine-tuning", fontsize=10, x=0.02, ha="left")
    _finish(fig, names)
    return fig


def _stat_line(strategy: str, rows: pd.DataFrame) -> str:
    """Panel title: the change over all targets (from the ``all targets`` row where there is one), its units
    and its p-values (``n too small`` below 5 units, a ``†`` with 5 to 9).
    """
    if ALL_TARGETS in rows.index and pd.notna(rows.loc[ALL_TARGETS, "dice_delta"]):
        total = rows.loc[ALL_TARGETS]
        parts = [f"all targets {total['dice_delta']:+.3f}"]
        n_units = total["n_units"] if "n_units" in rows else math.inf
        if "n_units" in rows:
            parts[0] += f" ({int(n_units)} {total['unit']}{'s' if n_units != 1 else ''})"
        if small_n(n_units) == TOO_SMALL:
            parts.append(TOO_SMALL)
        else:
            for column, name in (("p_wilcoxon", "Wilcoxon p"), ("p_permutation", "perm. p")):
                if column in rows and pd.notna(total[column]):
                    parts.append(f"{name} {format_p(total[column], n_units)}")
        if "p_sign" in rows and pd.notna(total["p_sign"]):
            parts.append(f"sign p {total['p_sign']:.2g}")
    else:
        parts = [f"mean change {rows['dice_delta'].mean():+.3f}"]
    return f"{strategy}: " + ", ".join(parts)


def ci_caption(comp: pd.DataFrame, columns: tuple[str, str] = CI_COLUMNS, marks: str = "error bars") -> str:
    """What the error bars of :func:`dice_change` (or the ``marks`` of another figure, drawn from the interval
    ``columns``) are: the interval, its method and the unit resampled.
    """
    if not all(c in comp for c in columns):
        return ""
    if "unit" not in comp:  # a comparison of an older version
        return f" ({marks}: 95 % bootstrap CI of the paired difference)"
    shown = comp[np.isfinite(comp[columns[0]].to_numpy(dtype=float))]
    units = " or ".join(f"{u}s" for u in sorted(set(comp["unit"].dropna().astype(str))))
    if shown.empty:
        return f" (no {marks}: {TOO_SMALL}, fewer than 5 {units or 'units'})"
    methods = "/".join(sorted(set(shown["ci_method"].dropna().astype(str)) - {""}))
    missing = f"; none where {TOO_SMALL}" if len(shown) < len(comp) else ""
    return f" ({marks}: 95 % {methods} bootstrap CI, {units} resampled{missing})"


def dice_change(comp: pd.DataFrame) -> Figure:
    """Fig. 18: Dice change per target after fine-tuning (from ``comparison``), one panel per strategy.

    Bars are the change of the mean Dice, one per target, then the ``all targets`` row of the
    comparison (the mean over all objects) below a line. Where the comparison has
    ``dice_delta_ci_low``/``_high`` (95 % bootstrap CI of the paired difference, units resampled) they
    are drawn as error bars, and the title says which method and unit (:func:`ci_caption`); the panel
    title gives the ``all targets`` change with its units, ``p_wilcoxon``, ``p_permutation`` and ``p_sign``.
    """
    order = strategy_order(comp)
    targets = sorted(set(comp["target"]) - {ALL_TARGETS})
    if ALL_TARGETS in set(comp["target"]):
        targets.append(ALL_TARGETS)
    fig, axes = _panels(len(order), 4.4, 1.3 + 0.25 * len(targets))
    has_ci = all(c in comp for c in CI_COLUMNS)
    for ax, strategy in zip(axes, order, strict=True):
        rows = comp[comp["strategy"] == strategy].set_index("target").reindex(targets)
        delta = rows["dice_delta"].to_numpy(dtype=float)
        y = np.arange(len(targets))
        colours = [colour(Phase.FINETUNED) if d > 0 else colour(Phase.ZERO_SHOT) for d in np.nan_to_num(delta)]
        xerr = None
        if has_ci:
            low, high = rows[CI_COLUMNS[0]].to_numpy(dtype=float), rows[CI_COLUMNS[1]].to_numpy(dtype=float)
            xerr = np.nan_to_num(np.vstack([delta - low, high - delta]).clip(min=0))
        bars = ax.barh(y, delta, 0.7, xerr=xerr, color=colours, capsize=2, error_kw={"elinewidth": 0.8})
        if targets[-1] == ALL_TARGETS:
            bars[-1].set(edgecolor="black", linewidth=1.0, hatch="//")
            ax.axhline(len(targets) - 1.5, color="#555555", linewidth=0.6, linestyle="--")
        ax.axvline(0, color="black", linewidth=0.6)
        ax.set_yticks(y, targets if ax.get_subplotspec().is_first_col() else [""] * len(targets), fontsize=7)
        ax.invert_yaxis()
        ax.set_title(_stat_line(strategy, rows.dropna(subset=["dice_delta"])), fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(
        f"Dice change per target, fine-tuned minus zero-shot{ci_caption(comp)}", fontsize=10, x=0.02, ha="left"
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour(p)) for p in (Phase.FINETUNED, Phase.ZERO_SHOT)]
    legend_below(fig, handles, ["fine-tuned better", "zero-shot better"])
    return fig


def dice_vs_clicks(clicks: pd.DataFrame) -> Figure:
    """Mean Dice versus the number of clicks, one line per phase, the 95 % bootstrap interval over units as a
    band (none where there are fewer than 5 units); ``clicks`` is ``clicks.csv``
    (:func:`~sam4med.results.clicks.click_means`). The title names the bootstrap method and the unit.
    """
    names = phases(clicks)
    fig, ax = plt.subplots(figsize=(6.0, 3.8))
    for phase in names:
        rows = clicks[clicks["phase"] == phase].sort_values("click")
        x = rows["click"].to_numpy(dtype=int)
        low, high = rows["dice_ci_low"].to_numpy(dtype=float), rows["dice_ci_high"].to_numpy(dtype=float)
        finite = np.isfinite(low) & np.isfinite(high)
        if finite.any():
            ax.fill_between(x, low, high, where=finite, color=colour(phase), alpha=0.2, linewidth=0)
        ax.plot(x, rows["dice"].to_numpy(dtype=float), marker="o", markersize=4, color=colour(phase))
    last = int(clicks["click"].max())
    ax.set_xticks(range(1, last + 1))
    ax.set_xlim(0.7, last + 0.3)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("clicks")
    ax.set_ylabel("mean Dice")
    ax.grid(alpha=0.3)
    caption = ci_caption(clicks, ("dice_ci_low", "dice_ci_high"), marks="bands")
    fig.suptitle(f"Mean Dice versus clicks{caption}", fontsize=10, x=0.02, ha="left")
    _finish(fig, names)
    return fig


def run_figures(
    frame: pd.DataFrame,
    comp: pd.DataFrame | None = None,
    *,
    clicks: pd.DataFrame | None = None,
    statistics: StatisticsSettings | None = None,
) -> dict[str, Figure]:
    """Every figure that applies to ``frame``, by file name; before/after ones only with both phases.

    The iterative clicks appear at their last click in every figure but :func:`dice_vs_clicks`, drawn when
    ``frame`` has ``I@k`` rows from ``clicks`` (``clicks.csv``; None: computed with ``statistics``).
    """
    if frame.empty:
        return {}
    shown = final_click(frame)
    figures = {
        "strategy_means": strategy_means(shown),
        "dice_boxes": dice_boxes(shown),
        "modality_means": modality_means(shown),
    }
    if set(PHASE_ORDER) <= set(frame["phase"]):
        figures["before_after"] = before_after(shown)
        if comp is not None and "dice_delta" in comp:
            figures["dice_change"] = dice_change(comp[comp["strategy"].isin(set(shown["strategy"]))])
    if max_clicks(frame):
        figures["dice_vs_clicks"] = dice_vs_clicks(click_means(frame, statistics) if clicks is None else clicks)
    return figures


def write_figures(frame: pd.DataFrame, folder: Path, comp: pd.DataFrame | None = None) -> dict[str, Path]:
    """Draw :func:`run_figures` into ``folder`` (PNG and SVG) and close them; returns the PNG paths by name."""
    paths = {}
    for name, fig in run_figures(frame, comp).items():
        paths[name] = save_figure(fig, folder, name)
        plt.close(fig)
    return paths
