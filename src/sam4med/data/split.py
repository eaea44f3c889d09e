"""Train/val/test splits that never put an image next to its neighbours in another split.

With at least three sources (volumes or patients), whole sources are assigned to splits: a seeded
shuffle, then a cut by the fractions (train and val rounded, test the rest; see :func:`source_counts`),
where every split with a non-zero fraction gets at least one source and a split with fraction 0 none.
With ``folds=K`` the shuffled sources are dealt into K folds instead: fold ``fold`` is the test split,
and the other sources are cut into train and val (val's share is its fraction relative to train + val,
at least one source), so over the K runs every source is tested exactly once.

With fewer sources, as for the single Colin27 brain, the slices of each source are cut into contiguous
blocks of ``block_size`` slices, the blocks are dealt to the splits in a fixed pattern that follows the
fractions, and at every border between two splits ``gap`` slices are dropped from the side of the
larger split (train gives them up first), so the nearest slices of two splits are ``gap + 1`` slices
apart. Folds are refused there: the slices of one volume are not independent cases to rotate through a
test fold.

A split that a job needs but that holds no image is reported by :func:`empty_split_message`, with the
sizes of every split and settings that would work (:func:`suggest_settings`, checked by splitting again).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sam4med.dataset_format import ImageRecord
from sam4med.errors import ConfigError

SPLITS = ("train", "val", "test")
MIN_SOURCES = 3  # from this many sources on, whole sources are split; below, slice blocks
GRID_STEPS = 20  # suggested fractions are multiples of 1 / GRID_STEPS


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


@dataclass(frozen=True)
class SplitSettings:
    """The split keys of a ``dataset`` config node (the keyword arguments of :func:`make_split`)."""

    fractions: tuple[float, ...] = (0.7, 0.15, 0.15)
    block_size: int = 4
    gap: int = 1
    seed: int = 0
    folds: int | None = None
    fold: int = 0

    def describe(self) -> str:
        """The settings as the config overrides that give them, e.g. ``dataset.fractions=[0.7,0.15,0.15] ...``."""
        text = (
            f"dataset.fractions={_show(self.fractions)} dataset.block_size={self.block_size} "
            f"dataset.gap={self.gap} dataset.split_seed={self.seed}"
        )
        return text + (f" dataset.folds={self.folds} dataset.fold={self.fold}" if self.folds is not None else "")


@dataclass(frozen=True)
class SplitSize:
    """How much of a dataset one split holds: ``name`` (train, val, test or dropped), sources and images."""

    name: str
    sources: int
    images: int


def split_sizes(split: Split, records: Iterable[ImageRecord]) -> tuple[SplitSize, ...]:
    """Sources and images of train, val, test and the dropped gap slices (a source split into slice blocks
    counts in every split that holds one of its slices).
    """
    source_of = {r.image_id: r.source for r in records}
    names = (*SPLITS, "dropped")
    ids = {name: split.of(name) if name in SPLITS else split.dropped for name in names}
    return tuple(SplitSize(n, len({source_of[i] for i in ids[n]}), len(ids[n])) for n in names)


def source_counts(fractions: Sequence[float], n: int) -> tuple[int, int, int]:
    """Sources of train, val and test when ``n`` whole sources are split by ``fractions``.

    The cut is the rounded one (train ``round(f_train * n)``, val ``round(f_val * n)``, test the rest).
    Then a split with fraction 0 gives its sources to the splits furthest below their share ``f * n``,
    and a split with a non-zero fraction but no source takes one from the split furthest above its share
    (among those with two or more). So every non-zero fraction gets a source whenever ``n`` is at least
    the number of non-zero fractions, and a cut that already did so is left as it is.
    """
    n_train = min(n, round(fractions[0] * n))
    n_val = min(n - n_train, round(fractions[1] * n))
    counts = [n_train, n_val, n - n_train - n_val]
    share = [f * n for f in fractions]
    given = [k for k in range(3) if fractions[k] > 0]
    for k in range(3):
        while fractions[k] == 0 and counts[k] > 0:
            to = max(given, key=lambda i: (share[i] - counts[i], -i))
            counts[k], counts[to] = counts[k] - 1, counts[to] + 1
    for k in given:
        donors = [i for i in range(3) if counts[i] > 1]
        if counts[k] == 0 and donors:
            donor = max(donors, key=lambda i: (counts[i] - share[i], counts[i]))
            counts[donor], counts[k] = counts[donor] - 1, 1
    return counts[0], counts[1], counts[2]


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
    folds: int | None = None,
    fold: int = 0,
) -> Split:
    """Split images by source (or into the folds of a k-fold over sources), or into contiguous slice blocks
    when there are fewer than 3 sources.

    Raises:
        ConfigError: fractions that are not three non-negative numbers summing to 1; ``folds`` below 2,
            above the number of sources, with fewer than 3 sources, or leaving too few sources for train
            and val; ``fold`` outside ``0..folds-1`` (or given without ``folds``).
    """
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ConfigError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    by_source: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in records:
        by_source[record.source].append(record)
    parts: list[list[str]] = [[], [], []]
    dropped: list[str] = []
    if folds is not None or fold != 0:
        _check_folds(len(by_source), fractions, folds, fold)
    if len(by_source) >= MIN_SOURCES:
        sources = sorted(by_source)
        random.Random(seed).shuffle(sources)
        if folds is None:
            n_train, n_val, _ = source_counts(fractions, len(sources))
            chunks = (sources[:n_train], sources[n_train : n_train + n_val], sources[n_train + n_val :])
        else:
            chunks = _fold_chunks(sources, fractions, folds, fold)
        for k, chunk in enumerate(chunks):
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


def _check_folds(n_sources: int, fractions: Sequence[float], folds: int | None, fold: int) -> None:
    if folds is None:
        raise ConfigError(f"dataset.fold={fold} needs dataset.folds=K (the number of folds); fold is 0..K-1")
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"dataset.folds={folds}: must be an integer >= 2 (or null for no k-fold)")
    if n_sources < MIN_SOURCES:
        raise ConfigError(
            f"dataset.folds={folds}: a k-fold runs over sources (volumes or patients) and this dataset has "
            f"{n_sources}; it needs at least {MIN_SOURCES} (slices of one volume are neighbours, not independent "
            "cases); use dataset.folds=null"
        )
    if folds > n_sources:
        raise ConfigError(
            f"dataset.folds={folds}: more folds than the {n_sources} sources (each fold needs one); "
            f"use dataset.folds={n_sources} or fewer"
        )
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise ConfigError(f"dataset.fold={fold}: must be 0..{folds - 1} with dataset.folds={folds}")
    needed = sum(1 for f in fractions[:2] if f > 0)
    if needed == 0:
        raise ConfigError(
            f"dataset.folds={folds} with dataset.fractions={_show(fractions)}: the sources outside the test fold "
            "go to train and val, so train or val needs a non-zero fraction"
        )
    left = n_sources - math.ceil(n_sources / folds)
    if left < needed:
        working = [k for k in range(2, n_sources + 1) if n_sources - math.ceil(n_sources / k) >= needed]
        raise ConfigError(
            f"dataset.folds={folds}: with {n_sources} sources the largest fold leaves {left} source(s) for train "
            f"and val, which need {needed}; use dataset.folds={working[0]} or more (up to {n_sources})"
        )


def _fold_chunks(
    sources: list[str], fractions: Sequence[float], folds: int, fold: int
) -> tuple[list[str], list[str], list[str]]:
    """Train, val and test sources of fold ``fold``: the shuffled sources dealt into ``folds`` folds in turn."""
    test = [s for i, s in enumerate(sources) if i % folds == fold]
    rest = [s for i, s in enumerate(sources) if i % folds != fold]
    val_share = fractions[1] / (fractions[0] + fractions[1])
    n_train, _, _ = source_counts((1 - val_share, val_share, 0.0), len(rest))
    return rest[:n_train], rest[n_train:], test


def suggest_settings(
    records: Sequence[ImageRecord], settings: SplitSettings, needed: Iterable[str]
) -> dict[str, object] | None:
    """The smallest change of ``settings`` under which every split in ``needed`` holds an image, or None.

    Tried in this order, each candidate checked by splitting again: fractions alone (multiples of 1/20,
    nearest first, taken from the larger fractions first), then a smaller ``block_size`` alone (slice
    blocks only), then both. Returns the changed settings (``{"fractions": (...)}``, ``{"block_size": 2}``).
    """
    needed = tuple(dict.fromkeys(needed))
    grid = sorted(_fraction_grid(), key=lambda f: _distance(settings.fractions, f))
    blocks = len({r.source for r in records}) < MIN_SOURCES
    sizes = range(settings.block_size - 1, 0, -1) if blocks else range(0)
    candidates: list[dict[str, object]] = [{"fractions": f} for f in grid if f != tuple(settings.fractions)]
    candidates += [{"block_size": b} for b in sizes]
    candidates += [{"block_size": b, "fractions": f} for b in sizes for f in grid]
    for changes in candidates:
        try:
            split = make_split(records, **asdict(replace(settings, **changes)))
        except ConfigError:
            continue
        if all(split.of(name) for name in needed):
            return changes
    return None


def _fraction_grid() -> list[tuple[float, float, float]]:
    n = GRID_STEPS
    return [(a / n, b / n, (n - a - b) / n) for a in range(n + 1) for b in range(n + 1 - a)]


def _distance(current: Sequence[float], candidate: Sequence[float]) -> tuple[float, float]:
    """How far ``candidate`` is from ``current``: total change, then change relative to each fraction."""
    changes = [abs(c - f) for f, c in zip(current, candidate, strict=True)]
    return round(sum(changes), 9), sum(d / (f + 0.01) for d, f in zip(changes, current, strict=True))


def empty_split_message(
    root: str | Path,
    records: Sequence[ImageRecord],
    split: Split,
    name: str,
    settings: SplitSettings,
    needed: Iterable[str],
) -> str:
    """One line for a split ``name`` that holds no image: the dataset's size, every split's size, the
    settings used, settings that would give every ``needed`` split an image, and the zero-shot way out.
    """
    needed = tuple(s for s in SPLITS if s in {name, *needed})
    n_sources = len({r.source for r in records})
    how = "by source" if n_sources >= MIN_SOURCES else f"in slice blocks (fewer than {MIN_SOURCES} sources)"
    sizes = ", ".join(f"{s.name} {s.sources}/{s.images}" for s in split_sizes(split, records))
    fix = suggest_settings(records, settings, needed)
    if fix is None:
        remedy = f"no fractions or block size gives {', '.join(needed)} an image each: add data"
    else:
        remedy = "would work: " + " ".join(f"dataset.{key}={_show(value)}" for key, value in fix.items())
    return (
        f"{root}: split '{name}' is empty: {_count(n_sources, 'source')} and {_count(len(records), 'image')} "
        f"split {how} with {settings.describe()} give (sources/images) {sizes}; "
        f"{', '.join(needed)} need images, {remedy}; "
        "to score every image zero-shot with nothing to train on: evaluate.py dataset.fractions=[0,0,1]"
    )


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _show(value: object) -> str:
    if isinstance(value, list | tuple):
        return "[" + ",".join(f"{v:g}" for v in value) + "]"
    return str(value)
