"""The module writes the training-data record into every checkpoint as plain data; read_finetuned reads it back
and refuses a damaged one, and reads an older checkpoint without it as None.
"""

import dataclasses

import pytest
import torch

from sam4med.errors import CheckpointError
from sam4med.models.builders import build_tiny
from sam4med.models.checkpoints import load_file
from sam4med.models.finetuned import DataSettings, TrainingData, read_finetuned
from sam4med.training.module import DecoderFineTuner
from tests.models.checkpoint_files import sam4med_entry, write_checkpoint

SETTINGS = DataSettings(
    dataset="colin27_aal",
    root="/data/colin27_aal",
    split_seed=0,
    fractions=(0.6, 0.1, 0.3),
    block_size=4,
    gap=1,
    folds=None,
    fold=None,
    clip_percentiles=(0.95, 99.5),
    min_object_area=51,
    prompt_seed=42,
    prompt_sampling="strided",
    prompts_file=None,
    multimask="oracle",
)
RECORD = TrainingData(
    images={"train": {"a": "0123456789abcdef", "b": "fedcba9876543210"}, "val": {"c": "00ff"}}, settings=SETTINGS
)


def saved_by_the_module(tmp_path, training_data):
    model = build_tiny()
    module = DecoderFineTuner(
        model, optimizer=lambda params: torch.optim.SGD(params, lr=0.1), training_data=training_data
    )
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "hyper_parameters": {}}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "decoder.ckpt")
    return tmp_path / "decoder.ckpt"


def test_the_record_travels_in_the_checkpoint_as_plain_data(tmp_path):
    path = saved_by_the_module(tmp_path, RECORD)
    entry = load_file(path, "a checkpoint")["sam4med"]["training_data"]  # the safe loader: plain data only
    assert entry["settings"]["fractions"] == [0.6, 0.1, 0.3] and entry["settings"]["clip_percentiles"] == [0.95, 99.5]
    assert entry["images"] == {"train": {"a": "0123456789abcdef", "b": "fedcba9876543210"}, "val": {"c": "00ff"}}
    read = read_finetuned(path).training_data
    assert read == RECORD
    assert read.seen() == {"0123456789abcdef": ("train", "a"), "fedcba9876543210": ("train", "b"), "00ff": ("val", "c")}


def test_a_module_without_a_record_writes_none_and_it_reads_as_none(tmp_path):
    path = saved_by_the_module(tmp_path, None)
    assert "training_data" not in load_file(path, "a checkpoint")["sam4med"]
    assert read_finetuned(path).training_data is None


@pytest.mark.parametrize(
    ("spoil", "named"),
    [
        (lambda e: "images", "sam4med.training_data is not a mapping"),
        (lambda e: {**e, "images": {"train": {}}}, "sam4med.training_data.images must hold the splits train, val"),
        (lambda e: {**e, "images": {"train": {"a": 3}, "val": {}}}, "sam4med.training_data.images.train is not image"),
        (lambda e: {**e, "settings": [1, 2]}, "sam4med.training_data.settings is not a mapping"),
        (
            lambda e: {**e, "settings": {**e["settings"], "split_seed": "0"}},
            "sam4med.training_data.settings.split_seed is '0', not a valid dataset.split_seed",
        ),
        (
            lambda e: {**e, "settings": {k: v for k, v in e["settings"].items() if k != "min_object_area"}},
            "sam4med.training_data.settings.min_object_area is None, not a valid dataset.min_object_area",
        ),
        (
            lambda e: {**e, "settings": {**e["settings"], "fractions": [0.5, "x"]}},
            "sam4med.training_data.settings.fractions is [0.5, 'x']",
        ),
    ],
    ids=[
        "not a mapping",
        "a split missing",
        "a hash not text",
        "settings not a mapping",
        "a str seed",
        "a missing value",
        "a bad list",
    ],
)
def test_a_damaged_record_is_refused_naming_the_field(tmp_path, spoil, named):
    tiny = build_tiny()
    entry = {**sam4med_entry(tiny), "training_data": spoil(RECORD.to_dict())}
    path = write_checkpoint(tmp_path / "damaged.ckpt", tiny, sam4med=entry)
    with pytest.raises(CheckpointError) as info:
        read_finetuned(path)
    assert str(info.value).startswith(f"{path}: {named}") and "\n" not in str(info.value)


def checkpoint_of(training_data):
    model = build_tiny()
    module = DecoderFineTuner(
        model, optimizer=lambda params: torch.optim.SGD(params, lr=0.1), training_data=training_data
    )
    checkpoint = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}}
    module.on_save_checkpoint(checkpoint)
    return checkpoint


@pytest.mark.parametrize(
    ("other", "named"),
    [
        (dataclasses.replace(RECORD, images={**RECORD.images, "val": {}}), "the training or validation images differ"),
        (dataclasses.replace(RECORD, settings=dataclasses.replace(SETTINGS, split_seed=1, gap=2)), "split_seed, gap"),
    ],
    ids=["images", "settings"],
)
def test_resuming_under_other_data_is_refused(other, named):
    module = DecoderFineTuner(
        build_tiny(), optimizer=lambda params: torch.optim.SGD(params, lr=0.1), training_data=other
    )
    with pytest.raises(CheckpointError, match=f"fitted under other data than this run's \\(.*{named}"):
        module.on_load_checkpoint(checkpoint_of(RECORD))
    same = DecoderFineTuner(
        build_tiny(), optimizer=lambda params: torch.optim.SGD(params, lr=0.1), training_data=RECORD
    )
    same.on_load_checkpoint(checkpoint_of(RECORD))  # the same data resumes
    moved = dataclasses.replace(RECORD, settings=dataclasses.replace(SETTINGS, root="/elsewhere"))
    same.on_load_checkpoint(checkpoint_of(moved))  # the folder's path is not compared
