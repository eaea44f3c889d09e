"""``analysis=grid``: S1 (everything mode) over grid sizes and filter pairs, COSMOS Table 5.

For each phase x grid size (``points_per_side``) x filter pair (``pred_iou_thresh``,
``stability_score_thresh``), S1 is run as scoring runs it (:class:`~sam4med.evaluation.everything.EverythingMode`
with the run's other S1 settings, its decoder call size and bf16 autocast, the Eq. 1 matching of
:func:`~sam4med.evaluation.everything.match_masks`, rows by :func:`~sam4med.evaluation.scoring.score_objects`)
on the run's cached embeddings. Each grid is decoded once per image and every filter pair is applied to
the same decoder outputs (:meth:`EverythingMode.generate <sam4med.evaluation.everything.EverythingMode.generate>`):
a pair's masks are those of a run with that pair alone, and the grid and filters of the run's own S1
give its S1 rows object by object (``tests/analysis/test_grid.py``).

Seconds per image cover decoding, filtering, NMS and matching (the Dice and Hausdorff scoring after it is
left out): the work the pairs of a grid share (the IoU prefilter and decoding at the loosest
``pred_iou_thresh`` of the pairs, the upsampling and stability scores of the masks above it) plus the
pair's own filtering, NMS and matching. The image embedding comes from the cache and is not counted
(``analysis=timing`` measures it). A strict pair run alone prefilters at its own threshold and decodes
fewer grid points, so it can take less than its row says.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from sam4med.analysis.suite import AnalysisInput, AnalysisOutput, phase_decoder
from sam4med.errors import ConfigError
from sam4med.evaluation.everything import EverythingMode, MaskFilter, match_masks
from sam4med.evaluation.rows import ObjectResult
from sam4med.evaluation.scoring import score_objects
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.files import write_text
from sam4med.results.figures import colour, label, phases
from sam4med.results.frame import to_frame
from sam4med.results.statistics import StatisticsSettings, mean_interval

GRID_COLUMNS = (
    "phase",
    "points_per_side",
    "points",
    "pred_iou_thresh",
    "stability_score_thresh",
    "images",
    "split_images",
    "objects",
    "dice",
    "dice_ci_low",
    "dice_ci_high",
    "ci_method",
    "unit",
    "n_units",
    "matched",
    "masks_per_image",
    "seconds_per_image",
    "shared_seconds_per_image",
)
OBJECTS_FILE = "grid_objects.csv"  # one row per phase x grid x filter pair x object, in the results folder
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True)
class GridSuite:
    """S1 over grid sizes and filter pairs (``conf/analysis/grid.yaml`` mirrors it).

    Attributes:
        points_per_side: the grid sizes (n: an n x n grid of point prompts).
        filters: (pred_iou_thresh, stability_score_thresh) pairs (0: that filter off): SAM's (0.88, 0.95), a
            lenient (0.5, 0.8) and none (0, 0), every mask to NMS.
        max_images: the first this many images of the split, in split order (None: every image).
    """

    name: ClassVar[str] = "grid"
    points_per_side: Sequence[int] = (8, 16, 32, 64)
    filters: Sequence[Sequence[float]] = ((0.88, 0.95), (0.5, 0.8), (0.0, 0.0))
    max_images: int | None = None

    def __post_init__(self) -> None:
        grids = _int_list(self.points_per_side, "points_per_side")
        if not grids or any(n < 1 for n in grids) or len(set(grids)) != len(grids):
            raise ConfigError(
                f"analysis.grid.points_per_side={list(grids)}: must be a non-empty list of distinct integers >= 1, "
                "e.g. [8, 16, 32, 64]"
            )
        object.__setattr__(self, "points_per_side", tuple(grids))
        pairs = tuple(_pair(p) for p in _as_list(self.filters, "filters"))
        if not pairs or len(set(pairs)) != len(pairs):
            raise ConfigError(
                f"analysis.grid.filters={[list(p) for p in pairs]}: must be a non-empty list of distinct "
                "[pred_iou_thresh, stability_score_thresh] pairs, e.g. [[0.88, 0.95], [0.5, 0.8]]"
            )
        object.__setattr__(self, "filters", pairs)
        if self.max_images is not None and (
            isinstance(self.max_images, bool) or not isinstance(self.max_images, int) or self.max_images < 1
        ):
            raise ConfigError(
                f"analysis.grid.max_images={self.max_images}: must be null (every image of the split) or an "
                "integer >= 1"
            )

    def check(self, settings: EvaluationSettings) -> None:
        """Nothing to check against the run's settings: the suite runs on any strategies."""

    def run(self, inputs: AnalysisInput) -> AnalysisOutput:
        """The ``grid`` table and figure (and ``grid_objects.csv``, every object's row, in the results folder)."""
        model, settings = inputs.model, inputs.session.settings
        compute = settings.compute
        filters = [MaskFilter(*pair) for pair in self.filters]
        count = len(inputs.dataset) if self.max_images is None else min(self.max_images, len(inputs.dataset))
        rows: dict[tuple[str, int, MaskFilter], list[ObjectResult]] = {}
        masks_kept: dict[tuple[str, int, MaskFilter], list[int]] = {}
        seconds: dict[tuple[str, int, MaskFilter], list[tuple[float, float]]] = {}
        model.eval()
        for phase, state in inputs.decoders.items():
            per_call = compute.prompts_per_call
            modes = {
                n: EverythingMode(model, replace(settings.everything, points_per_side=n), per_call=per_call)
                for n in self.points_per_side
            }
            with phase_decoder(model, state):
                for index in tqdm(range(count), desc=f"grid {phase}", unit="img"):
                    item = inputs.dataset[index]
                    if not item.objects:  # as scoring: an image without objects has no rows
                        continue
                    embedding = inputs.session.cache.get(model, item.image)
                    size = item.image.shape[:2]
                    for n, mode in modes.items():
                        with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=compute.bf16):
                            found = mode.generate(embedding, size, filters, timed=True)
                        shared = found.seconds - sum(found.filter_seconds)
                        for pair, generated, own in zip(filters, found.masks, found.filter_seconds, strict=True):
                            start = time.perf_counter()
                            matched = match_masks(generated, item.masks)  # on the CPU: nothing to wait for
                            own += time.perf_counter() - start
                            key = (str(phase), n, pair)
                            rows.setdefault(key, []).extend(
                                score_objects(
                                    phase=phase,
                                    strategy="S1",
                                    objects=item.objects,
                                    gt_masks=item.masks,
                                    pred_masks=matched.masks,
                                    scores=matched.scores,
                                    candidates=len(generated.masks),
                                    spacing=item.record.spacing,
                                )
                            )
                            masks_kept.setdefault(key, []).append(len(generated.masks))
                            seconds.setdefault(key, []).append((shared + own, shared))
        table = grid_table(rows, masks_kept, seconds, split_images=len(inputs.dataset), statistics=inputs.statistics)
        write_text(inputs.folder.path / OBJECTS_FILE, _objects(rows).to_csv(index=False))
        used = "every image" if count == len(inputs.dataset) else f"the first {count} of {len(inputs.dataset)} images"
        notes = [
            f"grid: S1 on {used} of split '{settings.split}' over grids {list(self.points_per_side)} and filter "
            f"pairs {[list(p) for p in self.filters]}; seconds per image exclude the image embedding (from the cache)"
        ]
        return AnalysisOutput(tables={"grid": table}, figures={"grid": grid_figure(table)}, notes=notes)


