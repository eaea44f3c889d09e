"""The COSMOS-style dataset folder: what is in it and how to read it.

A dataset folder holds::

    dataset.yaml              name, the label maps (for each, its name and label value -> object name),
                              and, for a prepared folder, the preparation settings
    manifest.csv              one row per image (columns below)
    images/<image_id>.png     grey (H x W) or RGB (H x W x 3) uint8 (palette, grey+alpha and RGBA PNGs
                              are converted to RGB, as the preparers' reader does)
    labels/<map>/<image_id>.png  label map per label map, H x W, 0 = background: 8-bit, or 16-bit
                              where a map needs values above 255 (up to 65,535); palette PNGs give
                              their indices
    skipped.csv               (prepared folders) input files, slices and objects left out, and why

Manifest columns: ``image_id, source, slice_index, modality, spacing_x, spacing_y`` are required
(spacing may be empty); prepared folders add ``height, width, source_file, objects``, where
``objects`` lists the label values present in the image as ``<map>:<value>=<name>`` joined by ``;``
(e.g. ``structures:1=Thalamus_L;brain:1=Brain``). The manifest may start with a UTF-8 byte-order mark
(as spreadsheet programs write it). A label-map name must be a plain folder name inside ``labels/``.

Several label maps let objects overlap (the brain contains the thalamus). ``source`` is the volume or
patient an image came from (splits never divide a source unless a dataset has too few sources);
``slice_index`` is -1 for a 2D image (or the tile index of a tiled one). Spacing is in mm per pixel
(X = along image columns, Y = along image rows) or empty when unknown.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from sam4med.errors import DataError
from sam4med.files import write_csv, write_text

MAX_LABEL_VALUE = 65_535  # 16-bit label PNGs
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

MANIFEST_COLUMNS = ("image_id", "source", "slice_index", "modality", "spacing_x", "spacing_y")
PREPARED_COLUMNS = ("height", "width", "source_file", "objects")


def label_dtype(largest: int) -> type[np.unsignedinteger]:
    """The dtype of a label image whose largest value is ``largest``: uint8 up to 255, uint16 above."""
    return np.uint8 if largest <= 255 else np.uint16


@dataclass(frozen=True)
class LabelMap:
    """One label-map layer: its folder name under ``labels/`` and label value -> object name."""

    name: str
    objects: dict[int, str]


@dataclass(frozen=True)
class DatasetInfo:
    """Contents of ``dataset.yaml``; ``preparation`` records how a prepared folder was made."""

    name: str
    label_maps: tuple[LabelMap, ...]
    preparation: Mapping | None = None

    def to_yaml(self) -> dict:
        """Plain-data form written to ``dataset.yaml``."""
        data: dict = {
            "name": self.name,
            "label_maps": [{"name": m.name, "objects": dict(m.objects)} for m in self.label_maps],
        }
        if self.preparation:
            data["preparation"] = dict(self.preparation)
        return data


@dataclass(frozen=True)
class ObjectEntry:
    """A label value present in an image, as listed in the manifest's ``objects`` column."""

    label_map: str
    value: int
    name: str


def format_objects(entries: tuple[ObjectEntry, ...]) -> str:
    """``objects`` column text: ``<map>:<value>=<name>`` joined by ``;``."""
    return ";".join(f"{e.label_map}:{e.value}={e.name}" for e in entries)


def parse_objects(text: str, where: str) -> tuple[ObjectEntry, ...]:
    """Inverse of :func:`format_objects`; ``where`` names the file and line in errors."""
    entries = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        head, sep, name = part.partition("=")
        label_map, colon, value = head.partition(":")
        if not sep or not colon or not value.strip().isdigit() or not name:
            raise DataError(f"{where}: objects entry '{part}' is not '<map>:<value>=<name>'")
        entries.append(ObjectEntry(label_map.strip(), int(value), name))
    return tuple(entries)


