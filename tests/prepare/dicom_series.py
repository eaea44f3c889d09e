"""Small synthetic DICOM series (written with pydicom) and their NIfTI twins, for the preparation tests."""

from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)  # rows run to the patient's left, columns to posterior (LPS)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)  # rows run to posterior, columns down


@dataclass(frozen=True)
class SeriesSpec:
    """Geometry and intensity scaling of a synthetic CT series.

    Attributes:
        orientation: ImageOrientationPatient (row direction, column direction), LPS.
        origin: ImagePositionPatient of the first slice along the normal, LPS mm.
        pixel_spacing: PixelSpacing (between rows, between columns) in mm.
        step: distance between slices along the normal in mm.
        slope, intercept: RescaleSlope / RescaleIntercept (stored value -> HU).
        tilt: in-plane shift (LPS mm) added per slice (gantry tilt).
        drop: slices (by position) not written (a missing slice).
    """

    orientation: tuple[float, ...] = AXIAL
    origin: tuple[float, float, float] = (-12.5, 20.0, -40.0)
    pixel_spacing: tuple[float, float] = (0.9, 0.8)
    step: float = 2.0
    slope: float = 2.0
    intercept: float = -1024.0
    tilt: tuple[float, float, float] = (0.0, 0.0, 0.0)
    drop: tuple[int, ...] = field(default=())


def phantom(shape=(32, 28, 8), seed=0):
    """(stored uint16 values, labels int16), both indexed [column, row, slice]: a ball (1) and a box (2)."""
    rng = np.random.default_rng(seed)
    c, r, k = np.mgrid[: shape[0], : shape[1], : shape[2]]
    labels = np.zeros(shape, dtype=np.int16)
    labels[(c - 10) ** 2 + (r - 12) ** 2 + ((k - 4) * 3) ** 2 <= 40] = 1
    labels[20:27, 5:11, 2:7] = 2
    stored = rng.integers(400, 600, size=shape) + 300 * (labels == 1) + 150 * (labels == 2)
    return stored.astype(np.uint16), labels


def ras_affine(spec: SeriesSpec, shape) -> np.ndarray:
    """The affine (voxel [column, row, slice] -> RAS mm) of a series, computed here independently of sam4med."""
    row, column = np.array(spec.orientation[:3]), np.array(spec.orientation[3:])
    lps = np.eye(4)
    lps[:3, 0] = row * spec.pixel_spacing[1]
    lps[:3, 1] = column * spec.pixel_spacing[0]
    lps[:3, 2] = np.cross(row, column) * spec.step
    lps[:3, 3] = spec.origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_series(folder: Path, stored: np.ndarray, spec: SeriesSpec = SeriesSpec(), *, patient="case0", number=1):
    """Write ``stored`` ([column, row, slice] uint16) as one CT series in ``folder``, one file per slice.

    File names and InstanceNumber are shuffled (neither follows the slice position) and the files are
    written in yet another order. Returns the SeriesInstanceUID.
    """
    folder.mkdir(parents=True, exist_ok=True)
    row, column = np.array(spec.orientation[:3]), np.array(spec.orientation[3:])
    normal = np.cross(row, column)
    n = stored.shape[2]
    rng = np.random.default_rng(number)
    names, instances = rng.permutation(n), rng.permutation(n)
    series, study = generate_uid(), generate_uid()
    for k in rng.permutation(n):
        if k in spec.drop:
            continue
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
        ds.PatientID, ds.Modality = patient, "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study, series, number
        ds.InstanceNumber = int(instances[k]) + 1
        ds.ImageOrientationPatient = [f"{v:g}" for v in spec.orientation]
        position = np.array(spec.origin) + k * spec.step * normal + k * np.array(spec.tilt)
        ds.ImagePositionPatient = [f"{v:.6g}" for v in position]
        ds.PixelSpacing = [f"{v:g}" for v in spec.pixel_spacing]
        ds.RescaleSlope, ds.RescaleIntercept = f"{spec.slope:g}", f"{spec.intercept:g}"
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T).astype("<u2").tobytes()
        ds.save_as(folder / f"IM{number}_{names[k]:04d}", enforce_file_format=True)
    return series


def flipped_twin(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels at the same world positions with the row axis stored the other way round (as
    ``dcm2niix`` stores a series): the array flipped along axis 1, the affine adjusted to match.
    """
    flipped = affine.copy()
    flipped[:3, 1] = -affine[:3, 1]
    flipped[:3, 3] = affine[:3, 3] + (array.shape[1] - 1) * affine[:3, 1]
    return np.ascontiguousarray(array[:, ::-1]), flipped


def save_nifti(path: Path, array: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``array`` with ``affine`` as NIfTI."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), str(path))
    return path