def _as_list(value: object, field: str) -> list:
    """A config list (a ListConfig, list or tuple) as a list; anything else is a :class:`ConfigError`."""
    if isinstance(value, str) or not hasattr(value, "__iter__"):
        raise ConfigError(f"analysis.grid.{field}={value}: must be a list")
    return list(value)


def _int_list(value: object, field: str) -> list[int]:
    items = _as_list(value, field)
    if any(isinstance(v, bool) or not isinstance(v, int) for v in items):
        raise ConfigError(f"analysis.grid.{field}={items}: must be a list of integers, e.g. [8, 16, 32, 64]")
    return [int(v) for v in items]


def _pair(value: object) -> tuple[float, float]:
    """One [pred_iou_thresh, stability_score_thresh] pair, both numbers in [0, 1]."""
    items = _as_list(value, "filters")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in items)
    if len(items) != 2 or not numbers or not all(0.0 <= float(v) <= 1.0 for v in items):
        raise ConfigError(
            f"analysis.grid.filters: {items} is not a [pred_iou_thresh, stability_score_thresh] pair of numbers in "
            "[0, 1] (0: that filter off), e.g. [0.88, 0.95]"
        )
    return float(items[0]), float(items[1])


def grid_table(
    rows: dict[tuple[str, int, MaskFilter], list[ObjectResult]],
    masks_kept: dict[tuple[str, int, MaskFilter], list[int]],
    seconds: dict[tuple[str, int, MaskFilter], list[tuple[float, float]]],
    *,
    split_images: int,
    statistics: StatisticsSettings | None = None,
) -> pd.DataFrame:
    """One row per (phase, grid, filter pair) key: Dice mean and 95 % interval over units, the share of objects
    matched by a non-empty mask, masks kept and seconds per image (means over the images; each entry of
    ``seconds`` is (total, shared) of one image).
    """
    out = []
    for key, found in rows.items():
        phase, n, pair = key
        frame = to_frame(found)
        interval = mean_interval(frame, "dice", statistics)
        times = np.asarray(seconds[key], dtype=np.float64)
        out.append(
            {
                "phase": phase,
                "points_per_side": n,
                "points": n * n,
                "pred_iou_thresh": pair.pred_iou_thresh,
                "stability_score_thresh": pair.stability_score_thresh,
                "images": len(masks_kept[key]),
                "split_images": split_images,
                "objects": interval.objects,
                "dice": interval.mean,
                "dice_ci_low": interval.ci_low,
                "dice_ci_high": interval.ci_high,
                "ci_method": interval.ci_method,
                "unit": interval.unit,
                "n_units": interval.n_units,
                "matched": float((~frame["empty"].astype(bool)).mean()),
                "masks_per_image": float(np.mean(masks_kept[key])),
                "seconds_per_image": float(times[:, 0].mean()),
                "shared_seconds_per_image": float(times[:, 1].mean()),
            }
        )
    return pd.DataFrame(out, columns=list(GRID_COLUMNS))


