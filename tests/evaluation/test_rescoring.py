"""A fine-tuned checkpoint is never scored on its own training images, nor silently under other data settings."""

import dataclasses
import json
import shutil
import subprocess
import sys

import pytest

from sam4med.data.dataset import CosmosDataset
from sam4med.errors import ConfigError
from sam4med.evaluation.rescoring import (
    TRAINING_IMAGES,
    allowed_names,
    check_allow,
    check_rescoring,
)
from sam4med.jobs.evaluate import evaluate_model
from sam4med.jobs.train import fine_tune
from sam4med.models.finetuned import DataSettings, TrainingData, read_finetuned
from sam4med.prepare.synthetic import SyntheticShapes
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S, compose_config

# --- check_rescoring on a hand-made record -----------------------------------------------------------

TRAINED = DataSettings(
    dataset="synthetic",
    root="/data/synthetic",
    split_seed=0,
    fractions=(0.5, 0.25, 0.25),
    block_size=3,
    gap=0,
    folds=None,
    fold=None,
    clip_percentiles=None,
    min_object_area=4,
    prompt_seed=42,
    prompt_sampling="random",
    prompts_file=None,
    multimask="single",
)
# each compared setting, another value of it, and that value as the refusal writes it
OTHER_VALUES = {
    "split_seed": (3, "3"),
    "fractions": ((0.6, 0.2, 0.2), "[0.6,0.2,0.2]"),
    "block_size": (4, "4"),
    "gap": (1, "1"),
    "folds": (5, "5"),
    "fold": (2, "2"),
    "clip_percentiles": ((0.95, 99.5), "[0.95,99.5]"),
    "min_object_area": (51, "51"),
    "prompt_seed": (7, "7"),
    "prompt_sampling": ("strided", "strided"),
    # trained on a named prompts file, scored now with drawn ones (a file named now fixes the prompts: no check)
    "prompts_file": (None, "null"),
}
TRAINED_AS = {"fractions": "[0.5,0.25,0.25]", "clip_percentiles": "null", "folds": "null", "fold": "null"}
TRAINED_WITH_FILE = {"prompts_file": "/runs/a/results/prompts.json"}


@pytest.fixture(scope="module")
def images(synthetic_root):
    return CosmosDataset(synthetic_root)


def record(dataset, train_ids, val_ids=(), settings=TRAINED):
    hashes = dataset.image_hashes()
    return TrainingData(
        images={"train": {i: hashes[i] for i in train_ids}, "val": {i: hashes[i] for i in val_ids}}, settings=settings
    )


def test_every_compared_setting_has_a_case():
    assert set(OTHER_VALUES) == set(DataSettings.checked())
    assert set(allowed_names()) == {*DataSettings.checked(), TRAINING_IMAGES}


@pytest.mark.parametrize("name", sorted(OTHER_VALUES))
def test_each_mismatch_is_refused_naming_setting_values_and_override_unless_allowed(images, name):
    trained = dataclasses.replace(TRAINED, **{k: v for k, v in TRAINED_WITH_FILE.items() if k == name})
    training = record(images, ["syn0000"], settings=trained)
    scored = images.subset(["syn0004", "syn0005"])
    value, written = OTHER_VALUES[name]
    now = dataclasses.replace(TRAINED, **{name: value})
    setting = DataSettings.setting(name)
    was = TRAINED_AS.get(name, str(getattr(trained, name)))
    with pytest.raises(ConfigError) as info:
        check_rescoring("ckpt", training, scored, now, split="test")
    assert str(info.value) == (
        "ckpt: would be scored under other data settings than it was trained under, so its rows would not compare "
        f"with its training run's zero-shot baseline: {setting} is {written} now but was {was} in training: set "
        f"{setting}={was}, or allow_mismatch=[{name}] to score anyway (recorded)"
    )
    allowed = check_rescoring("ckpt", training, scored, now, split="test", allow=[name])
    assert allowed == [f"{setting}={written} (trained with {was})"]


def test_nothing_differs_nothing_is_recorded(images):
    assert check_rescoring("ckpt", record(images, ["syn0000"]), images.subset(["syn0004"]), TRAINED, split="test") == []


def test_two_mismatches_are_named_together_and_each_must_be_allowed(images):
    now = dataclasses.replace(TRAINED, min_object_area=51, clip_percentiles=(1.0, 99.0))
    training, scored = record(images, ["syn0000"]), images.subset(["syn0004"])
    with pytest.raises(ConfigError, match=r"clip_percentiles is \[1,99\] now.*; dataset.min_object_area is 51 now"):
        check_rescoring("ckpt", training, scored, now, split="test", allow=[])
    with pytest.raises(ConfigError, match="min_object_area") as info:
        check_rescoring("ckpt", training, scored, now, split="test", allow=["clip_percentiles"])
    assert "clip_percentiles" not in str(info.value)
    allowed = check_rescoring(
        "ckpt", training, scored, now, split="test", allow=["clip_percentiles", "min_object_area"]
    )
    assert allowed == [
        "dataset.clip_percentiles=[1,99] (trained with null)",
        "dataset.min_object_area=51 (trained with 4)",
    ]


