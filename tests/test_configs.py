"""Every config composes, and train/evaluate smoke-run on the tiny model and synthetic data."""

import json
import subprocess
import sys

import pandas as pd
import pytest
from hydra.utils import instantiate

from sam4med.evaluation.everything import EverythingSettings
from sam4med.jobs.evaluate import evaluate_model
from sam4med.jobs.train import fine_tune
from tests.conftest import REPO
from tests.helpers import CONF, HANG_TIMEOUT_S, compose_config

SMALL_TRAIN = [
    "model=tiny",
    "dataset=synthetic",
    "trainer.max_epochs=2",
    "logger=csv",
    "trainer.enable_progress_bar=false",
]


@pytest.mark.parametrize("model", sorted(p.stem for p in (CONF / "model").glob("*.yaml")))
@pytest.mark.parametrize("dataset", sorted(p.stem for p in (CONF / "dataset").glob("*.yaml")))
def test_every_model_and_dataset_composes(tmp_path, model, dataset):
    cfg = compose_config("train", tmp_path, [f"model={model}", f"dataset={dataset}"])
    assert cfg.model._target_.startswith("sam4med.models.builders.")
    assert cfg.dataset._target_ == "sam4med.data.datamodule.CosmosDataModule"


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "embeddings", "module"])
def test_every_option_of_other_groups_composes(tmp_path, group):
    for option in sorted(p.stem for p in (CONF / group).glob("*.yaml")):
        compose_config("train", tmp_path, [f"{group}={option}"])


def test_train_smoke_runs(tmp_path):
    cfg = compose_config("train", tmp_path, SMALL_TRAIN)
    metrics = fine_tune(cfg).metrics
    assert "val/dice" in metrics
    results = tmp_path / "run" / "results"
    frame = pd.read_csv(results / "metrics.csv")
    assert set(frame.phase) == {"zero_shot", "finetuned"}
    assert list(frame.columns[:9]) == [
        "phase",
        "strategy",
        "target",
        "modality",
        "object",
        "image_id",
        "object_key",
        "dice",
        "iou",
    ]
    counts = frame.groupby("phase").size()
    assert counts["zero_shot"] == counts["finetuned"] > 0
    for phase in ("zero_shot", "finetuned"):  # the callback scores all six strategies before and after
        assert set(frame[frame.phase == phase].strategy) == {"S1", "S2", "S3", "S4", "S5", "S6"}
    summary = json.loads((results / "summary.json").read_text())
    assert {m["phase"] for m in summary["means"]} == {"zero_shot", "finetuned"}
    assert "dice_delta" in (results / "comparison.md").read_text()
    comp = pd.read_csv(results / "comparison.csv")
    totals = comp[comp.target == "all targets"]
    assert set(totals.strategy) == {"S1", "S2", "S3", "S4", "S5", "S6"}
    stats = ["dice_delta_ci_low", "dice_delta_ci_high", "p_wilcoxon", "p_permutation"]
    enough = totals.n_units >= 5  # fewer units: no interval, no p-value (docs/statistics.md)
    assert totals.loc[enough, stats].notna().all().all() and totals.loc[~enough, stats].isna().all().all()
    assert totals.p_sign.notna().all() and not (totals.dice_delta_ci_low > totals.dice_delta_ci_high).any()
    checkpoints = list((tmp_path / "run" / "checkpoints").glob("epoch*.ckpt"))
    assert len(checkpoints) == 1
    # evaluate.py on the checkpoint with the run's prompts reproduces the callback's numbers: one flow
    again = evaluate_model(
        compose_config(
            "evaluate",
            tmp_path / "again",
            [
                "model=tiny",
                "dataset=synthetic",
                "everything=cpu",
                f"finetuned={checkpoints[0]}",
                f"evaluation.prompts.file={results / 'prompts.json'}",
            ],
        )
    )

    def rows(table):
        table = table[table.phase == "finetuned"].drop(columns="phase")
        return table.sort_values(["strategy", "object_key"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(rows(frame), rows(pd.read_csv(again / "metrics.csv")))


def test_train_callback_takes_the_s1_settings_of_the_config(tmp_path):
    settings = instantiate(compose_config("train", tmp_path).evaluation)
    assert settings.strategies == ("S1", "S2", "S3", "S4", "S5", "S6")
    assert (settings.everything.points_per_side, settings.everything.points_per_batch) == (8, 16)
    assert settings.everything.pred_iou_thresh == 0.88 and settings.everything.stability_score_thresh == 0.95
    paper = instantiate(compose_config("train", tmp_path, ["experiment=paper"]).evaluation)
    assert paper.everything == EverythingSettings()  # SAM's own generator defaults


def test_evaluate_smoke_runs_and_reuses_prompts(tmp_path):
    cfg = compose_config("evaluate", tmp_path, ["model=tiny", "dataset=synthetic", "evaluation.strategies=[S2,S4,S5]"])
    first = evaluate_model(cfg)
    prompts = first / "prompts.json"
    cfg2 = compose_config(
        "evaluate",
        tmp_path / "second",
        [
            "model=tiny",
            "dataset=synthetic",
            "evaluation.strategies=[S2,S4,S5]",
            f"evaluation.prompts.file={prompts}",
            "seed=999",
        ],
    )
    second = evaluate_model(cfg2)
    assert json.loads((second / "prompts.json").read_text())["prompts"] == json.loads(prompts.read_text())["prompts"]
    a, b = pd.read_csv(first / "metrics.csv"), pd.read_csv(second / "metrics.csv")
    pd.testing.assert_frame_equal(a, b)


def test_instantiated_datamodule_prepares_synthetic(tmp_path):
    cfg = compose_config("train", tmp_path, ["dataset=synthetic"])
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    assert len(datamodule.dataset("train")) > 0


@pytest.mark.parametrize("script", ["evaluate.py", "train.py"])
def test_vit_without_checkpoint_fails_in_one_line(tmp_path, script):
    proc = subprocess.run(
        [sys.executable, script, "model=vit_b", f"hydra.run.dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == [lines[0]] and "model.checkpoint" in lines[0] and lines[0].startswith("error:")


def test_cosmos_protocol_evaluates_on_nested_strided_prompts(tmp_path):
    cfg = compose_config(
        "evaluate",
        tmp_path,
        ["experiment=cosmos", "model=tiny", "dataset=synthetic", "evaluation.strategies=[S2,S3,S4,S5,S6]"],
    )
    assert (cfg.evaluation.multimask, cfg.evaluation.prompts.sampling, list(cfg.dataset.clip_percentiles)) == (
        "oracle",
        "strided",
        [0.95, 99.5],
    )
    results = evaluate_model(cfg)
    stored = json.loads((results / "prompts.json").read_text())
    assert stored["sampling"] == "strided"
    prompts = stored["prompts"]
    keys = {k.split("|", 1)[1] for k in prompts}
    assert keys
    for key in keys:
        s2, s3, s4, s6 = (prompts[f"{s}|{key}"] for s in ("S2", "S3", "S4", "S6"))
        assert s4["point_coords"][:5] == s3["point_coords"] and s4["point_labels"] == [1] * 5 + [0] * 5
        assert s6["point_coords"] == s2["point_coords"] == s3["point_coords"][:1]
    meta = json.loads((results / "summary.json").read_text())["meta"]
    assert (meta["multimask"], meta["prompt_sampling"]) == ("oracle", "strided")
    frame = pd.read_csv(results / "metrics.csv")
    assert (frame.candidates == 3).all()  # the oracle chose among the three multimask outputs
