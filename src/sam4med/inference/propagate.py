"""Box propagation through a volume: each slice's predicted mask gives the next slice's box.

The rule (after LiteMedSAM's own 3D inference, ``CVPR24_LiteMedSAM_infer.py`` of bowang-lab/MedSAM,
read for its rule):

1. The prompted slice ``s`` is decoded with the object's prompt (a box, and its points if any).
2. Upwards, slice ``s + 1``, ``s + 2``, ... is decoded with a box alone: the tight box of the mask
   predicted on the slice before, enlarged by ``margin`` pixels on every side and clipped to the image
   (inclusive pixel indices, :func:`sam4med.prompts.generate.tight_box`).
3. Downwards the same from the prompted slice's mask: ``s - 1``, ``s - 2``, ...
4. A direction stops at the first slice whose predicted mask is empty (that slice's empty mask is kept),
   or at the end of the object's slice range (``slice_min``/``slice_max`` of the prompts file; default
   the volume's ends).

LiteMedSAM is always given a 3D box (a slice range ``z_min..z_max``), starts from its middle slice, stays
inside that range, adds 3 pixels on its 256-pixel model grid, and falls back to the first box when a
slice's mask is empty. Here the range is optional and the prompted slice any slice inside it, so an empty
mask ends the object (falling back to the first box would, without a range, run on to the volume's end).
``margin`` is in the slice's original pixels (default 3).

All objects of a volume are propagated together, one sweep per direction, so every slice is encoded
once per sweep and its objects decoded in one call (:func:`propagate`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from sam4med.evaluation.predict import Prediction
from sam4med.inference.requests import ObjectPrompt, Start
from sam4med.prompts.generate import tight_box
from sam4med.prompts.prompt import Box, Prompt

PROPAGATED = "propagated"  # the source of a prompt made from the neighbouring slice's mask

# decodes the prompts of one slice: (slice index, prompts) -> their prediction
Decode = Callable[[int, Sequence[ObjectPrompt]], Prediction]


def propagated_box(mask: np.ndarray, margin: float) -> Box | None:
    """The tight box of an H x W mask enlarged by ``margin`` on every side and clipped to the image; None
    for an empty mask.
    """
    if not mask.any():
        return None
    x0, y0, x1, y1 = tight_box(mask)
    height, width = mask.shape
    return (
        max(0.0, x0 - margin),
        max(0.0, y0 - margin),
        min(float(width - 1), x1 + margin),
        min(float(height - 1), y1 + margin),
    )


@dataclass(frozen=True)
class SliceResult:
    """The objects decoded on one slice.

    Attributes:
        index: the slice index.
        prompts: the prompt of each object there (the start prompt, or a propagated box).
        masks: N x H x W bool masks, in the order of ``prompts``.
        scores: N predicted IoU.
    """

    index: int
    prompts: tuple[ObjectPrompt, ...]
    masks: np.ndarray
    scores: np.ndarray


def _box_prompt(start: ObjectPrompt, box: Box) -> ObjectPrompt:
    return ObjectPrompt(start.object, Prompt(strategy=PROPAGATED, box=box), PROPAGATED)


def propagate(starts: Sequence[Start], slices: int, decode: Decode, *, margin: float) -> list[SliceResult]:
    """Every slice's masks of the objects of ``starts`` by the module's rule, in slice order.

    Args:
        starts: per object, its prompted slice, prompt (a box in it) and slice range.
        slices: the number of slices of the volume.
        decode: decodes one slice's prompts (:data:`Decode`).
        margin: pixels added to each side of a propagated box.
    """
    found: dict[int, list[tuple[int, ObjectPrompt, np.ndarray, float]]] = {}  # slice -> (start number, ...)
    first: dict[int, Box | None] = {}  # start number -> the box its prompted slice's mask gives
    boxes: dict[int, Box] = {}  # start number -> the box on the current slice, upwards
    for index in range(slices):
        todo = [(k, s.prompt) for k, s in enumerate(starts) if s.slice == index]
        todo += [(k, _box_prompt(starts[k].prompt, box)) for k, box in boxes.items() if index <= starts[k].high]
        boxes = _step(index, todo, decode, margin, found)
        first.update({k: boxes.get(k) for k, s in enumerate(starts) if s.slice == index})
    down: dict[int, Box] = {}
    for index in range(slices - 1, -1, -1):
        down.update({k: box for k, box in first.items() if starts[k].slice == index + 1 and box is not None})
        todo = [(k, _box_prompt(starts[k].prompt, box)) for k, box in down.items() if index >= starts[k].low]
        down = _step(index, todo, decode, margin, found)
    results = []
    for index in sorted(found):
        objects = sorted(found[index], key=lambda entry: entry[0])  # drawing order: the order of the starts
        results.append(
            SliceResult(
                index,
                tuple(p for _, p, _, _ in objects),
                np.stack([m for _, _, m, _ in objects]),
                np.asarray([s for _, _, _, s in objects], dtype=np.float32),
            )
        )
    return results


def _step(
    index: int,
    todo: list[tuple[int, ObjectPrompt]],
    decode: Decode,
    margin: float,
    found: dict[int, list[tuple[int, ObjectPrompt, np.ndarray, float]]],
) -> dict[int, Box]:
    """Decode ``todo`` ((start number, prompt) each) on slice ``index``, add them to ``found``, and return the
    boxes their masks give the next slice (an object whose mask is empty ends here).
    """
    if not todo:
        return {}
    prediction = decode(index, [p for _, p in todo])
    nxt = {}
    for (k, prompt), mask, score in zip(todo, prediction.masks, prediction.scores, strict=True):
        found.setdefault(index, []).append((k, prompt, mask, float(score)))
        box = propagated_box(mask, margin)
        if box is not None:
            nxt[k] = box
    return nxt
