"""Where the slices of a dataset prepared from volumes came from: one ``volumes/<key>.json`` per source volume.

The volume preparer (:mod:`sam4med.prepare.volumes`) reorients each volume to RAS
(``nibabel.as_closest_canonical``), takes slices along one RAS axis and shows a slice ``S[i, j]`` as the image
``rot90(S)``; it never resizes, crops or flips otherwise. A :class:`VolumeGrid` records what undoing that needs:

* ``axis`` (0 = sagittal, 1 = coronal, 2 = axial; RAS) and ``shape`` (X x Y x Z, RAS) of the volume;
* ``spacing``: voxel sizes in mm along the RAS axes (slice thickness included);
* ``affine``: the voxel-to-world (mm) affine of the source file as stored (None where the preparer did not
  read it), and ``stored_shape``, its array shape: from both, a RAS array goes back to the file's own voxel
  order, so a NIfTI written with them lies on the source grid voxel for voxel;
* ``images``: image id -> slice index of every slice prepared;
* ``extent``: label map -> label value -> the slice indices where that object is present in the source
  volume (after the label-value remapping, before the slice and object rules), so the slices of a
  structure that were not prepared, or are not in a split, can be counted (coverage).

Folders prepared before this file existed have no ``volumes/`` folder: :func:`read_grids` returns nothing for
them, and what needs the grids (NIfTI masks, volume-level scores) says the dataset must be prepared again.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import apply_orientation, axcodes2ornt, io_orientation, ornt_transform

from sam4med.errors import DataError
from sam4med.files import write_text

VOLUMES_DIR = "volumes"
RAS = axcodes2ornt("RAS")


@dataclass(frozen=True)
class VolumeGrid:
    """The geometry of one source volume and the slices prepared from it (see the module docstring).

    Attributes:
        key: the volume's image-id prefix, unique in the dataset (``<stem>`` or ``<stem>_v<k>`` of a 4D file).
        source: the volume's source (patient) id, as in the manifest.
        file: the source image file.
        frame: the volume's index in a 4D file, or None for a 3D file.
        axis: the RAS axis the slices were taken along.
        shape: X x Y x Z of the RAS-oriented volume.
        spacing: voxel sizes (X, Y, Z) in mm along the RAS axes.
        images: image id -> slice index of the slices prepared.
        extent: label map -> label value -> slice indices holding that object in the source volume.
        affine: the source file's stored 4 x 4 voxel-to-world affine (None: not recorded).
        stored_shape: the source file's spatial array shape as stored (None: not recorded).
    """

    key: str
    source: str
    file: str
    frame: int | None
    axis: int
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    images: Mapping[str, int]
    extent: Mapping[str, Mapping[int, tuple[int, ...]]] = field(default_factory=dict)
    affine: tuple[tuple[float, ...], ...] | None = None
    stored_shape: tuple[int, int, int] | None = None

    @property
    def slices(self) -> int:
        """The number of slices of the volume along :attr:`axis`."""
        return self.shape[self.axis]

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W) of every prepared slice: ``rot90`` of the in-plane RAS axes (i, j) gives rows j, columns i."""
        i, j = (n for a, n in enumerate(self.shape) if a != self.axis)
        return j, i

    def to_volume(self, image: np.ndarray) -> np.ndarray:
        """An H x W image of this volume's slices as the RAS slice it was made from (``rot90`` undone)."""
        if tuple(image.shape[:2]) != self.image_size:
            raise DataError(
                f"volume {self.key}: a slice image of size {tuple(image.shape[:2])} does not fit its grid "
                f"(slices are {self.image_size}); the dataset folder no longer matches volumes/{self.key}.json"
            )
        return np.rot90(image, k=-1)

    def stack(self, slices: Mapping[int, np.ndarray], dtype: type = bool) -> np.ndarray:
        """An X x Y x Z (RAS) array with each H x W image of ``slices`` (slice index -> image) at its position;
        every other slice is 0.
        """
        volume = np.zeros(self.shape, dtype=dtype)
        for index, image in slices.items():
            if not 0 <= index < self.slices:
                raise DataError(f"volume {self.key}: slice {index} is outside its {self.slices} slices")
            volume[(slice(None),) * self.axis + (index,)] = self.to_volume(image)
        return volume

    def to_stored(self, volume: np.ndarray) -> np.ndarray:
        """An X x Y x Z RAS array in the source file's own voxel order (the reorientation to RAS undone)."""
        if self.affine is None:
            raise DataError(
                f"volume {self.key}: the source grid (affine) of {self.file} was not recorded when the dataset was "
                "prepared; prepare the dataset again with this version to write masks on the source grid"
            )
        stored = io_orientation(np.asarray(self.affine))
        array = apply_orientation(volume, ornt_transform(RAS, stored))
        if self.stored_shape is not None and tuple(array.shape) != tuple(self.stored_shape):
            raise DataError(f"volume {self.key}: reoriented shape {array.shape} differs from {self.stored_shape}")
        return array

    def to_json(self) -> str:
        """The ``volumes/<key>.json`` text."""
        data = {
            "key": self.key,
            "source": self.source,
            "file": self.file,
            "frame": self.frame,
            "axis": self.axis,
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "affine": None if self.affine is None else [list(r) for r in self.affine],
            "stored_shape": None if self.stored_shape is None else list(self.stored_shape),
            "images": dict(self.images),
            "extent": {m: {str(v): list(s) for v, s in values.items()} for m, values in self.extent.items()},
        }
        return json.dumps(data, indent=1) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str) -> VolumeGrid:
        """Inverse of :meth:`to_json`; ``where`` names the file in errors."""
        try:
            raw = json.loads(text)
            affine = raw.get("affine")
            stored = raw.get("stored_shape")
            return cls(
                key=str(raw["key"]),
                source=str(raw["source"]),
                file=str(raw["file"]),
                frame=None if raw.get("frame") is None else int(raw["frame"]),
                axis=int(raw["axis"]),
                shape=tuple(int(n) for n in raw["shape"]),  # type: ignore[arg-type]
                spacing=tuple(float(s) for s in raw["spacing"]),  # type: ignore[arg-type]
                images={str(k): int(v) for k, v in raw["images"].items()},
                extent={
                    str(m): {int(v): tuple(int(i) for i in s) for v, s in values.items()}
                    for m, values in raw.get("extent", {}).items()
                },
                affine=None if affine is None else tuple(tuple(float(x) for x in r) for r in affine),
                stored_shape=None if stored is None else tuple(int(n) for n in stored),  # type: ignore[arg-type]
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise DataError(f"{where}: not a valid volume grid ({exc!r}); prepare the dataset again") from exc


def label_nifti_bytes(grid: VolumeGrid, volume: np.ndarray, header: nib.Nifti1Header | None = None) -> bytes:
    """A RAS (X x Y x Z) label volume of ``grid`` as ``.nii.gz`` bytes on the source grid: the source file's voxel
    order and affine. ``header``: the source file's header, kept but for the data type (labels: slope 1,
    intercept 0); without it the affine is written as qform and sform (code 1, scanner).
    """
    data = grid.to_stored(volume)
    affine = np.asarray(grid.affine, dtype=np.float64)
    if header is not None:
        header = header.copy()
        header.set_data_dtype(data.dtype)
    image = nib.Nifti1Image(data, affine, header)
    if header is None:
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
    image.header.set_slope_inter(1, 0)
    image.header["cal_min"], image.header["cal_max"] = 0, float(data.max()) if data.size else 0.0
    return gzip.compress(image.to_bytes(), compresslevel=6)


def grid_path(root: str | Path, key: str) -> Path:
    """``<dataset folder>/volumes/<key>.json``."""
    return Path(root) / VOLUMES_DIR / f"{key}.json"


def write_grid(root: str | Path, grid: VolumeGrid) -> None:
    """Write one volume's grid into the dataset folder (atomically)."""
    write_text(grid_path(root, grid.key), grid.to_json())


def read_grids(root: str | Path) -> dict[str, VolumeGrid]:
    """Every volume grid of a dataset folder by key; empty for a folder of 2D images or one prepared before
    grids were recorded.
    """
    folder = Path(root) / VOLUMES_DIR
    if not folder.is_dir():
        return {}
    grids = {}
    for path in sorted(folder.glob("*.json")):
        grid = VolumeGrid.from_json(path.read_text(), str(path))
        grids[grid.key] = grid
    return grids


def has_grids(root: str | Path) -> bool:
    """Whether a dataset folder records volume grids (a folder prepared from volumes by this version)."""
    return any((Path(root) / VOLUMES_DIR).glob("*.json"))


def from_volumes(records: Sequence[object]) -> bool:
    """Whether manifest records (``ImageRecord``) look prepared from NIfTI volumes: slice indices and ``.nii`` /
    ``.nii.gz`` source files (what tells a folder prepared before grids were recorded).
    """
    return any(
        getattr(r, "slice_index", -1) >= 0 and str(getattr(r, "source_file", "")).endswith((".nii", ".nii.gz"))
        for r in records
    )


def image_volumes(grids: Mapping[str, VolumeGrid]) -> dict[str, tuple[VolumeGrid, int]]:
    """Image id -> (its volume's grid, its slice index), over every grid."""
    return {image_id: (grid, index) for grid in grids.values() for image_id, index in grid.images.items()}


def needs_grids_message(root: str | Path, what: str) -> str:
    """The message for a volume dataset folder without grids (prepared by an earlier version)."""
    return (
        f"{root}: {what} needs the volume grids (volumes/<volume>.json) that this version records when it "
        f"prepares volumes; this folder was prepared without them: delete it and prepare it again "
        "(python prepare.py dataset=...)"
    )