def _objects(rows: dict[tuple[str, int, MaskFilter], list[ObjectResult]]) -> pd.DataFrame:
    """Every object's row, with the grid and filter pair it was scored under (``grid_objects.csv``)."""
    parts = []
    for (_, n, pair), found in rows.items():
        frame = to_frame(found)
        frame.insert(1, "points_per_side", n)
        frame.insert(2, "pred_iou_thresh", pair.pred_iou_thresh)
        frame.insert(3, "stability_score_thresh", pair.stability_score_thresh)
        parts.append(frame)
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def grid_figure(table: pd.DataFrame) -> Figure:
    """Mean S1 Dice (with its 95 % interval) and seconds per image against grid size, one line per phase
    (colour) and filter pair (line style and marker).
    """
    fig, (dice_ax, time_ax) = plt.subplots(1, 2, figsize=(9.0, 3.8))
    pairs = list(dict.fromkeys(zip(table["pred_iou_thresh"], table["stability_score_thresh"], strict=True)))
    handles, labels = [], []
    for phase in phases(table):
        for k, (iou, stability) in enumerate(pairs):
            rows = table[
                (table["phase"] == phase)
                & (table["pred_iou_thresh"] == iou)
                & (table["stability_score_thresh"] == stability)
            ].sort_values("points_per_side")
            if rows.empty:
                continue
            x = rows["points_per_side"].to_numpy(dtype=float)
            dice = rows["dice"].to_numpy(dtype=float)
            style = {
                "color": colour(phase),
                "linestyle": LINE_STYLES[k % len(LINE_STYLES)],
                "marker": MARKERS[k % len(MARKERS)],
                "markersize": 4,
            }
            err = np.vstack([dice - rows["dice_ci_low"].to_numpy(float), rows["dice_ci_high"].to_numpy(float) - dice])
            err = np.where(np.isfinite(err), err, 0.0)
            (line,) = dice_ax.plot(x, dice, **style)
            dice_ax.errorbar(x, dice, yerr=err, fmt="none", ecolor=colour(phase), alpha=0.5, capsize=2)
            time_ax.plot(x, rows["seconds_per_image"].to_numpy(dtype=float), **style)
            handles.append(line)
            labels.append(f"{label(phase)}, {filter_label(iou, stability)}")
    grids = sorted(set(table["points_per_side"]))
    for ax in (dice_ax, time_ax):
        ax.set_xscale("log", base=2)
        ax.set_xticks(grids, [f"{n}x{n}" for n in grids])
        ax.minorticks_off()
        ax.set_xlabel("grid (points per side)")
        ax.grid(alpha=0.3)
    dice_ax.set_ylim(0, 1.05)
    dice_ax.set_ylabel("mean S1 Dice (95 % interval)")
    time_ax.set_ylabel("seconds per image")
    time_ax.set_ylim(bottom=0)
    fig.suptitle("S1 over grid sizes and filters (embedding excluded)", fontsize=10, x=0.02, ha="left")
    fig.set_layout_engine("constrained")  # the legend below the panels, laid out with them
    fig.legend(
        handles, labels, loc="outside lower center", frameon=False, ncols=min(2, max(1, len(labels))), fontsize=8
    )
    return fig


def filter_label(pred_iou_thresh: float, stability_score_thresh: float) -> str:
    """``IoU > 0.88, stability >= 0.95``; a threshold of 0 is no filter."""
    iou = f"IoU > {pred_iou_thresh:g}" if pred_iou_thresh > 0 else "no IoU filter"
    stability = f"stability >= {stability_score_thresh:g}" if stability_score_thresh > 0 else "no stability filter"
    return f"{iou}, {stability}"
