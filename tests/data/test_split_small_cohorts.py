"""Whole-source splits of small cohorts: every split with a non-zero fraction gets a source, large cohorts
keep the rounded cut, and an empty split is refused with the sizes and settings that would work."""

import pytest

from sam4med.data.split import SplitSettings, empty_split_message, make_split, source_counts, split_sizes
from sam4med.dataset_format import ImageRecord


def volume(n, source="v"):
    return [ImageRecord(f"{source}_{z:03d}", source, z, "MR", None) for z in range(n)]


def cohort(n_sources, slices=2):
    return [r for s in range(n_sources) for r in volume(slices, f"p{s}")]


def sources_of(ids):
    return {i.split("_")[0] for i in ids}


@pytest.mark.parametrize(
    "n, expected", [(3, (1, 1, 1)), (4, (2, 1, 1)), (5, (3, 1, 1)), (6, (4, 1, 1)), (10, (7, 2, 1)), (20, (14, 3, 3))]
)
def test_default_fractions_give_every_split_sources(n, expected):
    split = make_split(cohort(n), seed=0)
    counts = tuple(len(sources_of(split.of(name))) for name in ("train", "val", "test"))
    assert counts == expected
    assert sorted(sources_of(split.train) | sources_of(split.val) | sources_of(split.test)) == sorted(
        f"p{s}" for s in range(n)
    )
    assert not split.dropped


def test_a_cut_that_already_gave_every_split_a_source_is_kept():
    # train round(0.7 n), val round(0.15 n), test the rest: the cut used before small cohorts were handled
    for n in range(6, 60):
        old = (round(0.7 * n), round(0.15 * n), n - round(0.7 * n) - round(0.15 * n))
        if min(old) > 0:
            assert source_counts((0.7, 0.15, 0.15), n) == old


def test_zero_fractions_get_no_source_and_the_others_at_least_one():
    assert source_counts((0.5, 0.5, 0.0), 5) == (3, 2, 0)  # the rounded cut would give test the 5th
    assert source_counts((0.0, 0.0, 1.0), 4) == (0, 0, 4)
    assert source_counts((0.8, 0.2, 0.0), 3) == (2, 1, 0)
    assert source_counts((0.9, 0.05, 0.05), 3) == (1, 1, 1)


def test_small_cohort_split_is_deterministic_and_seeded():
    records = cohort(4)
    assert make_split(records, seed=5) == make_split(records, seed=5)
    again = make_split(list(reversed(records)), seed=5)  # manifest order does not matter
    assert all(set(make_split(records, seed=5).of(n)) == set(again.of(n)) for n in ("train", "val", "test"))
    assert {make_split(records, seed=s).test for s in range(6)} != {make_split(records, seed=5).test}


def test_split_sizes_count_sources_and_images():
    records = cohort(4, slices=3)
    sizes = {s.name: (s.sources, s.images) for s in split_sizes(make_split(records), records)}
    assert sizes == {"train": (2, 6), "val": (1, 3), "test": (1, 3), "dropped": (0, 0)}


def test_empty_split_message_names_counts_sizes_and_a_fix_that_works():
    records = cohort(10)
    settings = SplitSettings(fractions=(0.8, 0.0, 0.2))
    split = make_split(records, fractions=settings.fractions)
    message = empty_split_message("/data/x", records, split, "val", settings, ["train", "val", "test"])
    assert "\n" not in message
    assert message.startswith("/data/x: split 'val' is empty: 10 sources and 20 images split by source")
    assert "dataset.fractions=[0.8,0,0.2]" in message and "dataset.block_size=4 dataset.gap=1" in message
    assert "train 8/16, val 0/0, test 2/4, dropped 0/0" in message
    assert "would work: dataset.fractions=[0.75,0.05,0.2]" in message  # one grid step, taken from train
    assert "dataset.fractions=[0,0,1]" in message
    fixed = make_split(records, fractions=(0.75, 0.05, 0.2))
    assert fixed.train and fixed.val and fixed.test


def test_empty_block_split_suggests_a_smaller_block_and_says_when_nothing_works():
    records = volume(6)  # one volume: blocks of 4 give two blocks for three splits
    split = make_split(records)
    assert not split.val
    message = empty_split_message("/d", records, split, "val", SplitSettings(), ["train", "val", "test"])
    assert "1 source and 6 images split in slice blocks (fewer than 3 sources)" in message
    assert "would work: dataset.block_size=1" in message
    fixed = make_split(records, block_size=1)
    assert fixed.train and fixed.val and fixed.test
    tiny = volume(3)
    message = empty_split_message("/d", tiny, make_split(tiny), "val", SplitSettings(), ["train", "val", "test"])
    assert "no fractions or block size gives train, val, test an image each: add data" in message
