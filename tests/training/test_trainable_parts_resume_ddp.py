"""module.train=decoder+prompt_encoder and lora in train.py's own processes: a run killed mid-epoch resumes to the
same trained weights, and two DDP processes train the weights of one (as tests/training/test_ddp_resume_export.py
checks for the decoder)."""

import signal

import pandas as pd
import pytest
import torch

from tests.training.test_ddp_resume_export import run_train

MODES = {
    "decoder+prompt_encoder": ["module.train=decoder+prompt_encoder"],
    "lora": ["module.train=lora", "dataset.input_mode=online", "module.lora.rank=2"],
}
# weights are compared (every epoch's checkpoint kept: last.ckpt follows the best one): no scoring
NO_EVALUATION = ["callbacks.before_after=null", "trainer.max_epochs=2", "callbacks.model_checkpoint.save_top_k=-1"]
DDP = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "dataset.batch_size=1"]


def last_weights(run):
    """The trained weights after the second (last) epoch."""
    path = next((run / "checkpoints").glob("epoch01-*.ckpt"))
    return torch.load(path, weights_only=True)["state_dict"]


@pytest.fixture(scope="module", params=list(MODES))
def reference(request, tmp_path_factory):
    """One uninterrupted single-process run of the mode (batch size 2)."""
    tmp = tmp_path_factory.mktemp(request.param.replace("+", "_"))
    proc = run_train(tmp, "single", *MODES[request.param], *NO_EVALUATION)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return request.param, tmp


@pytest.mark.slow  # three train.py runs per mode
def test_killed_run_resumes_to_the_same_trained_weights(reference):
    mode, tmp = reference
    logged = pd.read_csv(tmp / "single" / "logs" / "version_0" / "metrics.csv")
    steps_per_epoch = int(logged.dropna(subset=["val/dice"]).step.iloc[0]) + 1
    kill = ["+callbacks.kill._target_=tests.crash.KillAtStep", f"+callbacks.kill.step={steps_per_epoch + 1}"]
    killed = run_train(tmp, "resumed", *MODES[mode], *NO_EVALUATION, *kill)  # inside the second epoch
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = run_train(tmp, "resumed", *MODES[mode], *NO_EVALUATION, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    single, again = last_weights(tmp / "single"), last_weights(tmp / "resumed")
    assert single.keys() == again.keys()
    assert any(".lora_B." in k or k.startswith("model.prompt_encoder.") for k in single)
    for key, value in single.items():
        torch.testing.assert_close(again[key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_two_process_ddp_trains_the_weights_of_one(reference):
    mode, tmp = reference
    unused = ["trainer.strategy.find_unused_parameters=true"] if mode == "decoder+prompt_encoder" else []
    proc = run_train(tmp, "ddp", *MODES[mode], *NO_EVALUATION, *DDP, *unused)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single, parallel = last_weights(tmp / "single"), last_weights(tmp / "ddp")
    assert single.keys() == parallel.keys()
    for key, value in single.items():
        torch.testing.assert_close(parallel[key], value, rtol=1e-4, atol=1e-5)
