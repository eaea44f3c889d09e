"""``dataset.batch_unit``: batches of objects (default) or of whole images with all their objects (COSMOS)."""

import math

import pytest
import torch
from lightning_fabric.utilities.data import _set_sampler_epoch
from torch.utils.data import DataLoader

import sam4med.data.epoch_sampler as epoch_sampler
from sam4med.data.datamodule import CosmosDataModule
from sam4med.data.epoch_sampler import ImageBatchSampler
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError
from sam4med.jobs.train import fine_tune
from tests.helpers import compose_config

# sample indices per image: image 1 has no objects, the others 1 to 4
GROUPS = [(0, 1, 2), (), (3,), (4, 5), (6, 7, 8, 9), (10,), (11, 12), (13,)]
OWNER = {index: image for image, group in enumerate(GROUPS) for index in group}


def _images(batch: list[tuple[int, int]]) -> list[int]:
    """The images of a batch, in order (a batch lists its images' samples image by image)."""
    return list(dict.fromkeys(OWNER[index] for _, index in batch))


def _batches(sampler: ImageBatchSampler, epoch: int) -> list[list[tuple[int, int]]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_an_image_batch_holds_every_object_of_its_images_and_only_theirs():
    sampler = ImageBatchSampler(GROUPS, batch_size=2, seed=0)
    batches = _batches(sampler, 0)
    assert len(batches) == len(sampler) == 4  # 7 images with objects, 2 a batch: 2 + 2 + 2 + 1
    assert [len(_images(b)) for b in batches] == [2, 2, 2, 1]
    for batch in batches:
        assert [index for _, index in batch] == [i for image in _images(batch) for i in GROUPS[image]]
        assert {epoch for epoch, _ in batch} == {0}
    images = [image for batch in batches for image in _images(batch)]
    assert sorted(images) == [0, 2, 3, 4, 5, 6, 7]  # each image once an epoch, the empty image 1 never
    assert sorted(index for batch in batches for _, index in batch) == list(range(14))
    assert len({len(b) for b in batches}) > 1  # the number of objects varies from batch to batch


def test_the_image_order_follows_seed_and_epoch():
    sampler = ImageBatchSampler(GROUPS, batch_size=2, seed=0)
    first, again = _batches(sampler, 0), _batches(ImageBatchSampler(GROUPS, batch_size=2, seed=0), 0)
    assert first == again
    second = _batches(sampler, 1)
    assert {epoch for b in second for epoch, _ in b} == {1}
    assert [_images(b) for b in second] != [_images(b) for b in first]
    assert [_images(b) for b in _batches(ImageBatchSampler(GROUPS, batch_size=2, seed=1), 0)] != [
        _images(b) for b in first
    ]
    # the order is the permutation torch draws for seed + epoch over the 7 images that have objects
    kept = [0, 2, 3, 4, 5, 6, 7]
    expected = [kept[p] for p in torch.randperm(7, generator=torch.Generator().manual_seed(0 + 1)).tolist()]
    assert [image for b in second for image in _images(b)] == expected
    ordered = ImageBatchSampler(GROUPS, batch_size=3, shuffle=False)
    assert [_images(b) for b in ordered] == [[0, 2, 3], [4, 5, 6], [7]]


def test_lightning_sets_the_epoch_of_an_image_batch_loader():
    sampler = ImageBatchSampler(GROUPS, batch_size=2, seed=0)
    _set_sampler_epoch(DataLoader(list(range(14)), batch_sampler=sampler), 3)  # what the fit loop calls
    assert sampler.sampler.epoch == 3 and {epoch for b in sampler for epoch, _ in b} == {3}


@pytest.mark.parametrize("per_rank", [1, 2])
def test_two_ranks_take_disjoint_images_and_the_same_number_of_steps(monkeypatch, per_rank):
    def on_rank(rank):
        monkeypatch.setattr(epoch_sampler, "_rank_and_world", lambda: (rank, 2))
        sampler = ImageBatchSampler(GROUPS, batch_size=per_rank, seed=0)
        return len(sampler), _batches(sampler, 2)

    (len0, rank0), (len1, rank1) = on_rank(0), on_rank(1)
    monkeypatch.setattr(epoch_sampler, "_rank_and_world", lambda: (0, 1))
    single = _batches(ImageBatchSampler(GROUPS, batch_size=2 * per_rank, seed=0), 2)
    # 7 images over 2 ranks: the order is cut to 6, as EpochSampler cuts samples, so each rank takes 3
    assert len0 == len1 == len(rank0) == len(rank1) == math.ceil(3 / per_rank)
    images0 = [i for b in rank0 for i in _images(b)]
    images1 = [i for b in rank1 for i in _images(b)]
    assert len(images0) == len(images1) == 3 and not set(images0) & set(images1)
    dropped = set(_images(single[-1])) - set(images0) - set(images1)
    assert len(dropped) == 1  # the one image of the cut: the last of the single process's order
    for step, (a, b) in enumerate(zip(rank0, rank1, strict=True)):  # step k of 2 ranks = step k of one
        assert set(_images(a)) | set(_images(b)) <= set(_images(single[step]))
        if step < len(single) - 1:
            assert set(_images(a)) | set(_images(b)) == set(_images(single[step]))


def test_a_bad_batch_unit_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"dataset.batch_unit must be one of object, image; got 'images'"):
        CosmosDataModule(root=tmp_path, batch_unit="images")
    with pytest.raises(ValueError, match="batch_size must be 1 or more images, got 0"):
        ImageBatchSampler(GROUPS, batch_size=0)


