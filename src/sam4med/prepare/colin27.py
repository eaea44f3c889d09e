"""Prepare the Colin27 T1 MRI with the AAL atlas (Debian package ``mricron-data``) as a COSMOS dataset.

Slices (axial by default) of ``ch2.nii.gz`` (181 x 217 x 181, 1 mm, RAS). The ``structures`` label map
holds the chosen AAL structures, renumbered 1..N in the order given; the ``brain`` label map holds the
brain (``ch2bet.nii.gz`` > 0, holes filled per slice). As in the COSMOS study a slice is kept only if
the sum of its label values (of the ``structures`` map, after renumbering) is greater than 50, and each
kept slice is min-max normalised to 0..255. Images are shown with anterior (or superior) up and the
subject's right on the image's right (neurological view); see :mod:`sam4med.prepare.volumes`,
which does the slicing and writing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from sam4med.dataset_format import ImageRecord, LabelMap
from sam4med.errors import ConfigError, DataError
from sam4med.prepare.labels import LabelSpec
from sam4med.prepare.preparer import Preparer
from sam4med.prepare.rules import SliceRules
from sam4med.prepare.volumes import DEFAULT_INTENSITY, PLANES, Volume, load_nifti, plane_slice, read_nifti, write_volume
from sam4med.prepare.writer import DatasetWriter, Input, Part

MRICRON_DIR = Path("/usr/share/mricron/templates")
SUBCORTICAL = (
    "Thalamus_L", "Thalamus_R", "Caudate_L", "Caudate_R", "Putamen_L", "Putamen_R",
    "Pallidum_L", "Pallidum_R", "Hippocampus_L", "Hippocampus_R", "Amygdala_L", "Amygdala_R",
)  # fmt: skip
MODALITY = "T1W MRI"


def read_aal_names(path: Path) -> dict[str, int]:
    """AAL object name -> label value, from ``aal.nii.txt`` (lines ``<value> <name> <code>``)."""
    if not Path(path).is_file():
        raise DataError(f"{path}: missing; install Debian's mricron-data (make does it as root)")
    names = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            names[parts[1]] = int(parts[0])
    return names


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing; install Debian's mricron-data (make does it as root)")
    return path


def _load(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    return load_nifti(_require(path))


def fill_per_slice(mask: np.ndarray, axis: int) -> np.ndarray:
    """Fill the holes of a 3D bool mask slice by slice along ``axis`` (uint8 0/1)."""
    filled = np.zeros(mask.shape, dtype=np.uint8)
    for index in range(mask.shape[axis]):
        plane_slice(filled, index, axis)[...] = ndimage.binary_fill_holes(plane_slice(mask, index, axis))
    return filled


class Colin27AAL(Preparer):
    """Builds the dataset folder on first use; a complete folder is left as it is.

    Args:
        structures: AAL names to include, in label-value order (default: 12 subcortical structures).
        include_brain: add the whole brain from ``ch2bet`` as a second label map.
        min_label_sum: keep a slice only if the sum of its structure label values exceeds this.
        source_dir: where ``ch2.nii.gz``, ``ch2bet.nii.gz``, ``aal.nii.gz`` and ``aal.nii.txt`` lie.
        every_nth_slice: keep every n-th qualifying slice (1 = all), to make small datasets.
        plane: ``axial`` (default), ``coronal`` or ``sagittal``.
        min_object_area, max_components: exclusion rules (0 = off; see :mod:`sam4med.prepare.rules`).
    """

    name = "colin27_aal"
    unit = "volume"

    def __init__(
        self,
        *,
        structures: Sequence[str] = SUBCORTICAL,
        include_brain: bool = True,
        min_label_sum: int = 50,
        source_dir: str | Path = MRICRON_DIR,
        every_nth_slice: int = 1,
        plane: str = "axial",
        min_object_area: int = 0,
        max_components: int = 0,
    ) -> None:
        if plane not in PLANES:
            raise ConfigError(f"plane must be one of {sorted(PLANES)}, got '{plane}'")
        if not structures or len(set(structures)) != len(structures):
            raise ConfigError(f"structures must name distinct AAL structures, got {list(structures)}")
        self.structures = tuple(structures)
        self.include_brain = include_brain
        self.rules = SliceRules.build(min_label_sum, ["structures"], min_object_area, max_components)
        self.source_dir = Path(source_dir)
        self.every_nth_slice = every_nth_slice
        self.plane = plane

    def settings(self) -> dict:
        """Plain-data settings (recorded in dataset.yaml, compared when a run resumes)."""
        return {
            "kind": "colin27_aal", "structures": list(self.structures), "include_brain": self.include_brain,
            "source_dir": str(self.source_dir), "every_nth_slice": self.every_nth_slice, "plane": self.plane,
            "rules": self.rules.to_config(), "intensity": DEFAULT_INTENSITY.to_config(),
        }  # fmt: skip

    def inputs(self) -> list[Input]:
        """The one T1 volume; refuses missing files and unknown AAL names before anything is written."""
        names = read_aal_names(self.source_dir / "aal.nii.txt")
        unknown = [s for s in self.structures if s not in names]
        if unknown:
            raise ConfigError(f"{self.source_dir / 'aal.nii.txt'}: no AAL structures named {unknown}")
        files = ["ch2.nii.gz", "aal.nii.gz"] + (["ch2bet.nii.gz"] if self.include_brain else [])
        for name in files:
            _require(self.source_dir / name)
        return [Input("colin27", str(self.source_dir / "ch2.nii.gz"))]

    def _volume(self) -> tuple[Volume, list[LabelSpec]]:
        names = read_aal_names(self.source_dir / "aal.nii.txt")
        t1_file, aal_file = self.source_dir / "ch2.nii.gz", self.source_dir / "aal.nii.gz"
        image, zooms, affine = read_nifti(_require(t1_file))  # the affine: masks written on its grid
        aal, _ = _load(aal_file)
        if image.shape != aal.shape:
            raise DataError(f"{self.source_dir}: ch2 {image.shape} and aal {aal.shape} are not on one grid")
        specs = [LabelSpec("structures", objects={names[s]: s for s in self.structures}, drop_unnamed=True)]
        labels, files = {"structures": aal}, {"structures": str(aal_file)}
        if self.include_brain:
            bet_file = self.source_dir / "ch2bet.nii.gz"
            labels["brain"] = fill_per_slice(_load(bet_file)[0] > 0, PLANES[self.plane])
            files["brain"] = str(bet_file)
            specs.append(LabelSpec("brain", objects={1: "Brain"}))
        volume = Volume("colin27", "colin27", MODALITY, image, labels, zooms, str(t1_file), files, affine)
        return volume, specs

    def process(self, item: Input, writer: DatasetWriter) -> Part:
        """Write the kept slices of the volume."""
        volume, specs = self._volume()
        return write_volume(
            volume, specs, writer, plane=self.plane, rules=self.rules, every_nth_slice=self.every_nth_slice
        )

    def label_maps(self, records: Sequence[ImageRecord]) -> tuple[LabelMap, ...]:
        """The structures numbered 1..N in the order given, and the brain."""
        maps = [LabelMap("structures", {i: n for i, n in enumerate(self.structures, start=1)})]
        if self.include_brain:
            maps.append(LabelMap("brain", {1: "Brain"}))
        return tuple(maps)
