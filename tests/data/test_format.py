"""Bad dataset folders give errors that name the file and the problem."""

import shutil

import numpy as np
import pytest
from PIL import Image

from sam4med.data.dataset import CosmosDataset
from sam4med.errors import DataError


@pytest.fixture
def folder(synthetic_root, tmp_path):
    return shutil.copytree(synthetic_root, tmp_path / "ds")


def test_reads_objects(folder):
    dataset = CosmosDataset(folder)
    item = dataset[0]
    assert item.image.shape == (48, 64, 3)
    assert {o.object_name for o in item.objects} >= {"Disc", "Ring", "TwoPart", "Bar"}
    assert item.masks.shape == (len(item.objects), 48, 64)
    assert item.objects[0].target == "Disc-Synthetic"


def test_subset_keeps_manifest_order_and_reads_the_same_items(folder):
    dataset = CosmosDataset(folder)
    ids = [r.image_id for r in dataset.records]
    part = dataset.subset([ids[2], ids[0]])
    assert [r.image_id for r in part.records] == [ids[0], ids[2]]
    assert np.array_equal(part[1].image, dataset[2].image) and len(dataset) == len(ids)


def test_missing_manifest(folder):
    (folder / "manifest.csv").unlink()
    with pytest.raises(DataError, match="manifest.csv: missing"):
        CosmosDataset(folder)


def test_manifest_names_missing_image(folder):
    (folder / "images" / "syn0001.png").unlink()
    with pytest.raises(DataError, match=r"manifest.csv:3: names .*syn0001.png, which does not exist"):
        CosmosDataset(folder)


def test_manifest_path_outside_folder(folder):
    text = (folder / "manifest.csv").read_text().replace("syn0002,", "../../etc/passwd,")
    (folder / "manifest.csv").write_text(text)
    with pytest.raises(DataError, match="must be a plain file stem"):
        CosmosDataset(folder)


def test_label_size_mismatch(folder):
    Image.fromarray(np.zeros((10, 10), dtype=np.uint8)).save(folder / "labels" / "shapes" / "syn0000.png")
    with pytest.raises(DataError, match=r"syn0000.png: label size \(10, 10\) differs from image size \(48, 64\)"):
        CosmosDataset(folder)[0]


def test_truncated_image(folder):
    path = folder / "images" / "syn0000.png"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="syn0000.png: cannot read image"):
        CosmosDataset(folder)[0]


def test_unnamed_label_value(folder):
    labels = np.zeros((48, 64), dtype=np.uint8)
    labels[:5, :5] = 77
    Image.fromarray(labels).save(folder / "labels" / "shapes" / "syn0000.png")
    lines = (folder / "manifest.csv").read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0] + ","  # no objects listed (a user's own folder): dataset.yaml decides
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="label value 77 is not named"):
        CosmosDataset(folder)[0]


def test_label_values_out_of_range_in_yaml(folder):
    text = (folder / "dataset.yaml").read_text().replace("1: Disc", "70000: Disc")
    (folder / "dataset.yaml").write_text(text)
    with pytest.raises(DataError, match=r"label values outside 1..65535: \[70000\]"):
        CosmosDataset(folder)