def test_a_named_prompts_file_fixes_the_prompts_so_prompt_settings_are_not_compared(images):
    now = dataclasses.replace(TRAINED, prompt_seed=7, prompt_sampling="strided", prompts_file="/runs/a/prompts.json")
    assert check_rescoring("ckpt", record(images, ["syn0000"]), images.subset(["syn0004"]), now, split="test") == []
    # but the split is still compared
    with pytest.raises(ConfigError, match=r"dataset.gap is 2 now"):
        check_rescoring(
            "ckpt", record(images, ["syn0000"]), images.subset(["syn0004"]), dataclasses.replace(now, gap=2), split="t"
        )


def test_training_images_in_the_scored_split_are_refused_naming_them_and_the_cause(images):
    training = record(images, ["syn0000", "syn0001", "syn0002"], ["syn0003"])
    now = dataclasses.replace(TRAINED, split_seed=3)
    with pytest.raises(ConfigError) as info:
        check_rescoring("ckpt", training, images.subset(["syn0001", "syn0003", "syn0006"]), now, split="test")
    assert str(info.value) == (
        "ckpt: was trained or validated on 2 of the 3 images of split 'test' (same image content): syn0001 (train), "
        "syn0003 (val); likely cause: the split differs from training's (dataset.split_seed=3 (trained with 0)). "
        "Score it with its training's split settings, or allow_mismatch=[training_images] to score them anyway "
        "(recorded in the results)"
    )
    # allowing the split setting does not allow the leak; naming training_images allows both, recorded
    with pytest.raises(ConfigError, match="was trained or validated on 2 of the 2 images"):
        check_rescoring(
            "ckpt", training, images.subset(["syn0001", "syn0003"]), now, split="test", allow=["split_seed"]
        )
    allowed = check_rescoring(
        "ckpt",
        training,
        images.subset(["syn0001", "syn0003", "syn0006"]),
        now,
        split="test",
        allow=["training_images", "split_seed"],
    )
    assert allowed == [
        "dataset.split_seed=3 (trained with 0)",
        "training_images: 2 of the 3 scored images were trained or validated on",
    ]


def test_the_same_image_under_another_id_is_recognised(images, tmp_path):
    root = shutil.copytree(images.root, tmp_path / "copy")
    for folder in (root / "images", *(root / "labels").iterdir()):
        (folder / "syn0000.png").rename(folder / "renamed.png")
    manifest = root / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("syn0000,", "renamed,"))
    copy = CosmosDataset(root, ["renamed", "syn0005"])
    assert copy.image_hashes()["renamed"] == images.image_hashes()["syn0000"]
    assert copy.image_hashes()["syn0005"] != images.image_hashes()["syn0000"]
    with pytest.raises(
        ConfigError,
        match=r"1 of the 2 images of split 'test'.*: renamed \(train, as syn0000\); "
        r"likely cause: split 'test' holds images of the training or validation split",
    ):
        check_rescoring("ckpt", record(images, ["syn0000"]), copy, TRAINED, split="test")


def test_at_most_ten_leaked_ids_are_named_with_the_count(tmp_path):
    twelve = CosmosDataset(SyntheticShapes(n_images=12, size=(24, 32), seed=1)(tmp_path))
    ids = [r.image_id for r in twelve.records]
    with pytest.raises(ConfigError, match=r"on 12 of the 12 images") as info:
        check_rescoring("ckpt", record(twelve, ids), twelve, TRAINED, split="test")
    named = ", ".join(f"{i} (train)" for i in ids[:10])
    assert f"(same image content): {named}, ... (2 more); likely cause" in str(info.value)


def test_a_checkpoint_without_the_record_is_refused_unless_training_images_is_allowed(images):
    with pytest.raises(
        ConfigError,
        match=r"ckpt: records no training images or data settings .*allow_mismatch=\["
        r"training_images\]",
    ):
        check_rescoring("ckpt", None, images, TRAINED, split="test", allow=["split_seed"])
    assert check_rescoring("ckpt", None, images, TRAINED, split="test", allow=["training_images"]) == [
        "training_images: the checkpoint records none (not checked for leaks or settings)"
    ]


