"""Prompts as frozen values in original pixel space (X = column, Y = row, origin top-left pixel centre)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Prompt:
    """The prompt given to SAM for one object.

    Attributes:
        strategy: the strategy that made it (``S2`` ... ``S6``, ``M1`` ... ``M5``).
        point_coords: P points, each (x, y) in original pixels.
        point_labels: P labels, 1 = foreground (positive), 0 = background (negative).
        box: (x0, y0, x1, y1) XYXY in original pixels, inclusive pixel indices, or None.
        seed: the seed the points were drawn with (recorded for reproduction).
        boxes: B boxes like ``box``, each decoded on its own (with the points, if any) and the B masks
            merged into one (mode ``M4``); empty for a prompt of one box or none. A prompt has ``box`` or
            ``boxes``, never both. Stored only when not empty, so the stored form of the other prompts
            is that of earlier versions.
    """

    strategy: str
    point_coords: tuple[tuple[float, float], ...] = ()
    point_labels: tuple[int, ...] = ()
    box: Box | None = None
    seed: int = field(default=0)
    boxes: tuple[Box, ...] = ()

    def __post_init__(self) -> None:
        if len(self.point_coords) != len(self.point_labels):
            raise ValueError(f"{len(self.point_coords)} points but {len(self.point_labels)} labels")
        if any(label not in (0, 1) for label in self.point_labels):
            raise ValueError(f"point labels must be 0 or 1, got {self.point_labels}")
        if self.box is not None and self.boxes:
            raise ValueError("a prompt has one box (box) or boxes decoded one by one (boxes), not both")
        if any(len(b) != 4 for b in self.boxes):
            raise ValueError(f"every box must be (x0, y0, x1, y1), got {self.boxes}")

    @property
    def points_array(self) -> np.ndarray:
        """P x 2 float64 XY coordinates."""
        return np.asarray(self.point_coords, dtype=np.float64).reshape(-1, 2)

    @property
    def labels_array(self) -> np.ndarray:
        """P int64 labels."""
        return np.asarray(self.point_labels, dtype=np.int64)

    @property
    def all_boxes(self) -> tuple[Box, ...]:
        """Every box of the prompt: ``(box,)``, ``boxes``, or none (e.g. to draw or check them)."""
        return (self.box,) if self.box is not None else self.boxes

    def decoded(self) -> tuple[Prompt, ...]:
        """The prompts the decoder is given for this one: itself, or one per box of ``boxes`` (each with
        this prompt's points), whose masks are merged into the object's prediction.
        """
        if not self.boxes:
            return (self,)
        return tuple(replace(self, box=tuple(b), boxes=()) for b in self.boxes)

    def to_dict(self) -> dict:
        """JSON-ready form (``boxes`` only when there are some)."""
        data = {
            "strategy": self.strategy,
            "point_coords": [list(p) for p in self.point_coords],
            "point_labels": list(self.point_labels),
            "box": list(self.box) if self.box is not None else None,
            "seed": self.seed,
        }
        if self.boxes:
            data["boxes"] = [list(b) for b in self.boxes]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Prompt:
        """Inverse of :meth:`to_dict`."""
        return cls(
            strategy=data["strategy"],
            point_coords=tuple((float(x), float(y)) for x, y in data["point_coords"]),
            point_labels=tuple(int(v) for v in data["point_labels"]),
            box=tuple(float(v) for v in data["box"]) if data["box"] is not None else None,
            seed=int(data["seed"]),
            boxes=tuple(tuple(float(v) for v in b) for b in data.get("boxes") or ()),
        )
