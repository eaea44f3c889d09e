"""An atlas of 600 structures is prepared with 16-bit label maps, read back and evaluated."""

import numpy as np
from PIL import Image

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import read_info, read_manifest
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import score_dataset
from sam4med.models.multimask import Multimask
from sam4med.prepare.volumes import VolumePreparer
from sam4med.prompts.store import PromptStore
from tests.prepare.volumes import save

STRUCTURES = 600


def atlas(shape=(60, 60, 2)):
    """(image, labels): 2 x 2 blocks on a 3-pixel grid, source values 1001..1600 (as atlases number them)."""
    labels = np.zeros(shape, dtype=np.int16)
    blocks = [(z, x, y) for z in range(shape[2]) for x in range(0, shape[0] - 1, 3) for y in range(0, shape[1] - 1, 3)]
    for value, (z, x, y) in enumerate(blocks[:STRUCTURES], start=1001):
        labels[x : x + 2, y : y + 2, z] = value
    image = np.random.default_rng(0).normal(100, 5, shape).astype(np.float32) + 50 * (labels > 0)
    return image, labels


def test_600_structures_are_prepared_as_16_bit_labels_and_evaluated(tiny_model, tmp_path):
    image, labels = atlas()
    save(tmp_path / "in" / "images" / "atlas.nii.gz", image)
    save(tmp_path / "in" / "labels" / "atlas.nii.gz", labels)
    objects = {1000 + k: f"Structure{k:03d}" for k in range(1, STRUCTURES + 1)}
    root = VolumePreparer(
        name="atlas",
        images=str(tmp_path / "in" / "images" / "*.nii.gz"),
        label_maps=[{"name": "atlas", "path": str(tmp_path / "in" / "labels" / "{name}"), "objects": objects}],
        modality="T1W MRI",
    )(tmp_path / "out")
    info = read_info(root)
    assert len(info.label_maps[0].objects) == STRUCTURES and max(info.label_maps[0].objects) == STRUCTURES
    records = read_manifest(root)
    assert len(records) == 2 and sum(len(r.objects) for r in records) == STRUCTURES
    for record in records:
        png = Image.open(root / "labels" / "atlas" / f"{record.image_id}.png")
        assert png.mode == "I;16"  # values above 255 need 16 bits
    dataset = CosmosDataset(root)
    items = [dataset[k] for k in range(len(dataset))]
    assert sum(len(item.objects) for item in items) == STRUCTURES
    assert max(o.label_value for item in items for o in item.objects) == STRUCTURES
    assert all(int(m.sum()) == 4 for item in items for m in item.masks)
    rows = score_dataset(
        tiny_model,
        dataset,
        strategies=["S5"],
        phase="zero_shot",
        cache=EmbeddingCache(None),
        prompts=PromptStore(seed=0),
        multimask=Multimask.SINGLE,
        everything=EverythingSettings(points_per_side=4),
        progress=False,
    )
    assert len(rows) == STRUCTURES
    assert {r.target for r in rows} == {f"Structure{k:03d}-T1W MRI" for k in range(1, STRUCTURES + 1)}
