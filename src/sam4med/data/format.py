"""The COSMOS-style dataset folder: what is in it and how to read it.

A dataset folder holds::

    dataset.yaml              name, and the label maps: for each, its name and label value -> object
    manifest.csv              one row per image: image_id, source, slice_index, modality, spacing_x, spacing_y
    images/<image_id>.png     grey (H x W) or RGB (H x W x 3) uint8
    labels/<map>/<image_id>.png  uint8 label map per label map, H x W, 0 = background

Several label maps let objects overlap (the brain contains the thalamus). ``source`` is the volume or
patient an image came from (splits never divide a source unless a dataset has too few sources);
``slice_index`` is -1 for a 2D image. Spacing is in mm per pixel (X, Y) or empty when unknown.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from sam4med.errors import DataError

MANIFEST_COLUMNS = ("image_id", "source", "slice_index", "modality", "spacing_x", "spacing_y")


@dataclass(frozen=True)
class LabelMap:
    """One label-map layer: its folder name under ``labels/`` and label value -> object name."""

    name: str
    objects: dict[int, str]


@dataclass(frozen=True)
class DatasetInfo:
    """Contents of ``dataset.yaml``."""

    name: str
    label_maps: tuple[LabelMap, ...]

    def to_yaml(self) -> dict:
        """Plain-data form written to ``dataset.yaml``."""
        return {
            "name": self.name,
            "label_maps": [{"name": m.name, "objects": dict(m.objects)} for m in self.label_maps],
        }


@dataclass(frozen=True)
class ImageRecord:
    """One manifest row."""

    image_id: str
    source: str
    slice_index: int
    modality: str
    spacing: tuple[float, float] | None

    def to_row(self) -> dict[str, str]:
        """CSV row of the manifest."""
        sx, sy = self.spacing if self.spacing else ("", "")
        return {
            "image_id": self.image_id,
            "source": self.source,
            "slice_index": str(self.slice_index),
            "modality": self.modality,
            "spacing_x": str(sx),
            "spacing_y": str(sy),
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
        info = DatasetInfo(name=str(raw["name"]), label_maps=maps)
    except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DataError(f"{path}: not a valid dataset description ({exc!r})") from exc
    for m in info.label_maps:
        bad = [v for v in m.objects if not 1 <= v <= 255]
        if bad:
            raise DataError(f"{path}: label map '{m.name}' has label values outside 1..255: {bad}")
    return info


def _spacing(row: dict[str, str], path: Path, line: int) -> tuple[float, float] | None:
    if not row.get("spacing_x") or not row.get("spacing_y"):
        return None
    try:
        sx, sy = float(row["spacing_x"]), float(row["spacing_y"])
    except ValueError as exc:
        raise DataError(f"{path}:{line}: spacing is not a number ({exc})") from exc
    if not (math.isfinite(sx) and math.isfinite(sy) and sx > 0 and sy > 0):
        raise DataError(f"{path}:{line}: spacing must be positive, got ({sx}, {sy})")
    return sx, sy


def read_manifest(root: Path) -> list[ImageRecord]:
    """Read ``manifest.csv``; every image it names must exist inside the folder."""
    root = Path(root)
    path = root / "manifest.csv"
    if not path.is_file():
        raise DataError(f"{path}: missing; a dataset folder needs manifest.csv")
    records = []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        absent = [c for c in ("image_id", "source", "modality") if c not in (reader.fieldnames or [])]
        if absent:
            raise DataError(f"{path}: missing columns {absent}")
        for line, row in enumerate(reader, start=2):
            image_id = row["image_id"]
            if not image_id or "/" in image_id or "\\" in image_id or image_id.startswith("."):
                raise DataError(f"{path}:{line}: image_id '{image_id}' must be a plain file stem inside the folder")
            if not image_path(root, image_id).is_file():
                raise DataError(f"{path}:{line}: names {image_path(root, image_id)}, which does not exist")
            records.append(
                ImageRecord(
                    image_id=image_id,
                    source=row["source"],
                    slice_index=int(row.get("slice_index") or -1),
                    modality=row["modality"],
                    spacing=_spacing(row, path, line),
                )
            )
    if not records:
        raise DataError(f"{path}: lists no images")
    return records


def write_manifest(root: Path, records: list[ImageRecord]) -> None:
    """Write ``manifest.csv`` atomically."""
    path = Path(root) / "manifest.csv"
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        for record in records:
            writer.writerow(record.to_row())
    tmp.replace(path)


def write_info(root: Path, info: DatasetInfo) -> None:
    """Write ``dataset.yaml`` atomically."""
    path = Path(root) / "dataset.yaml"
    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(info.to_yaml(), sort_keys=False))
    tmp.replace(path)


def save_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 PNG atomically (a half-written file never has the final name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    tmp.replace(path)


def load_png(path: Path) -> np.ndarray:
    """Read a PNG as uint8, naming the file when it cannot be read."""
    try:
        with Image.open(path) as img:
            array = np.asarray(img)
    except (OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{path}: cannot read image ({exc})") from exc
    if array.dtype != np.uint8:
        raise DataError(f"{path}: expected 8-bit pixels, got {array.dtype}")
    return array


def load_rgb(path: Path) -> np.ndarray:
    """Read an image as H x W x 3 uint8 RGB (grey repeated to three channels, alpha dropped)."""
    array = load_png(path)
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[:, :, :3])
    raise DataError(f"{path}: unsupported image shape {array.shape}")
