"""The stardist nuclei image, read from the installed package without importing stardist."""

import sys

import numpy as np
import pytest
import tifffile

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import read_info, read_manifest
from sam4med.prepare.stardist_nuclei import StardistNuclei, stardist_images_dir
from sam4med.prepare.summary import summarize_folder


@pytest.fixture(scope="module")
def nuclei_root(tmp_path_factory):
    return StardistNuclei()(tmp_path_factory.mktemp("nuclei") / "out")


def test_tiles_match_the_source_mask(nuclei_root):
    mask = tifffile.imread(stardist_images_dir() / "mask2d.tif")
    assert mask.shape == (512, 512) and len(np.unique(mask)) - 1 == 125
    records = read_manifest(nuclei_root)
    assert [r.image_id for r in records] == ["img2d_t00", "img2d_t01", "img2d_t02", "img2d_t03"]
    assert all(r.modality == "Microscopy" and r.size == (256, 256) and r.source == "img2d" for r in records)
    tiles = [mask[:256, :256], mask[:256, 256:], mask[256:, :256], mask[256:, 256:]]
    assert [len(r.objects) for r in records] == [len(np.unique(t)) - 1 for t in tiles]
    dataset = CosmosDataset(nuclei_root)
    for index, tile in enumerate(tiles):
        item = dataset[index]
        assert {o.object_name for o in item.objects} == {"Cell"}
        assert item.masks.sum() == (tile > 0).sum()
    assert "stardist" not in sys.modules


def test_summary_counts_every_nucleus_piece(nuclei_root):
    summary = summarize_folder(nuclei_root)
    assert summary.images == 4 and summary.targets == {"Cell-Microscopy": summary.objects["Cell"][0]}
    assert summary.objects["Cell"][0] >= 125
    assert set(read_info(nuclei_root).label_maps[0].objects.values()) == {"Cell"}


def test_one_object_per_nucleus(nuclei_root):
    item = CosmosDataset(nuclei_root, min_object_area=10)[0]
    obj = item.objects[0]
    assert obj.object_name == "Cell" and obj.modality == "Microscopy" and item.record.spacing is None
    assert item.image.shape == (256, 256, 3) and item.masks.dtype == bool and item.masks[0].sum() >= 10
    assert len({o.label_value for o in item.objects}) == len(item.objects)
