"""The before/after results reach TensorBoard and (offline) Weights & Biases."""

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sam4med.jobs.train import fine_tune
from tests.helpers import compose_config


def test_tensorboard_and_offline_wandb_receive_results(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config(
        "train",
        tmp_path,
        [
            "experiment=quick",
            "logger=many",
            "trainer.max_epochs=1",
            "trainer.enable_progress_bar=false",
            "callbacks.before_after.overlays=2",
        ],
    )
    fine_tune(cfg)
    run = tmp_path / "run"
    events = EventAccumulator(str(next((run / "tensorboard").glob("version_*"))))
    events.Reload()
    tags = events.Tags()
    assert {"zero_shot/S5/dice", "finetuned/S5/dice", "train/loss", "val/dice"} <= set(tags["scalars"])
    assert {"comparison/dice_per_strategy", "overlays/00", "overlays/01"} <= set(tags["images"])
    assert any(t.startswith("comparison/table") for t in tags["tensors"])
    media = list((run / "wandb").glob("offline-run-*/files/media/images/**/*.png"))
    assert len(media) >= 3
    assert list((run / "wandb").glob("offline-run-*/files/media/table/**/*.json"))
    assert (run / "results" / "overlays" / "overlays_01.png").is_file()
