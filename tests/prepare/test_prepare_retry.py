"""A finished folder is never silently taken for other settings; a failed preparation can be re-run after the fix."""

import pytest

from sam4med.errors import DataError
from sam4med.prepare.volumes import VolumePreparer
from tests.prepare.volumes import preparer_settings, volume_folder


def files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def inputs(tmp_path):
    return volume_folder(tmp_path / "in", n=2)


@pytest.mark.parametrize(
    "change, named",
    [({"modality": "MR"}, "modality: 'CT' there, 'MR' now"), ({"plane": "coronal"}, "plane"),
     ({"intensity": {"mode": "window", "window": [-100, 200]}}, "intensity")],
)  # fmt: skip
def test_a_finished_folder_with_other_settings_is_refused(inputs, tmp_path, change, named):
    root = VolumePreparer(**preparer_settings(inputs))(tmp_path / "out")
    before = files(root)
    with pytest.raises(DataError, match=rf"out: already prepared with other settings \({named}"):
        VolumePreparer(**preparer_settings(inputs, **change))(root)
    assert files(root) == before


def test_a_failed_preparation_is_replaced_when_run_again_with_the_corrected_config(inputs, tmp_path):
    wrong = {"name": "organs", "path": str(inputs / "nolabels" / "{name}"), "objects": {1: "Ball", 2: "Rod", 3: "Dot"}}
    with pytest.raises(DataError, match="no image was prepared"):
        VolumePreparer(**preparer_settings(inputs, label_maps=[wrong]))(tmp_path / "out")
    assert (tmp_path / "out" / ".prepare.json").is_file()  # the partial output of the failed run
    root = VolumePreparer(**preparer_settings(inputs))(tmp_path / "out")
    assert files(root) == files(VolumePreparer(**preparer_settings(inputs))(tmp_path / "fresh"))


def test_a_failed_preparation_reads_its_inputs_again_after_they_are_fixed(inputs, tmp_path):
    labels = sorted((inputs / "labels").iterdir())
    for path in labels:
        path.rename(path.with_suffix(".moved"))
    with pytest.raises(DataError, match="no image was prepared"):
        VolumePreparer(**preparer_settings(inputs))(tmp_path / "out")
    for path in labels:
        path.with_suffix(".moved").rename(path)
    root = VolumePreparer(**preparer_settings(inputs))(tmp_path / "out")
    assert files(root) == files(VolumePreparer(**preparer_settings(inputs))(tmp_path / "fresh"))


def test_a_partial_folder_holding_other_files_is_still_refused(inputs, tmp_path):
    wrong = {"name": "organs", "path": str(inputs / "nolabels" / "{name}"), "objects": {1: "Ball"}}
    with pytest.raises(DataError):
        VolumePreparer(**preparer_settings(inputs, label_maps=[wrong]))(tmp_path / "out")
    (tmp_path / "out" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty and not a dataset under preparation"):
        VolumePreparer(**preparer_settings(inputs))(tmp_path / "out")
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"
