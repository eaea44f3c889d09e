"""The next click of iterative prompting (Mazurowski et al., Algorithm 1), as pure functions of masks.

All coordinates are XY in original pixels (X = column, Y = row), points at pixel indices. Regions and
points follow the rules of the prompt modes (:mod:`sam4med.prompts.modes`), so a click is placed in an
error region exactly as mode 1 places its point in the ground truth:

* Regions are 8-connected; the largest is the one with the most pixels, of equal ones the first in
  row-major order.
* The point of a region is its pixel farthest from the region's boundary (Euclidean distance transform
  of the region padded by one background pixel, so the image edge is a boundary too); pixels at the same
  largest distance are a tie, drawn with a seed of (run seed, object, click number): the same object and
  click always get the same point.
* The error region of a prediction is its false positives and false negatives, ``pred XOR gt``; the next
  click goes to the point of its largest region, positive (label 1) where that pixel belongs to the
  ground truth, negative (label 0) otherwise. A prediction equal to the ground truth has no error and
  gets no further click.

The start of the clicks (click 1) is not made here: it is mode 1's point or S5's box
(:func:`sam4med.evaluation.interactive.start_prompt`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sam4med.prompts.generate import prompt_seed
from sam4med.prompts.modes import components, farthest_point


@dataclass(frozen=True)
class Click:
    """One click: a point in original pixels and its label.

    Attributes:
        x: column of the clicked pixel.
        y: row of the clicked pixel.
        positive: True for a foreground click (label 1), False for a background click (label 0).
    """

    x: float
    y: float
    positive: bool

    @property
    def label(self) -> int:
        """SAM's point label: 1 foreground, 0 background."""
        return int(self.positive)

    def to_list(self) -> list:
        """``[x, y, label]``, the form saved in the clicks log."""
        return [self.x, self.y, self.label]

    @classmethod
    def from_list(cls, values: list) -> Click:
        """Inverse of :meth:`to_list`."""
        x, y, label = values
        return cls(float(x), float(y), bool(int(label)))


def largest_component(mask: np.ndarray) -> np.ndarray:
    """H x W bool mask of the largest 8-connected region of ``mask`` (see module rules); all False if empty."""
    found = components(mask, limit=1)
    return found[0] if found else np.zeros_like(mask, dtype=bool)


def click_seed(seed: int, object_key: str, click: int) -> int:
    """Seed of the tie-break of click number ``click`` (2, 3 ...) of one object."""
    return prompt_seed(seed, f"{object_key}|click{click}")


def error_region(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """False positives and false negatives of ``pred`` against ``gt`` (both H x W bool): ``pred XOR gt``."""
    return np.logical_xor(np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool))


def next_click(pred: np.ndarray, gt: np.ndarray, *, seed: int, object_key: str, click: int) -> Click | None:
    """Click number ``click`` (2, 3, ...) after the prediction ``pred`` of the object with ground truth ``gt``.

    The point of the largest region of the error (see module rules), positive where it lies in ``gt``;
    None when ``pred`` equals ``gt`` (nothing left to correct). The regions are found in the error's
    bounding box and the distance transform runs in the largest region's: the same point as on the whole
    image (the nearest background pixel of a region pixel is never farther than the padding just outside
    the region's box, and row-major order, of regions and of tied pixels, is the same in a box as in the
    image), at a fraction of the cost.
    """
    error = error_region(pred, gt)
    box = _bounding_box(error)
    if box is None:
        return None
    region = largest_component(error[box])
    inner = _bounding_box(region)
    rng = np.random.default_rng(click_seed(seed, object_key, click))
    x, y = farthest_point(region[inner], rng)
    x, y = x + box[1].start + inner[1].start, y + box[0].start + inner[0].start
    return Click(x, y, positive=bool(gt[int(y), int(x)]))


def _bounding_box(mask: np.ndarray) -> tuple[slice, slice] | None:
    """(rows, columns) slices of the tight box of ``mask``'s pixels; None when it has none."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
