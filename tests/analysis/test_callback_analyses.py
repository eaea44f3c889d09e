"""train.py runs the analysis suites before and after fine-tuning: both phases in every suite's table, the
zero-shot phase with the zero-shot decoder (its robustness rows at the unshifted level equal nothing
else than its own scored rows), and the run's analysis group configures a suite."""

import pandas as pd
import pytest

from sam4med.errors import ConfigError
from sam4med.jobs.train import fine_tune
from tests.helpers import compose_config

SMALL_TRAIN = [
    "model=tiny",
    "dataset=synthetic",
    "trainer.max_epochs=1",
    "logger=csv",
    "trainer.enable_progress_bar=false",
    "evaluation.strategies=[S2,S5]",
    "evaluation.overlays=0",
]


def test_train_runs_named_and_configured_suites_over_both_phases(tmp_path):
    cfg = compose_config(
        "train",
        tmp_path,
        [
            *SMALL_TRAIN,
            "callbacks.before_after.analyses=[factors]",
            "analysis=robustness",
            "analysis.robustness.levels=[[0,0],[5,10]]",
            "analysis.robustness.repeats=1",
        ],
    )
    fine_tune(cfg)
    results = tmp_path / "run" / "results"
    metrics = pd.read_csv(results / "metrics.csv")
    robustness = pd.read_csv(results / "robustness.csv")
    assert set(robustness.phase) == {"zero_shot", "finetuned"}
    assert set(robustness.level) == {"0-0", "5-10"}  # the configured levels, not the defaults
    objects = pd.read_csv(results / "robustness_objects.csv")
    unshifted = objects[objects.level == "0-0"].merge(
        metrics, on=["phase", "strategy", "object_key"], suffixes=("_shifted", "")
    )
    assert len(unshifted) == len(metrics) > 0  # every scored row, each phase decoded with its own decoder
    assert (unshifted["dice_shifted"] - unshifted["dice"]).abs().max() < 1e-6
    factors = pd.read_csv(results / "factors.csv")
    assert set(factors.phase) == {"zero_shot", "finetuned"}
    assert (results / "figures" / "robustness.png").is_file()
    assert (results / "figures" / "factors_scatter.png").is_file()
    assert "robustness" in (results / "report.html").read_text()


def test_unknown_analysis_name_is_refused_before_training(tmp_path):
    cfg = compose_config("train", tmp_path, [*SMALL_TRAIN, "callbacks.before_after.analyses=[noise]"])
    with pytest.raises(ConfigError, match="unknown analysis 'noise'"):
        fine_tune(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()
