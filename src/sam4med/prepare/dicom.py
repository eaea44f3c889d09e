"""Prepare DICOM series (CT, MR) as 2D slices, as the NIfTI volume preparer does (:mod:`.volumes`).

A folder (searched recursively; hidden files are left out) or a glob pattern of files is read with
pydicom. Files are grouped by ``SeriesInstanceUID``; a file that is not DICOM (no ``DICM`` prefix), a
DICOM file without an image (DICOMDIR, structured report, DICOM-SEG) is a recorded skip.

Geometry of a series (one file per slice; multi-frame files are refused):

* every slice has the same rows, columns, pixel spacing and ``ImageOrientationPatient`` (direction
  cosines ``r`` of a row, i.e. of increasing column index, and ``c`` of a column), orthonormal;
* slices are ordered by their position ``ImagePositionPatient . n`` along the normal ``n = r x c``, never
  by ``InstanceNumber`` or file name; the gaps between neighbours must agree within
  ``SLICE_GAP_TOLERANCE`` of the median gap (no missing slice, no two slices at one position), and the
  stack must run along the normal (no gantry tilt beyond ``TILT_TOLERANCE_DEG``);
* intensities are rescaled with ``RescaleSlope`` / ``RescaleIntercept`` (a Modality LUT where given;
  Hounsfield units for CT) by :func:`pydicom.pixels.apply_rescale`.

The voxels form a volume ``V[column, row, slice]`` with the affine (voxel -> mm) of the first slice's
``ImagePositionPatient`` ``p``: ``x = p + column * dc * r + row * dr * c + slice * s``, where
``(dr, dc)`` is ``PixelSpacing`` (between rows, between columns) and ``s`` the mean step between
slices. DICOM patient coordinates are LPS (x to the patient's left, y to posterior); NIfTI's are RAS,
so the first two rows of the affine change sign. From there on the volume is a NIfTI image in memory
and follows the NIfTI path: ``nibabel.as_closest_canonical``, slices, spacing and ids as in
:mod:`.volumes`; a series and a NIfTI file of the same voxels at the same world positions (e.g. its
``dcm2niix`` conversion) prepare to the same slices.

Labels are NIfTI files (DICOM-SEG is not read) on the series' grid: after both are reoriented to RAS,
their shapes must be equal and their affines agree within ``GRID_TOLERANCE_MM``.

A series' key (image-id prefix, ``{stem}`` of a label path template) is its folder's path under the
input folder, ``/`` replaced by ``_`` (the input folder's own name when the files lie in it), with
``_s<SeriesNumber>`` added when one folder holds several series. Its source is ``PatientID`` (splits
never divide a patient; ``source_pattern``, when set, picks it out of the key instead).
"""

from __future__ import annotations

import glob
import math
import struct
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_rescale

from sam4med.errors import ConfigError, DataError
from sam4med.prepare.inputs import safe_id, source_of
from sam4med.prepare.volumes import Volume, VolumePreparer, read_nifti
from sam4med.prepare.writer import Input

SLICE_GAP_TOLERANCE = 0.01  # a gap may differ from the median gap by 1 % of it
TILT_TOLERANCE_DEG = 0.1  # the stack's direction may differ from the slice normal by this angle
ORIENTATION_TOLERANCE = 1e-4  # direction cosines: equal between slices, orthonormal
SPACING_TOLERANCE_MM = 1e-3  # pixel spacing equal between slices
GRID_TOLERANCE_MM = 1e-2  # label NIfTI vs series affine (NIfTI stores it in float32, DICOM in decimals)
SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_READ_ERRORS = (InvalidDicomError, OSError, EOFError, ValueError, KeyError, TypeError, struct.error)


@dataclass(frozen=True)
class Series:
    """The files of one DICOM series found in the input.

    Attributes:
        key: image-id prefix (unique in the dataset).
        file: the series as named in the manifest and in skips: its folder, or ``<folder>/<uid>`` when
            the folder holds several series (:func:`load_series` reads either).
        uid: ``SeriesInstanceUID``.
        patient: ``PatientID`` (empty when absent).
        folder: the deepest folder holding every file of the series.
        files: the series' files, in file-name order (slice order comes from the geometry).
    """

    key: str
    file: str
    uid: str
    patient: str
    folder: Path
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Scan:
    """What a folder holds: its series and its files that are not DICOM images (file, reason)."""

    series: tuple[Series, ...]
    not_images: tuple[tuple[str, str], ...]


