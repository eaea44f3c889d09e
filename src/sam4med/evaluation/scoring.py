"""Turn the predicted masks of one image under one strategy into result rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sam4med.data.dataset import ObjectRef
from sam4med.errors import ConfigError
from sam4med.evaluation.rows import ObjectResult, Phase
from sam4med.metrics import dice, iou
from sam4med.metrics.surface import NsdRule, apply_nsd_rule, boundary_scores


@dataclass(frozen=True)
class MetricSettings:
    """How the boundary metrics of a row are computed (the ``metrics`` config node, ``conf/metrics/default.yaml``).

    Attributes:
        nsd_tolerance: the NSD tolerance, in mm where the image's pixel spacing is known, else in pixels (the
            unit of ``hd``; 2 as in the CVPR 2024/2025 medical SAM challenges).
        nsd_rule: ``standard`` (NSD as computed) or ``cvpr2024`` (0 where Dice <= 0.2, as the CVPR 2024
            challenge's evaluator); see :class:`~sam4med.metrics.surface.NsdRule`.
    """

    nsd_tolerance: float = 2.0
    nsd_rule: NsdRule = NsdRule.STANDARD

    def __post_init__(self) -> None:
        tolerance = self.nsd_tolerance
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or not math.isfinite(tolerance):
            raise ConfigError(f"metrics.nsd_tolerance={tolerance}: must be a finite number >= 0 (mm, or px), e.g. 2")
        if tolerance < 0:
            raise ConfigError(f"metrics.nsd_tolerance={tolerance}: must be >= 0 (mm, or pixels), e.g. 2")
        object.__setattr__(self, "nsd_tolerance", float(tolerance))
        try:
            object.__setattr__(self, "nsd_rule", NsdRule.parse(self.nsd_rule))
        except ValueError as error:
            raise ConfigError(str(error).replace("nsd_rule must", f"nsd_rule={self.nsd_rule}: must")) from None

    def key(self) -> dict:
        """What of these settings a row depends on (part of the settings hash of stored and logged rows)."""
        return {"nsd_tolerance": self.nsd_tolerance, "nsd_rule": self.nsd_rule.value}

    def describe(self) -> str:
        """One line for ``summary.json`` and the report, e.g. ``tolerance 2 (mm, else px), rule standard``."""
        return f"tolerance {self.nsd_tolerance:g} (mm where the spacing is known, else px), rule {self.nsd_rule.value}"


@dataclass(frozen=True)
class Distances:
    """The boundary metrics of one object: ``hd``/``hd95``/``nsd`` in mm where the spacing is known (else
    pixels), ``hd_px``/``hd95_px`` always in pixels. ``nsd`` is at ``metrics.nsd_tolerance`` and before the
    NSD rule (which needs the Dice).
    """

    hd: float
    hd95: float
    hd_px: float
    hd95_px: float
    nsd: float


def distances(
    pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float] | None, metrics: MetricSettings | None = None
) -> Distances:
    """HD, HD95 and NSD in mm where ``spacing`` (X, Y, mm per pixel) is known, and HD, HD95 in pixels.

    One computation of the boundary distances per unit (:func:`~sam4med.metrics.surface.boundary_scores`):
    without spacing, or with a spacing of exactly 1 x 1 mm, the mm values are the pixel values.
    """
    tolerance = (metrics or MetricSettings()).nsd_tolerance
    px = boundary_scores(pred, gt, tolerance=tolerance)
    mm = (
        px
        if spacing is None or tuple(spacing) == (1.0, 1.0)
        else boundary_scores(pred, gt, tolerance=tolerance, spacing=spacing)
    )
    return Distances(hd=mm.hd, hd95=mm.hd_percentile, hd_px=px.hd, hd95_px=px.hd_percentile, nsd=mm.nsd)


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
    metrics: MetricSettings | None = None,
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
        metrics: NSD tolerance and rule (None: :class:`MetricSettings` defaults).
    """
    metrics = metrics or MetricSettings()
    rows = []
    for obj, gt, mask, score in zip(objects, gt_masks, pred_masks, scores, strict=True):
        d = distances(mask, gt, spacing, metrics)
        overlap = dice(mask, gt)
        rows.append(
            ObjectResult(
                phase=phase,
                strategy=strategy,
                target=obj.target,
                modality=obj.modality,
                object=obj.object_name,
                image_id=obj.image_id,
                object_key=obj.key,
                dice=overlap,
                iou=iou(mask, gt),
                hd=d.hd,
                hd95=d.hd95,
                hd_unit="mm" if spacing else "px",
                score=float(score),
                nsd=apply_nsd_rule(d.nsd, overlap, metrics.nsd_rule),
                hd_px=d.hd_px,
                hd95_px=d.hd95_px,
                candidates=int(candidates),
                empty=not bool(mask.any()),
                source=obj.source,
            )
        )
    return rows
