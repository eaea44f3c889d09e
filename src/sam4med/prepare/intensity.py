"""Image intensities of a prepared dataset: every image is uint8, grey (H x W) or RGB (H x W x 3).

Modes (one per preparation, recorded in ``dataset.yaml``):

* ``minmax``: the COSMOS study's per-image min-max normalisation, ``255 * (I - min) / (max - min)``,
  rounded; RGB images are scaled over all three channels at once so colours keep their balance.
* ``window``: CT/MR windowing, a separate step: ``[low, high]`` maps linearly to 0..255, values outside
  are clipped (the same mapping for every slice, so intensities stay comparable).
* ``auto`` (2D images): 8-bit images are kept as they are, others are min-max normalised.
* ``none``: the values must be 0..255 already; they are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sam4med.errors import ConfigError, DataError

MODES = ("minmax", "window", "auto", "none")


def minmax_uint8(array: np.ndarray) -> np.ndarray:
    """Min-max normalise to 0..255 uint8; a constant array becomes all zeros."""
    array = array.astype(np.float64)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round((array - low) / (high - low) * 255).astype(np.uint8)


def window_uint8(array: np.ndarray, low: float, high: float) -> np.ndarray:
    """Map ``[low, high]`` linearly to 0..255 uint8, clipping values outside."""
    scaled = (np.clip(array.astype(np.float64), low, high) - low) / (high - low) * 255
    return np.round(scaled).astype(np.uint8)


@dataclass(frozen=True)
class Intensity:
    """How source intensities become uint8.

    Args:
        mode: ``minmax``, ``window``, ``auto`` or ``none`` (see the module docstring).
        window: ``(low, high)`` in source units, for ``window`` (e.g. CT abdomen ``(-160, 240)``).
    """

    mode: str = "minmax"
    window: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"intensity mode must be one of {MODES}, got '{self.mode}'")
        if self.mode == "window":
            if self.window is None or len(self.window) != 2 or not self.window[0] < self.window[1]:
                raise ConfigError(f"intensity mode 'window' needs window: [low, high], low < high; got {self.window}")

    @classmethod
    def build(cls, mode: str = "minmax", window: Sequence[float] | None = None) -> Intensity:
        """From plain (config) values."""
        return cls(str(mode), None if window is None else (float(window[0]), float(window[1])))

    def to_config(self) -> dict:
        """Plain-data form, recorded with the dataset."""
        return {"mode": self.mode, "window": None if self.window is None else list(self.window)}

    def apply(self, image: np.ndarray, where: str) -> np.ndarray:
        """An H x W or H x W x 3 array -> uint8 of the same shape; DataError (naming ``where``) for NaN."""
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            raise DataError(f"{where}: image holds NaN or infinite values")
        if self.mode == "window":
            return window_uint8(image, *self.window)
        if self.mode == "minmax" or (self.mode == "auto" and image.dtype != np.uint8):
            return minmax_uint8(image)
        if image.dtype != np.uint8 and (image.min() < 0 or image.max() > 255):
            raise DataError(f"{where}: intensities {image.min()}..{image.max()} are outside 0..255 (mode 'none')")
        return image.astype(np.uint8)