def input_files(images: str) -> list[Path]:
    """Every visible file under folder ``images`` (recursively), or the files matching a glob pattern."""
    path = Path(images).expanduser()
    if path.is_dir():
        found = (p for p in path.rglob("*") if not any(part.startswith(".") for part in p.relative_to(path).parts))
    else:
        found = (Path(p) for p in glob.glob(str(path), recursive=True))
    files = sorted(p for p in found if p.is_file())
    if not files:
        raise ConfigError(f"images: '{images}' is no folder with files and no pattern matching a file")
    return files


def _header(path: Path) -> pydicom.Dataset | str:
    """The DICOM header of an image file, or why the file is not one."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        return "not a DICOM file (no DICM prefix)"
    except _READ_ERRORS as exc:
        return f"cannot read DICOM ({type(exc).__name__}: {exc})"
    sop = str(ds.get("SOPClassUID", ""))
    if sop == SEGMENTATION_STORAGE:
        return "a DICOM-SEG file: segmentations are not read from DICOM, give the labels as NIfTI"
    if "SeriesInstanceUID" not in ds or "Rows" not in ds or "Columns" not in ds:
        kind = getattr(ds.get("SOPClassUID"), "name", sop) or "no SOP class"
        return f"a DICOM file without an image ({kind})"
    return ds


def scan(images: str) -> Scan:
    """The series under ``images`` (a folder or a glob pattern); ConfigError when there is none."""
    files = input_files(images)
    by_uid: dict[str, list[tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    not_images = []
    for path in files:
        header = _header(path)
        if isinstance(header, str):
            not_images.append((str(path), header))
        else:
            by_uid[str(header.SeriesInstanceUID)].append((path, header))
    if not by_uid:
        first = f" (e.g. {not_images[0][0]}: {not_images[0][1]})" if not_images else ""
        raise ConfigError(f"images: no DICOM image among the {len(files)} files of '{images}'{first}")
    base = Path(images).expanduser()
    if not base.is_dir():  # a pattern: keys are relative to the deepest folder all series share
        base = _folder([f for found in by_uid.values() for f, _ in found])
    folders: dict[Path, list[str]] = defaultdict(list)
    for uid, found in by_uid.items():
        folders[_folder([f for f, _ in found])].append(uid)
    series = []
    for folder, uids in sorted(folders.items()):
        rel = folder.relative_to(base).parts if folder != base and folder.is_relative_to(base) else ()
        stem = safe_id("_".join(rel or (folder.name,)))
        numbers = [str(by_uid[u][0][1].get("SeriesNumber", "")) for u in uids]
        distinct = len(set(numbers)) == len(numbers) and all(numbers)
        order = sorted(range(len(uids)), key=lambda k: (numbers[k].zfill(12), uids[k]))
        for rank, k in enumerate(order):
            uid, found = uids[k], by_uid[uids[k]]
            key, file = stem, str(folder)
            if len(uids) > 1:
                key = f"{stem}_s{numbers[k] if distinct else rank + 1}"
                file = str(folder / uid)
            patient = str(found[0][1].get("PatientID", "") or "")
            series.append(Series(key, file, uid, patient, folder, tuple(sorted(f for f, _ in found))))
    return Scan(tuple(series), tuple(not_images))


def _folder(files: Sequence[Path]) -> Path:
    """The deepest folder holding every one of ``files``."""
    parents = [f.parent.parts for f in files]
    return Path(*[p[0] for p in zip(*parents, strict=False) if len(set(p)) == 1])


@dataclass(frozen=True)
class Geometry:
    """The voxel grid of a series.

    Attributes:
        files: the slices' files ordered along the slice normal.
        shape: (columns, rows, slices).
        affine: 4 x 4 voxel ``(column, row, slice)`` -> RAS mm.
    """

    files: tuple[Path, ...]
    shape: tuple[int, int, int]
    affine: np.ndarray


def _floats(ds: pydicom.Dataset, tag: str, n: int, where: str, file: Path) -> np.ndarray:
    """``n`` finite numbers of a header, or DataError naming the series ``where`` and the file."""
    value = ds.get(tag)
    try:
        array = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        array = np.zeros(0)
    if array.shape != (n,) or not np.isfinite(array).all():
        raise DataError(
            f"{where}: {file.name}: {tag} is missing or not {n} numbers ({value!r}); the slice has no geometry"
        )
    return array


def geometry(headers: Sequence[tuple[Path, pydicom.Dataset]], where: str) -> Geometry:
    """Check the geometry of one series (module docstring) and return its grid; DataError naming ``where``."""
    if len(headers) < 2:
        raise DataError(f"{where}: a single slice, not a volume")
    first_file, first = headers[0]
    size = (int(first.Rows), int(first.Columns))
    orientation = _floats(first, "ImageOrientationPatient", 6, where, first_file)
    spacing = _floats(first, "PixelSpacing", 2, where, first_file)
    positions = []
    for file, ds in headers:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise DataError(f"{where}: {file.name} is a multi-frame file; convert the series with dcm2niix")
        if int(ds.get("SamplesPerPixel", 1)) != 1:
            raise DataError(f"{where}: {file.name} is a colour image; only grey CT / MR series are read")
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise DataError(f"{where}: slices of different sizes ({size} in {first_file.name}, "
                            f"{(int(ds.Rows), int(ds.Columns))} in {file.name})")  # fmt: skip
        if np.abs(_floats(ds, "ImageOrientationPatient", 6, where, file) - orientation).max() > ORIENTATION_TOLERANCE:
            raise DataError(f"{where}: slices with different orientations ({first_file.name}, {file.name})")
        if np.abs(_floats(ds, "PixelSpacing", 2, where, file) - spacing).max() > SPACING_TOLERANCE_MM:
            raise DataError(f"{where}: slices with different pixel spacings ({first_file.name}, {file.name})")
        positions.append(_floats(ds, "ImagePositionPatient", 3, where, file))
    row, column = orientation[:3], orientation[3:]
    if max(abs(row @ column), abs(row @ row - 1), abs(column @ column - 1)) > 1e-3:
        raise DataError(f"{where}: ImageOrientationPatient {list(orientation)} is not two orthonormal directions")
    row, column = row / np.linalg.norm(row), column / np.linalg.norm(column)
    normal = np.cross(row, column)
    positions = np.array(positions)
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    gaps = np.diff(along)
    median = float(np.median(gaps))
    if gaps.min() <= SPACING_TOLERANCE_MM:
        k = int(np.argmin(gaps))
        raise DataError(
            f"{where}: two slices at the same position ({along[k]:.4g} mm along the normal): several "
            "acquisitions, echoes or time points in one series; split them into separate series"
        )
    if np.abs(gaps - median).max() > SLICE_GAP_TOLERANCE * median:
        k = int(np.argmax(np.abs(gaps - median)))
        raise DataError(
            f"{where}: uneven slice spacing (a gap of {gaps[k]:.4g} mm after the slice at {along[k]:.4g} mm, "
            f"{median:.4g} mm elsewhere): a slice is missing or the series mixes stacks"
        )
    drift = positions - positions[0] - np.outer(along - along[0], normal)
    tilt = math.degrees(math.atan2(float(np.linalg.norm(drift[-1])), float(along[-1] - along[0])))
    if tilt > TILT_TOLERANCE_DEG:
        raise DataError(
            f"{where}: the slices are not stacked along their normal (tilted by {tilt:.2g} degrees, e.g. gantry "
            "tilt); resample the series onto a regular grid first (dcm2niix corrects gantry tilt)"
        )
    lps = np.eye(4)
    lps[:3, 0] = row * spacing[1]
    lps[:3, 1] = column * spacing[0]
    lps[:3, 2] = (positions[-1] - positions[0]) / (len(positions) - 1)
    lps[:3, 3] = positions[0]
    files = tuple(headers[int(k)][0] for k in order)
    return Geometry(files, (size[1], size[0], len(files)), _LPS_TO_RAS @ lps)


def read_series(files: Sequence[Path], where: str) -> nib.Nifti1Image:
    """One series as a NIfTI image in memory: voxels ``(column, row, slice)`` rescaled (float64 when a
    rescale applies), its RAS affine (module docstring). DataError naming ``where`` when unusable.
    """
    headers = []
    for file in files:
        try:
            headers.append((Path(file), pydicom.dcmread(file)))
        except _READ_ERRORS as exc:
            raise DataError(f"{where}: cannot read {Path(file).name} ({type(exc).__name__}: {exc})") from exc
    grid = geometry(headers, where)
    datasets = dict(headers)
    slices = []
    for file in grid.files:
        ds = datasets[file]
        try:
            pixels = ds.pixel_array
        except (NotImplementedError, RuntimeError, ValueError, AttributeError, KeyError) as exc:
            syntax = ds.file_meta.get("TransferSyntaxUID", "unknown")
            raise DataError(
                f"{where}: cannot decode the pixel data of {file.name} (transfer syntax "
                f"{getattr(syntax, 'name', syntax)}: {exc}); decompress the series first (e.g. gdcmconv --raw)"
            ) from exc
        slices.append(apply_rescale(pixels, ds).T)
    return nib.Nifti1Image(np.stack(slices, axis=-1), grid.affine)


def load_series(file: str | Path) -> nib.Nifti1Image:
    """The series a manifest's ``source_file`` names (a folder, or ``<folder>/<SeriesInstanceUID>``)."""
    path = Path(file)
    folder, uid = (path, None) if path.is_dir() else (path.parent, path.name)
    found = scan(str(folder))
    matches = [s for s in found.series if uid is None or s.uid == uid]
    if len(matches) != 1:
        raise DataError(f"{file}: {len(matches)} DICOM series found there, expected one")
    return read_series(matches[0].files, str(file))


