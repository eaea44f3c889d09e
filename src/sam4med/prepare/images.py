"""Prepare a folder of 2D images (PNG, JPG, BMP, TIF) with their label images (COSMOS section 2.2).

Each image keeps its colour: RGB stays RGB (alpha dropped, palette images expanded), grey stays grey.
Intensities follow :mod:`.intensity` (``auto`` by default: 8-bit kept, 16-bit or float min-max
normalised). Labels are remapped to 1..255 by object (or numbered per instance, see :mod:`.labels`),
and an image is kept only if the sum of its label values exceeds ``min_label_sum``. With ``tiles``
= (rows, cols) an image is cut into that many sub-images (as the study did for cell images with more
than 255 instances); a sub-image's ``slice_index`` is its tile number in row-major order.

Image ids are the file stems (``<stem>_t<k:02d>`` for tiles); TIFFs are read with ``tifffile``, the
other formats with Pillow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import tifffile
from PIL import Image

from sam4med.dataset_format import ImageRecord
from sam4med.errors import ConfigError, DataError
from sam4med.prepare.inputs import file_stem, label_file, source_of
from sam4med.prepare.intensity import Intensity
from sam4med.prepare.labels import check_values, remap, whole_numbers
from sam4med.prepare.preparer import FolderPreparer
from sam4med.prepare.slices import clean_labels, emit, passes
from sam4med.prepare.writer import DatasetWriter, Input, Part, Skip

_TIFF = (".tif", ".tiff")


def _read_array(path: Path) -> tuple[np.ndarray, str]:
    """Pixels of an image file and its Pillow mode (``tiff`` for TIFFs)."""
    if not path.is_file():
        raise DataError(f"{path}: missing")
    try:
        if path.suffix.lower() in _TIFF:
            return np.asarray(tifffile.imread(path)), "tiff"
        with Image.open(path) as img:
            img.load()
            return np.asarray(img), img.mode
    except Exception as exc:  # Pillow and tifffile raise many kinds of errors for damaged files
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc})") from exc


def read_image(path: Path) -> np.ndarray:
    """An image file as H x W (grey) or H x W x 3 (RGB) in its own dtype."""
    path = Path(path)
    array, mode = _read_array(path)
    if mode == "P":
        with Image.open(path) as img:
            array = np.asarray(img.convert("RGB"))
    if array.ndim == 3 and array.shape[0] in (3, 4) and array.shape[2] not in (3, 4):
        array = np.moveaxis(array, 0, -1)  # channel-first TIFF
    if array.ndim == 3 and array.shape[2] == 2:  # grey + alpha
        array = array[:, :, 0]
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return np.ascontiguousarray(array[:, :, :3])
    if array.ndim == 2:
        return array.astype(np.uint8) if array.dtype == bool else array
    raise DataError(f"{path}: expected one 2D grey or RGB image, got shape {array.shape}")


def read_labels(path: Path) -> np.ndarray:
    """A label image as H x W values (palette PNGs give their indices)."""
    array, mode = _read_array(Path(path))
    if array.ndim == 3 and array.shape[2] in (3, 4) and (array[:, :, :3] == array[:, :, :1]).all():
        array = array[:, :, 0]  # grey stored as RGB
    if array.ndim != 2:
        raise DataError(f"{path}: a label image must be single-channel, got shape {array.shape} (mode {mode})")
    return array


def tile_boxes(shape: tuple[int, int], tiles: tuple[int, int]) -> list[tuple[slice, slice]]:
    """(rows, cols) slices of a row-major grid of ``tiles`` over an H x W image (sizes differ by <= 1)."""
    rows = np.linspace(0, shape[0], tiles[0] + 1).round().astype(int)
    cols = np.linspace(0, shape[1], tiles[1] + 1).round().astype(int)
    return [
        (slice(rows[r], rows[r + 1]), slice(cols[c], cols[c + 1])) for r in range(tiles[0]) for c in range(tiles[1])
    ]


class ImageFolderPreparer(FolderPreparer):
    """Prepare 2D images and their label images; a complete folder is left as it is.

    Args:
        name: dataset name (``dataset.yaml``).
        images: glob pattern of the images.
        label_maps: one entry per output label map: ``{name, path, objects | instances, drop_unnamed}``
            (see :class:`sam4med.prepare.labels.LabelSpec`).
        modality: modality of every image (e.g. ``Dermoscopy``).
        source_pattern: regular expression picking the patient id out of a file stem (default: the stem).
        intensity: ``{mode: auto | minmax | window | none, window: [low, high]}``.
        min_label_sum, label_sum_maps, min_object_area, max_components: see :mod:`.rules`.
        tiles: (rows, cols) sub-images per image.
        spacing: (X, Y) mm per pixel of every image, when known.
    """

    def __init__(
        self,
        *,
        name: str,
        images: str,
        label_maps: Sequence[Mapping],
        modality: str,
        source_pattern: str | None = None,
        intensity: Mapping | None = None,
        min_label_sum: int = 50,
        label_sum_maps: Sequence[str] | None = None,
        min_object_area: int = 0,
        max_components: int = 0,
        tiles: Sequence[int] = (1, 1),
        spacing: Sequence[float] | None = None,
    ) -> None:
        super().__init__(
            name=name, images=images, label_maps=label_maps, source_pattern=source_pattern,
            min_label_sum=min_label_sum, label_sum_maps=label_sum_maps, min_object_area=min_object_area,
            max_components=max_components,
        )  # fmt: skip
        self.modality = str(modality)
        self.intensity = Intensity.build(**{"mode": "auto", **dict(intensity or {})})
        if len(tiles) != 2 or min(tiles) < 1:
            raise ConfigError(f"tiles must be [rows, cols] >= 1, got {list(tiles)}")
        self.tiles = (int(tiles[0]), int(tiles[1]))
        if spacing is not None and (len(spacing) != 2 or min(spacing) <= 0):
            raise ConfigError(f"spacing must be [x, y] > 0 in mm, got {list(spacing)}")
        self.spacing = None if spacing is None else (float(spacing[0]), float(spacing[1]))

    def settings(self) -> dict:
        """Plain-data settings (recorded in dataset.yaml, compared when a run resumes)."""
        return {
            "kind": "images", "images": self.images, "label_maps": [s.to_config() for s in self.specs],
            "modality": self.modality, "source_pattern": self.source_pattern,
            "intensity": self.intensity.to_config(), "rules": self.rules.to_config(), "tiles": list(self.tiles),
            "spacing": None if self.spacing is None else list(self.spacing),
        }  # fmt: skip

    def process(self, item: Input, writer: DatasetWriter) -> Part:
        """Write the kept (tiles of the) image of one input file."""
        path = Path(item.file)
        source = source_of(file_stem(path), self.source_pattern)
        pixels = self.intensity.apply(read_image(path), str(path))
        labels = {}
        for spec in self.specs:
            where = str(label_file(spec.path, path, source))
            array = whole_numbers(read_labels(Path(where)), where)
            if array.shape != pixels.shape[:2]:
                shape = pixels.shape[:2]
                raise DataError(f"{where}: label size {array.shape} differs from image size {shape} of {path}")
            check_values(np.unique(array), spec, where)
            labels[spec.name] = (array, where)
        if not any(array.any() for array, _ in labels.values()):
            raise DataError(f"{path}: the label images are empty")
        tiled = self.tiles != (1, 1)
        records, skips = [], []
        for k, (rows, cols) in enumerate(tile_boxes(pixels.shape[:2], self.tiles)):
            image_id = f"{item.key}_t{k:02d}" if tiled else item.key
            raw = {}
            for spec in self.specs:
                array, where = labels[spec.name]
                raw[spec.name] = remap(array[rows, cols], spec, f"{where} ({image_id})")
            cleaned = clean_labels(raw, self.rules)
            if not passes(cleaned, self.rules):
                continue
            index = k if tiled else -1
            record = ImageRecord(image_id, source, index, self.modality, self.spacing, source_file=str(path))
            done, tile_skips = emit(writer, record, np.ascontiguousarray(pixels[rows, cols]), cleaned)
            records += [done] if done is not None else []
            skips += tile_skips
        if not records and not skips:
            skips.append(Skip(str(path), f"no image has a label sum > {self.rules.min_label_sum}"))
        return Part(tuple(records), tuple(skips))
