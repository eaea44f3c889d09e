"""Hausdorff distance (maximum and 95th percentile) of binary masks, computed with MONAI.

MONAI measures between mask boundaries (Euclidean, symmetric). :func:`hausdorff_pair` gives HD and
HD95 from one computation of the boundary distances (MONAI's ``get_edge_surface_distance``, the
function ``compute_hausdorff_distance`` calls), with that function's reductions, so both values equal
its results while the distance transforms run once instead of twice. Where spacing (mm per pixel, X then
Y) is given the result is in mm, otherwise in pixels. Empty cases, which MONAI leaves undefined:
both empty -> 0; exactly one empty -> the image diagonal (the largest distance possible in the
image), so a missed object counts as the worst boundary error instead of vanishing from a mean.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance
from monai.metrics.utils import get_edge_surface_distance, prepare_spacing


def image_diagonal(shape: tuple[int, int], spacing: tuple[float, float] | None = None) -> float:
    """Length of the image diagonal (H x W), in mm when ``spacing`` (X, Y) is given."""
    sx, sy = spacing if spacing else (1.0, 1.0)
    return math.hypot(shape[0] * sy, shape[1] * sx)


def _empty_case(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float] | None) -> float | None:
    """The distance where a mask is empty (0 or the diagonal), None where both have foreground."""
    if not pred.any() and not gt.any():
        return 0.0
    if not pred.any() or not gt.any():
        return image_diagonal(pred.shape, spacing)
    return None


def hausdorff_pair(
    pred: np.ndarray, gt: np.ndarray, *, percentile: float = 95, spacing: tuple[float, float] | None = None
) -> tuple[float, float]:
    """(HD, HD``percentile``) of H x W masks from one computation of the boundary distances.

    Equal to ``(hausdorff(pred, gt), hausdorff(pred, gt, percentile=percentile))`` with the same
    ``spacing`` (X, Y, mm per pixel), including the empty cases.
    """
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    empty = _empty_case(pred, gt, spacing)
    if empty is not None:
        return empty, empty
    axis_spacing = prepare_spacing(spacing=(spacing[1], spacing[0]) if spacing else None, batch_size=1, img_dim=2)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, both_ways, _ = get_edge_surface_distance(
            torch.from_numpy(pred).float(), torch.from_numpy(gt).float(), spacing=axis_spacing, symmetric=True
        )
    # compute_hausdorff_distance: the larger of the two directed values, each a max or a quantile
    hd = torch.max(torch.stack([d.max() for d in both_ways]))
    hdp = torch.max(torch.stack([torch.quantile(d, percentile / 100) for d in both_ways]))
    return float(hd.item()), float(hdp.item())


def hausdorff(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    percentile: float | None = None,
    spacing: tuple[float, float] | None = None,
) -> float:
    """Symmetric Hausdorff distance between H x W masks (``percentile=95`` gives HD95)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    empty = _empty_case(pred, gt, spacing)
    if empty is not None:
        return empty
    p = torch.from_numpy(pred)[None, None].float()
    g = torch.from_numpy(gt)[None, None].float()
    # MONAI wants spacing per array axis: rows (Y) then columns (X)
    axis_spacing = (spacing[1], spacing[0]) if spacing else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = compute_hausdorff_distance(p, g, include_background=True, percentile=percentile, spacing=axis_spacing)
    return float(value.item())
