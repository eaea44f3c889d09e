"""The files ``predict.py`` segments, read into the images the model sees exactly as a prepared dataset's are.

Inputs are 2D images (PNG, JPEG, BMP, TIFF) and 3D NIfTI volumes (``.nii``, ``.nii.gz``): one file, or
every such file directly in a folder (sorted by name; other files are ignored).

* A 2D image is read by the 2D preparer's reader (:func:`sam4med.prepare.images.read_image`: RGB stays
  RGB, alpha dropped, palettes expanded) and its intensity rule (``auto`` by default: 8-bit kept, 16-bit
  or float min-max normalised).
* A volume is reoriented to RAS and cut along the slice axis of ``plane`` as the volume preparer does
  (:mod:`sam4med.prepare.volumes`: slice ``k`` is ``rot90`` of the RAS slice, superior/anterior up), each
  slice under the preparer's intensity rule (``minmax`` per slice by default, or a CT/MR ``window``).
* Then, as :class:`~sam4med.data.dataset.CosmosDataset` reads a prepared PNG: grey repeated to three
  channels, and with ``clip_percentiles`` the COSMOS authors' percentile clipping.

So an image prepared by ``prepare.py`` and the same source given to ``predict.py`` under the same settings
reach the encoder as the same array. A volume's grid is the preparer's
(:class:`sam4med.volume_grid.VolumeGrid`, read from the file's header), which puts the slices' masks back
onto the file's own voxel grid (its stored orientation, shape and affine).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import io_orientation

from sam4med.data.intensity_clip import check_percentiles, clip_percentiles
from sam4med.dataset_format import png_size
from sam4med.errors import ConfigError, DataError
from sam4med.prepare.images import read_image, read_labels
from sam4med.prepare.inputs import file_stem, safe_id
from sam4med.prepare.intensity import Intensity
from sam4med.prepare.labels import whole_numbers
from sam4med.prepare.volumes import DEFAULT_INTENSITY, PLANES, check_same_grid, plane_slice, read_nifti, view
from sam4med.volume_grid import VolumeGrid

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
VOLUME_SUFFIXES = (".nii.gz", ".nii")
_LETTER = ("x", "y", "z")  # the volume preparer's image ids: <stem>_<letter><slice:03d>


@dataclass(frozen=True)
class InputFile:
    """One input: a 2D image or a 3D NIfTI volume."""

    path: Path

    @property
    def name(self) -> str:
        """The file name (``case01.nii.gz``)."""
        return self.path.name

    @property
    def stem(self) -> str:
        """The file name without its image extension (``case01``): the name of its outputs."""
        return file_stem(self.path)

    @property
    def is_volume(self) -> bool:
        """A NIfTI volume (else a 2D image)."""
        return self.path.name.lower().endswith(VOLUME_SUFFIXES)


def _known(path: Path) -> bool:
    return path.name.lower().endswith(IMAGE_SUFFIXES + VOLUME_SUFFIXES)


def find_inputs(path: str | Path) -> tuple[InputFile, ...]:
    """The input file ``path``, or the image and volume files directly in the folder ``path`` (sorted).

    A missing path, a file of another type, a folder without any, or two inputs whose outputs would share
    a name (``a.png`` and ``a.jpg``) are :class:`ConfigError` naming ``inputs``.
    """
    path = Path(path).expanduser()
    kinds = ", ".join(IMAGE_SUFFIXES + VOLUME_SUFFIXES)
    if path.is_file():
        if not _known(path):
            raise ConfigError(f"inputs={path}: not an image or NIfTI volume (expected one of {kinds})")
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and _known(p))
        if not files:
            raise ConfigError(f"inputs={path}: the folder holds no image or NIfTI volume ({kinds})")
    else:
        raise ConfigError(f"inputs={path}: no such file or folder")
    inputs = tuple(InputFile(p) for p in files)
    stems: dict[str, str] = {}
    for item in inputs:
        if item.stem in stems:
            raise ConfigError(
                f"inputs={path}: {stems[item.stem]} and {item.name} would write masks of one name ({item.stem}); "
                "give them different names or predict them apart"
            )
        stems[item.stem] = item.name
    return inputs


def match_input(name: str, inputs: Sequence[InputFile]) -> InputFile | None:
    """The input whose file name, or name without extension, is ``name`` (None: no such input)."""
    for item in inputs:
        if name == item.name:
            return item
    found = [item for item in inputs if name == item.stem]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class Reading:
    """How an input becomes the model's image: the preparers' rules, then the dataset's (the ``reading`` node).

    Attributes:
        plane: the slice plane of volumes, ``axial`` (default), ``coronal`` or ``sagittal``.
        intensity: the intensity rule (:class:`~sam4med.prepare.intensity.Intensity`), or None for each
            preparer's default: ``auto`` for 2D images, ``minmax`` (per slice) for volumes.
        clip_percentiles: ``(low, high)`` percentile clipping as the dataset reads an image
            (``dataset.clip_percentiles``), or None.
    """

    plane: str = "axial"
    intensity: Intensity | None = None
    clip_percentiles: tuple[float, float] | None = None

    @classmethod
    def build(
        cls,
        plane: str = "axial",
        intensity: Mapping | None = None,
        clip_percentiles: Sequence[float] | None = None,
    ) -> Reading:
        """From config values, checked."""
        if plane not in PLANES:
            raise ConfigError(f"reading.plane must be one of {', '.join(PLANES)}; got '{plane}'")
        rule = None if intensity is None else Intensity.build(**dict(intensity))
        return cls(plane, rule, check_percentiles(clip_percentiles))

    @property
    def axis(self) -> int:
        """The RAS axis the slices are taken along."""
        return PLANES[self.plane]

    def model_image(self, pixels: np.ndarray) -> np.ndarray:
        """A prepared uint8 image (H x W or H x W x 3) as the dataset reads it: H x W x 3 uint8 RGB."""
        rgb = np.repeat(pixels[:, :, None], 3, axis=2) if pixels.ndim == 2 else np.ascontiguousarray(pixels[:, :, :3])
        return clip_percentiles(rgb, *self.clip_percentiles) if self.clip_percentiles is not None else rgb

    def image(self, item: InputFile) -> np.ndarray:
        """A 2D input as the model's H x W x 3 uint8 image."""
        rule = self.intensity or Intensity(mode="auto")
        return self.model_image(rule.apply(read_image(item.path), str(item.path)))

    def slice_image(self, volume: Volume, index: int) -> np.ndarray:
        """Slice ``index`` of a volume as the model's H x W x 3 uint8 image."""
        rule = self.intensity or DEFAULT_INTENSITY
        pixels = view(plane_slice(volume.data, index, volume.grid.axis))
        return self.model_image(rule.apply(pixels, f"{volume.grid.file} slice {index}"))


