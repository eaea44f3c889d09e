"""Every experiment config composes and smoke-runs (shrunk to the tiny model and synthetic data)."""

import pytest

from sam4med.jobs.train import fine_tune
from tests.helpers import CONF, compose_config

EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))
SHRINK = [
    "model=tiny",
    "dataset=synthetic",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "evaluation.overlays=1",
]


ALIASES = {"paper": "cosmos"}  # same config under another name: composed and compared, not run twice


def test_there_are_experiments():
    assert {"quick", "cosmos", "paper"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("alias", sorted(ALIASES))
def test_alias_composes_to_its_experiment(tmp_path, alias):
    a = compose_config("train", tmp_path, [f"experiment={alias}"])
    b = compose_config("train", tmp_path, [f"experiment={ALIASES[alias]}"])
    a.experiment_name = b.experiment_name
    assert a == b


@pytest.mark.parametrize("experiment", [e for e in EXPERIMENTS if e not in ALIASES])
def test_experiment_smoke_runs(tmp_path, experiment):
    cfg = compose_config("train", tmp_path, [f"experiment={experiment}", *SHRINK])
    assert cfg.experiment_name == experiment
    metrics = fine_tune(cfg).metrics
    assert "val/dice" in metrics
    assert (tmp_path / "run" / "results" / "comparison.md").is_file()
