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


REGIMES = sorted(p.stem for p in (CONF / "regime").glob("*.yaml"))
REGIME_SETTINGS = {  # module.prompts, module.iterations, module.train, dataset.input_mode
    "box": ("box", 0, "decoder", "cached"),
    "mixed": ("mixed", 0, "decoder", "cached"),
    "mixed_iterative": ("mixed", 3, "decoder", "cached"),
    "mixed_negatives": ("mixed_negatives", 0, "decoder+prompt_encoder", "cached"),
    "mixed_negatives_iterative": ("mixed_negatives", 3, "decoder+prompt_encoder", "cached"),
    "interactive": ("interactive", 0, "decoder+prompt_encoder", "cached"),
    "lora": ("mixed", 0, "lora", "online"),
}


def test_every_regime_of_the_regimes_experiment_sets_its_settings(tmp_path):
    from omegaconf import OmegaConf

    assert REGIMES == sorted(REGIME_SETTINGS)
    for regime, settings in REGIME_SETTINGS.items():
        cfg = compose_config("train", tmp_path, [f"regime={regime}"])
        m = cfg.module
        assert (m.prompts, m.iterations, m.train, cfg.dataset.input_mode) == settings, regime
    # no regime: the design card's run, equal to regime=box
    plain, box = compose_config("train", tmp_path), compose_config("train", tmp_path, ["regime=box"])
    assert plain.module == box.module and plain.dataset == box.dataset
    sweep = OmegaConf.load(CONF / "experiment" / "regimes.yaml").hydra.sweeper.params
    swept = ["box", "mixed", "mixed_iterative", "interactive", "lora"]  # the others measured, not swept
    assert sweep.regime.split(",") == swept and sweep.seed == "0,1,2"


@pytest.mark.slow  # the settings each sets are tested in tests/training; this runs the regime configs whole
@pytest.mark.parametrize("regime", ["mixed_iterative", "mixed_negatives", "interactive", "lora"])
def test_regime_smoke_runs(tmp_path, regime):
    cfg = compose_config("train", tmp_path, [f"regime={regime}", *SHRINK, "evaluation.strategies=[S3,S5]"])
    assert "val/dice" in fine_tune(cfg).metrics
    assert (tmp_path / "run" / "results" / "comparison.md").is_file()


@pytest.mark.slow
def test_regimes_experiment_end_to_end_writes_the_regimes_table(tmp_path):
    """The whole multirun, shrunk: 5 regimes x 3 seeds on the tiny model (about 2 minutes)."""
    import subprocess
    import sys

    import pandas as pd

    from tests.conftest import REPO
    from tests.helpers import HANG_TIMEOUT_S

    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "experiment=regimes",
            *SHRINK,
            "evaluation.strategies=[S2,S5]",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={sweep}",
        ],  # fmt: skip
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S * 12,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(sweep / "regimes.csv")
    total = table[(table.phase == "finetuned") & (table.target == "all targets")]
    assert set(total.strategy) == {"S2", "S5"} and set(total.seeds) == {3} and set(total.reference) == {"box"}
    assert {f"delta_{r}" for r in ("mixed", "mixed_iterative", "interactive", "lora")} <= set(table.columns)
    assert (sweep / "figures" / "regimes.png").is_file()
