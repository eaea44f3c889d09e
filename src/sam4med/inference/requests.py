"""What ``predict.py`` decodes on each input: its objects' prompts, from a prompts file or drawn from labels.

From a prompts file (:mod:`sam4med.prompts.prompt_file`) each entry is matched to an input by file name
(or name without extension) and checked against it, naming the entry's file and line: an unknown image,
a slice index given for a 2D image or missing for a volume, a slice outside the volume, a box or point
outside the image, a slice range without propagation. With ``propagate``, a volume's object is prompted on
exactly one slice, with a box, and stays within its slice range (default: the whole volume).

From labels (``labels=``: a label image or volume, or a folder holding one per input under the input's
file name, or for a 2D image under its name with another image extension): every label value > 0 of an
image (every slice of a volume) is one object, its id the label value, its prompt made by the
evaluation's rule (:func:`sam4med.prompts.generate.make_prompt`) with the evaluation's seed and object key
``<image id>/<label map>/<value>`` (the image id a preparer gives: the file stem, or ``<stem>_z045``
for a volume's slice).

Objects are kept in the order they are given (file order, or ascending label value): the order the
masks are drawn into the label image (:mod:`sam4med.inference.outputs`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sam4med.errors import ConfigError, DataError
from sam4med.inference.inputs import (
    IMAGE_SUFFIXES,
    InputFile,
    image_size,
    label_slice,
    match_input,
    read_label_image,
    read_label_volume,
    slice_image_id,
    volume_grid,
)
from sam4med.inference.settings import PredictSettings
from sam4med.prepare.inputs import safe_id
from sam4med.prompts.generate import make_prompt
from sam4med.prompts.prompt import Prompt
from sam4med.prompts.prompt_file import MAX_OBJECT_ID, FilePrompt, check_inside, object_ids
from sam4med.volume_grid import VolumeGrid

log = logging.getLogger("sam4med")


@dataclass(frozen=True)
class ObjectPrompt:
    """One object's prompt on one image or slice.

    Attributes:
        object: the object id (the value of its mask in the label image written).
        prompt: the prompt, in the image's original pixels.
        source: where it comes from: ``file`` (a prompts file), a strategy (drawn from labels, e.g. ``S5``) or
            ``propagated`` (the box of the mask on the neighbouring slice).
    """

    object: int
    prompt: Prompt
    source: str


@dataclass(frozen=True)
class Start:
    """Where a propagated object starts: its prompted slice, its prompt (a box in it), and the inclusive slice
    range it stays in (``low`` .. ``high``; the whole volume when the prompts file gives none).
    """

    slice: int
    prompt: ObjectPrompt
    low: int
    high: int


@dataclass(frozen=True)
class Request:
    """The objects to decode on one input.

    Attributes:
        item: the input file.
        grid: a volume's grid (None for a 2D image).
        slices: slice index (``-1`` for a 2D image) -> the prompts decoded there as given, in drawing order.
        starts: with propagation, where each object starts (:class:`Start`).
    """

    item: InputFile
    grid: VolumeGrid | None = None
    slices: Mapping[int, tuple[ObjectPrompt, ...]] = field(default_factory=dict)
    starts: tuple[Start, ...] = ()


def _grids(inputs: Sequence[InputFile], axis: int) -> dict[Path, VolumeGrid]:
    return {item.path: volume_grid(item.path, axis) for item in inputs if item.is_volume}


def from_file(
    entries: Sequence[FilePrompt], inputs: Sequence[InputFile], *, axis: int, propagate: bool = False
) -> list[Request]:
    """The requests of the inputs a prompts file names, in input order (see the module rules)."""
    grids = _grids(inputs, axis)
    sizes: dict[Path, tuple[int, int]] = {}
    slices: dict[Path, dict[int, list[ObjectPrompt]]] = {}
    starts: dict[Path, list[Start]] = {}
    names = ", ".join(item.name for item in inputs[:5]) + (" ..." if len(inputs) > 5 else "")
    matched = []
    for entry in entries:
        item = match_input(entry.image, inputs)
        if item is None:
            raise DataError(f"{entry.where}: image '{entry.image}' is not among the inputs ({names})")
        matched.append(item)
    places = [
        (item.path, None if propagate and item.is_volume else e.slice) for e, item in zip(entries, matched, strict=True)
    ]
    ids = object_ids(entries, places)
    for entry, item, number in zip(entries, matched, ids, strict=True):
        grid = grids.get(item.path)
        if grid is None:
            if entry.slice is not None:
                raise DataError(
                    f"{entry.where}: slice {entry.slice} given for the 2D image {item.name}; leave it empty"
                )
            shape = sizes.setdefault(item.path, image_size(item))
        else:
            if entry.slice is None:
                raise DataError(f"{entry.where}: {item.name} is a volume; give the slice index of the prompt")
            if entry.slice >= grid.slices:
                raise DataError(
                    f"{entry.where}: slice {entry.slice} is outside {item.name}, whose {grid.slices} slices along "
                    f"the slice axis are numbered 0..{grid.slices - 1}"
                )
            shape = grid.image_size
        check_inside(entry, shape, item.name)
        prompt = ObjectPrompt(number, entry.prompt, "file")
        if entry.slices is not None and not (propagate and grid is not None):
            raise DataError(
                f"{entry.where}: slice_min and slice_max bound a propagation through a volume; "
                + ("set propagate=true" if grid is not None else f"{item.name} is a 2D image")
            )
        if propagate and grid is not None:
            if entry.prompt.box is None:
                raise DataError(f"{entry.where}: propagation starts from a box; this entry has points only")
            low, high = entry.slices or (0, grid.slices - 1)
            if high >= grid.slices:
                raise DataError(
                    f"{entry.where}: slice_max {high} is outside {item.name}, whose slices are numbered "
                    f"0..{grid.slices - 1}"
                )
            starts.setdefault(item.path, []).append(Start(entry.slice, prompt, low, high))
            continue
        index = -1 if entry.slice is None else entry.slice
        slices.setdefault(item.path, {}).setdefault(index, []).append(prompt)
    return _requests(inputs, grids, slices, starts)


def _requests(
    inputs: Sequence[InputFile],
    grids: Mapping[Path, VolumeGrid],
    slices: Mapping[Path, Mapping[int, list[ObjectPrompt]]],
    starts: Mapping[Path, list[Start]],
) -> list[Request]:
    requests = []
    for item in inputs:
        if item.path not in slices and item.path not in starts:
            continue
        own = {index: tuple(p) for index, p in sorted(slices.get(item.path, {}).items())}
        requests.append(Request(item, grids.get(item.path), own, tuple(starts.get(item.path, ()))))
    unprompted = len(inputs) - len(requests)
    if unprompted:
        log.warning("%d of %d inputs have no prompt and get no mask", unprompted, len(inputs))
    return requests


def label_file_of(item: InputFile, labels: Path, single: bool) -> Path:
    """The label file of ``item``: ``labels`` itself when it is a file (one input only), else the file of the
    same name in the folder ``labels`` (for a 2D image also the same stem with another image extension).
    """
    if labels.is_file():
        if not single:
            raise ConfigError(f"labels={labels}: a single label file for several inputs; give a folder of label files")
        return labels
    if not labels.is_dir():
        raise ConfigError(f"labels={labels}: no such file or folder")
    same = labels / item.name
    if same.is_file():
        return same
    if not item.is_volume:
        for suffix in IMAGE_SUFFIXES:
            for candidate in (labels / f"{item.stem}{suffix}", labels / f"{item.stem}{suffix.upper()}"):
                if candidate.is_file():
                    return candidate
    raise DataError(f"{labels}: no label file for the input {item.name} (expected {same})")


def _label_prompts(
    labels: np.ndarray, image_id: str, settings: PredictSettings, where: str
) -> tuple[ObjectPrompt, ...]:
    """The prompts of every label value > 0 of an H x W label image, in ascending value."""
    prompts = []
    for value in (int(v) for v in np.unique(labels) if v > 0):
        if value > MAX_OBJECT_ID:
            raise DataError(f"{where}: label value {value} is above {MAX_OBJECT_ID}, the largest object id")
        key = f"{image_id}/{settings.label_map}/{value}"
        try:
            prompt = make_prompt(
                labels == value, settings.strategy, seed=settings.seed, object_key=key, sampling=settings.sampling
            )
        except ValueError as exc:  # e.g. an object covering the whole image has no background point
            raise DataError(f"{where}: no {settings.strategy} prompt for label {value} ({exc})") from exc
        prompts.append(ObjectPrompt(value, prompt, settings.strategy))
    return tuple(prompts)


def from_labels(
    labels: str | Path, inputs: Sequence[InputFile], settings: PredictSettings, *, axis: int
) -> list[Request]:
    """The requests of every input, prompts drawn from its label file (see the module rules)."""
    if settings.propagate:
        raise ConfigError(
            "propagate=true starts from the boxes of a prompts file (prompts=...); with labels= every slice already "
            "has its prompts"
        )
    labels = Path(labels).expanduser()
    grids = _grids(inputs, axis)
    slices: dict[Path, dict[int, list[ObjectPrompt]]] = {}
    for item in inputs:
        path = label_file_of(item, labels, single=len(inputs) == 1)
        grid = grids.get(item.path)
        own: dict[int, list[ObjectPrompt]] = {}
        if grid is None:
            array = read_label_image(path, image_size(item), item.name)
            found = _label_prompts(array, safe_id(item.stem), settings, str(path))
            if found:
                own[-1] = list(found)
        else:
            volume = read_label_volume(path, grid)
            for index in range(grid.slices):
                image = label_slice(volume, grid, index)
                if image.any():
                    own[index] = list(
                        _label_prompts(image, slice_image_id(grid, index), settings, f"{path} slice {index}")
                    )
        if own:
            slices[item.path] = own
    return _requests(inputs, grids, slices, {})
