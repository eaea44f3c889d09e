"""Inputs at the edge of what a preparer accepts: infinite intensities or labels, two inputs of one name."""

import csv

import numpy as np
import pytest
import tifffile
from PIL import Image

from sam4med.dataset_format import read_manifest
from sam4med.errors import DataError
from sam4med.prepare.images import ImageFolderPreparer
from sam4med.prepare.volumes import VolumePreparer
from tests.prepare.volumes import phantom, preparer_settings, save

LABELS = np.zeros((32, 40), dtype=np.uint8)
LABELS[5:15, 5:20] = 1


def skips(root):
    with (root / "skipped.csv").open() as handle:
        return {row["file"].rsplit("/", 1)[-1]: row["reason"] for row in csv.DictReader(handle)}


def prepare_2d(tmp_path, images: dict[str, np.ndarray], labels: dict[str, np.ndarray] | None = None):
    """Prepare ``images`` (file name -> array, TIFF or PNG) with a label image of the same stem each."""
    src = tmp_path / "in"
    (src / "img").mkdir(parents=True)
    (src / "lab").mkdir()
    for name, array in images.items():
        if name.endswith(".tif"):
            tifffile.imwrite(src / "img" / name, array)
        else:
            Image.fromarray(array).save(src / "img" / name)
        stem = name.rsplit(".", 1)[0]
        label = (labels or {}).get(stem, LABELS)
        tifffile.imwrite(src / "lab" / f"{stem}.tif", label)
    preparer = ImageFolderPreparer(
        name="edge", images=str(src / "img" / "*"), modality="X",
        label_maps=[{"name": "m", "path": str(src / "lab" / "{stem}.tif"), "objects": {1: "A"}}],
    )  # fmt: skip
    return preparer(tmp_path / "out")


def grey(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (32, 40)).astype(np.uint8)


@pytest.mark.parametrize("value", [np.inf, -np.inf], ids=["inf", "minus_inf"])
def test_an_image_with_infinite_intensities_is_a_recorded_skip(tmp_path, value):
    bad = np.where(LABELS == 1, value, 1.0).astype(np.float32)
    root = prepare_2d(tmp_path, {"good.png": grey(), "bad.tif": bad})
    assert [r.image_id for r in read_manifest(root)] == ["good"]
    assert list(skips(root)) == ["bad.tif"] and "image holds NaN or infinite values" in skips(root)["bad.tif"]


def test_a_volume_with_infinite_intensities_is_a_recorded_skip(tmp_path):
    src = tmp_path / "in"
    image, labels = phantom()
    for name in ("good", "inf"):
        save(src / "labels" / f"{name}.nii.gz", labels)
    save(src / "images" / "good.nii.gz", image)
    save(src / "images" / "inf.nii.gz", np.where(labels == 1, np.inf, image).astype(np.float32))
    root = VolumePreparer(**preparer_settings(src))(tmp_path / "out")
    assert {r.source for r in read_manifest(root)} == {"good"}
    assert "volume holds NaN or infinite values" in skips(root)["inf.nii.gz"]


def test_a_label_image_with_infinite_values_is_a_recorded_skip(tmp_path):
    bad_labels = LABELS.astype(np.float32)
    bad_labels[0, 0] = np.inf
    root = prepare_2d(tmp_path, {"good.png": grey(), "bad.png": grey(1)}, labels={"bad": bad_labels})
    assert [r.image_id for r in read_manifest(root)] == ["good"]
    assert "lab/bad.tif: label values include NaN or infinity" in skips(root)["bad.png"]


def test_two_inputs_of_one_name_are_refused_before_anything_is_written(tmp_path):
    with pytest.raises(DataError, match=r"inputs share the names \['scan'\]; image ids would collide"):
        prepare_2d(tmp_path, {"scan.png": grey(), "scan.tif": grey(1)})
    assert not (tmp_path / "out" / "manifest.csv").exists()
