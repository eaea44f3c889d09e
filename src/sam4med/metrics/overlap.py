"""Dice and IoU of binary masks: pure functions on H x W boolean arrays.

Both empty: 1.0 (nothing to find, nothing found). Exactly one empty: 0.0. No case is undefined, so no
failure can drop out of a mean.
"""

from __future__ import annotations

import numpy as np


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """2|P∩G| / (|P| + |G|)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    total = int(pred.sum()) + int(gt.sum())
    if total == 0:
        return 1.0
    return 2.0 * int(np.logical_and(pred, gt).sum()) / total


def iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """|P∩G| / |P∪G| (Jaccard)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    union = int(np.logical_or(pred, gt).sum())
    if union == 0:
        return 1.0
    return int(np.logical_and(pred, gt).sum()) / union
