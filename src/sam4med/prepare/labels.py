"""Label maps of a prepared dataset: which source label values become which objects.

Two ways to name a label map (one per :class:`LabelSpec`):

* ``objects``: source value -> object name. Output values are 1..K in the order the *names* first
  appear, so several source values may share one object (``{1: Lung, 2: Lung}``, as the COSMOS study
  groups left and right lung) and large source values (AAL's 2001) become small ones.
* ``instances``: every distinct non-zero source value is one instance of the named object (nuclei,
  cells); instances are renumbered 1..n per image in increasing source value, at most 65,535 per image.

Output label maps are uint8 where the values fit (a named map of at most 255 objects, an image of at
most 255 instances; so folders prepared before 16-bit labels existed stay byte-identical) and uint16
otherwise (atlases of up to 65,535 structures). Arrays are indexed as their source is (any shape);
source values must be whole numbers from 0 to ``MAX_SOURCE_VALUE``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from sam4med.dataset_format import label_dtype
from sam4med.errors import ConfigError, DataError

_MAP_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
MAX_LABEL = 65_535  # output values: 16-bit label PNGs
MAX_SOURCE_VALUE = 2**31 - 1  # source values beyond this are no label values (a float image, a corrupt file)


def _check_object_name(name: str, where: str) -> None:
    if not name or any(c in name for c in ";=\n") or name != name.strip():
        raise ConfigError(f"{where}: object name '{name}' must be non-empty, trimmed, without ';', '=' or newline")


@dataclass(frozen=True)
class LabelSpec:
    """One output label map.

    Args:
        name: folder name under ``labels/`` (letters, digits, ``_ . -``).
        path: template of the source label file of an image; ``{stem}``, ``{name}`` and ``{source}`` are
            replaced by the image file's stem, file name and source id (empty when built in code).
        objects: source label value -> object name (named mode).
        instances: object name of every instance (instance mode).
        drop_unnamed: in named mode, treat unnamed non-zero values as background instead of skipping
            the file (to pick a few structures out of an atlas).
    """

    name: str
    path: str = ""
    objects: Mapping[int, str] | None = None
    instances: str | None = None
    drop_unnamed: bool = False

    def __post_init__(self) -> None:
        where = f"label map '{self.name}'"
        if not _MAP_NAME.match(self.name):
            raise ConfigError(f"{where}: a label map name may hold only letters, digits, '_', '.' and '-'")
        if (self.objects is None) == (self.instances is None):
            raise ConfigError(f"{where}: give exactly one of 'objects' (value -> name) or 'instances' (a name)")
        if self.instances is not None:
            _check_object_name(self.instances, where)
            return
        if not self.objects:
            raise ConfigError(f"{where}: 'objects' names no label value")
        for value, name in self.objects.items():
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"{where}: source label values must be positive integers, got {value!r}")
            _check_object_name(name, where)
        if len(set(self.objects.values())) > MAX_LABEL:
            raise ConfigError(f"{where}: more than {MAX_LABEL} object names cannot fit in a 16-bit label map")

    @classmethod
    def from_config(cls, raw: Mapping) -> LabelSpec:
        """Build from a plain mapping (a Hydra/YAML node)."""
        raw = dict(raw)
        unknown = set(raw) - {"name", "path", "objects", "instances", "drop_unnamed"}
        if unknown:
            raise ConfigError(f"label map '{raw.get('name')}': unknown settings {sorted(unknown)}")
        objects = raw.get("objects")
        if objects is not None:
            try:
                objects = {int(k): str(v) for k, v in dict(objects).items()}
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"label map '{raw.get('name')}': objects must map integers to names") from exc
        return cls(
            name=str(raw.get("name", "")),
            path=str(raw.get("path") or ""),
            objects=objects,
            instances=None if raw.get("instances") is None else str(raw["instances"]),
            drop_unnamed=bool(raw.get("drop_unnamed", False)),
        )

    def to_config(self) -> dict:
        """Plain-data form, recorded with the dataset."""
        out: dict = {"name": self.name, "path": self.path}
        if self.objects is not None:
            out["objects"] = dict(self.objects)
            out["drop_unnamed"] = self.drop_unnamed
        else:
            out["instances"] = self.instances
        return out

    def output_names(self) -> dict[int, str]:
        """Named mode: output label value -> object name (1..K in order of first appearance)."""
        if self.objects is None:
            raise ValueError("output_names is fixed only in named mode")
        names = list(dict.fromkeys(self.objects.values()))
        return {i: n for i, n in enumerate(names, start=1)}


def whole_numbers(array: np.ndarray, where: str) -> np.ndarray:
    """The label array as int64, or a DataError naming ``where`` when it is not whole numbers >= 0."""
    if array.dtype.kind == "b":
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        if not np.isfinite(array).all():
            raise DataError(f"{where}: label values include NaN or infinity")
        if np.any(np.mod(array, 1) != 0):
            raise DataError(f"{where}: label values are not whole numbers (a label map, not an image?)")
    elif array.dtype.kind not in "iu":
        raise DataError(f"{where}: label values of type {array.dtype} are not numbers")
    if array.size and array.max() > MAX_SOURCE_VALUE:
        raise DataError(
            f"{where}: label value {float(array.max()):g} is too large for a label (at most {MAX_SOURCE_VALUE}; "
            "an image given as labels?)"
        )
    out = array.astype(np.int64)
    if out.size and out.min() < 0:
        raise DataError(f"{where}: negative label values ({int(out.min())}); label values must be 0..255 or named")
    return out


def check_values(values: np.ndarray, spec: LabelSpec, where: str) -> None:
    """Fail when source values (the unique values of a label file) cannot be mapped by ``spec``.

    An unnamed value makes the file unusable unless ``drop_unnamed``; values above 255 that are not
    named are reported as outside 0..255.
    """
    present = [int(v) for v in values if v != 0]
    if spec.instances is not None or spec.drop_unnamed:
        return
    unnamed = [v for v in present if v not in spec.objects]
    if unnamed:
        outside = [v for v in unnamed if v > 255]  # a hint: large source values are easily left unnamed
        hint = f" ({len(outside)} of them outside 0..255)" if outside else ""
        raise DataError(
            f"{where}: label values {unnamed[:10]} are not named in label map '{spec.name}'{hint}; "
            "name them under 'objects' or set drop_unnamed: true"
        )


def remap(labels: np.ndarray, spec: LabelSpec, where: str) -> tuple[np.ndarray, dict[int, str]]:
    """Source labels (int64, any shape) -> (uint8 or uint16 labels of the same shape (see
    :func:`label_dtype`), output value -> object name).

    The names returned are those of the values present. Raises DataError (naming ``where``) for more
    than 65,535 instances.
    """
    if spec.instances is not None:
        values, inverse = np.unique(labels, return_inverse=True)
        inverse = inverse.reshape(labels.shape)
        if values[0] != 0:  # no background: shift so that value k becomes k + 1
            inverse = inverse + 1
        count = int(inverse.max()) if inverse.size else 0
        if count > MAX_LABEL:
            raise DataError(f"{where}: {count} instances do not fit in 1..{MAX_LABEL}; split the image into tiles")
        return inverse.astype(label_dtype(count)), {i: spec.instances for i in range(1, count + 1)}
    names = spec.output_names()
    dtype = label_dtype(len(names))
    output_of_name = {n: v for v, n in names.items()}
    keys = np.array(sorted(spec.objects), dtype=np.int64)
    outs = np.array([output_of_name[spec.objects[int(k)]] for k in keys], dtype=dtype)
    index = np.minimum(np.searchsorted(keys, labels), len(keys) - 1)
    out = np.where(keys[index] == labels, outs[index], 0).astype(dtype)
    return out, {int(v): names[int(v)] for v in np.unique(out) if v != 0}
