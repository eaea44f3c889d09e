"""Prepare the Colin27 T1 MRI with the AAL atlas (Debian package ``mricron-data``) as a COSMOS dataset.

Axial slices of ``ch2.nii.gz`` (181 x 217 x 181, 1 mm, RAS). The ``structures`` label map holds the
chosen AAL structures, renumbered 1..N in the order given; the ``brain`` label map holds the brain
(``ch2bet.nii.gz`` > 0, holes filled per slice). As in the COSMOS study a slice is kept only if the
sum of its label values (of the ``structures`` map, after renumbering) is greater than 50, and each
kept slice is min-max normalised to 0..255. Images are shown with anterior up and the subject's
right on the image's right (neurological view).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage
from tqdm import tqdm

from sam4med.data.format import (
    DatasetInfo,
    ImageRecord,
    LabelMap,
    image_path,
    label_path,
    save_png,
    write_info,
    write_manifest,
)
from sam4med.errors import DataError

MRICRON_DIR = Path("/usr/share/mricron/templates")
SUBCORTICAL = (
    "Thalamus_L", "Thalamus_R", "Caudate_L", "Caudate_R", "Putamen_L", "Putamen_R",
    "Pallidum_L", "Pallidum_R", "Hippocampus_L", "Hippocampus_R", "Amygdala_L", "Amygdala_R",
)  # fmt: skip
MODALITY = "T1W MRI"


def read_aal_names(path: Path) -> dict[str, int]:
    """AAL object name -> label value, from ``aal.nii.txt`` (lines ``<value> <name> <code>``)."""
    names = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[parts[1]] = int(parts[0])
    return names


def _load_ras(path: Path) -> nib.Nifti1Image:
    if not path.is_file():
        raise DataError(f"{path}: missing; install Debian's mricron-data (make does it as root)")
    return nib.as_closest_canonical(nib.load(path))


def minmax_uint8(array: np.ndarray) -> np.ndarray:
    """Min-max normalise to 0..255 uint8; a constant slice becomes all zeros."""
    array = array.astype(np.float64)
    low, high = float(array.min()), float(array.max())
    if high <= low:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round((array - low) / (high - low) * 255).astype(np.uint8)


def _view(axial: np.ndarray) -> np.ndarray:
    """RAS axial slice indexed [x, y] -> image rows = posterior..anterior flipped (anterior up)."""
    return np.ascontiguousarray(np.rot90(axial))


class Colin27AAL:
    """Builds the dataset folder on first use; a complete folder is left as it is.

    Args:
        structures: AAL names to include, in label-value order (default: 12 subcortical structures).
        include_brain: add the whole brain from ``ch2bet`` as a second label map.
        min_label_sum: keep a slice only if the sum of its structure label values exceeds this.
        source_dir: where ``ch2.nii.gz``, ``ch2bet.nii.gz``, ``aal.nii.gz`` and ``aal.nii.txt`` lie.
        every_nth_slice: keep every n-th qualifying slice (1 = all), to make small datasets.
    """

    def __init__(
        self,
        *,
        structures: Sequence[str] = SUBCORTICAL,
        include_brain: bool = True,
        min_label_sum: int = 50,
        source_dir: str | Path = MRICRON_DIR,
        every_nth_slice: int = 1,
    ) -> None:
        self.structures = tuple(structures)
        self.include_brain = include_brain
        self.min_label_sum = min_label_sum
        self.source_dir = Path(source_dir)
        self.every_nth_slice = every_nth_slice

    def __call__(self, root: str | Path) -> Path:
        """Prepare into ``root`` unless it is complete already; returns ``root``."""
        root = Path(root)
        if (root / ".complete").is_file():
            return root
        start = time.perf_counter()
        names = read_aal_names(self.source_dir / "aal.nii.txt")
        unknown = [s for s in self.structures if s not in names]
        if unknown:
            raise DataError(f"{self.source_dir / 'aal.nii.txt'}: no AAL structures named {unknown}")
        t1 = _load_ras(self.source_dir / "ch2.nii.gz")
        atlas = _load_ras(self.source_dir / "aal.nii.gz")
        image = np.asarray(t1.dataobj)
        aal = np.asarray(atlas.dataobj).astype(np.int32)
        if image.shape != aal.shape:
            raise DataError(f"{self.source_dir}: ch2 {image.shape} and aal {aal.shape} are not on one grid")
        structures = np.zeros(aal.shape, dtype=np.uint8)
        for new_value, name in enumerate(self.structures, start=1):
            structures[aal == names[name]] = new_value
        brain = None
        if self.include_brain:
            brain = np.asarray(_load_ras(self.source_dir / "ch2bet.nii.gz").dataobj) > 0

        spacing = tuple(float(z) for z in t1.header.get_zooms()[:2])
        kept = [z for z in range(image.shape[2]) if int(structures[:, :, z].sum()) > self.min_label_sum]
        kept = kept[:: self.every_nth_slice]
        records = []
        for z in tqdm(kept, desc="colin27 slices", unit="slice"):
            image_id = f"colin27_z{z:03d}"
            if not image_path(root, image_id).is_file():
                save_png(label_path(root, "structures", image_id), _view(structures[:, :, z]))
                if brain is not None:
                    filled = ndimage.binary_fill_holes(brain[:, :, z])
                    save_png(label_path(root, "brain", image_id), _view(filled.astype(np.uint8)))
                # the image is written last: its presence marks the slice as done
                save_png(image_path(root, image_id), minmax_uint8(_view(image[:, :, z])))
            # view is rot90 of [x, y]: image columns run along x, rows along y
            records.append(ImageRecord(image_id, "colin27", z, MODALITY, (spacing[0], spacing[1])))
        maps = [LabelMap("structures", {i: n for i, n in enumerate(self.structures, start=1)})]
        if brain is not None:
            maps.append(LabelMap("brain", {1: "Brain"}))
        write_info(root, DatasetInfo(name="colin27_aal", label_maps=tuple(maps)))
        write_manifest(root, records)
        (root / ".complete").write_text(f"{len(records)} images in {time.perf_counter() - start:.1f} s\n")
        return root