def image_size(item: InputFile) -> tuple[int, int]:
    """(H, W) of a 2D input, from its header where Pillow reads it (TIFFs are read whole)."""
    if item.path.suffix.lower() in (".tif", ".tiff"):
        return read_image(item.path).shape[:2]
    return png_size(item.path)


def slice_image_id(grid: VolumeGrid, index: int) -> str:
    """The id the volume preparer gives slice ``index`` of a 3D volume (``<stem>_z045``), used in prompt seeds."""
    return f"{grid.key}_{_LETTER[grid.axis]}{index:03d}"


def volume_grid(path: Path, axis: int) -> VolumeGrid:
    """The grid of a 3D NIfTI file, from its header (no voxels read), as the volume preparer records it
    (:class:`sam4med.volume_grid.VolumeGrid`: RAS shape and spacing, slice axis, stored affine and shape;
    no prepared images); a 4D or unreadable file is a :class:`DataError`.
    """
    try:
        stored = nib.load(str(path))
    except Exception as exc:  # nibabel raises many kinds for a damaged header
        raise DataError(f"{path}: cannot read NIfTI ({type(exc).__name__}: {exc})") from exc
    shape = tuple(int(s) for s in stored.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise DataError(f"{path}: predict.py takes 3D volumes, got shape {shape} (split a 4D file into 3D volumes)")
    zooms = stored.header.get_zooms()[:3]
    ras_shape, ras_spacing = [0, 0, 0], [0.0, 0.0, 0.0]
    for source_axis, (ras_axis, _) in enumerate(io_orientation(stored.affine)):
        ras_shape[int(ras_axis)] = shape[source_axis]
        ras_spacing[int(ras_axis)] = round(float(zooms[source_axis]), 6)
    key = safe_id(file_stem(path))
    affine = tuple(tuple(float(v) for v in row) for row in np.asarray(stored.affine, dtype=np.float64))
    return VolumeGrid(
        key=key,
        source=key,
        file=str(path),
        frame=None,
        axis=axis,
        shape=tuple(ras_shape),
        spacing=tuple(ras_spacing),
        images={},
        affine=affine,
        stored_shape=shape,
    )


@dataclass(frozen=True, eq=False)
class Volume:
    """A volume's RAS voxels (X x Y x Z) and its grid."""

    data: np.ndarray = field(repr=False)
    grid: VolumeGrid


def read_volume(grid: VolumeGrid) -> Volume:
    """The voxels of the file of ``grid``, reoriented to RAS as the volume preparer reads them."""
    data, _, _ = read_nifti(Path(grid.file))
    if data.ndim == 4:
        data = data[..., 0]
    if data.shape != grid.shape:
        raise DataError(f"{grid.file}: read as {data.shape}, its header says {grid.shape}")
    return Volume(data, grid)


def read_label_image(path: Path, shape: tuple[int, int], image: str) -> np.ndarray:
    """A 2D label image (H x W whole numbers >= 0) of the input ``image`` of (H, W) ``shape``."""
    labels = whole_numbers(read_labels(path), str(path))
    if labels.shape != tuple(shape):
        raise DataError(f"{path}: label size {labels.shape} differs from image size {tuple(shape)} of {image}")
    return labels


def read_label_volume(path: Path, grid: VolumeGrid) -> np.ndarray:
    """A label volume on ``grid`` (the same stored affine and shape), reoriented to RAS like its image."""
    data, _, affine = read_nifti(path)
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.shape != grid.shape:
        raise DataError(f"{path}: label size {data.shape} differs from the size {grid.shape} of {grid.file}")
    check_same_grid(affine, np.asarray(grid.affine), str(path), grid.file)
    return whole_numbers(data, str(path))


def label_slice(labels: np.ndarray, grid: VolumeGrid, index: int) -> np.ndarray:
    """Slice ``index`` of a RAS label volume as its slice image is shown (H x W)."""
    return view(plane_slice(labels, index, grid.axis))
