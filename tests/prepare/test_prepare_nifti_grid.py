"""A label volume must be on its image's voxel grid: a header of another orientation is a recorded skip."""

import csv

import nibabel as nib
import numpy as np
import pytest

from sam4med.dataset_format import read_manifest
from sam4med.prepare.volumes import VolumePreparer
from tests.prepare.volumes import SPACING, phantom, preparer_settings, save


def reasons(root):
    with (root / "skipped.csv").open() as handle:
        return {row["file"].rsplit("/", 1)[-1]: row["reason"] for row in csv.DictReader(handle)}


def flipped_x_affine(shape):
    """The affine of the same voxels stored with the x axis running the other way."""
    affine = np.diag([*SPACING, 1.0])
    affine[0, 0] = -SPACING[0]
    affine[0, 3] = SPACING[0] * (shape[0] - 1)
    return affine


def shifted_affine(shape):
    """The same axes with the origin half a millimetre off."""
    affine = np.diag([*SPACING, 1.0])
    affine[0, 3] = 0.5
    return affine


@pytest.mark.parametrize("affine", [flipped_x_affine, shifted_affine], ids=["x_flipped_header", "shifted_origin"])
def test_label_off_the_image_grid_is_skipped_with_the_reason(tmp_path, affine):
    image, labels = phantom()
    src = tmp_path / "in"
    for name in ("good", "moved"):
        save(src / "images" / f"{name}.nii.gz", image)
        save(src / "labels" / f"{name}.nii.gz", labels)
    path = src / "labels" / "moved.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine(labels.shape)), str(path))
    root = VolumePreparer(**preparer_settings(src))(tmp_path / "out")
    assert {r.source for r in read_manifest(root)} == {"good"}
    reason = reasons(root)["moved.nii.gz"]
    assert "not on the voxel grid of moved.nii.gz" in reason and "resample the labels" in reason


def test_a_tiny_rounding_difference_is_within_the_tolerance(tmp_path):
    image, labels = phantom()
    src = tmp_path / "in"
    save(src / "images" / "case.nii.gz", image)
    affine = np.diag([*SPACING, 1.0])
    affine[:3, 3] = 1e-5
    (src / "labels").mkdir()
    nib.save(nib.Nifti1Image(labels, affine), str(src / "labels" / "case.nii.gz"))
    root = VolumePreparer(**preparer_settings(src))(tmp_path / "out")
    assert {r.source for r in read_manifest(root)} == {"case"}
