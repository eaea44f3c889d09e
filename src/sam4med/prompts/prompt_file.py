"""Prompts written by a user for ``predict.py``: a CSV or JSON file of boxes and points in original pixels.

One entry per object: the image it belongs to (its file name, or the name without extension), for a
volume the slice index, an object id, and a box, points or both. Coordinates are XY in the original
pixels of the image (X = column, Y = row, origin at the top-left pixel's centre); for a volume, of the
slice as ``prepare.py`` shows it (:mod:`sam4med.prepare.volumes`: RAS, superior/anterior up). A box
``(x0, y0, x1, y1)`` holds inclusive pixel indices, as every box of sam4med (``S5``'s tight box), so
``x0 == x1`` is a box one pixel wide and ``x0 > x1`` is an error. Point labels are 1 (foreground) or 0
(background).

CSV (a header, one row per object; ``slice``, ``object``, the box and ``points`` may be left empty)::

    image,slice,object,x0,y0,x1,y1,points
    case01.png,,1,10,12,40,30,
    case01.png,,2,,,,,25 20 1; 5 5 0
    brain.nii.gz,45,1,80,60,120,95,100 80 1

``points`` holds ``x y label`` triples separated by ``;``. With box propagation (``predict.py
propagate=true``) the optional ``slice_min`` and ``slice_max`` (inclusive) bound the slices an object is
carried through, as the slice range of LiteMedSAM's 3D box does. JSON: a list of entries, or ``{"prompts": [...]}``::

    [{"image": "case01.png", "object": 1, "box": [10, 12, 40, 30]},
     {"image": "brain.nii.gz", "slice": 45, "object": 1, "points": [[100, 80, 1]]}]

An entry without ``object`` gets the next id of its image (or slice) in file order (1, 2, ...,
:func:`object_ids`). The object id is the value of the object's mask in the label image written
(1..65535). Checked here, with the file and line (CSV) or entry number (JSON) in every error: the columns
or keys, numbers, a box of four numbers with ``x0 <= x1`` and ``y0 <= y1``, non-negative coordinates,
point labels, an entry with neither box nor points. What needs the inputs (an unknown image, a box or
point outside it, a slice outside a volume, an object given twice for one image or slice) is checked by
the caller with :func:`check_inside` and :func:`object_ids`, naming the same place.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from sam4med.errors import ConfigError, DataError
from sam4med.prompts.prompt import Box, Prompt
from sam4med.prompts.store import outside

FILE_STRATEGY = "file"  # the strategy recorded on a prompt read from a prompts file
MAX_OBJECT_ID = 65535  # the largest value of a 16-bit label image
CSV_COLUMNS = ("image", "slice", "object", "x0", "y0", "x1", "y1", "points", "slice_min", "slice_max")
JSON_KEYS = ("image", "slice", "object", "box", "points", "slice_min", "slice_max")
BOX_COLUMNS = ("x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class FilePrompt:
    """One object's prompt from a prompts file.

    Attributes:
        image: the image (or volume) as written: a file name, or a file name without its extension.
        slice: the slice index of a volume (along the slice axis of :mod:`sam4med.prepare.volumes`), or
            None for a 2D image.
        object: the object id, 1..65535: the value of its mask in the label image written; None where the
            file leaves it out (:func:`object_ids` numbers those).
        slices: ``(slice_min, slice_max)``, the inclusive slice range a propagated object stays in (the slice
            range of LiteMedSAM's 3D box), or None: no bound but the volume's.
        prompt: the box and points, strategy ``file``.
        where: the file and line (``prompts.csv line 3``) or entry (``prompts.json entry 2``), for errors.
    """

    image: str
    slice: int | None
    object: int | None
    prompt: Prompt
    where: str
    slices: tuple[int, int] | None = None


def read_prompt_file(path: str | Path) -> tuple[FilePrompt, ...]:
    """Every entry of a ``.csv`` or ``.json`` prompts file, in file order (see the module rules)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"prompts={path}: file does not exist")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".json"):
        raise ConfigError(f"prompts={path}: expected a .csv or .json prompts file, got '{suffix or path.name}'")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read the prompts file ({exc})") from exc
    raw = _csv_entries(path, text) if suffix == ".csv" else _json_entries(path, text)
    if not raw:
        raise DataError(f"{path}: holds no prompt (one entry per object is needed)")
    return tuple(raw)


