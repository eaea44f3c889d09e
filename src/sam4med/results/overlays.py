"""Prediction overlays: per target, the objects at chosen Dice percentiles, drawn for every phase.

:func:`select_examples` picks, per target, the object instances whose Dice (in the last phase of the
run, fine-tuned when there is one) sits at the chosen percentiles: ``typical`` (median), ``good`` (90th),
``bad`` (10th). :func:`predict_examples` predicts them again with each phase's mask decoder on the very
same saved prompt, through the scoring's own decoding path and options (so a drawn mask is the scored
one), and :func:`overlay_figure` draws one figure per target, one row per example: the image with the
ground truth, then the prediction of each phase with its Dice (from the results frame) in the title,
the prompt (positive and negative points, the box) and a legend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from sam4med.data.dataset import CosmosDataset
from sam4med.evaluation.predict import predict_scored
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.models.finetuned import PhaseState, use_state
from sam4med.models.sam_model import SamModel
from sam4med.prompts.prompt import Prompt
from sam4med.results.figures import colour, label, legend_below, phases, save_figure

PERCENTILES = {"typical": 50.0, "good": 90.0, "bad": 10.0}
PREFERRED_STRATEGIES = ("S6", "S4", "S5", "S3", "S2")


@dataclass(frozen=True)
class Example:
    """One object instance chosen for an overlay.

    Attributes:
        target: ``<object>-<modality>``.
        kind: why it was chosen (``typical``, ``good``, ``bad``; several joined by ``/`` when they coincide).
        image_id: the image holding the object.
        object_key: the object's key in the results frame.
        strategy: the strategy whose prompt is drawn.
    """

    target: str
    kind: str
    image_id: str
    object_key: str
    strategy: str


def overlay_strategy(strategies: Sequence[str]) -> str | None:
    """The strategy drawn by default: the first of S6, S4, S5, S3, S2 present (S1 has no prompt)."""
    return next((s for s in PREFERRED_STRATEGIES if s in strategies), None)


def select_examples(frame: pd.DataFrame, strategy: str, *, max_targets: int = 16) -> list[Example]:
    """Per target (at most ``max_targets``), the instances at :data:`PERCENTILES` of Dice in the last phase."""
    rows = frame[(frame["strategy"] == strategy) & (frame["phase"] == phases(frame)[-1])]
    examples = []
    for target in sorted(rows["target"].unique())[:max_targets]:
        ranked = rows[rows["target"] == target].sort_values(["dice", "object_key"]).reset_index(drop=True)
        chosen: dict[str, list[str]] = {}
        for kind, percentile in PERCENTILES.items():
            index = int(round(percentile / 100 * (len(ranked) - 1)))
            chosen.setdefault(ranked.loc[index, "object_key"], []).append(kind)
        for key, kinds in chosen.items():
            image_id = str(ranked.loc[ranked["object_key"] == key, "image_id"].iloc[0])
            examples.append(Example(target, "/".join(kinds), image_id, key, strategy))
    return examples


@torch.no_grad()
def predict_examples(
    model: SamModel,
    dataset: CosmosDataset,
    examples: Sequence[Example],
    *,
    decoders: Mapping[Phase, PhaseState | None],
    session: EvaluationSession,
) -> dict[str, tuple[np.ndarray, np.ndarray, Prompt, dict[Phase, np.ndarray]]]:
    """Per example's object key: (image, ground truth, prompt, prediction per phase).

    ``decoders`` maps each phase to the mask-decoder state it predicts with (None: the model's current
    weights), or the states of every trained part (:class:`~sam4med.models.finetuned.PartStates`; with LoRA
    the embedding is the phase's encoder's). Prompts, embeddings, mask selection and decoding options are the
    scoring ``session``'s. The model's own weights are restored afterwards.
    """
    settings = session.settings
    wanted = {e.object_key: e for e in examples}
    strategies = {e.strategy for e in examples}
    if len(strategies) > 1:
        raise ValueError(f"overlay examples of one strategy only; got {sorted(strategies)}")
    out: dict[str, tuple[np.ndarray, np.ndarray, Prompt, dict[Phase, np.ndarray]]] = {}
    for index, record in enumerate(dataset.records):
        if record.image_id not in {e.image_id for e in examples}:
            continue
        item = dataset[index]
        picked = [(k, o) for k, o in enumerate(item.objects) if o.key in wanted]
        if not picked:
            continue
        # every object of the image, as scoring decoded them: call sizes and autocast group the same prompts
        strategy = wanted[picked[0][1].key].strategy
        batch = [session.prompts.get(m, strategy, o.key) for o, m in zip(item.objects, item.masks, strict=True)]
        per_phase = {}
        for phase, state in decoders.items():
            with use_state(model, state):
                embedding = session.cache.get(model, item.image)  # the phase's encoder's (LoRA changes it)
                pred = predict_scored(
                    model,
                    embedding,
                    batch,
                    item.image.shape[:2],
                    multimask=settings.multimask,
                    compute=settings.compute,
                    gt_masks=item.masks,
                )
            per_phase[phase] = pred.masks
        for k, obj in picked:
            out[obj.key] = (item.image, item.masks[k], batch[k], {p: m[k] for p, m in per_phase.items()})
    return out


def _crop(gt: np.ndarray, prompt: Prompt, shape: tuple[int, int]) -> tuple[slice, slice]:
    """Rows and columns around the object (its box enlarged three times, at least 64 pixels a side)."""
    ys, xs = np.nonzero(gt)
    if len(ys) == 0:
        return slice(0, shape[0]), slice(0, shape[1])
    y0, y1, x0, x1 = ys.min(), ys.max(), xs.min(), xs.max()
    for box in prompt.all_boxes:  # one box, several (M4) or none
        x0, y0, x1, y1 = min(x0, box[0]), min(y0, box[1]), max(x1, box[2]), max(y1, box[3])
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    half = max(32.0, 1.5 * max(y1 - y0 + 1, x1 - x0 + 1))
    rows = slice(int(max(0, cy - half)), int(min(shape[0], cy + half + 1)))
    cols = slice(int(max(0, cx - half)), int(min(shape[1], cx + half + 1)))
    return rows, cols


def _outline(ax: plt.Axes, mask: np.ndarray, color: str, width: float) -> None:
    """The mask's boundary as a contour line; none for an empty mask or a crop under 2 x 2 pixels (matplotlib
    contours need 2 x 2; the prediction's fill still shows there).
    """
    if mask.any() and min(mask.shape) >= 2:
        ax.contour(mask.astype(float), levels=[0.5], colors=color, linewidths=width)


def _draw_prompt(ax: plt.Axes, prompt: Prompt, dy: int, dx: int) -> None:
    pts, labels = prompt.points_array, prompt.labels_array
    if len(pts):
        pos, neg = pts[labels == 1], pts[labels == 0]
        ax.scatter(pos[:, 0] - dx, pos[:, 1] - dy, c="lime", marker="*", s=140, edgecolors="black", linewidths=0.8)
        ax.scatter(neg[:, 0] - dx, neg[:, 1] - dy, c="red", marker="X", s=90, edgecolors="white", linewidths=0.8)
    for x0, y0, x1, y1 in prompt.all_boxes:  # one box, several (M4) or none
        ax.add_patch(
            plt.Rectangle(
                (x0 - dx - 0.5, y0 - dy - 0.5),
                x1 - x0 + 1,
                y1 - y0 + 1,
                fill=False,
                edgecolor="yellow",
                linewidth=1.8,
                linestyle="--",
            )
        )


def overlay_figure(target: str, rows: Sequence[tuple[Example, tuple]], dice: Mapping[tuple[str, str], float]) -> Figure:
    """One target: a row per example (image + ground truth, then each phase's prediction), with a legend.

    Args:
        target: the target, for the title.
        rows: (example, (image, ground truth, prompt, {phase: prediction})) per row.
        dice: Dice of each (phase, object key), from the results frame.
    """
    names = [p for p in phases(pd.DataFrame({"phase": list(rows[0][1][3])}))]
    cols = 1 + len(names)
    fig, axes = plt.subplots(len(rows), cols, figsize=(3.6 * cols, 3.6 * len(rows) + 0.8), squeeze=False)
    for r, (example, (image, gt, prompt, preds)) in enumerate(rows):
        ys, xs = _crop(gt, prompt, image.shape[:2])
        for c, ax in enumerate(axes[r]):
            ax.imshow(image[ys, xs], interpolation="nearest")
            _outline(ax, gt[ys, xs], "lime", 1.6)
            if c == 0:
                ax.set_title(f"{example.kind}: {example.image_id}\nground truth", fontsize=9)
            else:
                phase = names[c - 1]
                pred = preds[phase][ys, xs]
                ax.imshow(
                    np.ma.masked_where(~pred, pred),
                    cmap=plt.matplotlib.colors.ListedColormap([colour(phase)]),
                    alpha=0.55,
                    interpolation="nearest",
                    vmin=0,
                    vmax=1,
                )
                _outline(ax, pred, colour(phase), 1.2)
                _draw_prompt(ax, prompt, ys.start, xs.start)
                value = dice.get((phase, example.object_key), float("nan"))
                ax.set_title(f"{label(phase)} {example.strategy}\nDice {value:.3f}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    handles = [Line2D([], [], color="lime", linewidth=1.6, label="ground truth")]
    handles += [plt.Rectangle((0, 0), 1, 1, color=colour(p), alpha=0.6, label=f"{label(p)} prediction") for p in names]
    handles += [
        Line2D(
            [],
            [],
            linestyle="",
            marker="*",
            markersize=11,
            color="lime",
            markeredgecolor="black",
            label="positive point",
        ),
        Line2D(
            [], [], linestyle="", marker="X", markersize=9, color="red", markeredgecolor="white", label="negative point"
        ),
        Line2D([], [], color="yellow", linestyle="--", linewidth=1.8, label="box"),
    ]
    ranked_by = label(names[-1]) if names else "the last phase"
    fig.suptitle(
        f"{target}: typical (median), good (90th pct.) and bad (10th pct.) object by {ranked_by} Dice", fontsize=11
    )
    legend_below(fig, handles, [h.get_label() for h in handles], fontsize=9)
    return fig


def figure_name(target: str) -> str:
    """A file name for a target's overlay figure."""
    return "overlay_" + "".join(c if c.isalnum() or c in "-_" else "_" for c in target)


def overlay_figures(
    frame: pd.DataFrame, examples: Sequence[Example], predicted: Mapping[str, tuple]
) -> dict[str, Figure]:
    """One figure per target of ``examples`` (see :func:`overlay_figure`), by target."""
    dice = {(r.phase, r.object_key): float(r.dice) for r in frame.itertuples() if r.strategy == examples[0].strategy}
    by_target: dict[str, list] = {}
    for example in examples:
        if example.object_key in predicted:
            by_target.setdefault(example.target, []).append((example, predicted[example.object_key]))
    return {t: overlay_figure(t, rows, dice) for t, rows in by_target.items()}


def write_overlays(
    frame: pd.DataFrame,
    folder: Path,
    *,
    model: SamModel,
    dataset: CosmosDataset,
    decoders: Mapping[Phase, PhaseState | None],
    session: EvaluationSession,
) -> dict[str, tuple[Figure, Path]]:
    """Select, predict and draw the overlays into ``folder`` (PNG and SVG); returns figure and PNG per target.

    How many targets and which strategy's prompts are the session settings' ``overlays`` and
    ``overlay_strategy``. The figures stay open so that loggers can take them; close them when done.
    """
    settings = session.settings
    strategy = settings.overlay_strategy or overlay_strategy(list(frame["strategy"].unique()))
    if strategy is None or frame.empty or settings.overlays <= 0:
        return {}
    examples = select_examples(frame, strategy, max_targets=settings.overlays)
    if not examples:
        return {}
    predicted = predict_examples(model, dataset, examples, decoders=decoders, session=session)
    figures = overlay_figures(frame, examples, predicted)
    return {target: (fig, save_figure(fig, folder, figure_name(target))) for target, fig in figures.items()}


def close_overlays(overlays: Mapping[str, tuple[Figure, Path]]) -> None:
    """Close the figures :func:`write_overlays` left open."""
    for fig, _ in overlays.values():
        plt.close(fig)
