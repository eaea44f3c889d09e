"""What ``predict.py`` writes: label masks per input and ``predictions.csv``, every file atomically.

* ``masks/<stem>.png`` per 2D image: H x W, each pixel the id of the object whose mask holds it, 0 for
  none; uint8 when every id is at most 255, else uint16.
* ``masks/<stem>.nii.gz`` per volume: the slices' label images put back at their slice positions on the
  volume's own voxel grid (the stored orientation, shape and affine of the input file, its header's
  qform/sform kept), slices without a prompt 0.
* ``predictions.csv``: one row per object and image (or slice): ``image``, ``slice`` (empty for a 2D
  image), ``object``, the prompt decoded (``x0, y0, x1, y1`` and ``points`` as in a prompts file,
  :mod:`sam4med.prompts.prompt_file`), ``source`` (``file``, the strategy of prompts drawn from labels, or
  ``propagated``), ``score`` (the decoder's predicted IoU of the mask kept) and ``area`` (pixels of the
  object's own mask, before overlaps are resolved).

Where the masks of two objects overlap, the object given later (later in the prompts file, or the higher
label value for prompts drawn from labels) is drawn over the earlier one, as LiteMedSAM's inference
writes its label maps; ``area`` still counts the whole mask.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from sam4med.dataset_format import label_dtype
from sam4med.files import save_png, write_bytes, write_csv
from sam4med.prompts.prompt import Prompt
from sam4med.volume_grid import VolumeGrid, label_nifti_bytes

PREDICTION_COLUMNS = ("image", "slice", "object", "x0", "y0", "x1", "y1", "points", "source", "score", "area")


@dataclass(frozen=True)
class PredictionFolder:
    """The files of one ``predict.py`` run (its Hydra run folder)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def masks(self) -> Path:
        """The label masks, one file per input."""
        return self.path / "masks"

    @property
    def predictions(self) -> Path:
        """One row per object and image (or slice)."""
        return self.path / "predictions.csv"

    @property
    def config(self) -> Path:
        """The resolved config of the run."""
        return self.path / "config.yaml"

    def mask_png(self, stem: str) -> Path:
        """The label PNG of a 2D input."""
        return self.masks / f"{stem}.png"

    def mask_nifti(self, stem: str) -> Path:
        """The label NIfTI of a volume."""
        return self.masks / f"{stem}.nii.gz"


@dataclass(frozen=True)
class PredictionRow:
    """One object's prediction on one image (or slice): a row of ``predictions.csv``."""

    image: str
    slice: int | None
    object: int
    prompt: Prompt
    source: str
    score: float
    area: int

    def to_row(self) -> dict[str, object]:
        """The CSV row (box corners and points written as in a prompts file)."""
        box = self.prompt.box
        points = "; ".join(
            f"{x:g} {y:g} {label}"
            for (x, y), label in zip(self.prompt.point_coords, self.prompt.point_labels, strict=True)
        )
        return {
            "image": self.image,
            "slice": "" if self.slice is None else self.slice,
            "object": self.object,
            **{
                name: ("" if box is None else f"{v:g}")
                for name, v in zip(("x0", "y0", "x1", "y1"), box or (0,) * 4, strict=True)
            },
            "points": points,
            "source": self.source,
            "score": f"{self.score:.6g}",
            "area": self.area,
        }


def label_image(masks: np.ndarray, ids: Sequence[int], dtype: np.dtype | type) -> np.ndarray:
    """H x W label image of N x H x W masks: each mask drawn with its id, a later mask over an earlier one."""
    labels = np.zeros(masks.shape[1:], dtype=dtype)
    for mask, object_id in zip(masks, ids, strict=True):
        labels[mask] = object_id
    return labels


def dtype_for(ids: Sequence[int]) -> type[np.unsignedinteger]:
    """uint8 when every id fits, else uint16 (:func:`sam4med.dataset_format.label_dtype`)."""
    return label_dtype(max(ids, default=0))


def write_png(path: Path, labels: np.ndarray) -> None:
    """A label image as a PNG (8- or 16-bit grey, the dtype of ``labels``)."""
    save_png(path, labels)


def write_nifti(path: Path, grid: VolumeGrid, slices: Mapping[int, np.ndarray], dtype: np.dtype | type) -> None:
    """The slice label images (H x W by slice index) as a NIfTI on the voxel grid of ``grid``'s file."""
    header = nib.load(grid.file).header
    write_bytes(path, label_nifti_bytes(grid, grid.stack(slices, dtype), header=header))


def write_predictions(path: Path, rows: Sequence[PredictionRow]) -> None:
    """``predictions.csv``."""
    write_csv(path, PREDICTION_COLUMNS, [row.to_row() for row in rows])
