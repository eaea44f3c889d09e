"""From one 2D slice (image and label maps) to one dataset image: exclusions, the label rule, writing."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sam4med.dataset_format import ImageRecord, ObjectEntry
from sam4med.prepare.rules import SliceRules, exclusions, keep
from sam4med.prepare.writer import DatasetWriter, Skip


@dataclass(frozen=True)
class SliceLabels:
    """The label maps of one slice after the exclusion rules.

    Attributes:
        maps: label map name -> H x W uint8 (or uint16, above 255) label values.
        names: label map name -> (value -> object name) of the values present in ``maps``.
        removed: (label map, object name, reason) of every object the exclusion rules removed.
    """

    maps: dict[str, np.ndarray]
    names: dict[str, dict[int, str]]
    removed: tuple[tuple[str, str, str], ...] = ()

    def entries(self) -> tuple[ObjectEntry, ...]:
        """The objects present, for the manifest."""
        return tuple(ObjectEntry(m, v, n) for m, names in self.names.items() for v, n in sorted(names.items()))


def clean_labels(raw: Mapping[str, tuple[np.ndarray, dict[int, str]]], rules: SliceRules) -> SliceLabels:
    """Apply the exclusion rules to remapped label maps (name -> (H x W uint8 or uint16, value -> object name))."""
    maps, names, removed = {}, {}, []
    for name, (array, present) in raw.items():
        dropped = exclusions(array, rules)
        if dropped:
            array = np.where(np.isin(array, list(dropped)), 0, array).astype(array.dtype)
            removed += [(name, present[v], reason) for v, reason in sorted(dropped.items())]
        maps[name] = array
        names[name] = {v: n for v, n in present.items() if v not in dropped}
    return SliceLabels(maps, names, tuple(removed))


def passes(labels: SliceLabels, rules: SliceRules) -> bool:
    """Whether the slice passes the label-sum rule (after exclusions)."""
    return keep(labels.maps, rules)


def emit(
    writer: DatasetWriter, record: ImageRecord, image: np.ndarray, labels: SliceLabels
) -> tuple[ImageRecord | None, list[Skip]]:
    """Write one kept slice; returns its manifest row (size and objects filled in) and its skips.

    ``image`` is H x W or H x W x 3 uint8. A constant image (nothing to see) is skipped and recorded.
    """
    file = record.source_file
    if image.size == 0 or image.min() == image.max():
        return None, [Skip(file, "constant image after normalisation", record.image_id)]
    skips = [Skip(file, reason, record.image_id, m, obj) for m, obj, reason in labels.removed]
    writer.write_image(record.image_id, image, labels.maps)
    done = dataclasses.replace(record, size=(int(image.shape[0]), int(image.shape[1])), objects=labels.entries())
    return done, skips
