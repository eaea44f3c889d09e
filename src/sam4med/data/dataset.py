"""Read a COSMOS-style dataset folder per image: :class:`CosmosDataset` gives an image with all of its objects."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam4med.data.intensity_clip import check_percentiles, clip_percentiles
from sam4med.dataset_format import (
    DatasetInfo,
    ImageRecord,
    check_objects,
    image_path,
    label_path,
    load_labels,
    load_rgb,
    read_info,
    read_manifest,
)
from sam4med.errors import DataError


@dataclass(frozen=True)
class ObjectRef:
    """One object instance in one image: a label value of one label map.

    ``target`` is the unit of reporting, ``"<object>-<modality>"`` (e.g. ``Thalamus_L-T1W MRI``);
    ``source`` is the volume or patient the image came from (the manifest's ``source``), the unit the
    statistics resample (:mod:`sam4med.results.statistics`).
    """

    image_id: str
    label_map: str
    label_value: int
    object_name: str
    modality: str
    source: str = ""

    @property
    def target(self) -> str:
        """Object-modality target name."""
        return f"{self.object_name}-{self.modality}"

    @property
    def key(self) -> str:
        """Unique, file-name-safe identifier of the object in the dataset."""
        return f"{self.image_id}/{self.label_map}/{self.label_value}"


@dataclass(frozen=True)
class ImageItem:
    """An image with all of its objects.

    Attributes:
        record: the manifest row.
        image: H x W x 3 uint8 RGB.
        objects: the objects present in the image.
        masks: len(objects) x H x W bool ground-truth masks, in the order of ``objects``.
    """

    record: ImageRecord
    image: np.ndarray
    objects: tuple[ObjectRef, ...]
    masks: np.ndarray


class CosmosDataset:
    """The images of a dataset folder (optionally a subset of image ids) and their objects.

    Args:
        root: dataset folder (see :mod:`sam4med.dataset_format`).
        image_ids: restrict to these images (e.g. one split); None keeps all.
        min_object_area: objects with fewer foreground pixels in an image are left out of that image.
        clip_percentiles: ``(low, high)``: each image is clipped to these percentiles of its own
            intensities and rescaled as it is read (the COSMOS authors' input rule, see
            :mod:`sam4med.data.intensity_clip`); None reads images as prepared.
    """

    def __init__(
        self,
        root: str | Path,
        image_ids: Sequence[str] | None = None,
        min_object_area: int = 1,
        clip_percentiles: Sequence[float] | None = None,
    ) -> None:
        self.root = Path(root)
        self.info: DatasetInfo = read_info(self.root)
        records = read_manifest(self.root)
        if image_ids is not None:
            wanted = set(image_ids)
            records = [r for r in records if r.image_id in wanted]
        check_objects(records, self.info, self.root)
        self.records: list[ImageRecord] = records
        self.min_object_area = min_object_area
        self.clip_percentiles = check_percentiles(clip_percentiles)

    def __len__(self) -> int:
        return len(self.records)

    def subset(self, image_ids: Sequence[str]) -> CosmosDataset:
        """The same dataset restricted to ``image_ids`` (manifest order kept; nothing is read again)."""
        wanted = set(image_ids)
        part = copy.copy(self)
        part.records = [r for r in self.records if r.image_id in wanted]
        return part

    def content_hash(self) -> str:
        """SHA-256 (16 hex digits) of what the images of this dataset (or subset) hold: each image's manifest
        record, its image file and its label-map files, byte for byte, and the label maps' object names.

        Reading the files costs far less than scoring them; a changed pixel, label or spacing changes it.
        """
        digest = hashlib.sha256()
        digest.update(repr([(m.name, sorted(m.objects.items())) for m in self.info.label_maps]).encode())
        for record in self.records:
            digest.update(repr(record).encode())
            files = [image_path(self.root, record.image_id)]
            files += [label_path(self.root, m.name, record.image_id) for m in self.info.label_maps]
            for path in files:
                digest.update(path.read_bytes() if path.is_file() else b"missing")
        return digest.hexdigest()[:16]

    def image_hashes(self) -> dict[str, str]:
        """Image id -> SHA-256 (16 hex digits) of the image file's bytes, for every image of this dataset (or subset).

        A hash of the file alone (no id, split or label), so the same image is recognised under another id,
        in another split or in a copy of the folder: what a training checkpoint records of the images it was
        fitted on (:class:`~sam4med.models.finetuned.TrainingData`). A missing file is a :class:`DataError`.
        """
        hashes = {}
        for record in self.records:
            path = image_path(self.root, record.image_id)
            try:
                hashes[record.image_id] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            except OSError as exc:
                raise DataError(f"{path}: cannot read image '{record.image_id}' ({exc.strerror})") from exc
        return hashes

    def _label_map(self, name: str, record: ImageRecord, shape: tuple[int, int]) -> np.ndarray:
        path = label_path(self.root, name, record.image_id)
        if not path.is_file():
            raise DataError(f"{path}: label map '{name}' of image '{record.image_id}' is missing")
        labels = load_labels(path)
        if labels.shape != shape:
            raise DataError(f"{path}: label size {labels.shape} differs from image size {shape}")
        return labels

    def _check_listed(self, record: ImageRecord, label_map: str, values: np.ndarray) -> None:
        """The label values present must be those the manifest lists (when it lists any for the image)."""
        if not record.objects:
            return  # a user's folder without the objects column
        listed = {e.value for e in record.objects if e.label_map == label_map}
        present = {int(v) for v in values if v != 0}
        if present != listed:
            unlisted, absent = sorted(present - listed)[:5], sorted(listed - present)[:5]
            parts = ([f"holds values {unlisted} the manifest does not list"] if unlisted else []) + (
                [f"lacks values {absent} the manifest lists"] if absent else []
            )
            raise DataError(
                f"{label_path(self.root, label_map, record.image_id)}: {' and '.join(parts)} for image "
                f"'{record.image_id}'; the folder was changed after preparation (prepare it again)"
            )

    def _objects(self, record: ImageRecord, shape: tuple[int, int]) -> tuple[list[ObjectRef], list[np.ndarray]]:
        objects, masks = [], []
        for label_map in self.info.label_maps:
            labels = self._label_map(label_map.name, record, shape)
            values = np.unique(labels)
            self._check_listed(record, label_map.name, values)
            for value in values:
                if value == 0:
                    continue
                if int(value) not in label_map.objects:
                    raise DataError(
                        f"{label_path(self.root, label_map.name, record.image_id)}: label value {value} "
                        f"is not named in dataset.yaml (label map '{label_map.name}')"
                    )
                mask = labels == value
                if mask.sum() < self.min_object_area:
                    continue
                objects.append(
                    ObjectRef(
                        image_id=record.image_id,
                        label_map=label_map.name,
                        label_value=int(value),
                        object_name=label_map.objects[int(value)],
                        modality=record.modality,
                        source=record.source,
                    )
                )
                masks.append(mask)
        return objects, masks

    def __getitem__(self, index: int) -> ImageItem:
        record = self.records[index]
        image = load_rgb(image_path(self.root, record.image_id))
        if self.clip_percentiles is not None:
            image = clip_percentiles(image, *self.clip_percentiles)
        objects, masks = self._objects(record, image.shape[:2])
        stacked = np.stack(masks) if masks else np.zeros((0, *image.shape[:2]), dtype=bool)
        return ImageItem(record=record, image=image, objects=tuple(objects), masks=stacked)
