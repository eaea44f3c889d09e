"""GPU checks (``pytest -m gpu``): the same pipeline on CUDA gives the CPU's results."""

import pandas as pd
import pytest
import torch

from sam4med.jobs.train import fine_tune
from tests.helpers import compose_config

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def needs_cuda():
    if not torch.cuda.is_available():
        pytest.fail("the gpu tests need a CUDA device")


def test_train_on_gpu_matches_cpu_zero_shot(tmp_path):
    runs = {}
    for accelerator in ("cpu", "gpu"):
        cfg = compose_config(
            "train",
            tmp_path / accelerator,
            [
                "experiment=quick",
                f"trainer.accelerator={accelerator}",
                "trainer.max_epochs=1",
                "trainer.enable_progress_bar=false",
            ],
        )
        fine_tune(cfg)
        runs[accelerator] = pd.read_csv(tmp_path / accelerator / "run" / "results" / "metrics.csv")
    cpu, gpu = (runs[a].query("phase == 'zero_shot'").reset_index(drop=True) for a in ("cpu", "gpu"))
    assert len(cpu) == len(gpu) > 0
    assert (cpu.dice - gpu.dice).abs().mean() < 0.01
    assert set(runs["gpu"].phase) == {"zero_shot", "finetuned"}
