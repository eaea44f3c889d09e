"""The data module's split checks before training: an empty split is refused with the dataset's counts,
a validation split of fewer than 3 images is warned about, and k-fold settings reach the split."""

import logging

import pytest

from sam4med.data.datamodule import CosmosDataModule
from sam4med.errors import ConfigError
from sam4med.prepare.synthetic import SyntheticShapes


def module(tmp_path, n_images, sources, **kwargs):
    preparer = SyntheticShapes(n_images=n_images, size=(32, 32), sources=sources)
    dm = CosmosDataModule(root=tmp_path / "data", preparer=preparer, min_object_area=4, **kwargs)
    dm.prepare_data()
    return dm


def test_an_empty_split_is_refused_with_counts_sizes_and_a_fix(tmp_path):
    dm = module(tmp_path, 6, 1)  # one volume of 6 slices in blocks of 4: two blocks for three splits
    with pytest.raises(ConfigError) as info:
        dm.check_splits(["train", "val", "test"])
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'data'}: split 'val' is empty: 1 source and 6 images split in slice")
    assert "train 1/6, val 0/0, test 0/0" in message
    assert "would work: dataset.block_size=1" in message and "dataset.fractions=[0,0,1]" in message


def test_a_validation_split_under_three_images_is_warned_about(tmp_path, caplog):
    dm = module(tmp_path, 8, 4)  # 4 sources of 2 images: train/val/test get 2/1/1 sources
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        dm.check_splits(["train", "val", "test"])
    warnings = [r.getMessage() for r in caplog.records if r.name == "sam4med"]
    assert len(warnings) == 1
    assert "the validation split has 2 image(s) (fewer than 3); the best checkpoint is chosen on it" in warnings[0]
    assert "train 2/4, val 1/2, test 1/2" in warnings[0]


def test_no_warning_with_three_validation_images_or_without_validation(tmp_path, caplog):
    dm = module(tmp_path, 12, 4)  # 3 images per source
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        dm.check_splits(["train", "val", "test"])
        dm.check_splits(["test"])
    assert len(dm.split.val) == 3
    assert not [r for r in caplog.records if r.name == "sam4med"]


def test_folds_reach_the_split_and_bad_ones_name_the_folder(tmp_path):
    tested = set()
    for fold in range(4):
        dm = module(tmp_path, 8, 4, folds=4, fold=fold)
        dm.setup()
        tested |= {r.source for r in dm.dataset("test").records}
        assert len(dm.split.test) == 2
    assert tested == {"vol0", "vol1", "vol2", "vol3"}
    with pytest.raises(ConfigError, match="more folds than the 4 sources") as info:
        module(tmp_path, 8, 4, folds=5).setup()
    assert str(info.value).startswith(f"{tmp_path / 'data'}: dataset.folds=5")
