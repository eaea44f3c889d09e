"""Runs that need their own processes: DDP, kill -9 and resume; plus export."""

import json
import signal
import subprocess
import sys

import pandas as pd
import pytest
import torch
from segment_anything.modeling import Sam

from sam4med.export import export
from sam4med.models.builders import build_tiny
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S

BASE = ["model=tiny", "dataset=synthetic", "trainer.enable_progress_bar=false", "trainer.max_epochs=3"]


def run_train(tmp_path, name, *overrides, timeout=HANG_TIMEOUT_S):
    args = [
        *BASE,
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "paths.zero_shot_dir=null",  # every run scores its own baseline: DDP and resume are what is tested
        f"hydra.run.dir={tmp_path / name}",
        *overrides,
    ]
    return subprocess.run(
        [sys.executable, "train.py", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )


def read_metrics(run):
    return pd.read_csv(run / "results" / "metrics.csv")


def assert_same_results(a, b):
    pd.testing.assert_frame_equal(a.drop(columns=["score"]), b.drop(columns=["score"]), check_exact=False, rtol=1e-5)
    pd.testing.assert_series_equal(a["score"], b["score"], check_exact=False, rtol=1e-4, atol=1e-5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted single-process run (batch size 2)."""
    tmp = tmp_path_factory.mktemp("ref")
    proc = run_train(tmp, "single")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, read_metrics(tmp / "single")


def test_two_process_ddp_equals_single_process(reference):
    tmp, single = reference
    proc = run_train(tmp, "ddp", "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "dataset.batch_size=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ddp = read_metrics(tmp / "ddp")
    assert set(ddp.phase) == {"zero_shot", "finetuned"}
    assert_same_results(single, ddp)


def test_killed_run_resumes_to_the_same_result(reference):
    tmp, single = reference
    logged = pd.read_csv(tmp / "single" / "logs" / "version_0" / "metrics.csv")
    steps_per_epoch = int(logged.dropna(subset=["val/dice"]).step.iloc[0]) + 1
    killed = run_train(
        tmp, "resumed", "+callbacks.kill._target_=tests.crash.KillAtStep", f"+callbacks.kill.step={steps_per_epoch + 1}"
    )  # inside the second epoch
    assert killed.returncode == -signal.SIGKILL
    assert (tmp / "resumed" / "checkpoints" / "last.ckpt").is_file()
    assert not (tmp / "resumed" / "results" / "metrics.csv").read_text().count("finetuned")
    resumed = run_train(tmp, "resumed", "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    assert_same_results(single, read_metrics(tmp / "resumed"))


@pytest.mark.slow  # two train.py runs (plus the reference): minutes on a busy CPU
@pytest.mark.parametrize("phase", ["zero_shot", "finetuned"])
def test_killed_in_the_before_or_after_evaluation_resumes_to_the_same_result(reference, phase):
    tmp, single = reference
    name = f"killed_{phase}"
    kill = ["+callbacks.kill._target_=tests.crash.KillInEvaluation", f"+callbacks.kill.phase={phase}"]
    killed = run_train(tmp, name, *kill, "+callbacks.kill.after=7")  # in the second image (6 strategies each)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    log = (tmp / name / "results" / "evaluation_log.jsonl").read_text().splitlines()
    assert len({row["image_id"] for row in map(json.loads, log) if row["phase"] == phase}) == 1
    resumed = run_train(tmp, name, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_results(single, read_metrics(tmp / name))


def test_export_loads_into_segment_anything(reference):
    tmp, _ = reference
    best = next((tmp / "single" / "checkpoints").glob("epoch*.ckpt"))
    out = export(best, tmp / "exported.pth")
    state = torch.load(out, weights_only=True)
    tiny = build_tiny()
    sam = Sam(image_encoder=tiny.image_encoder, prompt_encoder=tiny.prompt_encoder, mask_decoder=tiny.mask_decoder)
    sam.load_state_dict(state, strict=True)
    trained = torch.load(best, weights_only=True)["state_dict"]
    key = "mask_decoder.iou_token.weight"
    assert torch.equal(sam.state_dict()[key], trained[f"model.{key}"])
    assert not torch.equal(build_tiny().state_dict()[key], trained[f"model.{key}"])
