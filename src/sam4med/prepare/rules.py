"""Which slices and objects a prepared dataset keeps (the COSMOS study's rules, configurable).

* A slice (or 2D image) is kept only if the sum of its output label values, over the label maps that
  count, is greater than ``min_label_sum`` (50 in the study).
* Exclusion criterion 1 (tiny objects such as the cochlea): an object with fewer than
  ``min_object_area`` pixels in a slice is removed from that slice (0 = off).
* Exclusion criteria 2 and 3 (dispersed structures such as the intestine or trachea trees): an object
  that falls into more than ``max_components`` pieces (8-connected) in a slice is removed from that
  slice (0 = off).

Removed objects become background before the label-sum rule is applied; each removal is recorded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from sam4med.errors import ConfigError

_EIGHT = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class SliceRules:
    """Slice and object rules of one preparation.

    Args:
        min_label_sum: keep a slice only if the sum of its label values exceeds this.
        label_sum_maps: label maps whose values count for ``min_label_sum`` (None = all).
        min_object_area: remove objects smaller than this many pixels in a slice (0 = keep all).
        max_components: remove objects made of more pieces than this in a slice (0 = keep all).
    """

    min_label_sum: int = 50
    label_sum_maps: tuple[str, ...] | None = None
    min_object_area: int = 0
    max_components: int = 0

    def __post_init__(self) -> None:
        if self.min_label_sum < 0 or self.min_object_area < 0 or self.max_components < 0:
            raise ConfigError(f"slice rules must not be negative: {self}")

    @classmethod
    def build(
        cls,
        min_label_sum: int = 50,
        label_sum_maps: Sequence[str] | None = None,
        min_object_area: int = 0,
        max_components: int = 0,
    ) -> SliceRules:
        """From plain (config) values."""
        maps = None if label_sum_maps is None else tuple(str(m) for m in label_sum_maps)
        return cls(int(min_label_sum), maps, int(min_object_area), int(max_components))

    def to_config(self) -> dict:
        """Plain-data form, recorded with the dataset."""
        maps = None if self.label_sum_maps is None else list(self.label_sum_maps)
        return {
            "min_label_sum": self.min_label_sum,
            "label_sum_maps": maps,
            "min_object_area": self.min_object_area,
            "max_components": self.max_components,
        }


def exclusions(labels: np.ndarray, rules: SliceRules) -> dict[int, str]:
    """Output label values of an H x W uint8 or uint16 label slice that the exclusion rules remove, with the reason."""
    removed: dict[int, str] = {}
    if not rules.min_object_area and not rules.max_components:
        return removed
    areas = np.bincount(labels.ravel(), minlength=256)
    for value in np.flatnonzero(areas[1:]) + 1:
        area = int(areas[value])
        if rules.min_object_area and area < rules.min_object_area:
            removed[int(value)] = f"area {area} px < min_object_area {rules.min_object_area}"
            continue
        if rules.max_components:
            _, pieces = ndimage.label(labels == value, structure=_EIGHT)
            if pieces > rules.max_components:
                removed[int(value)] = f"{pieces} pieces > max_components {rules.max_components}"
    return removed


def label_sum(labels: Mapping[str, np.ndarray], rules: SliceRules) -> int:
    """Sum of the label values of one slice over the label maps that count."""
    names = labels if rules.label_sum_maps is None else rules.label_sum_maps
    return int(sum(int(labels[n].sum(dtype=np.int64)) for n in names if n in labels))


def keep(labels: Mapping[str, np.ndarray], rules: SliceRules) -> bool:
    """Whether a slice passes the label-sum rule."""
    return label_sum(labels, rules) > rules.min_label_sum