def test_allow_mismatch_names_are_checked():
    assert (
        check_allow(None) == () and check_allow("gap") == ("gap",) and check_allow(["gap", "fold"]) == ("gap", "fold")
    )
    with pytest.raises(ConfigError, match=r"allow_mismatch names unknown settings \['clip'\]; allowed: split_seed, "):
        check_allow(["gap", "clip"])


def test_allow_mismatch_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"allow_mismatch=\['gap'\] applies to finetuned=CKPT only"):
        evaluate_model(compose_config("evaluate", tmp_path, ["experiment=quick", "allow_mismatch=[gap]"]))


# --- train.py, then evaluate.py on the checkpoint --------------------------------------------------------

QUICK = ["experiment=quick", "evaluation.strategies=[S5]"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A train.py experiment=quick run (S5 only, to be quick): its folder and best checkpoint."""
    tmp = tmp_path_factory.mktemp("trained")
    fine_tune(
        compose_config(
            "train", tmp, [*QUICK, "logger=none", "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]
        )
    )
    checkpoint = sorted((tmp / "run" / "checkpoints").glob("epoch*.ckpt"))[0]
    return tmp, checkpoint


def test_a_checkpoint_records_its_training_and_validation_images_and_data_settings(trained):
    tmp, checkpoint = trained
    recorded = read_finetuned(checkpoint).training_data
    split = {}
    for line in (tmp / "run" / "split.csv").read_text().splitlines()[1:]:
        image_id, name = line.split(",")
        split.setdefault(name, []).append(image_id)
    data = CosmosDataset(tmp / "data" / "synthetic")
    assert {k: sorted(v) for k, v in recorded.images.items()} == {
        "train": sorted(split["train"]),
        "val": sorted(split["val"]),
    }
    assert recorded.images["train"] == {i: data.image_hashes()[i] for i in split["train"]}
    settings = recorded.settings
    assert (settings.dataset, settings.root) == ("synthetic", str(tmp / "data" / "synthetic"))
    assert (settings.split_seed, settings.fractions, settings.block_size, settings.gap) == (0, (0.5, 0.25, 0.25), 3, 0)
    assert (settings.clip_percentiles, settings.min_object_area) == (None, 4)
    assert (settings.prompt_seed, settings.prompt_sampling, settings.prompts_file, settings.multimask) == (
        42,
        "random",
        None,
        "single",
    )
    last = read_finetuned(tmp / "run" / "checkpoints" / "last.ckpt").training_data
    assert last == recorded  # computed once per fit, the same in every checkpoint


def test_evaluate_with_another_split_seed_exits_non_zero_naming_the_leaked_images(trained, tmp_path):
    tmp, checkpoint = trained
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            *QUICK,
            f"finetuned={checkpoint}",
            "dataset.split_seed=3",  # puts three training images into the test split
            f"paths.data_dir={tmp / 'data'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"paths.zero_shot_dir={tmp_path / 'zero_shot'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert (
        f"error: {checkpoint}: was trained or validated on 3 of the 3 images of split 'test' (same image content): "
        "syn0009 (train), syn0010 (train), syn0011 (train); likely cause: the split differs from training's "
        "(dataset.split_seed=3 (trained with 0))"
    ) in errors[0]
    assert not (tmp_path / "run").exists()  # refused before anything was scored: the started folder is removed


def test_an_allowed_mismatch_is_scored_logged_and_written_into_the_results(trained, tmp_path, caplog):
    tmp, checkpoint = trained

    def config(name, overrides):
        cfg = compose_config("evaluate", tmp_path / name, [*QUICK, f"finetuned={checkpoint}", *overrides])
        cfg.paths.data_dir = str(tmp / "data")  # the trained run's dataset folder
        return cfg

    with pytest.raises(ConfigError, match=r"dataset.split_seed is 1 now but was 0 in training"):
        evaluate_model(config("refused", ["dataset.split_seed=1"]))  # no leak with seed 1, but another split
    with caplog.at_level("WARNING", logger="sam4med"):
        results = evaluate_model(config("allowed", ["dataset.split_seed=1", "allow_mismatch=[split_seed]"]))
    meta = json.loads((results / "summary.json").read_text())["meta"]
    assert meta["allowed_mismatch"] == "dataset.split_seed=1 (trained with 0)"
    assert (meta["prompt_rules"], meta["metric_rules"]) == (1, 2)
    assert "allowed mismatch with the checkpoint's training (allow_mismatch): dataset.split_seed=1" in caplog.text
    assert "dataset.split_seed=1 (trained with 0)" in (results / "report.html").read_text()
    assert "allowed_mismatch: dataset.split_seed=1 (trained with 0)" in (results / "comparison.md").read_text()
