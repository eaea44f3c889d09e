"""Bad inputs are skipped (recorded with the file and the reason) and the rest is still prepared;
a bad dataset folder gives an error naming the file."""

import csv
import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import read_manifest
from sam4med.errors import DataError
from sam4med.prepare.images import ImageFolderPreparer
from sam4med.prepare.volumes import VolumePreparer
from tests.prepare.volumes import phantom, preparer_settings, save


def skip_reasons(root):
    with (root / "skipped.csv").open() as handle:
        return {row["file"].rsplit("/", 1)[-1]: row["reason"] for row in csv.DictReader(handle)}


def assert_skips(reasons, expected):
    """Exactly the expected files were skipped, each for a reason containing the expected text."""
    assert set(reasons) == set(expected)
    for name, text in expected.items():
        assert text in reasons[name], (name, reasons[name])


def test_bad_volumes_are_skipped_and_named(tmp_path):
    src = tmp_path / "in"
    image, labels = phantom()
    for name in ("good1", "good2", "mismatch", "outside", "negative", "fraction", "nan", "constant", "empty",
                 "nolabel", "noslice"):  # fmt: skip
        save(src / "images" / f"{name}.nii.gz", image)
        save(src / "labels" / f"{name}.nii.gz", labels)
    good = (src / "images" / "good1.nii.gz").read_bytes()
    (src / "images" / "truncated.nii.gz").write_bytes(good[: len(good) // 2])
    (src / "images" / "garbage.nii.gz").write_bytes(b"not a nifti file at all" * 20)
    save(src / "labels" / "mismatch.nii.gz", labels[:20])
    save(src / "labels" / "outside.nii.gz", np.where(labels == 2, 300, labels).astype(np.int16))
    save(src / "labels" / "negative.nii.gz", np.where(labels == 2, -1, labels).astype(np.int16))
    save(src / "labels" / "fraction.nii.gz", labels.astype(np.float32) * 0.5)
    save(src / "images" / "nan.nii.gz", np.where(labels == 1, np.nan, image).astype(np.float32))
    save(src / "images" / "constant.nii.gz", np.full(image.shape, 7, dtype=np.float32))
    save(src / "labels" / "empty.nii.gz", np.zeros_like(labels))
    (src / "labels" / "nolabel.nii.gz").unlink()
    save(src / "labels" / "noslice.nii.gz", (labels == 3).astype(np.int16))
    root = VolumePreparer(**preparer_settings(src))(tmp_path / "out")

    assert {r.source for r in read_manifest(root)} == {"good1", "good2"}
    reasons = skip_reasons(root)
    expected = {
        "truncated.nii.gz": "cannot read NIfTI",
        "garbage.nii.gz": "cannot read NIfTI",
        "mismatch.nii.gz": "label size (20, 28, 12) differs from image size (24, 28, 12)",
        "outside.nii.gz": "label values [300] are not named in label map 'organs' (1 of them outside 0..255)",
        "negative.nii.gz": "negative label values",
        "fraction.nii.gz": "not whole numbers",
        "nan.nii.gz": "NaN",
        "constant.nii.gz": "constant volume",
        "empty.nii.gz": "empty label map",
        "nolabel.nii.gz": "nolabel.nii.gz: missing",
        "noslice.nii.gz": "no slice has a label sum > 50",
    }
    assert_skips(reasons, expected)


def _png(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_bad_2d_images_are_skipped_and_named(tmp_path):
    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    labels = np.zeros((32, 40), dtype=np.uint8)
    labels[5:15, 5:20] = 1
    labels[20:28, 22:36] = 2
    grey = rng.integers(0, 255, (32, 40)).astype(np.uint8)
    rgb = rng.integers(0, 255, (32, 40, 3)).astype(np.uint8)
    for name in ("grey", "colour", "truncated", "mismatch", "rgblabel", "outside", "constant", "empty", "nan"):
        _png(src / "masks" / f"{name}.png", labels)
    _png(src / "images" / "grey.png", grey)
    _png(src / "images" / "colour.png", rgb)
    _png(src / "images" / "truncated.png", grey)
    data = (src / "images" / "truncated.png").read_bytes()
    (src / "images" / "truncated.png").write_bytes(data[: len(data) // 2])
    for name in ("mismatch", "rgblabel", "outside", "empty"):
        _png(src / "images" / f"{name}.png", grey)
    _png(src / "masks" / "mismatch.png", labels[:30])
    _png(src / "masks" / "rgblabel.png", np.stack([labels, labels * 0, labels], axis=-1))
    _png(src / "masks" / "outside.png", np.where(labels == 2, 300, labels.astype(np.uint16)).astype(np.uint16))
    _png(src / "images" / "constant.png", np.full((32, 40), 9, dtype=np.uint8))
    _png(src / "masks" / "empty.png", np.zeros_like(labels))
    tifffile.imwrite(src / "images" / "nan.tif", np.where(labels == 1, np.nan, 1.0).astype(np.float32))
    preparer = ImageFolderPreparer(
        name="bad2d",
        images=str(src / "images" / "*"),
        label_maps=[{"name": "things", "path": str(src / "masks" / "{stem}.png"), "objects": {1: "A", 2: "B"}}],
        modality="Photo",
    )
    root = preparer(tmp_path / "out")
    records = read_manifest(root)
    assert [r.image_id for r in records] == ["colour", "grey"]
    item = CosmosDataset(root)[0]
    assert item.record.image_id == "colour" and np.array_equal(item.image, rgb)
    reasons = skip_reasons(root)
    expected = {
        "truncated.png": "cannot read image",
        "mismatch.png": "label size (30, 40) differs from image size (32, 40)",
        "rgblabel.png": "must be single-channel",
        "outside.png": "label values [300] are not named",
        "constant.png": "constant image",
        "empty.png": "label images are empty",
        "nan.tif": "NaN",
    }
    assert_skips(reasons, expected)


def test_more_than_255_instances_give_a_16_bit_label_map_and_tiles_still_work(tmp_path):
    labels = np.zeros((40, 80), dtype=np.uint16)
    for k, (r, c) in enumerate((r, c) for r in range(13) for c in range(26)):  # 338 instances of 2 x 2
        labels[r * 3 : r * 3 + 2, c * 3 : c * 3 + 2] = k + 1
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "cells.tif", labels)
    tifffile.imwrite(
        tmp_path / "in" / "img.tif", np.random.default_rng(0).integers(0, 4000, (40, 80)).astype(np.uint16)
    )
    settings = {
        "name": "many",
        "images": str(tmp_path / "in" / "img.tif"),
        "label_maps": [{"name": "cells", "path": str(tmp_path / "in" / "cells.tif"), "instances": "Cell"}],
        "modality": "Microscopy",
    }
    plain = ImageFolderPreparer(**settings)(tmp_path / "plain")
    assert [len(r.objects) for r in read_manifest(plain)] == [338]
    assert Image.open(plain / "labels" / "cells" / "img.png").mode == "I;16"
    assert len(CosmosDataset(plain)[0].objects) == 338
    root = ImageFolderPreparer(**settings, tiles=(1, 2))(tmp_path / "tiled")
    per_tile = [len(np.unique(half)) - 1 for half in (labels[:, :40], labels[:, 40:])]
    assert [len(r.objects) for r in read_manifest(root)] == per_tile
    assert {Image.open(p).mode for p in (root / "labels" / "cells").iterdir()} == {"L"}  # 8-bit where it fits


def test_more_than_65535_instances_do_not_fit():
    from sam4med.prepare.labels import LabelSpec, remap

    labels = np.arange(1, 256 * 257 + 1, dtype=np.int64).reshape(256, 257)
    with pytest.raises(DataError, match="65792 instances do not fit in 1..65535; split the image into tiles"):
        remap(labels, LabelSpec("cells", instances="Cell"), "cells.tif")


@pytest.fixture
def folder(synthetic_root, tmp_path):
    return shutil.copytree(synthetic_root, tmp_path / "ds")


def test_manifest_objects_must_agree_with_dataset_yaml(folder):
    text = (folder / "manifest.csv").read_text().replace("shapes:1=Disc", "shapes:1=Liver", 1)
    (folder / "manifest.csv").write_text(text)
    with pytest.raises(
        DataError, match=r"manifest.csv: image 'syn0000' lists shapes:1=Liver, but dataset.yaml gives 'Disc'"
    ):
        CosmosDataset(folder)


def test_manifest_with_duplicate_ids_or_bad_numbers(folder):
    lines = (folder / "manifest.csv").read_text().splitlines()
    (folder / "manifest.csv").write_text("\n".join([*lines, lines[1]]) + "\n")
    with pytest.raises(DataError, match="listed twice"):
        CosmosDataset(folder)
    (folder / "manifest.csv").write_text("\n".join([lines[0], lines[1].replace(",0,", ",zero,", 1)]) + "\n")
    with pytest.raises(DataError, match=r"manifest.csv:2: slice_index 'zero' is not an integer"):
        CosmosDataset(folder)


def test_manifest_that_is_not_text(folder):
    (folder / "manifest.csv").write_bytes(b"\xff\xfe\x00\x00binary")
    with pytest.raises(DataError, match="manifest.csv"):
        CosmosDataset(folder)
