"""The COSMOS authors' input intensity rule, applied to an image as it is read (never to the prepared PNGs).

Their ``pre_grey_rgb2D.py``: the image (all channels together) is clipped to [its ``low``-th percentile,
its ``high``-th percentile] (numpy percentiles; they use 0.95 and 99.5, as written in their code, so the
lower bound is the 0.95th percentile, not the 95th), min-max scaled to 0..255, pixels that were 0 stay
0, and the result is truncated to uint8. An image whose clipped range is a single value becomes all 0
(their code would divide by zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sam4med.errors import ConfigError


def check_percentiles(percentiles: Sequence[float] | None) -> tuple[float, float] | None:
    """``(low, high)`` with 0 <= low < high <= 100, or None; anything else is a :class:`ConfigError`."""
    if percentiles is None:
        return None
    values = tuple(float(v) for v in percentiles)
    if len(values) != 2 or not 0 <= values[0] < values[1] <= 100:
        raise ConfigError(f"clip_percentiles must be [low, high] with 0 <= low < high <= 100; got {list(percentiles)}")
    return values[0], values[1]


def clip_percentiles(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """H x W x 3 uint8 image clipped to its [low, high] percentiles and rescaled to 0..255 (see module rule)."""
    values = image.astype(np.float64)
    lower, upper = np.percentile(values, low), np.percentile(values, high)
    clipped = np.clip(values, lower, upper)
    span = clipped.max() - clipped.min()
    scaled = (clipped - clipped.min()) / span * 255.0 if span > 0 else np.zeros_like(clipped)
    scaled[image == 0] = 0
    return scaled.astype(np.uint8)
