"""One fold of a k-fold over sources runs end to end (experiment=quick on four synthetic sources)."""

import csv

from sam4med.jobs.train import fine_tune
from tests.helpers import compose_config


def test_a_fold_of_the_quick_experiment_trains_and_tests_on_its_fold(tmp_path):
    overrides = [
        "experiment=quick",
        "dataset.preparer.sources=4",  # 12 images, 3 per source
        "dataset.folds=2",
        "dataset.fold=1",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "evaluation.overlays=0",
        "evaluation.strategies=[S5]",  # S1 (everything mode) is the slow one; the split is what is tested
    ]
    result = fine_tune(compose_config("train", tmp_path, overrides))
    assert "val/dice" in result.metrics
    with (tmp_path / "run" / "split.csv").open() as handle:
        split = {row["image_id"]: row["split"] for row in csv.DictReader(handle)}
    # vol<k> holds images k, k+4, k+8; fold 1 of 2 tests two whole sources, val and train get one each
    by_split = {name: {int(i[3:]) % 4 for i, s in split.items() if s == name} for name in ("train", "val", "test")}
    assert [len(by_split[name]) for name in ("train", "val", "test")] == [1, 1, 2]
    assert set().union(*by_split.values()) == {0, 1, 2, 3}
    assert sum(s == "test" for s in split.values()) == 6
    assert (tmp_path / "run" / "results" / "comparison.md").is_file()
