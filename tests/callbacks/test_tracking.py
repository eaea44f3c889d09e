"""The before/after results reach TensorBoard and (offline) Weights & Biases under the same names as the CSV."""

import json

import pandas as pd
import pytest
import wandb
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.plugins.custom_scalar import metadata as custom_scalar_metadata
from tensorboard.plugins.custom_scalar.layout_pb2 import Layout
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import plugin_data_pb2

from sam4med.jobs.evaluate import evaluate_model
from sam4med.jobs.train import fine_tune
from tests.callbacks.wandb_records import artifact_files, logged
from tests.helpers import compose_config


def _summaries(path, plugin):
    """Every summary value of a plugin in a TensorBoard event file."""
    for event in EventFileLoader(str(path)).Load():
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == plugin:
                yield value


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
            "evaluation.strategies=[S4,S5]",
            "evaluation.overlays=2",
        ],
    )
    fine_tune(cfg)
    wandb.finish()  # what the end of the process does for train.py
    run = tmp_path / "run"
    results = run / "results"

    # CSV logger: the same metric names
    csv = pd.read_csv(next((run / "logs").glob("version_*/metrics.csv")))
    names = {"zero_shot/S5/dice", "finetuned/S5/dice", "delta/S5/dice", "zero_shot/S5/hd_mm", "finetuned/S4/hd_mm"}
    names |= {"zero_shot/S5/nsd", "finetuned/S5/nsd", "delta/S5/nsd"}  # NSD beside Dice
    assert names <= set(csv.columns)
    assert not any(c.endswith("/hd") for c in csv.columns)  # a distance always names its unit

    # TensorBoard: scalars, figures, overlays, the comparison table, one chart per strategy, HParams
    version = next((run / "tensorboard").glob("version_*"))
    events = EventAccumulator(str(version))
    events.Reload()
    tags = events.Tags()
    assert names | {"train/loss", "val/dice"} <= set(tags["scalars"])
    figures = {"strategy_means", "dice_boxes", "modality_means", "before_after", "dice_change"}
    assert {f"figures/{f}" for f in figures} <= set(tags["images"])
    assert len([t for t in tags["images"] if t.startswith("overlays/")]) == 2
    assert any(t.startswith("comparison/table") for t in tags["tensors"])
    event_files = list(version.glob("events.out.tfevents.*"))
    layouts = [
        Layout.FromString(v.tensor.string_val[0])
        for f in event_files
        for v in _summaries(f, custom_scalar_metadata.PLUGIN_NAME)
    ]
    charts = {
        chart.title: list(chart.multiline.tag) for layout in layouts for cat in layout.category for chart in cat.chart
    }
    assert charts["S5 dice"] == ["zero_shot/S5/dice", "finetuned/S5/dice"]
    assert charts["S5 nsd"] == ["zero_shot/S5/nsd", "finetuned/S5/nsd"]
    session_metrics = set()
    for f in event_files:
        for value in _summaries(f, hparams_metadata.PLUGIN_NAME):
            data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
            session_metrics |= {m.name.tag for m in data.experiment.metric_infos}
    assert {"finetuned/S5/dice", "delta/S5/dice"} <= session_metrics

    # W&B (offline): the same names in the run summary, figures and overlay images, tables
    wandb_run = next((run / "wandb").glob("offline-run-*"))
    run_file = next(wandb_run.glob("run-*.wandb"))
    history, summary = logged(run_file)
    assert names <= set(history) and names <= set(summary)
    assert summary["finetuned/S5/dice"] == pytest.approx(csv["finetuned/S5/dice"].dropna().iloc[-1])
    assert {f"figures/{f}/_type" for f in figures} <= set(history)
    media = wandb_run / "files" / "media"
    images = [p.relative_to(media).as_posix() for p in (media / "images").rglob("*.png")]
    assert {f for f in figures if any(i.startswith(f"images/figures/{f}_") for i in images)} == figures
    tables = [p.relative_to(media).as_posix() for p in (media / "table").rglob("*.table.json")]
    for name in ("table/overlays_", "table/comparison/table_", "table/before_after/dice_"):
        assert any(t.startswith(name) for t in tables), (name, tables)
    overlay_table = json.loads(next(media.glob("table/overlays_*.table.json")).read_text())
    assert overlay_table["columns"] == ["target", "overlay"] and len(overlay_table["data"]) == 2  # a row per target
    overlay_files = next(files for name, files in artifact_files(run_file).items() if name.endswith("-overlays"))
    assert len([f for f in overlay_files if f.endswith(".png") and "/overlay_" in f]) == 2

    # and the files the figures came from
    assert len(list((results / "overlays").glob("overlay_*.png"))) == 2
    assert len(list((results / "overlays").glob("overlay_*.svg"))) == 2
    assert (results / "report.html").is_file()


def test_evaluate_sends_its_tables_figures_and_means_to_tensorboard(tmp_path):
    cfg = compose_config(
        "evaluate",
        tmp_path,
        [
            "model=tiny",
            "dataset=synthetic",
            "logger=tensorboard",
            "evaluation.strategies=[S2,S5]",
            "evaluation.overlays=1",
        ],
    )
    results = evaluate_model(cfg)
    version = next((tmp_path / "run" / "tensorboard").glob("version_*"))
    events = EventAccumulator(str(version))
    events.Reload()
    tags = events.Tags()
    assert {"figures/strategy_means", "figures/dice_boxes", "figures/modality_means"} <= set(tags["images"])
    assert len([t for t in tags["images"] if t.startswith("overlays/")]) == 1
    assert any(t.startswith("comparison/table") for t in tags["tensors"])
    frame = pd.read_csv(results / "metrics.csv")
    logged_s5 = events.Scalars("zero_shot/S5/dice")[-1].value
    assert logged_s5 == pytest.approx(frame.query("strategy == 'S5'")["dice"].mean(), rel=1e-6)