@dataclass(frozen=True)
class ImageRecord:
    """One manifest row.

    ``spacing`` is (X, Y) in mm per pixel; ``size`` is (H, W) in pixels; ``objects`` the label values
    present (both filled in by the preparers, optional in a user's folder).
    """

    image_id: str
    source: str
    slice_index: int
    modality: str
    spacing: tuple[float, float] | None
    size: tuple[int, int] | None = None
    source_file: str = ""
    objects: tuple[ObjectEntry, ...] = field(default=())

    def to_row(self) -> dict[str, str]:
        """CSV row of the manifest."""
        sx, sy = self.spacing if self.spacing else ("", "")
        h, w = self.size if self.size else ("", "")
        return {
            "image_id": self.image_id,
            "source": self.source,
            "slice_index": str(self.slice_index),
            "modality": self.modality,
            "spacing_x": str(sx),
            "spacing_y": str(sy),
            "height": str(h),
            "width": str(w),
            "source_file": self.source_file,
            "objects": format_objects(self.objects),
        }


def image_path(root: Path, image_id: str) -> Path:
    """Path of an image inside the dataset folder."""
    return Path(root) / "images" / f"{image_id}.png"


def label_path(root: Path, label_map: str, image_id: str) -> Path:
    """Path of one label map of an image inside the dataset folder."""
    return Path(root) / "labels" / label_map / f"{image_id}.png"


def read_info(root: Path) -> DatasetInfo:
    """Read and check ``dataset.yaml``."""
    path = Path(root) / "dataset.yaml"
    if not path.is_file():
        raise DataError(f"{path}: missing; a dataset folder needs dataset.yaml (see README, 'Your own data')")
    try:
        raw = yaml.safe_load(path.read_text())
        maps = tuple(
            LabelMap(name=str(m["name"]), objects={int(k): str(v) for k, v in m["objects"].items()})
            for m in raw["label_maps"]
        )
        preparation = raw.get("preparation")
        info = DatasetInfo(name=str(raw["name"]), label_maps=maps, preparation=preparation or None)
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: not a valid dataset description ({exc!r})") from exc
    for m in info.label_maps:
        if not _PLAIN_NAME.match(m.name) or ".." in m.name:
            raise DataError(
                f"{path}: label map name '{m.name}' must be a plain folder name inside labels/ "
                "(letters, digits, '_', '.', '-'; no '/' or '..')"
            )
        bad = [v for v in m.objects if not 1 <= v <= MAX_LABEL_VALUE]
        if bad:
            raise DataError(f"{path}: label map '{m.name}' has label values outside 1..{MAX_LABEL_VALUE}: {bad[:10]}")
    return info


# A pixel larger than 10 m is no image of a body; larger values only overflow the distances (HD in mm).
MAX_SPACING_MM = 1e4


def _spacing(row: dict[str, str], path: Path, line: int) -> tuple[float, float] | None:
    if not row.get("spacing_x") or not row.get("spacing_y"):
        return None
    try:
        sx, sy = float(row["spacing_x"]), float(row["spacing_y"])
    except ValueError as exc:
        raise DataError(f"{path}:{line}: spacing is not a number ({exc})") from exc
    if not all(math.isfinite(v) and 0 < v <= MAX_SPACING_MM for v in (sx, sy)):
        raise DataError(
            f"{path}:{line}: spacing must be a number of mm per pixel in (0, {MAX_SPACING_MM:g}], got ({sx}, {sy})"
        )
    return sx, sy


def _int(row: dict[str, str], column: str, default: int | None, path: Path, line: int) -> int | None:
    text = (row.get(column) or "").strip()
    if not text:
        return default
    try:
        return int(text)
    except ValueError as exc:
        raise DataError(f"{path}:{line}: {column} '{text}' is not an integer") from exc


def _record(root: Path, row: dict[str, str], path: Path, line: int) -> ImageRecord:
    image_id = row["image_id"] or ""
    if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith("."):
        raise DataError(f"{path}:{line}: image_id '{image_id}' must be a plain file stem inside the folder")
    if not image_path(root, image_id).is_file():
        raise DataError(f"{path}:{line}: names {image_path(root, image_id)}, which does not exist")
    height, width = _int(row, "height", None, path, line), _int(row, "width", None, path, line)
    return ImageRecord(
        image_id=image_id,
        source=row["source"],
        slice_index=_int(row, "slice_index", -1, path, line),
        modality=row["modality"],
        spacing=_spacing(row, path, line),
        size=(height, width) if height and width else None,
        source_file=row.get("source_file") or "",
        objects=parse_objects(row.get("objects") or "", f"{path}:{line}"),
    )