def _train_loader(root, model, cache_dir, unit):
    module = CosmosDataModule(root=root, fractions=(0.5, 0.25, 0.25), block_size=2, gap=0, batch_unit=unit)
    module.attach(model, EmbeddingCache(cache_dir))
    return module.train_dataloader(), module.val_dataloader()


def test_image_batches_collate_like_object_batches_and_take_fewer_steps(tiny_model, synthetic_root, tmp_path):
    by_object, val_object = _train_loader(synthetic_root, tiny_model, tmp_path / "cache", "object")
    by_image, val_image = _train_loader(synthetic_root, tiny_model, tmp_path / "cache", "image")
    samples = by_image.dataset
    groups = [g for g in samples.image_samples if g]
    n_objects, n_images = len(samples), len(groups)
    assert n_objects == sum(len(g) for g in groups) > n_images >= 2
    # optimiser steps per epoch: one per batch; the ratio is the mean number of objects per image
    assert len(by_object) == math.ceil(n_objects / 2) and len(by_image) == math.ceil(n_images / 2)
    assert len(by_object) > len(by_image)
    keys = {key: i for i, (_, _, key) in enumerate(samples.items)}
    object_keys = set(next(iter(by_object)))
    seen = []
    for batch in by_image:
        n = len(batch["box"])
        members = sorted(keys[k] for k in batch["object_key"])
        assert members == sorted(i for g in groups if set(g) & set(members) for i in g)  # whole images
        assert batch["box"].shape == (n, 4) and batch["mask"].shape[0] == n and len(batch["gt"]) == n
        assert batch["embedding"].shape[0] == n and batch["embedding"].dtype == torch.float32
        assert set(batch) == object_keys  # the keys the training module reads
        seen += members
    assert sorted(seen) == list(range(n_objects))
    # validation is unchanged: object batches in order, whatever the unit
    assert [b["object_key"] for b in val_image] == [b["object_key"] for b in val_object]
    assert {len(b["box"]) for b in val_image} <= {1, 2}


def test_train_with_image_batches_writes_a_checkpoint(tmp_path):
    overrides = ["experiment=quick", "dataset.batch_unit=image", "trainer.max_epochs=1"]
    cfg = compose_config("train", tmp_path, [*overrides, "trainer.enable_progress_bar=false", "evaluation.overlays=1"])
    metrics = fine_tune(cfg).metrics
    assert "val/dice" in metrics and math.isfinite(float(metrics["train/loss"]))
    checkpoints = sorted((tmp_path / "run" / "checkpoints").glob("*.ckpt"))
    assert checkpoints
    module = CosmosDataModule(
        root=cfg.dataset.root,
        fractions=cfg.dataset.fractions,
        block_size=cfg.dataset.block_size,
        gap=cfg.dataset.gap,
        min_object_area=cfg.dataset.min_object_area,
    )
    train = module.dataset("train")
    images = sum(1 for i in range(len(train)) if train[i].objects)
    steps = torch.load(checkpoints[-1], map_location="cpu", weights_only=False)["global_step"]
    assert steps == math.ceil(images / cfg.dataset.batch_size)  # one optimiser step per 2 images


def test_the_cosmos_preset_batches_images_and_the_default_batches_objects(tmp_path):
    assert compose_config("train", tmp_path).dataset.batch_unit == "object"
    cosmos = compose_config("train", tmp_path, ["experiment=cosmos"]).dataset
    assert (cosmos.batch_unit, cosmos.batch_size) == ("image", 2)
