"""Normalised surface distance (NSD, also called normalised surface Dice) of binary masks, computed with MONAI.

NSD is the fraction of both mask boundaries that lies within ``tolerance`` of the other boundary: the boundary
points of the prediction whose nearest ground-truth boundary point is at most ``tolerance`` away, plus the
boundary points of the ground truth whose nearest predicted boundary point is, over all boundary points of both
(MONAI's ``compute_surface_dice`` with ``class_thresholds=[tolerance]``, Euclidean distances, boundary points
counted as edge pixels). It lies in [0, 1]; 1 means every boundary point is within tolerance.

Masks are 2D (H x W) or 3D (Z x H x W, slices stacked along the first axis) boolean arrays. ``spacing`` is the
physical size of one pixel (voxel) per axis, listed X first, i.e. in the REVERSE of the array's axis order:
``(X, Y)`` for an H x W image (as :mod:`sam4med.metrics.distance` and ``ImageRecord.spacing``) and
``(X, Y, Z)`` for a Z x H x W volume (as SimpleITK's ``GetSpacing()`` for ``GetArrayFromImage``). With spacing,
distances and ``tolerance`` are in mm; without it, in pixels (voxels).

Empty cases, which MONAI leaves as nan: both masks empty -> NSD 1 (nothing to find, nothing wrongly found,
as Dice); exactly one empty -> NSD 0. :func:`boundary_scores` gives HD, HD``percentile`` and NSD from one
computation of the boundary distances (MONAI's ``get_edge_surface_distance``, the function both
``compute_hausdorff_distance`` and ``compute_surface_dice`` call), equal to the separate MONAI results;
its HD empty cases are those of :mod:`sam4med.metrics.distance` (0, or the image diagonal for a miss).

:class:`NsdRule` names the rule that turns the NSD into the reported value: ``standard`` reports it as computed;
``cvpr2024`` follows the evaluator of the CVPR 2024 "Segment Anything in Medical Images on Laptop" challenge
(bowang-lab/MedSAM, ``evaluation/compute_metrics.py``), which computes NSD only where Dice > 0.2 and reports 0
otherwise.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch
from monai.metrics import compute_surface_dice
from monai.metrics.utils import get_edge_surface_distance

CVPR2024_DICE_FLOOR = 0.2
"""The CVPR 2024 challenge evaluator reports NSD 0 unless Dice is above this value."""


class NsdRule(StrEnum):
    """How the reported NSD is derived from the computed one (``metrics.nsd_rule``)."""

    STANDARD = "standard"
    CVPR2024 = "cvpr2024"

    @classmethod
    def parse(cls, value: str | NsdRule) -> NsdRule:
        """The member named ``value``; an unknown name is a ``ValueError`` listing the allowed ones."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(r.value for r in cls)
            raise ValueError(f"metrics.nsd_rule must be one of {allowed}; got '{value}'") from None


def apply_nsd_rule(nsd: float, dice: float, rule: NsdRule | str = NsdRule.STANDARD) -> float:
    """The reported NSD under ``rule``: ``standard`` keeps it; ``cvpr2024`` gives 0 where Dice <= 0.2."""
    if NsdRule.parse(rule) is NsdRule.CVPR2024 and not dice > CVPR2024_DICE_FLOOR:
        return 0.0
    return nsd


@dataclass(frozen=True)
class BoundaryScores:
    """Boundary metrics of one mask pair: HD, HD at ``percentile`` (HD95) and NSD at ``tolerance``.

    ``hd``/``hd_percentile`` and ``tolerance`` are in mm where spacing was given, else in pixels; ``nsd`` is in
    [0, 1] and not yet passed through an :class:`NsdRule`.
    """

    hd: float
    hd_percentile: float
    nsd: float
    tolerance: float


