"""Preparation of NIfTI volumes: slice rule, planes, orientation, 4D, windowing, exclusions, resuming."""

import csv

import numpy as np
import pytest

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import read_info, read_manifest
from sam4med.errors import ConfigError, DataError
from sam4med.prepare.volumes import VolumePreparer, view
from tests.prepare.volumes import SPACING, phantom, preparer_settings, save, volume_folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return volume_folder(tmp_path_factory.mktemp("inputs"))


def skipped(root):
    with (root / "skipped.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_axial_slices_follow_the_label_rule(inputs, tmp_path):
    root = VolumePreparer(**preparer_settings(inputs))(tmp_path / "out")
    records = read_manifest(root)
    for k in range(3):
        _, labels = phantom(seed=k)
        expected = [z for z in range(labels.shape[2]) if labels[:, :, z].sum() > 50]
        assert [r.slice_index for r in records if r.source == f"case{k}"] == expected
    first = records[0]
    assert first.image_id == f"case0_z{first.slice_index:03d}"
    assert first.modality == "CT" and first.spacing == SPACING[:2] and first.size == (28, 24)
    assert first.source_file.endswith("case0.nii.gz")
    info = read_info(root)
    assert info.label_maps[0].objects == {1: "Ball", 2: "Rod", 3: "Dot"}
    assert info.preparation["plane"] == "axial"
    assert not (root / ".parts").exists() and not (root / ".prepare.json").exists()
    assert not list(root.rglob("*.tmp"))


def test_slice_content_and_orientation(inputs, tmp_path):
    root = VolumePreparer(**preparer_settings(inputs))(tmp_path / "out")
    dataset = CosmosDataset(root)
    item = dataset[2]
    z = item.record.slice_index
    image, labels = phantom(seed=0)
    ball = [i for i, o in enumerate(item.objects) if o.object_name == "Ball"][0]
    # rows run along Y with anterior (high Y) at the top, columns along X
    np.testing.assert_array_equal(item.masks[ball], np.rot90(labels[:, :, z] == 1))
    expected = np.rot90(image[:, :, z])
    expected = np.round((expected - expected.min()) / (expected.max() - expected.min()) * 255)
    np.testing.assert_array_equal(item.image[:, :, 0], expected.astype(np.uint8))
    assert dict(zip([o.object_name for o in item.objects], item.masks.sum((1, 2)), strict=True)) == {
        name: int((labels[:, :, z] == v).sum())
        for v, name in ((1, "Ball"), (2, "Rod"), (3, "Dot"))
        if (labels[:, :, z] == v).any()
    }


@pytest.mark.parametrize(("plane", "axis", "letter"), [("coronal", 1, "y"), ("sagittal", 0, "x")])
def test_other_planes(inputs, tmp_path, plane, axis, letter):
    root = VolumePreparer(**preparer_settings(inputs, plane=plane))(tmp_path / "out")
    records = [r for r in read_manifest(root) if r.source == "case0"]
    _, labels = phantom(seed=0)
    expected = [i for i in range(labels.shape[axis]) if np.take(labels, i, axis).sum() > 50]
    assert [r.slice_index for r in records] == expected
    assert records[0].image_id == f"case0_{letter}{expected[0]:03d}"
    in_plane = [a for a in range(3) if a != axis]
    assert records[0].spacing == (SPACING[in_plane[0]], SPACING[in_plane[1]])
    sliced = view(np.take(labels, expected[0], axis))
    assert records[0].size == sliced.shape


def test_4d_volume_becomes_n_volumes_of_one_source(tmp_path):
    images = np.stack([phantom(seed=s)[0] for s in range(2)], axis=-1)
    _, labels = phantom()
    save(tmp_path / "in" / "images" / "mp.nii.gz", images)
    save(tmp_path / "in" / "labels" / "mp.nii.gz", labels)
    settings = preparer_settings(tmp_path / "in", modality=["T1W MRI", "T2W MRI"])
    records = read_manifest(VolumePreparer(**settings)(tmp_path / "out"))
    assert {r.source for r in records} == {"mp"}
    assert {r.image_id.split("_")[1] for r in records} == {"v0", "v1"}
    assert {r.modality for r in records if "_v1_" in r.image_id} == {"T2W MRI"}


def test_windowing_is_a_recorded_step(inputs, tmp_path):
    settings = preparer_settings(inputs, intensity={"mode": "window", "window": [-600, 0]})
    root = VolumePreparer(**settings)(tmp_path / "out")
    assert read_info(root).preparation["intensity"] == {"mode": "window", "window": [-600.0, 0.0]}
    item = CosmosDataset(root)[0]
    image, _ = phantom(seed=0)
    raw = np.rot90(image[:, :, item.record.slice_index])
    expected = np.round((np.clip(raw, -600, 0) + 600) / 600 * 255).astype(np.uint8)
    np.testing.assert_array_equal(item.image[:, :, 0], expected)


def test_exclusion_rules_are_recorded(inputs, tmp_path):
    settings = preparer_settings(inputs, min_object_area=4, max_components=1)
    root = VolumePreparer(**settings)(tmp_path / "out")
    rows = skipped(root)
    dots = [r for r in rows if r["object"] == "Dot"]
    assert dots and all("min_object_area 4" in r["reason"] for r in dots)
    assert all(r["file"].endswith(".nii.gz") and r["image_id"] for r in rows)
    names = {e.name for r in read_manifest(root) for e in r.objects}
    assert "Dot" not in names and {"Ball", "Rod"} <= names


def test_dispersed_objects_are_removed(tmp_path):
    image, labels = phantom()
    labels[labels == 3] = 0
    for x in range(2, 22, 4):  # object 3: five separate bars in every slice
        labels[x, 20:26, :] = 3
    save(tmp_path / "in" / "images" / "d.nii.gz", image)
    save(tmp_path / "in" / "labels" / "d.nii.gz", labels)
    root = VolumePreparer(**preparer_settings(tmp_path / "in", max_components=3))(tmp_path / "out")
    assert "Dot" not in {e.name for r in read_manifest(root) for e in r.objects}
    assert {r["reason"] for r in skipped(root) if r["object"] == "Dot"} == {"5 pieces > max_components 3"}


def test_values_sharing_a_name_merge_and_others_can_be_dropped(inputs, tmp_path):
    maps = [{"name": "organs", "path": str(inputs / "labels" / "{name}"), "objects": {1: "Thing", 2: "Thing"},
             "drop_unnamed": True}]  # fmt: skip
    root = VolumePreparer(**preparer_settings(inputs, label_maps=maps))(tmp_path / "out")
    assert read_info(root).label_maps[0].objects == {1: "Thing"}
    item = CosmosDataset(root)[1]
    _, labels = phantom(seed=0)
    assert item.masks[0].sum() == np.isin(labels[:, :, item.record.slice_index], [1, 2]).sum()


def test_complete_folder_is_left_alone_and_other_settings_refused(inputs, tmp_path):
    root = VolumePreparer(**preparer_settings(inputs))(tmp_path / "out")
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    VolumePreparer(**preparer_settings(inputs))(root)
    assert before == {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    with pytest.raises(DataError, match="already prepared with other settings"):
        VolumePreparer(**preparer_settings(inputs, modality="MR"))(root)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        VolumePreparer(**preparer_settings(inputs))(tmp_path / "busy")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"plane": "oblique"}, "plane must be one of"),
        ({"images": "/nowhere/*.nii.gz"}, "matches no file"),
        ({"label_maps": [{"name": "a/b", "path": "x", "objects": {1: "A"}}]}, "may hold only"),
        ({"label_maps": [{"name": "a", "path": "x"}]}, "exactly one of"),
        ({"label_maps": [{"name": "a", "path": "x", "objects": {1: "A;B"}}]}, "without ';'"),
        ({"intensity": {"mode": "window"}}, "needs window"),
    ],
)
def test_bad_settings_fail_clearly(inputs, tmp_path, change, message):
    with pytest.raises(ConfigError, match=message):
        VolumePreparer(**preparer_settings(inputs, **change))(tmp_path / "out")


def test_one_bad_volume_of_a_4d_file_is_skipped_alone(tmp_path):
    image, labels = phantom()
    save(tmp_path / "in" / "images" / "mp.nii.gz", np.stack([image, np.zeros_like(image)], axis=-1))
    save(tmp_path / "in" / "labels" / "mp.nii.gz", labels)
    root = VolumePreparer(**preparer_settings(tmp_path / "in"))(tmp_path / "out")
    assert {r.image_id.split("_")[1] for r in read_manifest(root)} == {"v0"}
    assert [r["reason"] for r in skipped(root)] == ["volume 1: constant volume (every voxel is 0.0)"]
