"""Turn the predicted masks of one image under one strategy into result rows."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sam4med.data.dataset import ObjectRef
from sam4med.evaluation.rows import ObjectResult, Phase
from sam4med.metrics import dice, hausdorff_pair, iou


def distances(
    pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float] | None
) -> tuple[float, float, float, float]:
    """(HD, HD95) in mm where ``spacing`` (X, Y, mm per pixel) is known, then (HD, HD95) in pixels.

    Without spacing, or with a spacing of exactly 1 x 1 mm, the mm values are the pixel values.
    """
    hd_px, hd95_px = hausdorff_pair(pred, gt)  # one computation of the boundary distances gives both
    if spacing is None or tuple(spacing) == (1.0, 1.0):
        return hd_px, hd95_px, hd_px, hd95_px
    return (*hausdorff_pair(pred, gt, spacing=spacing), hd_px, hd95_px)


def score_objects(
    *,
    phase: Phase,
    strategy: str,
    objects: Sequence[ObjectRef],
    gt_masks: np.ndarray,
    pred_masks: np.ndarray,
    scores: np.ndarray,
    candidates: int,
    spacing: tuple[float, float] | None,
) -> list[ObjectResult]:
    """One row per object.

    Args:
        phase: the phase the rows are labelled with.
        strategy: ``S1`` ... ``S6``.
        objects: the N objects of the image.
        gt_masks: N x H x W bool ground truth.
        pred_masks: N x H x W bool chosen predictions (all False where nothing was predicted).
        scores: N predicted IoU of the chosen masks.
        candidates: number of masks each prediction was chosen from (see :class:`ObjectResult`).
        spacing: (X, Y) mm per pixel of the image, or None.
    """
    rows = []
    for obj, gt, mask, score in zip(objects, gt_masks, pred_masks, scores, strict=True):
        hd, hd95, hd_px, hd95_px = distances(mask, gt, spacing)
        rows.append(
            ObjectResult(
                phase=phase,
                strategy=strategy,
                target=obj.target,
                modality=obj.modality,
                object=obj.object_name,
                image_id=obj.image_id,
                object_key=obj.key,
                dice=dice(mask, gt),
                iou=iou(mask, gt),
                hd=hd,
                hd95=hd95,
                hd_unit="mm" if spacing else "px",
                score=float(score),
                hd_px=hd_px,
                hd95_px=hd95_px,
                candidates=int(candidates),
                empty=not bool(mask.any()),
                source=obj.source,
            )
        )
    return rows
