"""A sampler whose order depends only on (seed, epoch), sharded over DDP ranks without padding games.

It yields ``(epoch, index)`` pairs so that the dataset can draw per-sample randomness (box jitter,
augmentation) from (seed, epoch, index) alone. Training is then identical whether it runs in one
process with batch size B, in R processes with batch size B / R, or resumes from a checkpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler


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
