"""Properties of one ground-truth object that may explain how well it is segmented (COSMOS section 4.8).

Pure functions of arrays: a mask is H x W bool (True: the object), an image H x W x 3 uint8 RGB (or H x W
grey). Pixel boxes are inclusive, ``(y0, x0, y1, x1)`` in rows and columns.

* :func:`area`: the object's pixels.
* :func:`aspect_ratio`: short side / long side of the object's tight axis-aligned box (0-1; 1: square).
* :func:`intensity_difference`: ``|mean inside - mean around|`` of the grey value (mean of the three RGB
  channels) where "around" is the object's box enlarged by ``ratio`` of its height and width on each side
  (clipped to the image), the object's own pixels excluded.
* :func:`fourier_order`: the boundary complexity as the elliptic Fourier order (Kuhl and Giardina 1982,
  ``pyefd``) at which the decoded contour overlaps the object (:class:`FourierRule`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from pyefd import calculate_dc_coefficients, elliptic_fourier_descriptors, reconstruct_contour

SUBPIXEL_BITS = 4  # cv2.fillPoly draws decoded contours at 1/16 px


@dataclass(frozen=True)
class PixelBox:
    """An inclusive pixel box: rows ``y0..y1``, columns ``x0..x1``."""

    y0: int
    x0: int
    y1: int
    x1: int

    @property
    def height(self) -> int:
        """Rows covered."""
        return self.y1 - self.y0 + 1

    @property
    def width(self) -> int:
        """Columns covered."""
        return self.x1 - self.x0 + 1


def _mask(mask: np.ndarray) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"an object mask must be H x W; got shape {mask.shape}")
    if not mask.any():
        raise ValueError("an object mask must hold at least one pixel; got an empty mask")
    return mask


def area(mask: np.ndarray) -> int:
    """Pixels of the object."""
    return int(_mask(mask).sum())


def tight_box(mask: np.ndarray) -> PixelBox:
    """The smallest axis-aligned box holding every pixel of the object."""
    rows, cols = np.nonzero(_mask(mask))
    return PixelBox(int(rows.min()), int(cols.min()), int(rows.max()), int(cols.max()))


def aspect_ratio(mask: np.ndarray) -> float:
    """Short side / long side of the tight box, sides counted in pixels (one pixel: 1.0)."""
    box = tight_box(mask)
    return min(box.height, box.width) / max(box.height, box.width)


def enlarged_box(box: PixelBox, ratio: float, shape: tuple[int, int]) -> PixelBox:
    """``box`` grown on each side and clipped to an image of ``shape`` (H, W).

    ``ceil(ratio x height)`` rows above and below, ``ceil(ratio x width)`` columns left and right; a ratio of 0
    keeps the box.
    """
    if ratio < 0:
        raise ValueError(f"box enlargement ratio must be >= 0; got {ratio}")
    dy = math.ceil(round(ratio * box.height, 9))  # round first: 0.1 x 30 is 3.0000000000000004 in floats
    dx = math.ceil(round(ratio * box.width, 9))
    return PixelBox(
        max(0, box.y0 - dy), max(0, box.x0 - dx), min(shape[0] - 1, box.y1 + dy), min(shape[1] - 1, box.x1 + dx)
    )


def grey(image: np.ndarray) -> np.ndarray:
    """The grey value (float, 0-255 for uint8) of an H x W x C image: the mean of its channels; H x W as is."""
    image = np.asarray(image, dtype=float)
    return image.mean(axis=2) if image.ndim == 3 else image


def intensity_difference(image: np.ndarray, mask: np.ndarray, ratio: float = 0.1) -> float:
    """``|mean grey inside the object - mean grey of the rest of its enlarged box|`` (:func:`enlarged_box`).

    Absolute: a bright object on a dark ground and a dark one on a bright ground are equally distinct. NaN
    when the enlarged box holds no pixel outside the object (an object filling the image).
    """
    mask = _mask(mask)
    values = grey(image)
    if values.shape != mask.shape:
        raise ValueError(f"image size {values.shape} differs from mask size {mask.shape}")
    box = enlarged_box(tight_box(mask), ratio, mask.shape)
    window = (slice(box.y0, box.y1 + 1), slice(box.x0, box.x1 + 1))
    around = ~mask[window]
    if not around.any():
        return math.nan
    return float(abs(values[mask].mean() - values[window][around].mean()))


@dataclass(frozen=True)
class FourierRule:
    """How :func:`fourier_order` searches the order (COSMOS section 4.8, with a cap and a size floor).

    Attributes:
        dice_threshold: stop at the first order whose decoded contour has Dice above this with the object.
        min_gain: stop at the first order whose Dice gains less than this over the order before.
        penalty: ``n`` of the final order ``F + n x 100 x (1 - Dice)``.
        max_order: stop here at the latest.
        min_part_area: the connected parts (8-connected) of fewer pixels are left out of the fit and of the
            mask compared with (too few pixels for a contour worth fitting).
    """

    dice_threshold: float = 0.97
    min_gain: float = 0.001
    penalty: float = 2.0
    max_order: int = 50
    min_part_area: int = 10

    def __post_init__(self) -> None:
        if not 0 < self.dice_threshold <= 1:
            raise ValueError(f"dice_threshold must be in (0, 1]; got {self.dice_threshold}")
        if self.min_gain < 0 or self.penalty < 0:
            raise ValueError(f"min_gain and penalty must be >= 0; got {self.min_gain}, {self.penalty}")
        if self.max_order < 1 or self.min_part_area < 1:
            raise ValueError(f"max_order and min_part_area must be >= 1; got {self.max_order}, {self.min_part_area}")


@dataclass(frozen=True)
class FourierOrder:
    """An object's elliptic Fourier order.

    Attributes:
        order: ``raw + penalty x 100 x (1 - dice)``, the paper's optimised order F_final (NaN: no part fitted).
        raw: the order F where the search stopped (0: no part fitted).
        dice: Dice between the filled decoded contours and the filled object at ``raw`` (NaN: no part fitted).
        parts: the connected parts fitted (0: every part is below ``min_part_area`` pixels).
    """

    order: float
    raw: int
    dice: float
    parts: int


@dataclass(frozen=True)
class _Part:
    """One connected part: its outer contour (M x 2, x then y, in canvas pixels) and its descriptors."""

    contour: np.ndarray
    coeffs: np.ndarray  # max_order x 4
    locus: tuple[float, float]


def _parts(mask: np.ndarray, min_area: int) -> list[np.ndarray]:
    """Outer contours (M x 2, x then y) of the 8-connected parts with ``min_area`` pixels or more."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    contours = []
    for label in range(1, count):
        if stats[label, cv2.CC_STAT_AREA] < min_area:
            continue
        found, _ = cv2.findContours((labels == label).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        contours.append(max(found, key=len)[:, 0, :].astype(float))  # an 8-connected part has one outer contour
    return contours


def _fill(polygons: list[np.ndarray], shape: tuple[int, int], offset: np.ndarray) -> np.ndarray:
    """The pixels inside ``polygons`` (each M x 2, x then y) on a canvas of ``shape`` whose (0, 0) is ``offset``."""
    canvas = np.zeros(shape, dtype=np.uint8)
    scale = 1 << SUBPIXEL_BITS
    points = [np.round((p - offset) * scale).astype(np.int32) for p in polygons]
    cv2.fillPoly(canvas, points, 1, lineType=cv2.LINE_8, shift=SUBPIXEL_BITS)
    return canvas.astype(bool)


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.logical_and(a, b).sum()) / float(a.sum() + b.sum())