def read_manifest(root: Path) -> list[ImageRecord]:
    """Read ``manifest.csv``; every image it names must exist inside the folder, and ids must be unique."""
    root = Path(root)
    path = root / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{path}: missing; a dataset folder needs manifest.csv")
    records, seen = [], set()
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:  # -sig: a byte-order mark is not a column
            reader = csv.DictReader(handle)
            absent = [c for c in ("image_id", "source", "modality") if c not in (reader.fieldnames or [])]
            if absent:
                raise DataError(f"{path}: missing columns {absent}")
            for line, row in enumerate(reader, start=2):
                record = _record(root, row, path, line)
                if record.image_id in seen:
                    raise DataError(f"{path}:{line}: image_id '{record.image_id}' is listed twice")
                seen.add(record.image_id)
                records.append(record)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV file ({exc})") from exc
    if not records:
        raise DataError(f"{path}: lists no images")
    return records


def write_manifest(root: Path, records: list[ImageRecord]) -> None:
    """Write ``manifest.csv`` atomically, with the prepared-folder columns."""
    write_csv(Path(root) / "manifest.csv", MANIFEST_COLUMNS + PREPARED_COLUMNS, (r.to_row() for r in records))


def write_info(root: Path, info: DatasetInfo) -> None:
    """Write ``dataset.yaml`` atomically."""
    write_text(Path(root) / "dataset.yaml", yaml.safe_dump(info.to_yaml(), sort_keys=False))


# Pillow modes converted to RGB when an image is read: palette, grey + alpha, RGBA and the like (the
# preparers' reader does the same, so a folder reads as it was prepared)
_TO_RGB = ("P", "PA", "LA", "La", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")


def _open(path: Path, convert: bool) -> np.ndarray:
    """Pixels of an image file; ``convert`` turns the modes of ``_TO_RGB`` into RGB."""
    try:
        with Image.open(path) as img:
            if convert and img.mode in _TO_RGB:
                img = img.convert("RGB")
            return np.asarray(img)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: too many pixels for Pillow's safety limit ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc


def load_png(path: Path) -> np.ndarray:
    """Read an image PNG as uint8 H x W (grey) or H x W x 3 (RGB; palette and alpha converted), naming the
    file when it cannot be read.
    """
    array = _open(path, convert=True)
    if array.dtype != np.uint8:
        raise DataError(f"{path}: expected 8-bit pixels, got {array.dtype}")
    return array


def load_labels(path: Path) -> np.ndarray:
    """Read a label PNG as H x W uint8 or uint16 values (palette PNGs give their indices)."""
    array = _open(path, convert=False)
    if array.ndim != 2:
        raise DataError(f"{path}: a label map must be single-channel, got shape {array.shape}")
    if array.dtype.kind in "iu" and array.dtype.itemsize > 2 and array.size and array.max() <= MAX_LABEL_VALUE:
        array = array.astype(np.uint16)  # some writers store 16-bit grey as 32-bit
    if array.dtype not in (np.uint8, np.uint16):
        raise DataError(f"{path}: expected 8- or 16-bit label values, got {array.dtype}")
    return array


def png_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, from its header (pixels not read), naming the file when it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: too many pixels for Pillow's safety limit ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc


def load_rgb(path: Path) -> np.ndarray:
    """Read an image as H x W x 3 uint8 RGB (grey repeated to three channels, palette expanded, alpha dropped)."""
    array = load_png(path)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[:, :, :3])
    raise DataError(f"{path}: unsupported image shape {array.shape}")


def check_objects(records: list[ImageRecord], info: DatasetInfo, root: Path) -> None:
    """Every manifest ``objects`` entry must name a label value of dataset.yaml with the same object name."""
    names = {(m.name, v): n for m in info.label_maps for v, n in m.objects.items()}
    for record in records:
        for entry in record.objects:
            known = names.get((entry.label_map, entry.value))
            if known != entry.name:
                expected = f"'{known}'" if known else "no object"
                raise DataError(
                    f"{Path(root) / 'manifest.csv'}: image '{record.image_id}' lists {entry.label_map}:{entry.value}="
                    f"{entry.name}, but dataset.yaml gives {expected} for it"
                )