def canonical_affine(affine: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """The affine of ``nibabel.as_closest_canonical`` of an image with this affine and shape."""
    orientation = nib.orientations.io_orientation(affine)
    return affine @ nib.orientations.inv_ornt_aff(orientation, tuple(shape[:3]))


def check_on_grid(label_file: str, image: nib.Nifti1Image, where: str) -> None:
    """DataError naming ``label_file`` and the series ``where`` when the label NIfTI is not on its grid
    (shape or affine, both compared after reorientation to RAS).
    """
    stored = nib.load(label_file)
    shape = tuple(int(n) for n in np.asarray(stored.shape[:3])[_axes(stored.affine)])
    wanted = tuple(int(n) for n in np.asarray(image.shape[:3])[_axes(image.affine)])
    if shape != wanted:
        raise DataError(f"{label_file}: label size {shape} (RAS) differs from the size {wanted} of the series {where}")
    label_affine = canonical_affine(stored.affine, stored.shape)
    difference = float(np.abs(label_affine - canonical_affine(image.affine, image.shape)).max())
    if difference > GRID_TOLERANCE_MM:
        raise DataError(
            f"{label_file}: not on the voxel grid of the series {where} (affines differ by up to {difference:.3g} mm "
            "after reorientation to RAS); resample the labels onto the series"
        )


def _label_path(template: str, series: Series, source: str) -> str:
    """A label path template filled in for a series (see :class:`DicomPreparer`)."""
    try:
        return str(Path(template.format(stem=series.key, name=series.folder.name, source=source)).expanduser())
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(f"label path '{template}': use only {{stem}}, {{name}} and {{source}} ({exc})") from exc


def _axes(affine: np.ndarray) -> np.ndarray:
    """For each RAS axis, the stored axis that becomes it in ``as_closest_canonical``."""
    return np.argsort(nib.orientations.io_orientation(affine)[:, 0])


class DicomPreparer(VolumePreparer):
    """Prepare a folder of DICOM series (CT or MR) with label NIfTI files; settings as
    :class:`~sam4med.prepare.volumes.VolumePreparer`, except:

    Args:
        images: a folder (searched recursively) or a glob pattern of DICOM files.
        label_maps: ``path`` templates name a NIfTI file per series: ``{stem}`` = the series key,
            ``{name}`` = its folder's name, ``{source}`` = its patient id.
        modality: of every series (e.g. ``CT``).
        source_pattern: regex picking the patient id out of the series key (default: ``PatientID``).
    """

    def settings(self) -> dict:
        """As the volume preparer's, of kind ``dicom``."""
        return {**super().settings(), "kind": "dicom"}

    @cached_property
    def _scan(self) -> Scan:
        return scan(self.images)

    def inputs(self) -> list[Input]:
        """One input per series, and one per file that is not a DICOM image (recorded as skipped)."""
        found = [Input(s.key, s.file) for s in self._scan.series]
        return found + [Input(f"not-an-image-{k}", file) for k, (file, _) in enumerate(self._scan.not_images)]

    def _volumes(self, path: Path) -> list[Volume]:
        """The one volume of the series ``path`` names (its ``Series.file``); DataError for other inputs."""
        reasons = dict(self._scan.not_images)
        if str(path) in reasons:
            raise DataError(f"{path}: {reasons[str(path)]}")
        series = next(s for s in self._scan.series if s.file == str(path))
        if not isinstance(self.modality, str) and len(self.modality) != 1:
            raise DataError(f"{path}: one series but {len(self.modality)} modalities in the config")
        modality = self.modality if isinstance(self.modality, str) else self.modality[0]
        source = source_of(series.key, self.source_pattern) if self.source_pattern else series.patient or series.key
        stored = read_series(series.files, series.file)
        image = nib.as_closest_canonical(stored)
        labels, files = {}, {}
        for spec in self.specs:
            files[spec.name] = _label_path(spec.path, series, source)
            labels[spec.name], _, _ = read_nifti(Path(files[spec.name]))
            check_on_grid(files[spec.name], stored, series.file)
        zooms = tuple(round(float(z), 6) for z in image.header.get_zooms()[:3])
        data = np.asarray(image.dataobj)
        # the series' own affine (voxels column x row x slice) is recorded with the slices: masks go back onto it
        return [Volume(series.key, source, modality, data, labels, zooms, series.file, files, affine=stored.affine)]
