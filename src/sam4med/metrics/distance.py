"""Hausdorff distance (maximum and 95th percentile) of binary masks, computed with MONAI.

MONAI measures between mask boundaries (Euclidean, symmetric). Where spacing (mm per pixel, X then
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


def image_diagonal(shape: tuple[int, int], spacing: tuple[float, float] | None = None) -> float:
    """Length of the image diagonal (H x W), in mm when ``spacing`` (X, Y) is given."""
    sx, sy = spacing if spacing else (1.0, 1.0)
    return math.hypot(shape[0] * sy, shape[1] * sx)


def hausdorff(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    percentile: float | None = None,
    spacing: tuple[float, float] | None = None,
) -> float:
    """Symmetric Hausdorff distance between H x W masks (``percentile=95`` gives HD95)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    if not pred.any() and not gt.any():
        return 0.0
    if not pred.any() or not gt.any():
        return image_diagonal(pred.shape, spacing)
    p = torch.from_numpy(pred)[None, None].float()
    g = torch.from_numpy(gt)[None, None].float()
    # MONAI wants spacing per array axis: rows (Y) then columns (X)
    axis_spacing = (spacing[1], spacing[0]) if spacing else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = compute_hausdorff_distance(p, g, include_background=True, percentile=percentile, spacing=axis_spacing)
    return float(value.item())
