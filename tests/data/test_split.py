from sam4med.data.split import make_split
from sam4med.dataset_format import ImageRecord


def volume(n, source="v"):
    return [ImageRecord(f"{source}_{z:03d}", source, z, "MR", None) for z in range(n)]


def test_single_volume_keeps_neighbours_apart():
    records = volume(60)
    split = make_split(records, block_size=4, gap=1, seed=0)
    owner = {i: name for name in ("train", "val", "test") for i in split.of(name)}
    assert split.train and split.val and split.test
    assert len(owner) + len(split.dropped) == 60
    z_of = {r.image_id: r.slice_index for r in records}
    for a in owner:
        for b in owner:
            if owner[a] != owner[b]:
                assert abs(z_of[a] - z_of[b]) >= 2


def test_many_sources_are_never_divided():
    records = [r for s in range(10) for r in volume(5, f"p{s}")]
    split = make_split(records, seed=3)
    for name in ("train", "val", "test"):
        sources = {i.split("_")[0] for i in split.of(name)}
        for other in ("train", "val", "test"):
            if other != name:
                assert not sources & {i.split("_")[0] for i in split.of(other)}
    assert not split.dropped


def test_split_is_seeded():
    records = [r for s in range(10) for r in volume(3, f"p{s}")]
    assert make_split(records, seed=1) == make_split(records, seed=1)
    assert make_split(records, seed=1) != make_split(records, seed=2)