def _csv_entries(path: Path, text: str) -> list[FilePrompt]:
    rows = csv.reader(text.splitlines())
    header = next(rows, None)
    if header is None:
        raise DataError(f"{path}: empty file; expected a header with the columns {', '.join(CSV_COLUMNS)}")
    columns = [c.strip() for c in header]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown or "image" not in columns or len(set(columns)) != len(columns):
        problem = (
            f"unknown columns {unknown}"
            if unknown
            else ("no image column" if "image" not in columns else "a column named twice")
        )
        raise DataError(f"{path} line 1: {problem}; the columns are {', '.join(CSV_COLUMNS)} (image required)")
    box_given = [c for c in BOX_COLUMNS if c in columns]
    if box_given and len(box_given) != 4:
        raise DataError(f"{path} line 1: a box needs the four columns x0, y0, x1, y1; found {', '.join(box_given)}")
    entries = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank lines are allowed
        where = f"{path} line {line}"
        if len(row) != len(columns):
            raise DataError(f"{where}: {len(row)} cells for the {len(columns)} columns of the header")
        cells = {c: v.strip() for c, v in zip(columns, row, strict=True)}
        box_cells = [cells.get(c, "") for c in BOX_COLUMNS]
        if any(box_cells) and not all(box_cells):
            raise DataError(f"{where}: a box needs all of x0, y0, x1, y1 (or none of them)")
        box = (
            tuple(_number(v, name, where) for name, v in zip(BOX_COLUMNS, box_cells, strict=True))
            if all(box_cells)
            else None
        )
        points = _csv_points(cells.get("points", ""), where)
        bounds = (cells.get("slice_min", ""), cells.get("slice_max", ""))
        entries.append(
            _entry(where, cells["image"], cells.get("slice", ""), cells.get("object", ""), box, points, bounds)
        )
    return entries


def _csv_points(text: str, where: str) -> list[tuple[float, float, int]]:
    """``x y label; x y label ...`` -> [(x, y, label)]."""
    points = []
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        values = part.split()
        if len(values) != 3:
            raise DataError(f"{where}: point '{part}' must be 'x y label' (label 1 = foreground, 0 = background)")
        points.append((_number(values[0], "x", where), _number(values[1], "y", where), _label(values[2], where)))
    return points


def _json_entries(path: Path, text: str) -> list[FilePrompt]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} line {exc.lineno}: not JSON ({exc.msg})") from exc
    if isinstance(data, Mapping) and set(data) == {"prompts"}:
        data = data["prompts"]
    if not isinstance(data, list):
        raise DataError(f'{path}: expected a list of prompt entries, or {{"prompts": [...]}}')
    entries = []
    for number, item in enumerate(data, start=1):
        where = f"{path} entry {number}"
        if not isinstance(item, Mapping):
            raise DataError(f"{where}: expected an object with the keys {', '.join(JSON_KEYS)}")
        unknown = sorted(set(item) - set(JSON_KEYS))
        if unknown:
            raise DataError(f"{where}: unknown keys {unknown}; the keys are {', '.join(JSON_KEYS)}")
        box = item.get("box")
        if box is not None:
            if not isinstance(box, list) or len(box) != 4:
                raise DataError(f"{where}: box must be [x0, y0, x1, y1], got {box!r}")
            box = tuple(_number(v, name, where) for name, v in zip(BOX_COLUMNS, box, strict=True))
        raw_points = item.get("points") or []
        if not isinstance(raw_points, list) or not all(isinstance(p, list) and len(p) == 3 for p in raw_points):
            raise DataError(f"{where}: points must be a list of [x, y, label], got {raw_points!r}")
        points = [(_number(x, "x", where), _number(y, "y", where), _label(v, where)) for x, y, v in raw_points]
        image = item.get("image")
        if not isinstance(image, str):
            raise DataError(f"{where}: image must be a file name, got {image!r}")
        bounds = (item.get("slice_min"), item.get("slice_max"))
        entries.append(_entry(where, image, item.get("slice"), item.get("object"), box, points, bounds))
    return entries


