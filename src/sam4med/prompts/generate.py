"""Prompts from ground-truth masks: the COSMOS rules (section 3.3), with their edge cases settled.

Rules (all coordinates XY in original pixels, points at pixel indices):

* Box (S5, S6): the tight box of the mask, ``(min col, min row, max col, max row)``, inclusive.
* Positive points: the first is the pixel holding the mask's centre of mass (rounded half up) when
  that pixel belongs to the mask; the rest are drawn uniformly without replacement from the other
  mask pixels. When the centre lies outside the mask (rings, crescents, multi-part objects) all
  positives are drawn so. When the mask has fewer pixels than points asked for, every pixel is used
  once and the remainder is drawn again with replacement, so the count is always exact.
* Negative points: drawn uniformly without replacement from the non-mask pixels inside the tight box
  enlarged two times (width and height doubled about its centre), clipped to the image. If that
  region has no background pixel (the object fills it), the whole image's background is used; if
  there are fewer candidates than points, they are drawn with replacement after each is used once.
  An object that covers the whole image has no background: asking it for negatives is an error.
* Every prompt has exactly the numbers of points and labels its strategy asks for, and its points'
  randomness comes from a seed derived from (run seed, object, strategy) only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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


def prompt_seed(seed: int, object_key: str, strategy: str) -> int:
    """A seed per (run seed, object, strategy), stable across processes and Python versions."""
    digest = hashlib.sha256(f"{seed}|{object_key}|{strategy}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _draw(candidates: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` distinct rows of ``candidates`` while they last, then more with replacement."""
    if count == 0:
        return candidates[:0]
    first = rng.permutation(len(candidates))[:count]
    extra = rng.integers(0, len(candidates), size=count - len(first))
    return candidates[np.concatenate([first, extra])]


def positive_points(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` x 2 XY foreground points (see module rules)."""
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


def negative_points(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` x 2 XY background points near the object (see module rules)."""
    if count == 0:
        return np.zeros((0, 2))
    x0, y0, x1, y1 = tight_box(mask)
    half_w, half_h = (x1 - x0 + 1) / 2, (y1 - y0 + 1) / 2
    h, w = mask.shape
    ex0, ey0 = int(max(0, np.floor(x0 - half_w))), int(max(0, np.floor(y0 - half_h)))
    ex1, ey1 = int(min(w - 1, np.ceil(x1 + half_w))), int(min(h - 1, np.ceil(y1 + half_h)))
    region = np.zeros_like(mask, dtype=bool)
    region[ey0 : ey1 + 1, ex0 : ex1 + 1] = True
    candidates = np.argwhere(region & ~mask)[:, ::-1]
    if len(candidates) == 0:
        candidates = np.argwhere(~mask)[:, ::-1]
    if len(candidates) == 0:
        raise ValueError("the object covers the whole image: there is no background for negative points")
    return _draw(candidates, count, rng).astype(np.float64)


def make_prompt(mask: np.ndarray, strategy: str, *, seed: int, object_key: str) -> Prompt:
    """The prompt of ``strategy`` for the object whose ground truth is ``mask`` (H x W bool)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown prompt strategy '{strategy}', expected one of {sorted(STRATEGIES)}")
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError(f"object {object_key}: empty mask, no prompt possible")
    rule = STRATEGIES[strategy]
    own_seed = prompt_seed(seed, object_key, strategy)
    rng = np.random.default_rng(own_seed)
    pos = positive_points(mask, rule.positives, rng)
    neg = negative_points(mask, rule.negatives, rng)
    coords = np.vstack([pos, neg])
    return Prompt(
        strategy=strategy,
        point_coords=tuple((float(x), float(y)) for x, y in coords),
        point_labels=(1,) * len(pos) + (0,) * len(neg),
        box=tight_box(mask) if rule.box else None,
        seed=own_seed,
    )