def fourier_order(mask: np.ndarray, rule: FourierRule | None = None) -> FourierOrder:
    """The object's elliptic Fourier order under ``rule`` (COSMOS section 4.8).

    For ``F = 1, 2, ...``: every part of ``min_part_area`` pixels or more is decoded from its first ``F``
    harmonics (``pyefd``), the decoded contours are filled, and the union is compared (Dice) with those
    parts filled (holes filled: the descriptors describe outer boundaries only). The search stops at the
    first ``F`` with Dice above ``dice_threshold``, or whose Dice gains less than ``min_gain`` over
    ``F - 1`` (also a loss), or at ``max_order``; the order is then ``F + penalty x 100 x (1 - Dice)``.
    """
    rule = rule or FourierRule()
    mask = _mask(mask)
    contours = _parts(mask, rule.min_part_area)
    if not contours:
        return FourierOrder(order=math.nan, raw=0, dice=math.nan, parts=0)
    parts = [
        _Part(c, elliptic_fourier_descriptors(c, order=rule.max_order), calculate_dc_coefficients(c)) for c in contours
    ]
    low = np.min([c.min(axis=0) for c in contours], axis=0)
    high = np.max([c.max(axis=0) for c in contours], axis=0)
    previous = math.nan
    for order in range(1, rule.max_order + 1):
        decoded = [
            reconstruct_contour(p.coeffs[:order], locus=p.locus, num_points=max(len(p.contour), 8 * order, 64))
            for p in parts
        ]
        lo = np.floor(np.minimum(low, np.min([d.min(axis=0) for d in decoded], axis=0))) - 1
        hi = np.ceil(np.maximum(high, np.max([d.max(axis=0) for d in decoded], axis=0))) + 1
        shape = (int(hi[1] - lo[1]) + 1, int(hi[0] - lo[0]) + 1)
        dice = _dice(_fill(decoded, shape, lo), _fill(contours, shape, lo))
        if dice > rule.dice_threshold or (order > 1 and dice - previous < rule.min_gain):
            break
        previous = dice
    return FourierOrder(order=order + rule.penalty * 100 * (1 - dice), raw=order, dice=dice, parts=len(parts))
