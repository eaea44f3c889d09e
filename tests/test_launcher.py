"""SLURM sweeps through hydra-submitit-launcher: the config, and a sweep run by submitit's local executor."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from tests.helpers import CONF, HANG_TIMEOUT_S

REPO = Path(__file__).resolve().parents[1]


def test_slurm_launcher_runs_one_task_per_gpu_with_time_and_memory(tmp_path):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(
            config_name="train",
            overrides=["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert launcher.tasks_per_node == launcher.gpus_per_node == 4
    assert launcher.timeout_min > 0 and launcher.mem_gb > 0 and launcher.cpus_per_task > 0
    assert OmegaConf.select(cfg, "hydra.callbacks.merge_sweep._target_").endswith("MergeSweepResults")


def test_two_job_quick_sweep_through_submitit_writes_the_merged_tables(tmp_path):
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "hydra/launcher=submitit_local",
            f"hydra.launcher.timeout_min={HANG_TIMEOUT_S // 60}",
            "experiment=quick",
            "seed=0,1",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "everything.points_per_side=4",
            "evaluation.strategies=[S1,S5]",
            "evaluation.overlays=0",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S * 2,  # two training jobs
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (sweep / ".submitit").is_dir()  # the jobs went through submitit
    for job in ("0", "1"):
        assert (sweep / job / "results" / "metrics.csv").is_file()
    table = pd.read_csv(sweep / "sweep_dice.csv")
    assert any(c.startswith("seed=0") for c in table.columns) and any(c.startswith("seed=1") for c in table.columns)
    assert (sweep / "seeds.csv").is_file()
