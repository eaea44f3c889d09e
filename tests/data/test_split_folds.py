"""k-fold cross-validation over sources: every source is tested exactly once, and bad settings are refused."""

import pytest

from sam4med.data.split import make_split
from sam4med.dataset_format import ImageRecord
from sam4med.errors import ConfigError


def cohort(n_sources, slices=2):
    return [ImageRecord(f"p{s}_{z}", f"p{s}", z, "MR", None) for s in range(n_sources) for z in range(slices)]


def sources_of(ids):
    return {i.split("_")[0] for i in ids}


@pytest.mark.parametrize("n, k", [(3, 3), (5, 2), (10, 5), (11, 4)])
def test_folds_test_every_source_exactly_once(n, k):
    tested = []
    for fold in range(k):
        split = make_split(cohort(n), folds=k, fold=fold, seed=7)
        train, val, test = (sources_of(split.of(name)) for name in ("train", "val", "test"))
        assert train and val and test
        assert train | val | test == {f"p{s}" for s in range(n)} and not (train & val or train & test or val & test)
        assert len(test) in (n // k, -(-n // k))  # fold sizes differ by one at most
        tested += sorted(test)
    assert sorted(tested) == sorted(f"p{s}" for s in range(n))


def test_folds_are_seeded_and_val_follows_its_share_of_the_rest():
    assert make_split(cohort(10), folds=5, fold=2, seed=1) == make_split(cohort(10), folds=5, fold=2, seed=1)
    assert make_split(cohort(10), folds=5, fold=2, seed=1) != make_split(cohort(10), folds=5, fold=2, seed=2)
    split = make_split(cohort(10), fractions=(0.5, 0.25, 0.25), folds=5, fold=0)
    # 8 sources left: val gets 1/3 of them (0.25 of 0.75), rounded
    assert (len(sources_of(split.train)), len(sources_of(split.val)), len(sources_of(split.test))) == (5, 3, 2)
    no_val = make_split(cohort(10), fractions=(0.8, 0.0, 0.2), folds=5, fold=0)
    assert not no_val.val and len(sources_of(no_val.train)) == 8


@pytest.mark.parametrize(
    "n, kwargs, message",
    [
        (4, {"folds": 5}, "dataset.folds=5: more folds than the 4 sources (each fold needs one); use dataset.folds=4"),
        (10, {"folds": 5, "fold": 5}, "dataset.fold=5: must be 0..4 with dataset.folds=5"),
        (10, {"folds": 5, "fold": -1}, "dataset.fold=-1: must be 0..4"),
        (10, {"fold": 2}, "dataset.fold=2 needs dataset.folds=K"),
        (10, {"folds": 1}, "dataset.folds=1: must be an integer >= 2"),
        (2, {"folds": 2}, "runs over sources (volumes or patients) and this dataset has 2; it needs at least 3"),
        (3, {"folds": 2}, "with 3 sources the largest fold leaves 1 source(s) for train and val, which need 2; use "
         "dataset.folds=3"),
        (10, {"folds": 2, "fractions": (0, 0, 1)}, "train or val needs a non-zero fraction"),
    ],
)  # fmt: skip
def test_bad_fold_settings_are_refused_naming_the_counts(n, kwargs, message):
    with pytest.raises(ConfigError) as info:
        make_split(cohort(n), **kwargs)
    assert message in str(info.value)
