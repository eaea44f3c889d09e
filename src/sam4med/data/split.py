"""Train/val/test splits that never put an image next to its neighbours in another split.

With at least three sources (volumes or patients), whole sources are assigned to splits (seeded
shuffle, then cut by the fractions). With fewer sources, as for the single Colin27 brain, the
slices of each source are cut into contiguous blocks of ``block_size`` slices, the blocks are
dealt to the splits in a fixed pattern that follows the fractions, and at every border between two
splits ``gap`` slices are dropped from the side of the larger split (train gives them up first), so
the nearest slices of two splits are ``gap + 1`` slices apart.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sam4med.dataset_format import ImageRecord
from sam4med.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Image ids of each split, plus those dropped as gaps between splits."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    dropped: tuple[str, ...] = ()

    def of(self, name: str) -> tuple[str, ...]:
        """Image ids of split ``name`` (train, val or test)."""
        if name not in SPLITS:
            raise ConfigError(f"unknown split '{name}', expected one of {SPLITS}")
        return getattr(self, name)

    def rows(self) -> list[dict[str, str]]:
        """(image_id, split) rows for saving with a run."""
        rows = [{"image_id": i, "split": name} for name in SPLITS for i in self.of(name)]
        return rows + [{"image_id": i, "split": "dropped"} for i in self.dropped]


def _pattern(fractions: Sequence[float]) -> list[int]:
    """A block pattern of length 20 that spreads each split's blocks evenly (largest remainder)."""
    counts = [max(1, round(f * 20)) if f > 0 else 0 for f in fractions]
    pattern: list[int] = []
    credit = [0.0] * len(counts)
    for _ in range(sum(counts)):
        for k, c in enumerate(counts):
            credit[k] += c / sum(counts)
        k = max(range(len(counts)), key=lambda i: credit[i])
        credit[k] -= 1
        pattern.append(k)
    return pattern


def make_split(
    records: Sequence[ImageRecord],
    *,
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    block_size: int = 4,
    gap: int = 1,
    seed: int = 0,
) -> Split:
    """Split images by source, or into contiguous slice blocks when there are fewer than 3 sources."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    by_source: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_source[record.source].append(record)
    parts: list[list[str]] = [[], [], []]
    dropped: list[str] = []
    if len(by_source) >= 3:
        sources = sorted(by_source)
        random.Random(seed).shuffle(sources)
        n_train = round(fractions[0] * len(sources))
        n_val = round(fractions[1] * len(sources))
        for k, chunk in enumerate((sources[:n_train], sources[n_train : n_train + n_val], sources[n_train + n_val :])):
            parts[k] = [r.image_id for s in chunk for r in by_source[s]]
    else:
        pattern = _pattern(fractions)
        offset = random.Random(seed).randrange(len(pattern))
        for source in sorted(by_source):
            ordered = sorted(by_source[source], key=lambda r: (r.slice_index, r.image_id))
            blocks = [ordered[i : i + block_size] for i in range(0, len(ordered), block_size)]
            owners = [pattern[(offset + b) % len(pattern)] for b in range(len(blocks))]
            for b, block in enumerate(blocks):
                ids = [r.image_id for r in block]
                # at a border between two splits, drop `gap` slices from the side of the larger split
                if b > 0 and owners[b - 1] != owners[b] and fractions[owners[b]] >= fractions[owners[b - 1]]:
                    dropped += ids[:gap]
                    ids = ids[gap:]
                nxt = owners[b + 1] if b + 1 < len(blocks) else owners[b]
                if nxt != owners[b] and fractions[owners[b]] > fractions[nxt]:
                    cut = max(0, len(ids) - gap)
                    dropped += ids[cut:]
                    ids = ids[:cut]
                parts[owners[b]] += ids
    return Split(train=tuple(parts[0]), val=tuple(parts[1]), test=tuple(parts[2]), dropped=tuple(dropped))
