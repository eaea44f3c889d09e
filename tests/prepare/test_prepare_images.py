"""Preparation of 2D images: colour kept, intensities, label remapping, instances, tiles, formats."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import load_png, read_info, read_manifest
from sam4med.prepare.images import ImageFolderPreparer, read_image, read_labels, tile_boxes


def shapes(h=32, w=40):
    labels = np.zeros((h, w), dtype=np.uint8)
    labels[4:14, 4:20] = 255
    labels[18:28, 22:36] = 128
    return labels


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(1)
    src = tmp_path / "in"
    (src / "img").mkdir(parents=True)
    (src / "lab").mkdir()
    labels = shapes()
    Image.fromarray(rng.integers(0, 255, (32, 40, 3)).astype(np.uint8)).save(src / "img" / "p01_a.jpg", quality=95)
    Image.fromarray(rng.integers(0, 255, (32, 40)).astype(np.uint8)).save(src / "img" / "p01_b.bmp")
    tifffile.imwrite(src / "img" / "p02_a.tif", rng.integers(1000, 5000, (32, 40)).astype(np.uint16))
    palette = Image.fromarray(np.where(labels == 255, 1, np.where(labels == 128, 2, 0)).astype(np.uint8), mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    for stem in ("p01_a", "p01_b"):
        Image.fromarray(labels).save(src / "lab" / f"{stem}_mask.png")
    palette.save(src / "lab" / "p02_a_mask.png")
    return src


def test_colour_grey_and_16_bit_images(folder, tmp_path):
    objects = {255: "Big", 128: "Small", 1: "Big", 2: "Small"}  # 8-bit grey masks and palette indices
    preparer = ImageFolderPreparer(
        name="mixed",
        images=str(folder / "img" / "*"),
        label_maps=[{"name": "spots", "path": str(folder / "lab" / "{stem}_mask.png"), "objects": objects}],
        modality="Photo",
        source_pattern=r"^(p\d+)_",
        spacing=[0.5, 0.5],
    )
    root = preparer(tmp_path / "out")
    records = {r.image_id: r for r in read_manifest(root)}
    assert set(records) == {"p01_a", "p01_b", "p02_a"}
    assert {r.source for r in records.values()} == {"p01", "p02"}
    assert all(r.slice_index == -1 and r.spacing == (0.5, 0.5) for r in records.values())
    assert load_png(root / "images" / "p01_a.png").shape == (32, 40, 3)
    assert load_png(root / "images" / "p01_b.png").shape == (32, 40)
    np.testing.assert_array_equal(load_png(root / "images" / "p01_b.png"), read_image(folder / "img" / "p01_b.bmp"))
    tif = load_png(root / "images" / "p02_a.png")
    assert tif.min() == 0 and tif.max() == 255  # 16-bit min-max normalised
    assert read_info(root).label_maps[0].objects == {1: "Big", 2: "Small"}
    for image_id in records:
        labels = load_png(root / "labels" / "spots" / f"{image_id}.png")
        np.testing.assert_array_equal(labels, np.where(shapes() == 255, 1, np.where(shapes() == 128, 2, 0)))
    item = CosmosDataset(root)[0]
    assert [o.target for o in item.objects] == ["Big-Photo", "Small-Photo"]


def test_instances_are_numbered_per_image(tmp_path):
    labels = np.zeros((30, 30), dtype=np.uint16)
    labels[2:8, 2:8], labels[10:16, 10:16], labels[20:26, 3:9] = 700, 12, 5000
    tifffile.imwrite(tmp_path / "cells.tif", labels)
    tifffile.imwrite(tmp_path / "img.tif", np.random.default_rng(0).random((30, 30)).astype(np.float32))
    root = ImageFolderPreparer(
        name="cells",
        images=str(tmp_path / "img.tif"),
        label_maps=[{"name": "cells", "path": str(tmp_path / "cells.tif"), "instances": "Cell"}],
        modality="Microscopy",
    )(tmp_path / "out")
    out = load_png(root / "labels" / "cells" / "img.png")
    assert out[12, 12] == 1 and out[4, 4] == 2 and out[22, 5] == 3  # increasing source value
    assert read_info(root).label_maps[0].objects == {1: "Cell", 2: "Cell", 3: "Cell"}
    assert [o.target for o in CosmosDataset(root)[0].objects] == ["Cell-Microscopy"] * 3


def test_tiles_cover_the_image():
    boxes = tile_boxes((5, 7), (2, 3))
    covered = np.zeros((5, 7), dtype=int)
    for rows, cols in boxes:
        covered[rows, cols] += 1
    assert len(boxes) == 6 and (covered == 1).all()


def test_label_readers(tmp_path):
    grey_rgb = np.repeat(shapes()[:, :, None], 3, axis=2)
    Image.fromarray(grey_rgb).save(tmp_path / "l.png")
    np.testing.assert_array_equal(read_labels(tmp_path / "l.png"), shapes())
    Image.fromarray(np.zeros((4, 4, 4), dtype=np.uint8), mode="RGBA").save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").shape == (4, 4, 3)
