"""Hostile or unusual dataset folders: every problem is an error naming the file, or read as prepared."""

import csv
import shutil

import numpy as np
import pytest
import tifffile
from PIL import Image

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import png_size, read_manifest
from sam4med.errors import DataError
from sam4med.prepare.images import ImageFolderPreparer, read_image


@pytest.fixture
def folder(synthetic_root, tmp_path):
    return shutil.copytree(synthetic_root, tmp_path / "ds")


def test_a_palette_image_reads_as_the_preparers_reader_reads_it(folder):
    rgb = CosmosDataset(folder)[0].image
    palette = Image.fromarray(rgb).quantize(colors=64)
    path = folder / "images" / "syn0000.png"
    palette.save(path)
    assert Image.open(path).mode == "P"
    image = CosmosDataset(folder)[0].image
    assert image.shape == rgb.shape
    np.testing.assert_array_equal(image, read_image(path))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_images_with_alpha_read_as_rgb(folder, mode):
    path = folder / "images" / "syn0000.png"
    Image.open(path).convert(mode).save(path)
    image = CosmosDataset(folder)[0].image
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(
        image, read_image(path) if mode == "RGBA" else np.repeat(read_image(path)[..., None], 3, 2)
    )


@pytest.mark.parametrize("name", ["../../outside", "/etc", "..", ".hidden", "a/b"])
def test_a_label_map_name_that_leaves_the_folder_is_refused(folder, name):
    text = (folder / "dataset.yaml").read_text().replace("name: shapes", f"name: '{name}'", 1)
    (folder / "dataset.yaml").write_text(text)
    with pytest.raises(DataError, match=r"dataset.yaml: label map name .* must be a plain folder name inside labels/"):
        CosmosDataset(folder)


def test_a_manifest_with_a_byte_order_mark_reads_as_without(folder):
    before = read_manifest(folder)
    (folder / "manifest.csv").write_bytes(b"\xef\xbb\xbf" + (folder / "manifest.csv").read_bytes())
    assert read_manifest(folder) == before


def test_an_image_over_pillows_pixel_limit_names_the_file(folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # 48 x 64 = 3072 pixels > 2 x 600: a "bomb"
    path = folder / "images" / "syn0000.png"
    with pytest.raises(DataError, match=rf"{path}: too many pixels for Pillow's safety limit"):
        CosmosDataset(folder)[0]
    with pytest.raises(DataError, match=rf"{path}: too many pixels"):
        png_size(path)


def test_a_label_holding_an_object_the_manifest_does_not_list_is_refused(folder):
    lines = (folder / "manifest.csv").read_text().splitlines()
    header, row = lines[0].split(","), lines[1].split(",")
    column = header.index("objects")
    entries = row[column].split(";")
    dropped = int(entries[-1].split(":")[1].split("=")[0])
    row[column] = ";".join(entries[:-1])  # the label map still holds that object
    (folder / "manifest.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    with pytest.raises(DataError, match=rf"syn0000.png: holds values \[{dropped}\] the manifest does not list"):
        CosmosDataset(folder)[0]


def test_an_emptied_label_whose_objects_the_manifest_lists_is_refused(folder):
    path = folder / "labels" / "shapes" / "syn0000.png"
    Image.fromarray(np.zeros((48, 64), dtype=np.uint8)).save(path)
    with pytest.raises(DataError, match=r"syn0000.png: lacks values \[1, .*\] the manifest lists for image 'syn0000'"):
        CosmosDataset(folder)[0]


def test_a_huge_label_value_is_named_as_too_large_not_negative(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16)).astype(np.uint8)).save(src / "a.png")
    labels = np.zeros((16, 16), dtype=np.float32)
    labels[2:8, 2:8] = 1e20
    tifffile.imwrite(src / "a_mask.tif", labels)
    settings = {"name": "huge", "images": str(src / "a.png"), "modality": "Photo",
                "label_maps": [{"name": "m", "path": str(src / "{stem}_mask.tif"), "objects": {1: "A"}}]}  # fmt: skip
    with pytest.raises(DataError, match="no image was prepared"):
        ImageFolderPreparer(**settings)(tmp_path / "out")
    with (tmp_path / "out" / "skipped.csv").open() as handle:
        reason = next(csv.DictReader(handle))["reason"]
    assert "label value 1e+20 is too large for a label" in reason and "negative" not in reason


@pytest.mark.parametrize("spacing", ["1e308", "0", "-1", "inf", "nan"])
def test_a_spacing_outside_a_pixels_sizes_is_refused_naming_the_manifest_line(folder, spacing):
    path = folder / "manifest.csv"
    with path.open() as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["spacing_x"], rows[0]["spacing_y"] = spacing, "1.0"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(DataError, match=r"manifest.csv:2: spacing must be a number of mm per pixel in \(0, 10000\]"):
        read_manifest(folder)
