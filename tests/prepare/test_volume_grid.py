"""Volume grids: what the volume preparer records of each source volume, the way back from slices to the
source grid, and the preparer option that keeps each structure's whole extent."""

import nibabel as nib
import numpy as np
import pytest

from sam4med.dataset_format import label_path, load_labels, read_manifest
from sam4med.errors import ConfigError, DataError
from sam4med.prepare.volumes import VolumePreparer
from sam4med.volume_grid import VolumeGrid, from_volumes, grid_path, has_grids, read_grids
from tests.prepare.volumes import phantom, preparer_settings

# stored axes: i -> -Z (2 mm), j -> -X (0.8 mm), k -> +Y (0.9 mm): reoriented to RAS when prepared
OBLIQUE = np.array([[0, -0.8, 0, 12.0], [0, 0, 0.9, -5.0], [-2.0, 0, 0, 30.0], [0, 0, 0, 1]])
SHAPE = (12, 24, 28)  # stored; RAS: X 24, Y 28, Z 12


def write_sources(root, affine=OBLIQUE, n=2):
    """``root/images/case<k>.nii.gz`` and labels on ``affine``: the phantom of tests/prepare/volumes.py, stored
    with its axes permuted and flipped as ``affine`` says."""
    for k in range(n):
        image, labels = phantom(shape=(24, 28, 12), seed=k)  # RAS X x Y x Z
        for folder, array in (("images", image), ("labels", labels)):
            (root / folder).mkdir(parents=True, exist_ok=True)
            stored = np.flip(np.transpose(array, (2, 0, 1)), axis=(0, 1))  # (Z, X, Y), Z and X reversed
            nib.save(nib.Nifti1Image(stored, affine), str(root / folder / f"case{k}.nii.gz"))
    return root


def preparer(root, **extra):
    return VolumePreparer(**preparer_settings(root, **extra))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """(sources, dataset folder) prepared with whole_extent: every slice holding a label."""
    sources = write_sources(tmp_path_factory.mktemp("sources"))
    return sources, preparer(sources, whole_extent=True)(tmp_path_factory.mktemp("whole"))


def test_the_grid_records_the_source_geometry_and_each_structure_extent(prepared):
    sources, root = prepared
    grids = read_grids(root)
    assert sorted(grids) == ["case0", "case1"]
    grid = grids["case0"]
    assert grid.axis == 2 and grid.shape == (24, 28, 12) and grid.stored_shape == SHAPE
    assert grid.spacing == pytest.approx((0.8, 0.9, 2.0))
    assert np.allclose(np.asarray(grid.affine), OBLIQUE)
    assert grid.image_size == (28, 24)
    _, labels = phantom(shape=(24, 28, 12), seed=0)
    for value in (1, 2, 3):  # the slices (RAS Z) holding each value, counted by hand
        assert grid.extent["organs"][value] == tuple(np.flatnonzero((labels == value).any(axis=(0, 1))))
    manifest = {r.image_id: r.slice_index for r in read_manifest(root) if r.image_id.startswith("case0_")}
    assert dict(grid.images) == manifest
    assert VolumeGrid.from_json(grid.to_json(), "here") == grid


def test_slices_stacked_back_give_the_source_label_volume_voxel_for_voxel(prepared):
    """The round trip: prepared label PNGs -> rot90 undone -> RAS stack -> the file's own voxel order."""
    sources, root = prepared
    grid = read_grids(root)["case1"]
    slices = {index: load_labels(label_path(root, "organs", image_id)) for image_id, index in grid.images.items()}
    stored = grid.to_stored(grid.stack(slices, dtype=np.uint8))
    source = np.asarray(nib.load(str(sources / "labels" / "case1.nii.gz")).dataobj)
    assert stored.shape == SHAPE
    assert np.array_equal(stored, source)  # whole_extent: every slice with a label was prepared


def test_whole_extent_keeps_the_slices_the_label_sum_rule_drops(prepared, tmp_path):
    sources, root = prepared
    default = read_grids(preparer(sources)(tmp_path / "default"))["case0"]  # min_label_sum 50
    whole = read_grids(root)["case0"]
    extent = set().union(*map(set, whole.extent["organs"].values()))
    assert set(whole.images.values()) == extent
    dropped = extent - set(default.images.values())
    _, labels = phantom(shape=(24, 28, 12), seed=0)
    sums = labels.sum(axis=(0, 1))
    assert dropped == {z for z in extent if sums[z] <= 50} and dropped  # the rule's, kept by whole_extent


def test_whole_extent_refuses_every_nth_slice(tmp_path):
    with pytest.raises(ConfigError, match="every_nth_slice=1"):
        preparer(tmp_path, whole_extent=True, every_nth_slice=2)


def test_whole_extent_is_recorded_only_when_set(tmp_path):
    """Folders prepared before the option keep their recorded settings (no 'prepared with other settings')."""
    assert "whole_extent" not in preparer(tmp_path).settings()
    assert preparer(tmp_path, whole_extent=True).settings()["whole_extent"] is True


def test_a_folder_without_grids_is_recognised_as_prepared_from_volumes(prepared, tmp_path):
    _, root = prepared
    assert has_grids(root) and grid_path(root, "case0").is_file()
    assert not has_grids(tmp_path) and read_grids(tmp_path) == {}
    assert from_volumes(read_manifest(root))


def test_a_grid_refuses_a_slice_of_another_size(prepared):
    grid = read_grids(prepared[1])["case0"]
    with pytest.raises(DataError, match="does not fit its grid"):
        grid.stack({3: np.zeros((24, 28), dtype=bool)})
