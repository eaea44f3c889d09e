"""Prompts from ground-truth masks: the COSMOS rules (section 3.3), with their edge cases settled.

Prompts are nested by construction. For each object and seed one point set is drawn: five positive
points (the first is the centre point) and five negative points. S2 takes the first positive, S3 the
five positives, S4 those plus the five negatives, S6 the box plus S2's point; S5 is the box alone. So
S3 -> S4 only adds negatives and S2 -> S6 only adds the box, as in the authors' code.

All coordinates are XY in original pixels, points at pixel indices.

* Box (S5, S6): the tight box of the mask, ``(min col, min row, max col, max row)``, inclusive.

``sampling="random"`` (the default):

* Positives: the first is the pixel holding the mask's centre of mass (rounded half up) when that
  pixel belongs to the mask; the rest are drawn uniformly without replacement from the other mask
  pixels. When the centre lies outside the mask (rings, crescents, multi-part objects) all positives
  are drawn so.
* Negatives: drawn uniformly without replacement from the non-mask pixels inside the tight box
  enlarged two times (width and height doubled about its centre), clipped to the image.

``sampling="strided"`` (the COSMOS authors' ``utils/get_prompts.py``):

* Positives: the centroid truncated with ``int()`` (kept even when it falls outside the mask, as
  theirs), then the foreground pixels in row-major order taken every ``len // 5`` pixels, of which
  the first is replaced by the centroid: ``[centroid, fg[s], fg[2s], fg[3s], fg[4s]]``. Their code
  keeps every strided point, so when ``len`` is not a multiple of 5 it passes more than five
  positives and its label list then marks one of them negative; here exactly five are taken.
* Negatives: the background pixels, row-major, of their enlarged box (the tight box's extent
  ``x1 - x0`` doubled about its centre, clipped to the image, truncated to integers), taken every
  ``len // 5`` pixels, the first five.

Both rules, when there are fewer candidates than points: the candidates are used in order and then
again from the start, so the count is always exact. A negative region without background falls back
to the whole image's background; an object covering the whole image has no background, and asking it
for negatives is an error. The randomness of a point set comes from a seed derived from (run seed,
object) only, so every strategy of an object sees the same points.

The prompt modes ``M1``-``M5`` of Mazurowski et al. (points and boxes per connected region of the object)
follow their own rules, in :mod:`sam4med.prompts.modes`; :func:`make_prompt` makes them too, with the
same seed per (run seed, object).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sam4med.errors import ConfigError
from sam4med.prompts.modes import MODES, farthest_point, regions
from sam4med.prompts.prompt import Prompt


@dataclass(frozen=True)
class PromptRule:
    """How many positive and negative points a strategy uses, and whether it adds the box."""

    positives: int
    negatives: int
    box: bool


# S1 (everything mode) needs no prompt from the ground truth: it lives in sam4med.evaluation.everything.
STRATEGIES: dict[str, PromptRule] = {
    "S2": PromptRule(positives=1, negatives=0, box=False),
    "S3": PromptRule(positives=5, negatives=0, box=False),
    "S4": PromptRule(positives=5, negatives=5, box=False),
    "S5": PromptRule(positives=0, negatives=0, box=True),
    "S6": PromptRule(positives=1, negatives=0, box=True),
}


def tight_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    """XYXY box of the foreground of an H x W mask, inclusive pixel indices."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        raise ValueError("cannot make a prompt for an empty mask")
    return float(cols[0]), float(rows[0]), float(cols[-1]), float(rows[-1])


SAMPLINGS = ("random", "strided")
POSITIVES, NEGATIVES = 5, 5  # the point set every strategy takes its points from


