"""The five prompt modes of Mazurowski et al. (MedIA 2023, section 2.2.1): the mask geometry they need.

An object's ground truth may fall apart into disconnected parts ("regions", e.g. a liver cut in two by
a slice). The modes prompt, for one object:

* ``M1``: one positive point in the largest region;
* ``M2``: one positive point in each region (at most :data:`MAX_REGIONS`, largest first), all in one prompt;
* ``M3``: one box around the largest region;
* ``M4``: one box around each region (at most :data:`MAX_REGIONS`), each decoded on its own, the masks merged;
* ``M5``: one box around the whole object (S5's tight box).

Here are the pure functions of a mask they rest on; :mod:`sam4med.prompts.generate` turns them into
prompts. Rules (``docs/strategies.md``, "Prompt modes"):

* **Regions** are 8-connected components (:func:`scipy.ndimage.label` with a 3 x 3 structure):
  pixels touching by a corner belong to one region, as a diagonal line of pixels is one stroke to the eye.
  They are ordered by area, largest first; equal areas in the row-major order of their first pixel.
* **Tiny regions**: a region under :data:`MIN_REGION_AREA` pixels is left out, unless no region of the
  object reaches it; then the largest region alone is used.
* **Point**: the region pixel farthest (Euclidean) from the region's boundary, i.e. the maximum of
  :func:`scipy.ndimage.distance_transform_edt` of the region padded by one background pixel on every side,
  so the image border counts as boundary (a region cut by the border gets its point inside the visible
  part, not on the cut). Pixels at an equal, largest distance are drawn from with the generator given
  (the prompt's seed), one draw per region.

All coordinates are XY in original pixels (X = column, Y = row), points on pixel indices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

CONNECTIVITY = np.ones((3, 3), dtype=bool)  # 8-connected
MIN_REGION_AREA = 10  # pixels; the default dataset.min_object_area, applied to the parts of an object
MAX_REGIONS = 3  # points (M2) or boxes (M4) per object, as in the paper


@dataclass(frozen=True)
class ModeRule:
    """What a mode prompts with and where.

    Attributes:
        prompt: ``point`` (one positive point per region) or ``box`` (one box per region).
        regions: ``largest`` (the largest region), ``each`` (every region kept, at most
            :data:`MAX_REGIONS`) or ``whole`` (the whole object as one region: its tight box).
    """

    prompt: str
    regions: str


MODES: dict[str, ModeRule] = {
    "M1": ModeRule(prompt="point", regions="largest"),
    "M2": ModeRule(prompt="point", regions="each"),
    "M3": ModeRule(prompt="box", regions="largest"),
    "M4": ModeRule(prompt="box", regions="each"),
    "M5": ModeRule(prompt="box", regions="whole"),
}


def components(mask: np.ndarray, limit: int | None = None) -> list[np.ndarray]:
    """The 8-connected regions of an H x W mask as H x W bool masks, largest first (at most ``limit``).

    Equal areas keep the row-major order of their first pixel (the order :func:`scipy.ndimage.label`
    numbers them in). An empty mask has none.
    """
    labels, count = ndimage.label(np.asarray(mask, dtype=bool), structure=CONNECTIVITY)
    areas = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = np.argsort(-areas, kind="stable")[:limit]
    return [labels == index + 1 for index in order]


def regions(mask: np.ndarray, *, limit: int = MAX_REGIONS, min_area: int = MIN_REGION_AREA) -> list[np.ndarray]:
    """The regions the modes prompt (see module rules): at most ``limit``, largest first, none under
    ``min_area`` pixels unless no region reaches it (then the largest alone). ``mask``: H x W, not empty.
    """
    found = components(mask)
    if not found:
        raise ValueError("cannot make a prompt for an empty mask")
    kept = [region for region in found if region.sum() >= min_area] or found[:1]
    return kept[:limit]


def farthest_point(region: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """XY of the pixel of an H x W ``region`` farthest from its boundary (the image border included).

    One integer is drawn from ``rng`` whether or not several pixels share the largest distance, so the
    draws of later regions do not depend on ties in earlier ones.
    """
    region = np.asarray(region, dtype=bool)
    if not region.any():
        raise ValueError("cannot place a point in an empty region")
    distance = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
    best = np.flatnonzero(distance == distance.max())  # row-major
    row, col = divmod(int(best[rng.integers(len(best))]), region.shape[1])
    return float(col), float(row)
