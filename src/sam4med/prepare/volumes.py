"""Prepare 3D (and 4D) NIfTI volumes as 2D slices (COSMOS section 2.2).

Volumes are reoriented to RAS (``nibabel.as_closest_canonical``); slices are taken along the main
plane (``axial`` = fixed Z, ``coronal`` = fixed Y, ``sagittal`` = fixed X) and shown with superior (or
anterior, for axial) up and the subject's right on the image's right: a slice ``S[i, j]`` over the two
remaining RAS axes becomes the image ``rot90(S)``, whose columns run along ``i`` and rows along ``j``
reversed, so the pixel spacing (X, Y) is ``(zoom[i], zoom[j])``. A 4D volume (X x Y x Z x N) is N 3D
volumes of one source; its label file is 4D with the same N or 3D and shared by all N. A label file
must be on its image's voxel grid: their stored affines must agree within
``AFFINE_TOLERANCE_MM``, or the input is skipped (a label whose header says another orientation would
otherwise be reoriented on its own and come out mirrored against the image).

Image ids are ``<stem>[_v<n>]_<x|y|z><slice:03d>``. DICOM series are read by :mod:`.dicom`, which
turns each into a NIfTI image in memory and prepares it by this module.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from sam4med.dataset_format import ImageRecord
from sam4med.errors import ConfigError, DataError
from sam4med.prepare.inputs import file_stem, label_file, safe_id, source_of
from sam4med.prepare.intensity import Intensity
from sam4med.prepare.labels import LabelSpec, check_values, remap, whole_numbers
from sam4med.prepare.preparer import FolderPreparer
from sam4med.prepare.rules import SliceRules
from sam4med.prepare.slices import clean_labels, emit, passes
from sam4med.prepare.writer import DatasetWriter, Input, Part, Skip
from sam4med.volume_grid import VolumeGrid, write_grid

PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}
_LETTER = ("x", "y", "z")
DEFAULT_RULES = SliceRules()
DEFAULT_INTENSITY = Intensity()
AFFINE_TOLERANCE_MM = 1e-3


def load_nifti(path: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """A NIfTI file as an RAS-oriented array (X x Y x Z or X x Y x Z x N) and its voxel sizes in mm."""
    data, zooms, _ = read_nifti(path)
    return data, zooms


def read_nifti(path: Path) -> tuple[np.ndarray, tuple[float, ...], np.ndarray]:
    """As :func:`load_nifti`, plus the 4 x 4 voxel-to-world (mm) affine of the file as stored (before
    reorientation: a label file must share its image's stored grid, voxel for voxel).
    """
    if not Path(path).is_file():
        raise DataError(f"{path}: missing")
    try:
        stored = nib.load(str(path))
        image = nib.as_closest_canonical(stored)
        data = np.asanyarray(image.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, nib.filebasedimages.ImageFileError) as exc:
        raise DataError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc})") from exc
    if data.ndim == 5 and data.shape[3] == 1:
        data = data[:, :, :, 0, :]
    if data.ndim not in (3, 4):
        raise DataError(f"{path}: expected a 3D or 4D volume, got shape {data.shape}")
    zooms = tuple(round(float(z), 6) for z in image.header.get_zooms()[:3])
    return np.asarray(data), zooms, np.asarray(stored.affine, dtype=np.float64)


def check_same_grid(label_affine: np.ndarray, image_affine: np.ndarray, label_file: str, image_file: str) -> None:
    """DataError naming ``label_file`` when its stored affine differs from the image's beyond the tolerance."""
    difference = float(np.abs(label_affine - image_affine).max())
    if difference > AFFINE_TOLERANCE_MM:
        raise DataError(
            f"{label_file}: not on the voxel grid of {Path(image_file).name} (affines differ by up to "
            f"{difference:.3g} mm, e.g. another orientation in the header); resample the labels onto the image"
        )


def plane_slice(volume: np.ndarray, index: int, axis: int) -> np.ndarray:
    """Slice ``index`` of a 3D array along ``axis`` (a view)."""
    return volume[(slice(None),) * axis + (index,)]


def view(slice2d: np.ndarray) -> np.ndarray:
    """An RAS slice ``S[i, j]`` as an image: ``rot90``, so superior/anterior is up."""
    return np.ascontiguousarray(np.rot90(slice2d))


def _frame(array: np.ndarray, k: int) -> np.ndarray:
    """Volume ``k`` of a 4D array; a 3D array is shared by every volume."""
    return array[..., k] if array.ndim == 4 else array


@dataclass(frozen=True)
class Volume:
    """One 3D volume with its source label volumes on the same grid.

    Attributes:
        key: image-id prefix (unique in the dataset).
        source: volume or patient id (splits never divide it).
        modality: e.g. ``CT``, ``T1W MRI``.
        image: X x Y x Z intensities, RAS axes.
        labels: label map name -> X x Y x Z source label values (any integers >= 0).
        spacing: voxel sizes (X, Y, Z) in mm.
        file: the image file (named in the manifest and in skips).
        label_files: label map name -> file, named in errors.
        affine: the image file's stored 4 x 4 voxel-to-world affine (recorded in ``volumes/<key>.json`` so
            predicted masks can be written on the source grid; None: not recorded).
        frame: the volume's index in a 4D file (None: a 3D file).
    """

    key: str
    source: str
    modality: str
    image: np.ndarray
    labels: Mapping[str, np.ndarray]
    spacing: tuple[float, float, float]
    file: str
    label_files: Mapping[str, str]
    affine: np.ndarray | None = None
    frame: int | None = None


def _grid(volume: Volume, axis: int, images: dict[str, int], extent: dict[str, dict[int, list[int]]]) -> VolumeGrid:
    """What :mod:`sam4med.volume_grid` records of ``volume`` and the slices written from it."""
    affine, stored_shape = None, None
    if volume.affine is not None:
        affine = tuple(tuple(float(x) for x in row) for row in np.asarray(volume.affine))
        stored = nib.orientations.io_orientation(np.asarray(volume.affine))
        stored_shape = tuple(int(volume.image.shape[int(a)]) for a, _ in stored)
    return VolumeGrid(
        key=volume.key,
        source=volume.source,
        file=volume.file,
        frame=volume.frame,
        axis=axis,
        shape=tuple(int(n) for n in volume.image.shape[:3]),  # type: ignore[arg-type]
        spacing=tuple(float(s) for s in volume.spacing[:3]),  # type: ignore[arg-type]
        images=images,
        extent={m: {v: tuple(s) for v, s in values.items()} for m, values in extent.items()},
        affine=affine,
        stored_shape=stored_shape,  # type: ignore[arg-type]
    )


def write_volume(
    volume: Volume,
    specs: Sequence[LabelSpec],
    writer: DatasetWriter,
    *,
    plane: str = "axial",
    rules: SliceRules = DEFAULT_RULES,
    intensity: Intensity = DEFAULT_INTENSITY,
    every_nth_slice: int = 1,
    whole_extent: bool = False,
) -> Part:
    """Write the kept slices of one volume; DataError (naming the file) when the volume is unusable.

    ``whole_extent``: keep every slice that holds a named object after the exclusion rules, whatever its label
    sum (``min_label_sum`` is not applied), so each structure's extent is prepared whole and a volume can be
    scored whole. The volume's grid and each object's extent go to ``volumes/<key>.json``
    (:mod:`sam4med.volume_grid`).
    """
    axis = PLANES[plane]
    image = volume.image
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise DataError(f"{volume.file}: volume holds NaN or infinite values")
    if image.size == 0 or image.min() == image.max():
        raise DataError(f"{volume.file}: constant volume (every voxel is {image.flat[0] if image.size else 'absent'})")
    sources = {}
    for spec in specs:
        where = volume.label_files.get(spec.name, volume.file)
        labels = whole_numbers(volume.labels[spec.name], where)
        if labels.shape != image.shape:
            raise DataError(f"{where}: label size {labels.shape} differs from image size {image.shape}")
        check_values(np.unique(labels), spec, where)
        sources[spec.name] = (labels, where)
    cleaned, kept, any_label = {}, [], False
    # per named label map (an instance map numbers its objects per slice: no value is one object across slices)
    extent: dict[str, dict[int, list[int]]] = {spec.name: {} for spec in specs if spec.instances is None}
    for index in range(image.shape[axis]):
        raw = {}
        for spec in specs:
            labels, where = sources[spec.name]
            raw[spec.name] = remap(view(plane_slice(labels, index, axis)), spec, f"{where} slice {index}")
            for value in raw[spec.name][1] if spec.name in extent else ():
                extent[spec.name].setdefault(int(value), []).append(index)
        any_label = any_label or any(names for _, names in raw.values())
        cleaned[index] = clean_labels(raw, rules)
        if passes(cleaned[index], rules) or (whole_extent and any(cleaned[index].names.values())):
            kept.append(index)
    if not any_label:
        raise DataError(f"{volume.file}: the label maps hold no named object (empty label map)")
    if not kept:
        reason = f"no slice has a label sum > {rules.min_label_sum}"
        return Part(skips=(Skip(volume.file, reason),))
    i, j = [a for a in range(3) if a != axis]
    spacing = (volume.spacing[i], volume.spacing[j])
    records, skips = [], []
    for index in kept[::every_nth_slice]:
        image_id = f"{volume.key}_{_LETTER[axis]}{index:03d}"
        pixels = intensity.apply(view(plane_slice(image, index, axis)), f"{volume.file} slice {index}")
        record = ImageRecord(image_id, volume.source, index, volume.modality, spacing, source_file=volume.file)
        done, slice_skips = emit(writer, record, pixels, cleaned[index])
        records += [done] if done is not None else []
        skips += slice_skips
    if records:
        images = {r.image_id: r.slice_index for r in records}
        write_grid(writer.root, _grid(volume, axis, images, extent))
    return Part(tuple(records), tuple(skips))


class VolumePreparer(FolderPreparer):
    """Prepare a folder of NIfTI volumes with their label volumes; a complete folder is left as it is.

    Args:
        name: dataset name (``dataset.yaml``).
        images: glob pattern of the image volumes (``.nii`` / ``.nii.gz``).
        label_maps: one entry per output label map: ``{name, path, objects | instances, drop_unnamed}``
            (see :class:`sam4med.prepare.labels.LabelSpec`).
        modality: modality of every volume (e.g. ``CT``), or one per volume of a 4D file.
        plane: ``axial`` (default), ``coronal`` or ``sagittal``.
        source_pattern: regular expression picking the patient id out of a file stem (default: the stem).
        intensity: ``{mode: minmax | window, window: [low, high]}``.
        min_label_sum, label_sum_maps, min_object_area, max_components: see :mod:`.rules`.
        every_nth_slice: keep every n-th slice that passes the rules.
        whole_extent: keep every slice holding a named object (after the exclusion rules), whatever its
            label sum, so each structure's extent is prepared whole and volumes can be scored whole
            (``volume_metrics.csv``); needs ``every_nth_slice=1``.
    """

    def __init__(
        self,
        *,
        name: str,
        images: str,
        label_maps: Sequence[Mapping],
        modality: str | Sequence[str],
        plane: str = "axial",
        source_pattern: str | None = None,
        intensity: Mapping | None = None,
        min_label_sum: int = 50,
        label_sum_maps: Sequence[str] | None = None,
        min_object_area: int = 0,
        max_components: int = 0,
        every_nth_slice: int = 1,
        whole_extent: bool = False,
    ) -> None:
        if plane not in PLANES:
            raise ConfigError(f"plane must be one of {sorted(PLANES)}, got '{plane}'")
        if every_nth_slice < 1:
            raise ConfigError(f"every_nth_slice must be >= 1, got {every_nth_slice}")
        if whole_extent and every_nth_slice != 1:
            raise ConfigError(
                f"whole_extent=true keeps every slice of each structure's extent; every_nth_slice={every_nth_slice} "
                "would leave slices out: use every_nth_slice=1 (or whole_extent=false)"
            )
        super().__init__(
            name=name, images=images, label_maps=label_maps, source_pattern=source_pattern,
            min_label_sum=min_label_sum, label_sum_maps=label_sum_maps, min_object_area=min_object_area,
            max_components=max_components,
        )  # fmt: skip
        self.plane = plane
        self.modality = modality if isinstance(modality, str) else tuple(str(m) for m in modality)
        self.intensity = Intensity.build(**dict(intensity or {}))
        self.every_nth_slice = int(every_nth_slice)
        self.whole_extent = bool(whole_extent)

    def settings(self) -> dict:
        """Plain-data settings (recorded in dataset.yaml, compared when a run resumes)."""
        modality = self.modality if isinstance(self.modality, str) else list(self.modality)
        return {
            "kind": "volumes", "images": self.images, "label_maps": [s.to_config() for s in self.specs],
            "modality": modality, "plane": self.plane, "source_pattern": self.source_pattern,
            "intensity": self.intensity.to_config(), "rules": self.rules.to_config(),
            "every_nth_slice": self.every_nth_slice,
            # recorded only when set, so folders prepared before the option existed keep their settings
            **({"whole_extent": True} if self.whole_extent else {}),
        }  # fmt: skip

    def _volumes(self, path: Path) -> list[Volume]:
        stem = file_stem(path)
        source = source_of(stem, self.source_pattern)
        image, zooms, affine = read_nifti(path)
        n = 1 if image.ndim == 3 else image.shape[3]
        labels, files = {}, {}
        for spec in self.specs:
            files[spec.name] = str(label_file(spec.path, path, source))
            array, _, label_affine = read_nifti(Path(files[spec.name]))
            if array.shape[:3] == image.shape[:3]:  # other sizes are reported as such by write_volume
                check_same_grid(label_affine, affine, files[spec.name], str(path))
            if array.ndim == 4 and array.shape[3] != n:
                raise DataError(f"{files[spec.name]}: {array.shape[3]} label volumes for {n} image volumes")
            labels[spec.name] = array
        if isinstance(self.modality, str):
            modalities = [self.modality] * n
        elif len(self.modality) == n:
            modalities = list(self.modality)
        else:
            raise DataError(f"{path}: {n} volumes but {len(self.modality)} modalities in the config")
        volumes = []
        for k in range(n):
            key = safe_id(stem) if n == 1 else f"{safe_id(stem)}_v{k}"
            frames = {name: _frame(array, k) for name, array in labels.items()}
            frame = None if n == 1 and image.ndim == 3 else k
            volumes.append(
                Volume(key, source, modalities[k], _frame(image, k), frames, zooms, str(path), files, affine, frame)
            )
        return volumes

    def process(self, item: Input, writer: DatasetWriter) -> Part:
        """Write the kept slices of every volume of one input file (a 4D file holds several)."""
        volumes = self._volumes(Path(item.file))
        records, skips = [], []
        for k, volume in enumerate(volumes):
            try:
                part = write_volume(
                    volume, self.specs, writer, plane=self.plane, rules=self.rules, intensity=self.intensity,
                    every_nth_slice=self.every_nth_slice, whole_extent=self.whole_extent,
                )  # fmt: skip
            except DataError as exc:
                if len(volumes) == 1:
                    raise
                reason = str(exc).removeprefix(f"{item.file}: ")
                part = Part(skips=(Skip(item.file, f"volume {k}: {reason}"),))
            records += part.records
            skips += part.skips
        return Part(tuple(records), tuple(skips))
