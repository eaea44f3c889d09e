"""Prompt noise: a saved prompt shifted by a random offset of a given size (COSMOS section 4.10, Table 8).

The COSMOS authors "enlarge/move the boxes/points randomly in 0-10, 10-20, and 20-30 pixels" and publish
no code for it; these are the rules here. All coordinates are XY in original pixels (X column, Y row),
as in :class:`~sam4med.prompts.prompt.Prompt`. A level is ``[low, high)`` pixels (:class:`ShiftLevel`).

* **Points**: every point moves by its own vector: a distance drawn uniformly in ``[low, high)`` and a
  direction drawn uniformly in ``[0, 2 pi)``. A point keeps its label, so a positive point may leave its
  object: that is the noise measured. Coordinates stay real numbers (not rounded to pixel indices), so
  the distance moved is exactly the drawn one.
* **Boxes** (``box``, and every box of ``boxes``, mode M4): each of the four edges ``x0, y0, x1, y1`` moves
  by its own distance drawn uniformly in ``[low, high)``, outward or inward with probability 1/2 each. So
  the box both moves and changes size (two edges moving the same way move it, opposite ways resize it),
  and every edge, where a user misplaces a corner or a side, is off by a distance of the level.
* **Collapse**: when inward moves make an edge pass its opposite edge (``x0 > x1`` or ``y0 > y1``), both are
  set to their midpoint: the box is one pixel wide (inclusive pixel indices) there, never inverted.
* **Clipping**: every coordinate is then clipped to the image, ``[0, W - 1]`` for X and ``[0, H - 1]`` for Y
  (a clipped point or edge moves less than drawn; a box pushed off the image keeps one pixel at the border).

The draw is reproducible and independent of the order objects are visited: its seed is
:func:`~sam4med.prompts.generate.prompt_seed` of the run's prompt seed and ``shift|<low>|<high>|<repeat>|
<strategy>|<object key>`` (:func:`shift_seed`), and one generator per prompt draws, in this order, the
points' distances, their directions, the edges' distances and their directions. A level ``[0, 0]``
leaves the prompt as it was.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from sam4med.prompts.generate import prompt_seed
from sam4med.prompts.prompt import Box, Prompt


@dataclass(frozen=True)
class ShiftLevel:
    """A shift size: distances drawn uniformly in ``[low, high)`` pixels (``low == high``: exactly ``low``).

    Attributes:
        low: smallest distance, >= 0.
        high: largest distance (excluded unless equal to ``low``), >= ``low``.
    """

    low: float
    high: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "low", float(self.low))
        object.__setattr__(self, "high", float(self.high))
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or not 0 <= self.low <= self.high:
            raise ValueError(f"a shift level [low, high] needs 0 <= low <= high, finite; got [{self.low}, {self.high}]")

    @property
    def label(self) -> str:
        """``0-10``: how the level is written in tables and figures."""
        return f"{self.low:g}-{self.high:g}"

    @property
    def midpoint(self) -> float:
        """The level's middle distance (where the figure draws it)."""
        return (self.low + self.high) / 2


@dataclass(frozen=True)
class Shift:
    """The offsets drawn for one prompt (before clipping).

    Attributes:
        seed: the seed they were drawn with (:func:`shift_seed`).
        points: P x 2 (dx, dy) offset of each point, in the prompt's point order.
        boxes: B x 4 (dx0, dy0, dx1, dy1) signed move of each edge of each box of
            :attr:`Prompt.all_boxes <sam4med.prompts.prompt.Prompt.all_boxes>` (negative: towards smaller
            coordinates, i.e. outward for ``x0``/``y0`` and inward for ``x1``/``y1``).
    """

    seed: int
    points: np.ndarray
    boxes: np.ndarray


@dataclass(frozen=True)
class ShiftedPrompt:
    """A saved prompt after its shift.

    Attributes:
        prompt: the shifted prompt (same strategy, labels and ``seed`` as the saved one).
        shift: the offsets drawn (:class:`Shift`).
    """

    prompt: Prompt
    shift: Shift


def shift_seed(seed: int, *, level: ShiftLevel, repeat: int, strategy: str, object_key: str) -> int:
    """The seed of one prompt's shift: from (run prompt seed, level, repeat, strategy, object) only."""
    return prompt_seed(seed, f"shift|{level.low!r}|{level.high!r}|{repeat}|{strategy}|{object_key}")


def draw_shift(prompt: Prompt, level: ShiftLevel, seed: int) -> Shift:
    """The offsets of ``prompt``'s points and box edges at ``level`` (see module rules), drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    count = len(prompt.point_coords)
    distance = rng.uniform(level.low, level.high, size=count)
    angle = rng.uniform(0.0, 2 * math.pi, size=count)
    points = np.stack([distance * np.cos(angle), distance * np.sin(angle)], axis=1).reshape(-1, 2)
    edges = (len(prompt.all_boxes), 4)
    moves = rng.uniform(level.low, level.high, size=edges)
    sign = np.where(rng.random(size=edges) < 0.5, -1.0, 1.0)
    return Shift(seed=seed, points=points, boxes=(moves * sign).reshape(-1, 4))


def _clip(value: float, last: int) -> float:
    return float(min(max(value, 0.0), float(last)))


def move_box(box: Box, offsets: np.ndarray, size: tuple[int, int]) -> Box:
    """``box`` (x0, y0, x1, y1) with each edge moved by ``offsets`` (dx0, dy0, dx1, dy1), crossed edges set to
    their midpoint, then clipped to the ``size`` (H, W) image (see module rules).
    """
    h, w = size
    x0, y0, x1, y1 = (float(v) + float(d) for v, d in zip(box, offsets, strict=True))
    if x0 > x1:
        x0 = x1 = (x0 + x1) / 2
    if y0 > y1:
        y0 = y1 = (y0 + y1) / 2
    return _clip(x0, w - 1), _clip(y0, h - 1), _clip(x1, w - 1), _clip(y1, h - 1)


def apply_shift(prompt: Prompt, shift: Shift, size: tuple[int, int]) -> Prompt:
    """``prompt`` moved by ``shift`` on an image of ``size`` (H, W): points and box edges moved, boxes kept
    ordered, everything clipped to the image (see module rules). Labels, strategy and seed are kept.
    """
    h, w = size
    moved = prompt.points_array + shift.points
    points = tuple((_clip(x, w - 1), _clip(y, h - 1)) for x, y in moved)
    boxes = tuple(move_box(b, d, size) for b, d in zip(prompt.all_boxes, shift.boxes, strict=True))
    if prompt.box is not None:
        return replace(prompt, point_coords=points, box=boxes[0])
    return replace(prompt, point_coords=points, boxes=boxes)


def shift_prompt(
    prompt: Prompt,
    level: ShiftLevel,
    *,
    seed: int,
    repeat: int,
    object_key: str,
    size: tuple[int, int],
) -> ShiftedPrompt:
    """``prompt`` (a saved prompt of object ``object_key``) shifted at ``level`` for repeat ``repeat``, on an
    image of ``size`` (H, W); ``seed`` is the run's prompt seed. The same arguments give the same shift.
    """
    own = shift_seed(seed, level=level, repeat=repeat, strategy=prompt.strategy, object_key=object_key)
    shift = draw_shift(prompt, level, own)
    return ShiftedPrompt(apply_shift(prompt, shift, size), shift)