def axis_spacing(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...] | None:
    """``spacing`` (X first) as MONAI wants it, per array axis (first axis first); None stays None."""
    if spacing is None:
        return None
    values = tuple(float(s) for s in spacing)
    if len(values) != ndim:
        raise ValueError(f"spacing {values} has {len(values)} values; a {ndim}-D mask needs {ndim} (X first)")
    if not all(math.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing {values} must be positive and finite")
    return values[::-1]


def mask_diagonal(shape: Sequence[int], spacing: Sequence[float] | None = None) -> float:
    """Length of the array's diagonal, in mm with ``spacing`` (X first); the 2D case is ``image_diagonal``."""
    per_axis = axis_spacing(spacing, len(shape)) or (1.0,) * len(shape)
    return math.sqrt(sum((n * s) ** 2 for n, s in zip(shape, per_axis, strict=True)))


def _check(pred: np.ndarray, gt: np.ndarray, tolerance: float) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if pred.shape != gt.shape or pred.ndim not in (2, 3):
        raise ValueError(f"masks must be two 2D or 3D arrays of one shape; got {pred.shape} and {gt.shape}")
    if not (math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"metrics.nsd_tolerance must be a finite number >= 0; got {tolerance}")
    return pred, gt


def _empty_nsd(pred: np.ndarray, gt: np.ndarray) -> float | None:
    """NSD where a mask is empty (1 both empty, 0 one empty), None where both have foreground."""
    if not pred.any() and not gt.any():
        return 1.0
    if not pred.any() or not gt.any():
        return 0.0
    return None


def normalised_surface_dice(
    pred: np.ndarray, gt: np.ndarray, tolerance: float, spacing: Sequence[float] | None = None
) -> float:
    """NSD of two H x W (or Z x H x W) masks at ``tolerance`` (mm with ``spacing`` (X, Y[, Z]), else pixels).

    MONAI's ``compute_surface_dice`` (``class_thresholds=[tolerance]``), with the empty cases defined: both
    empty -> 1, exactly one empty -> 0.
    """
    pred, gt = _check(pred, gt, tolerance)
    empty = _empty_nsd(pred, gt)
    if empty is not None:
        return empty
    p = torch.from_numpy(pred)[None, None].float()
    g = torch.from_numpy(gt)[None, None].float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = compute_surface_dice(
            p, g, class_thresholds=[float(tolerance)], include_background=True, spacing=axis_spacing(spacing, pred.ndim)
        )
    return float(value.item())


def boundary_scores(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    tolerance: float,
    percentile: float = 95,
    spacing: Sequence[float] | None = None,
) -> BoundaryScores:
    """HD, HD``percentile`` and NSD at ``tolerance`` from one computation of the boundary distances.

    Equal to MONAI's ``compute_hausdorff_distance`` (max, and ``percentile``) and ``compute_surface_dice`` with
    the same spacing, each a reduction of the two directed sets of boundary distances. Empty cases: HD 0 and
    NSD 1 where both are empty; HD the array diagonal and NSD 0 where exactly one is.
    """
    pred, gt = _check(pred, gt, tolerance)
    empty = _empty_nsd(pred, gt)
    if empty is not None:
        hd = 0.0 if empty == 1.0 else mask_diagonal(pred.shape, spacing)
        return BoundaryScores(hd=hd, hd_percentile=hd, nsd=empty, tolerance=float(tolerance))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, both_ways, _ = get_edge_surface_distance(
            torch.from_numpy(pred).float(),
            torch.from_numpy(gt).float(),
            spacing=axis_spacing(spacing, pred.ndim),
            symmetric=True,
        )
    # compute_hausdorff_distance: the larger of the two directed values, each a max or a quantile
    hd = torch.max(torch.stack([d.max() for d in both_ways]))
    hdp = torch.max(torch.stack([torch.quantile(d, percentile / 100) for d in both_ways]))
    # compute_surface_dice: boundary points within tolerance over all boundary points, both directions
    within = sum(int((d <= tolerance).sum()) for d in both_ways)
    nsd = within / sum(len(d) for d in both_ways)
    return BoundaryScores(hd=float(hd.item()), hd_percentile=float(hdp.item()), nsd=nsd, tolerance=float(tolerance))
