"""Mistakes in a command surface at once, in one line, before any model is loaded or image encoded."""

import pytest
import torch

from sam4med.command import user_error
from sam4med.errors import ConfigError, DataError
from sam4med.jobs.evaluate import evaluate_model
from sam4med.jobs.prepare import prepare_dataset
from sam4med.jobs.train import fine_tune
from tests.helpers import compose_config

# a model that cannot be built: reaching instantiate(cfg.model) fails with a CheckpointError instead
NO_MODEL = ["model=vit_b", "model.checkpoint=/nonexistent/sam_vit_b.pth", "dataset=synthetic"]


def one_line(exc: BaseException) -> str:
    error = user_error(exc)
    assert error is not None, f"a traceback, not a user error: {exc!r}"
    assert "\n" not in str(error)
    return str(error)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["evaluation.strategies=[]"],
            "strategies must be a non-empty list of S1, S2, S3, S4, S5, S6, M1, M2, M3, M4, M5, I; got",
        ),
        (["evaluation.strategies=[S5,S7]"], "unknown strategies ['S7']; available: S1, S2, S3, S4, S5, S6"),
        (["evaluation.strategies=[S5,S5]"], "name a strategy twice"),
        (["evaluation.multimask=oracel"], "multimask must be one of single, oracle, confidence; got 'oracel'"),
        (
            ["evaluation.prompts.file=/nowhere/prompts.json"],
            "evaluation.prompts.file=/nowhere/prompts.json: file does not exist",
        ),
        (["evaluation.prompts.sampling=stridd"], "prompts.sampling must be one of random, strided; got 'stridd'"),
        (["evaluation.split=val", "dataset.fractions=[0.8,0.0,0.2]"], "split 'val' is empty"),
    ],
)
def test_evaluate_refuses_bad_settings_before_loading_the_model(tmp_path, overrides, message):
    with pytest.raises(Exception) as info:  # a ConfigError, wrapped by Hydra's instantiate where it was raised
        evaluate_model(compose_config("evaluate", tmp_path, [*NO_MODEL, *overrides]))
    assert message in one_line(info.value)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["dataset.fractions=[0.8,0.0,0.2]"], "split 'val' is empty"),
        (["evaluation.multimask=oracel"], "multimask must be one of single, oracle, confidence; got 'oracel'"),
        (["evaluation.strategies=[S9]"], "unknown strategies ['S9']"),
    ],
)
def test_train_refuses_bad_settings_before_loading_the_model(tmp_path, overrides, message):
    with pytest.raises(Exception) as info:
        fine_tune(compose_config("train", tmp_path, [*NO_MODEL, *overrides]))
    assert message in one_line(info.value)


def test_a_misspelled_preparer_setting_keeps_the_real_message(tmp_path):
    cfg = compose_config("prepare", tmp_path, ["dataset=synthetic", "+dataset.preparer.n_imgaes=3"])
    with pytest.raises(Exception) as info:
        prepare_dataset(cfg)
    message = one_line(info.value)
    assert "unexpected keyword argument 'n_imgaes'" in message and "SyntheticShapes" in message


@pytest.mark.parametrize("overrides", [["dataset.min_object_area=100000"]], ids=["min_object_area_removes_all"])
def test_a_split_without_objects_is_an_error_not_an_empty_result(tmp_path, overrides):
    cfg = compose_config(
        "evaluate", tmp_path, ["model=tiny", "dataset=synthetic", "evaluation.strategies=[S5]", *overrides]
    )
    with pytest.raises(DataError, match=r"images of split 'test' hold no object to score .*min_object_area=100000"):
        evaluate_model(cfg)
    assert not (tmp_path / "run" / "results" / "metrics.csv").exists()


@pytest.mark.parametrize("used", ["checkpoints/last.ckpt", "results/evaluation_log.jsonl"])
def test_a_new_training_run_into_a_used_run_folder_is_refused(tmp_path, used):
    (tmp_path / "run" / used).parent.mkdir(parents=True)
    (tmp_path / "run" / used).write_text("from the first run")
    with pytest.raises(ConfigError) as info:
        fine_tune(compose_config("train", tmp_path, NO_MODEL))
    assert "run: already holds a run" in one_line(info.value) and "ckpt_path=last" in str(info.value)


def test_resuming_from_a_hostile_checkpoint_fails_in_one_line_and_runs_nothing(tmp_path):
    from tests.models.test_checkpoint_safety import CreatesAFile

    target = tmp_path / "created_on_load.txt"
    hostile = tmp_path / "last.ckpt"
    torch.save({"state_dict": CreatesAFile(target)}, hostile)
    with pytest.raises(Exception) as info:
        fine_tune(compose_config("train", tmp_path, [*NO_MODEL, f"ckpt_path={hostile}"]))
    assert "it holds code, not tensors" in one_line(info.value)
    assert not target.exists() and not (tmp_path / "data").exists()  # nothing ran, nothing was prepared
