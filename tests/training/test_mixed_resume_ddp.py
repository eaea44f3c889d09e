"""Mixed prompts with corrective clicks (module.prompts=mixed module.iterations=2), end to end in train.py:
the run finishes with its before/after tables, a run killed mid-epoch resumes to the same weights, and two
DDP processes train the same weights as one.
"""

import signal

import pandas as pd
import pytest
import torch

from sam4med.models.builders import build_tiny
from tests.training.test_ddp_resume_export import run_train

# every epoch's checkpoint is kept: last.ckpt of an uninterrupted run is not always its last epoch (Lightning
# writes it with the top-k save), so the weights compared are those of the final epoch's own checkpoint
MIXED = [
    "module.prompts=mixed",
    "module.iterations=2",
    "trainer.max_epochs=2",
    "callbacks.model_checkpoint.save_top_k=-1",
]
NO_EVALUATION = ["callbacks.before_after=null"]  # resume and DDP compare weights: no before/after scoring


def final_weights(run):
    (path,) = (run / "checkpoints").glob("epoch01-*.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    assert checkpoint["global_step"] > 0 and checkpoint["epoch"] == 1
    return checkpoint["state_dict"]


@pytest.fixture(scope="module")
def mixed_reference(tmp_path_factory):
    """One uninterrupted single-process run (batch size 2), with the before/after evaluation: the smoke run."""
    tmp = tmp_path_factory.mktemp("mixed")
    proc = run_train(tmp, "single", *MIXED)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp


def test_mixed_iterative_training_runs_end_to_end(mixed_reference):
    metrics = pd.read_csv(mixed_reference / "single" / "results" / "metrics.csv")
    assert set(metrics.phase) == {"zero_shot", "finetuned"}
    hyper = torch.load(mixed_reference / "single" / "checkpoints" / "last.ckpt", weights_only=True)["hyper_parameters"]
    assert hyper["prompts"] == "mixed" and hyper["iterations"] == 2 and hyper["iteration_mask_input"] is True


@pytest.mark.slow  # two more train.py runs (the default suite keeps the box-only resume and DDP tests)
def test_killed_mixed_run_resumes_to_the_same_weights(mixed_reference):
    tmp = mixed_reference
    logged = pd.read_csv(tmp / "single" / "logs" / "version_0" / "metrics.csv")
    steps_per_epoch = int(logged.dropna(subset=["val/dice"]).step.iloc[0]) + 1
    kill = ["+callbacks.kill._target_=tests.crash.KillAtStep", f"+callbacks.kill.step={steps_per_epoch + 1}"]
    killed = run_train(tmp, "resumed", *MIXED, *NO_EVALUATION, *kill)  # inside the second epoch
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    resumed = run_train(tmp, "resumed", *MIXED, *NO_EVALUATION, "ckpt_path=last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr + resumed.stdout
    single, again = final_weights(tmp / "single"), final_weights(tmp / "resumed")
    assert single.keys() == again.keys()
    for key, value in single.items():
        torch.testing.assert_close(again[key], value, rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # two more train.py runs (the default suite keeps the box-only resume and DDP tests)
def test_two_process_ddp_trains_the_mixed_weights_of_one(mixed_reference):
    tmp = mixed_reference
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "dataset.batch_size=1"]
    proc = run_train(tmp, "ddp", *MIXED, *NO_EVALUATION, *ddp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    single, parallel = final_weights(tmp / "single"), final_weights(tmp / "ddp")
    # not bit for bit: the two ranks' gradients are averaged in another float order than one batch's, and Adam
    # magnifies that in parameters with tiny gradients; the box-only default differs by up to 2e-5 here too
    for key, value in single.items():
        torch.testing.assert_close(parallel[key], value, rtol=1e-3, atol=1e-4)
    start = build_tiny().state_dict()  # the weights both runs started from
    moved = max((value - start[key.removeprefix("model.")]).abs().max().item() for key, value in single.items())
    apart = max((parallel[key] - value).abs().max().item() for key, value in single.items())
    assert moved > 0 and apart < 0.05 * moved  # far closer to each other than to where training began