def _entry(
    where: str,
    image: str,
    slice_value: object,
    object_value: object,
    box: tuple[float, ...] | None,
    points: Sequence[tuple[float, float, int]],
    bounds: tuple[object, object] = (None, None),
) -> FilePrompt:
    """One checked entry (see the module rules)."""
    image = image.strip()
    if not image:
        raise DataError(f"{where}: no image named (the image column is empty)")
    slice_index = _whole(slice_value, "slice", where, low=0)
    low, high = (_whole(v, name, where, low=0) for v, name in zip(bounds, ("slice_min", "slice_max"), strict=True))
    if (low is None) != (high is None):
        raise DataError(f"{where}: a slice range needs both slice_min and slice_max (or neither)")
    slices = None if low is None or high is None else (low, high)
    if slices is not None and (slice_index is None or not low <= slice_index <= high):
        raise DataError(
            f"{where}: the slice range {low}..{high} must hold the prompted slice ({slice_index}); "
            "slice_min <= slice <= slice_max"
        )
    object_id = _whole(object_value, "object", where, low=1, high=MAX_OBJECT_ID)
    if box is None and not points:
        raise DataError(f"{where}: neither a box nor points; give x0, y0, x1, y1 or points")
    if box is not None:
        x0, y0, x1, y1 = box
        if x0 > x1 or y0 > y1:
            axis = "x0 > x1" if x0 > x1 else "y0 > y1"
            raise DataError(
                f"{where}: box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) has {axis}; a box is (x0, y0, x1, y1) with x0 <= x1 "
                "and y0 <= y1 (inclusive pixel indices)"
            )
    coordinates = [*(box or ()), *(v for x, y, _ in points for v in (x, y))]
    if any(v < 0 for v in coordinates):
        raise DataError(f"{where}: negative coordinate {min(coordinates):g}; pixels are counted from 0")
    prompt = Prompt(
        strategy=FILE_STRATEGY,
        point_coords=tuple((x, y) for x, y, _ in points),
        point_labels=tuple(label for _, _, label in points),
        box=None if box is None else _box(box),
    )
    return FilePrompt(image, slice_index, object_id, prompt, where, slices)


def _box(values: Sequence[float]) -> Box:
    return float(values[0]), float(values[1]), float(values[2]), float(values[3])


def _number(value: object, name: str, where: str) -> float:
    """A finite number (text or JSON number), or a DataError naming ``name``."""
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise DataError(f"{where}: {name} must be a number, got {value!r}")
    return number


def _label(value: object, where: str) -> int:
    if str(value).strip() not in ("0", "1"):
        raise DataError(f"{where}: point label must be 1 (foreground) or 0 (background), got {value!r}")
    return int(str(value).strip())


def _whole(value: object, name: str, where: str, *, low: int, high: int | None = None) -> int | None:
    """An optional whole number in [low, high]: empty text and None are None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number != int(number) or number < low or (high is not None and number > high):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise DataError(f"{where}: {name} must be a whole number {bounds}, got {value!r}")
    return int(number)


def check_inside(entry: FilePrompt, shape: tuple[int, int], image: str) -> None:
    """A :class:`DataError` naming the entry when a box or point lies outside the (H, W) image ``image``."""
    what = outside(entry.prompt, shape)
    if what is not None:
        on = image if entry.slice is None else f"slice {entry.slice} of {image}"
        raise DataError(
            f"{entry.where}: {what} lies outside the {shape[1]}x{shape[0]} image {on} (x in 0..{shape[1] - 1}, "
            f"y in 0..{shape[0] - 1})"
        )


def object_ids(entries: Sequence[FilePrompt], places: Sequence[object]) -> list[int]:
    """The object id of each entry: its own, or for an entry without one the next number of its place in file
    order (1, 2, ...). ``places``: each entry's image (or slice) as resolved by the caller (``a.png`` and ``a``
    name one image). An object given twice for one place is a :class:`DataError` naming both entries.
    """
    counters: dict[object, int] = {}
    seen: dict[tuple[object, int], str] = {}
    ids = []
    for entry, place in zip(entries, places, strict=True):
        counters[place] = counters.get(place, 0) + 1
        number = entry.object if entry.object is not None else counters[place]
        if (place, number) in seen:
            on = f"image {entry.image}" + ("" if entry.slice is None else f" slice {entry.slice}")
            raise DataError(
                f"{entry.where}: object {number} of {on} was already given ({seen[place, number]}); "
                "one entry per object"
            )
        seen[place, number] = entry.where
        ids.append(number)
    return ids
