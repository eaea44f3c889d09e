"""analysis=timing: seconds per image of the embedding and of each strategy, medians over repeats."""

import html
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

import sam4med.analysis.timing as timing
from sam4med.analysis.timing import REPEAT_COLUMNS, TIMING_COLUMNS, TimingSuite, device_name
from sam4med.errors import ConfigError
from sam4med.evaluation.decoding import prompts_per_call
from sam4med.evaluation.rows import Phase
from sam4med.jobs.evaluate import evaluate_model
from sam4med.results.page import FIGURE_TITLES
from tests.helpers import CONF, compose_config

SMALL = ["everything.points_per_side=4", "everything.points_per_batch=8", "evaluation.interactive.clicks=2"]


def test_the_yaml_holds_the_defaults():
    node = OmegaConf.to_container(OmegaConf.load(CONF / "analysis" / "timing.yaml"))
    assert node.pop("_target_") == "sam4med.analysis.timing.TimingSuite"
    assert set(node) == {f.name for f in fields(TimingSuite)}
    assert TimingSuite(**node) == TimingSuite() == TimingSuite(repeats=5, warmup=1, max_images=4)
    assert (CONF / "analysis" / "timing.yaml").read_text().startswith("# @package analysis.timing\n")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"repeats": 0}, "repeats"),
        ({"repeats": 2.5}, "repeats"),
        ({"warmup": -1}, "warmup"),
        ({"warmup": True}, "warmup"),
        ({"max_images": 0}, "max_images"),
        ({"max_images": None}, "max_images"),
    ],
)
def test_bad_settings_name_the_setting(settings, field):
    with pytest.raises(ConfigError, match=f"analysis.timing.{field}"):
        TimingSuite(**settings)


def test_the_table_has_every_stage_per_phase_and_its_context(analysis_input):
    inputs = analysis_input(["S1", "S5", "I"], SMALL)
    state = {k: v + 0.01 for k, v in inputs.model.mask_decoder.state_dict().items()}
    inputs = replace(inputs, decoders={Phase.ZERO_SHOT: None, Phase.FINETUNED: state})
    out = TimingSuite(repeats=3, warmup=1, max_images=2).run(inputs)
    table, raw = out.tables["timing"], out.tables["timing_repeats"]
    assert list(table.columns) == list(TIMING_COLUMNS) and list(raw.columns) == list(REPEAT_COLUMNS)
    stages = list(zip(table["phase"], table["stage"], strict=True))
    assert stages == [("all", "embedding")] + [(p, s) for p in ("zero_shot", "finetuned") for s in ("S1", "S5", "I")]
    assert (table["repeats"] == 3).all() and (table["warmup"] == 1).all() and (table["images"] == 2).all()
    assert len(raw) == 3 * len(table) and sorted(set(raw["repeat"])) == [1, 2, 3]
    objects = sum(len(inputs.dataset[i].objects) for i in range(2))  # the first two test images hold objects
    assert (table["objects"] == objects).all()
    assert (table["seconds_per_image"] > 0).all()
    assert (table["seconds_min"] <= table["seconds_q1"]).all() and (table["seconds_q3"] <= table["seconds_max"]).all()
    for (phase, stage), group in raw.groupby(["phase", "stage"]):
        row = table[(table["phase"] == phase) & (table["stage"] == stage)].iloc[0]
        assert row["seconds_per_image"] == np.median(group["seconds_per_image"])
        assert row["seconds_per_object"] == np.median(group["seconds_per_object"])
        np.testing.assert_allclose(group["seconds_per_image"] * 2, group["seconds"])
    assert set(table["device"]) == {device_name(torch.device("cpu"))} and table["device"].iloc[0] != ""
    assert set(table["backbone"]) == {inputs.model.name} and set(table["input_size"]) == {64}
    assert set(table["threads"]) == {torch.get_num_threads()} and set(table["images_per_encoder_call"]) == {1}
    per_call = table.set_index(["phase", "stage"])["prompts_per_decoder_call"]
    embedding = inputs.session.cache.get(inputs.model, inputs.dataset[0].image)
    assert per_call[("zero_shot", "S1")] == 8  # the S1 grid points per call: points_per_batch
    assert per_call[("zero_shot", "S5")] == prompts_per_call("cpu", embedding)
    assert per_call[("all", "embedding")] == 0  # no decoder call
    # the fine-tuned decoder state was restored after the suite
    for key, value in inputs.model.mask_decoder.state_dict().items():
        assert not torch.equal(value, state[key])
    fig = out.figures["timing"]
    assert len(fig.axes[0].patches) == 1 + 2 * 3  # one bar per row


def test_the_warm_up_is_run_but_not_recorded_and_the_median_is_the_repeats(analysis_input, monkeypatch):
    inputs = analysis_input(["S5"])
    now = [0.0]
    monkeypatch.setattr(timing, "clock", lambda device: now[0])
    calls = []
    per_pass = [10.0, 10.0, 1.0, 4.0, 2.0, 3.0]  # seconds per embedding call in each pass: two warm-up passes first

    def embed(image):
        calls.append(image)
        now[0] += per_pass[(len(calls) - 1) // 2]  # two images per pass
        return None

    monkeypatch.setattr(inputs.model, "embed_image", embed)
    out = TimingSuite(repeats=4, warmup=2, max_images=2).run(inputs)
    assert len(calls) == (2 + 4) * 2
    raw = out.tables["timing_repeats"]
    recorded = raw[raw["stage"] == "embedding"]
    assert recorded["seconds_per_image"].tolist() == [1.0, 4.0, 2.0, 3.0]  # the 10 s warm-up passes are left out
    row = out.tables["timing"].set_index("stage").loc["embedding"]
    assert row["seconds_per_image"] == 2.5 and row["seconds_min"] == 1.0 and row["seconds_max"] == 4.0
    assert row["seconds_q1"] == 1.75 and row["seconds_q3"] == 3.25
    assert row["seconds_per_object"] == pytest.approx(2.5 * 2 / row["objects"])


def test_evaluate_writes_the_timing_tables_and_figure(tmp_path: Path):
    overrides = ["experiment=quick", "analysis=timing", "evaluation.overlays=0", "evaluation.strategies=[S2,S5]"]
    overrides += ["analysis.timing.repeats=2", "analysis.timing.max_images=1"]
    results = evaluate_model(compose_config("evaluate", tmp_path, overrides))
    table = pd.read_csv(results / "timing.csv")
    assert table["stage"].tolist() == ["embedding", "S2", "S5"] and (table["repeats"] == 2).all()
    assert len(pd.read_csv(results / "timing_repeats.csv")) == 3 * 2
    assert (results / "timing.md").is_file() and (results / "figures" / "timing.png").is_file()
    assert f'alt="{html.escape(FIGURE_TITLES["timing"])}"' in (results / "report.html").read_text()
