"""Samplers whose order depends only on (seed, epoch), sharded over DDP ranks without padding games.

They yield ``(epoch, index)`` pairs so that the dataset can draw per-sample randomness (box jitter,
augmentation) from (seed, epoch, index) alone. Training is then identical whether it runs in one
process with batch size B, in R processes with batch size B / R, or resumes from a checkpoint.

Two batch units (``dataset.batch_unit``): ``object`` (:class:`EpochSampler`, a batch is B objects) and
``image`` (:class:`ImageBatchSampler`, a batch is B images, each with all of its objects, as the COSMOS
authors' ``train_only_box.py`` trains).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

BATCH_UNITS = ("object", "image")


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class EpochSampler(Sampler[tuple[int, int]]):
    """Seeded per-epoch permutation of ``range(size)``; rank r of R takes positions r, r + R, ...

    With R ranks and per-rank batch size b, global step k sees exactly the samples a single process
    with batch size R x b would see at step k. The permutation is truncated to a multiple of R so every
    rank takes the same number of steps.

    Args:
        size: dataset length.
        shuffle: permute (training) or keep order (validation).
        seed: base seed; the permutation of epoch e uses seed + e.
        shard: split the order over DDP ranks (False: every rank sees everything, e.g. validation).
    """

    def __init__(self, size: int, *, shuffle: bool = True, seed: int = 0, shard: bool = True) -> None:
        self.size, self.shuffle, self.seed, self.shard = size, shuffle, seed, shard
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def _order(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rank, world = _rank_and_world() if self.shard else (0, 1)
        order = self._order()
        order = order[: len(order) - len(order) % world] if world > 1 else order
        return iter((self.epoch, i) for i in order[rank::world])

    def __len__(self) -> int:
        _, world = _rank_and_world() if self.shard else (0, 1)
        return self.size // world if world > 1 else self.size


class ImageBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``batch_size`` images, each with all of its samples (objects): a DataLoader ``batch_sampler``.

    The images are ordered, sharded and truncated exactly as :class:`EpochSampler` orders, shards and
    truncates samples (a seeded permutation per epoch; rank r of R takes images r, r + R, ... of an order
    cut to a multiple of R), so every rank takes the same number of steps, and global step k on R ranks
    with b images each sees the images one process with R x b images sees at step k. A batch then holds
    a variable number of samples: the ``(epoch, index)`` pairs of all objects of its images, image by
    image. Images without samples are left out before the order is drawn: they contribute nothing and
    never make an empty batch. The last batch of a rank may hold fewer images (no samples are dropped).
    Over R ranks the images of a step are those of one process, but the loss is not quite: each rank
    averages over its own objects and DDP averages the ranks, so a rank with fewer objects weighs more.

    Args:
        groups: per image, the dataset indices of its samples (e.g. :attr:`DecoderSamples.image_samples`).
        batch_size: images per batch (per rank).
        shuffle: permute the images (training) or keep their order.
        seed: base seed; the image order of epoch e uses seed + e.
        shard: split the images over DDP ranks.
    """

    def __init__(
        self,
        groups: Sequence[Sequence[int]],
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        shard: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be 1 or more images, got {batch_size}")
        self.groups = tuple(tuple(group) for group in groups if len(group))
        self.batch_size = batch_size
        # named ``sampler`` so that Lightning calls its set_epoch (it looks at batch_sampler.sampler)
        self.sampler = EpochSampler(len(self.groups), shuffle=shuffle, seed=seed, shard=shard)

    def set_epoch(self, epoch: int) -> None:
        """The image order of ``epoch`` (Lightning calls the inner sampler's set_epoch itself)."""
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        images = list(self.sampler)  # this rank's (epoch, image) pairs, in order
        for start in range(0, len(images), self.batch_size):
            yield [
                (epoch, index)
                for epoch, image in images[start : start + self.batch_size]
                for index in self.groups[image]
            ]

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)