def prompt_seed(seed: int, object_key: str) -> int:
    """A seed per (run seed, object), stable across processes and Python versions."""
    digest = hashlib.sha256(f"{seed}|{object_key}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def check_sampling(sampling: str) -> str:
    """``sampling`` if it is a known point-sampling rule, else a :class:`ConfigError` naming the allowed ones."""
    if sampling not in SAMPLINGS:
        raise ConfigError(f"prompts.sampling must be one of {', '.join(SAMPLINGS)}; got '{sampling}'")
    return sampling


def _draw(candidates: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct rows of ``candidates`` while they last, then more with replacement."""
    if count == 0:
        return candidates[:0]
    first = rng.permutation(len(candidates))[:count]
    extra = rng.integers(0, len(candidates), size=count - len(first))
    return candidates[np.concatenate([first, extra])]


def _cycle(candidates: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` rows of ``candidates`` repeated from the start as often as needed."""
    return candidates[np.arange(count) % len(candidates)]


def _strided(candidates: np.ndarray, count: int) -> np.ndarray:
    """Every ``len // count``-th row (the authors' ``points[::int(len / count)]``), exactly ``count`` of them."""
    step = max(1, len(candidates) // count)
    return _cycle(candidates[::step], count)


def positive_points(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` x 2 XY foreground points, random rule (see module rules)."""
    fg = np.argwhere(mask)[:, ::-1]  # XY
    if count == 0:
        return fg[:0].astype(np.float64)
    cy, cx = ndimage.center_of_mass(mask)
    r, c = int(np.floor(cy + 0.5)), int(np.floor(cx + 0.5))
    if mask[r, c]:
        rest = fg[~((fg[:, 0] == c) & (fg[:, 1] == r))]
        others = _draw(rest, count - 1, rng) if len(rest) else np.repeat([[c, r]], count - 1, axis=0)
        return np.vstack([[[c, r]], others]).astype(np.float64)
    return _draw(fg, count, rng).astype(np.float64)


def strided_positive_points(mask: np.ndarray, count: int) -> np.ndarray:
    """``count`` x 2 XY points, strided rule: truncated centroid, then strided foreground pixels."""
    fg = np.argwhere(mask)[:, ::-1]  # XY, row-major order
    cy, cx = ndimage.center_of_mass(mask)
    centre = np.array([[int(cx), int(cy)]])
    strided = _strided(fg, count)
    return np.vstack([centre, strided[1:count]]).astype(np.float64)


def _background(mask: np.ndarray, region: np.ndarray) -> np.ndarray:
    """XY background pixels of ``region`` (row-major), else of the whole image; error when there are none."""
    candidates = np.argwhere(region & ~mask)[:, ::-1]
    if len(candidates) == 0:
        candidates = np.argwhere(~mask)[:, ::-1]
    if len(candidates) == 0:
        raise ValueError("the object covers the whole image: there is no background for negative points")
    return candidates


def negative_points(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` x 2 XY background points near the object, random rule (see module rules)."""
    if count == 0:
        return np.zeros((0, 2))
    x0, y0, x1, y1 = tight_box(mask)
    half_w, half_h = (x1 - x0 + 1) / 2, (y1 - y0 + 1) / 2
    h, w = mask.shape
    ex0, ey0 = int(max(0, np.floor(x0 - half_w))), int(max(0, np.floor(y0 - half_h)))
    ex1, ey1 = int(min(w - 1, np.ceil(x1 + half_w))), int(min(h - 1, np.ceil(y1 + half_h)))
    region = np.zeros_like(mask, dtype=bool)
    region[ey0 : ey1 + 1, ex0 : ex1 + 1] = True
    return _draw(_background(mask, region), count, rng).astype(np.float64)


def strided_negative_points(mask: np.ndarray, count: int) -> np.ndarray:
    """``count`` x 2 XY background points, strided rule, in the authors' enlarged box (see module rules)."""
    h, w = mask.shape
    x0, y0, x1, y1 = tight_box(mask)
    bw, bh = x1 - x0, y1 - y0  # their extent: max - min, not max - min + 1
    left, top = max(0.0, x0 - bw / 2), max(0.0, y0 - bh / 2)
    right, bottom = min(float(w), x0 - bw / 2 + 2 * bw), min(float(h), y0 - bh / 2 + 2 * bh)
    cx, cy, cw, ch = int(left), int(top), int(right - left), int(bottom - top)
    region = np.zeros_like(mask, dtype=bool)
    region[cy : cy + ch, cx : cx + cw] = True
    return _strided(_background(mask, region), count).astype(np.float64)


@dataclass(frozen=True)
class PointSet:
    """The points every strategy of one object takes its prompt from.

    Attributes:
        positives: 5 x 2 XY foreground points, the centre point first.
        negatives: 5 x 2 XY background points (None when the object has no background).
        seed: the seed the points were drawn with.
    """

    positives: np.ndarray
    negatives: np.ndarray | None
    seed: int


def point_set(mask: np.ndarray, *, seed: int, object_key: str, sampling: str = "random") -> PointSet:
    """One object's nested point set (see module rules); ``mask`` H x W bool, not empty."""
    own_seed = prompt_seed(seed, object_key)
    if sampling == "strided":
        pos = strided_positive_points(mask, POSITIVES)
        try:
            neg = strided_negative_points(mask, NEGATIVES)
        except ValueError:
            neg = None
        return PointSet(pos, neg, own_seed)
    check_sampling(sampling)
    rng = np.random.default_rng(own_seed)
    pos = positive_points(mask, POSITIVES, rng)
    try:
        neg = negative_points(mask, NEGATIVES, rng)
    except ValueError:
        neg = None
    return PointSet(pos, neg, own_seed)


def mode_prompt(mask: np.ndarray, strategy: str, *, seed: int, object_key: str) -> Prompt:
    """The prompt of mode ``strategy`` (``M1`` ... ``M5``, see :mod:`sam4med.prompts.modes`) for ``mask``
    (H x W bool, not empty).

    Its seed is :func:`prompt_seed` of (run seed, object), as for S2-S6; it breaks ties between points at
    the same distance from the boundary, one draw per region in region order, so M1's point is M2's first.
    Boxes are :func:`tight_box` of a region (M3, M4) or of the whole object (M5, S5's box); M4's are
    ``boxes``, decoded one by one.
    """
    rule = MODES[strategy]
    own_seed = prompt_seed(seed, object_key)
    if rule.regions == "whole":
        return Prompt(strategy=strategy, box=tight_box(mask), seed=own_seed)
    parts = regions(mask)[: 1 if rule.regions == "largest" else None]
    if rule.prompt == "point":
        rng = np.random.default_rng(own_seed)
        points = tuple(farthest_point(region, rng) for region in parts)
        return Prompt(strategy=strategy, point_coords=points, point_labels=(1,) * len(points), seed=own_seed)
    if rule.regions == "largest":
        return Prompt(strategy=strategy, box=tight_box(parts[0]), seed=own_seed)
    return Prompt(strategy=strategy, boxes=tuple(tight_box(region) for region in parts), seed=own_seed)


def make_prompt(mask: np.ndarray, strategy: str, *, seed: int, object_key: str, sampling: str = "random") -> Prompt:
    """The prompt of ``strategy`` for the object whose ground truth is ``mask`` (H x W bool).

    Every strategy S2-S6 of one (object, seed, sampling) takes its points from the same :func:`point_set`;
    the modes M1-M5 are made by :func:`mode_prompt` (``sampling`` does not apply to them).
    """
    if strategy not in STRATEGIES and strategy not in MODES:
        raise ValueError(f"unknown prompt strategy '{strategy}', expected one of {[*sorted(STRATEGIES), *MODES]}")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError(f"object {object_key}: empty mask, no prompt possible")
    if strategy in MODES:
        return mode_prompt(mask, strategy, seed=seed, object_key=object_key)
    rule = STRATEGIES[strategy]
    points = point_set(mask, seed=seed, object_key=object_key, sampling=sampling)
    pos = points.positives[: rule.positives]
    if rule.negatives and points.negatives is None:
        raise ValueError(f"object {object_key}: it covers the whole image, there is no background for negative points")
    neg = points.negatives[: rule.negatives] if rule.negatives else np.zeros((0, 2))
    coords = np.vstack([pos, neg])
    return Prompt(
        strategy=strategy,
        point_coords=tuple((float(x), float(y)) for x, y in coords),
        point_labels=(1,) * len(pos) + (0,) * len(neg),
        box=tight_box(mask) if rule.box else None,
        seed=points.seed,
    )
