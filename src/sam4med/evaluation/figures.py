"""Figures of a comparison: per-strategy bar chart and prediction overlays (matplotlib, Agg)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from sam4med.evaluation.results import overall  # noqa: E402
from sam4med.prompts.prompt import Prompt  # noqa: E402


def strategy_bars(frame: pd.DataFrame, metric: str = "dice") -> Figure:
    """Mean ``metric`` per strategy, one bar per phase (the paper's Fig. 6 / Fig. 18 style)."""
    table = overall(frame).pivot(index="strategy", columns="phase", values=metric)
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(table), 3.2))
    width = 0.8 / max(1, len(table.columns))
    x = np.arange(len(table))
    for k, phase in enumerate(table.columns):
        ax.bar(x + k * width, table[phase].to_numpy(), width, label=phase)
    ax.set_xticks(x + width * (len(table.columns) - 1) / 2, table.index)
    ax.set_ylabel(f"mean {metric}")
    ax.set_ylim(0, 1 if metric in ("dice", "iou") else None)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def overlay(image: np.ndarray, gt: np.ndarray, pred: np.ndarray, prompt: Prompt | None, title: str) -> Figure:
    """Image with the ground-truth outline (green), the prediction (red) and the prompt drawn on it.

    Args:
        image: H x W x 3 uint8.
        gt: H x W bool ground truth.
        pred: H x W bool prediction.
        prompt: drawn in original pixels (XY); positive points green, negative blue, box yellow.
        title: figure title.
    """
    fig, ax = plt.subplots(figsize=(4, 4 * image.shape[0] / image.shape[1]))
    ax.imshow(image)
    ax.imshow(np.ma.masked_where(~pred, pred), cmap="autumn", alpha=0.45, interpolation="nearest")
    ax.contour(gt.astype(float), levels=[0.5], colors="lime", linewidths=1)
    if prompt is not None:
        pts, labels = prompt.points_array, prompt.labels_array
        ax.scatter(pts[labels == 1, 0], pts[labels == 1, 1], c="lime", marker="*", s=60, edgecolors="k")
        ax.scatter(pts[labels == 0, 0], pts[labels == 0, 1], c="deepskyblue", marker="*", s=60, edgecolors="k")
        if prompt.box is not None:
            x0, y0, x1, y1 = prompt.box
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="yellow", linewidth=1))
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    fig.tight_layout()
    return fig
