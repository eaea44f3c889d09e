"""NSD in the result rows: computed per object under the configured tolerance and rule, part of the settings hash
(rows of another tolerance or rule are never reused), and written into metrics.csv and the tables of a run.
"""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import sam4med.evaluation.runner as runner
from sam4med.data.dataset import CosmosDataset, ObjectRef
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import score_dataset, settings_hash
from sam4med.evaluation.scoring import MetricSettings, score_objects
from sam4med.evaluation.zero_shot_store import ZeroShotStore
from sam4med.jobs.evaluate import evaluate_model
from sam4med.metrics.surface import normalised_surface_dice
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore
from sam4med.results.frame import to_frame
from sam4med.results.loggers import delta_metrics, phase_metrics
from sam4med.results.terminal import summary_table
from tests.helpers import compose_config


def two_objects() -> tuple[np.ndarray, np.ndarray]:
    """Ground truth: two 10 x 10 squares; predictions: the first moved 8 columns (Dice 0.2), the second 1 column."""
    gt = np.zeros((2, 40, 40), dtype=bool)
    gt[0, 5:15, 5:15] = True
    gt[1, 20:30, 20:30] = True
    pred = np.zeros_like(gt)
    pred[0, 5:15, 13:23] = True
    pred[1, 20:30, 21:31] = True
    return gt, pred


def rows_under(metrics: MetricSettings | None, spacing=None):
    gt, pred = two_objects()
    objects = [ObjectRef("img", "m", v, f"o{v}", "CT") for v in (1, 2)]
    return score_objects(
        phase="zero_shot",
        strategy="S5",
        objects=objects,
        gt_masks=gt,
        pred_masks=pred,
        scores=np.array([0.5, 0.9]),
        candidates=1,
        spacing=spacing,
        metrics=metrics,
    )


def test_rows_carry_nsd_at_the_tolerance_and_under_the_rule():
    gt, pred = two_objects()
    standard = rows_under(None)
    assert standard[0].dice == pytest.approx(0.2)
    assert standard[0].nsd == pytest.approx(normalised_surface_dice(pred[0], gt[0], 2.0), abs=1e-6)
    assert 0 < standard[0].nsd < 1 and standard[1].nsd == 1.0  # a 1-pixel shift is within 2 pixels
    tight = rows_under(MetricSettings(nsd_tolerance=0.5))
    assert tight[1].nsd == pytest.approx(normalised_surface_dice(pred[1], gt[1], 0.5), abs=1e-6) and tight[1].nsd < 1
    challenge = rows_under(MetricSettings(nsd_rule="cvpr2024"))
    assert challenge[0].nsd == 0.0  # Dice 0.2 is not above 0.2
    assert challenge[1].nsd == standard[1].nsd
    # with pixel spacing the tolerance is in mm: 1 column of 4 mm is beyond 2 mm
    assert rows_under(None, spacing=(4.0, 1.0))[1].nsd < 1.0


def test_nsd_reaches_the_loggers_and_the_printed_summary():
    zero_shot = rows_under(None)
    finetuned = [replace(r, phase="finetuned", nsd=1.0) for r in zero_shot]
    frame = to_frame(zero_shot + finetuned)
    logged = phase_metrics(frame, "zero_shot")
    assert logged["zero_shot/S5/nsd"] == pytest.approx(np.mean([r.nsd for r in zero_shot]))
    assert delta_metrics(frame)["delta/S5/nsd"] == pytest.approx(1.0 - logged["zero_shot/S5/nsd"])
    table = summary_table(frame).set_index("strategy")
    assert table.loc["S5", "nsd zero-shot"] == pytest.approx(logged["zero_shot/S5/nsd"])
    assert table.loc["S5", "nsd fine-tuned"] == 1.0
    older = frame.drop(columns="nsd")  # a metrics.csv written before NSD: reported without it, no error
    assert "zero_shot/S5/nsd" not in phase_metrics(older, "zero_shot")
    assert "nsd zero-shot" not in summary_table(older)


def test_tolerance_and_rule_are_part_of_the_settings_hash(tiny_model, synthetic_root):
    dataset = CosmosDataset(synthetic_root, image_ids=["syn0000"])
    common = {"phase": "zero_shot", "multimask": Multimask.SINGLE, "everything": EverythingSettings()}
    default = settings_hash(tiny_model, dataset, PromptStore(seed=0), **common)
    assert settings_hash(tiny_model, dataset, PromptStore(seed=0), metrics=MetricSettings(), **common) == default
    tolerance = settings_hash(tiny_model, dataset, PromptStore(seed=0), metrics=MetricSettings(1.0), **common)
    rule = settings_hash(tiny_model, dataset, PromptStore(seed=0), metrics=MetricSettings(2.0, "cvpr2024"), **common)
    assert len({default, tolerance, rule}) == 3


def test_stored_zero_shot_rows_of_another_tolerance_are_scored_again(tiny_model, synthetic_root, tmp_path, monkeypatch):
    dataset = CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001"])
    store = ZeroShotStore(tmp_path / "shared")
    calls = []
    original = runner._score_image
    monkeypatch.setattr(runner, "_score_image", lambda *a, **k: calls.append(1) or original(*a, **k))

    def run(name, tolerance):
        return score_dataset(
            tiny_model,
            dataset,
            strategies=["S5"],
            phase="zero_shot",
            cache=EmbeddingCache(None),
            prompts=PromptStore(seed=0),
            multimask=Multimask.SINGLE,
            everything=EverythingSettings(points_per_side=4),
            log_path=tmp_path / name / "log.jsonl",
            progress=False,
            zero_shot_store=store,
            metrics=MetricSettings(nsd_tolerance=tolerance),
        )

    wide = run("a", 2.0)
    assert len(calls) == 2
    tight = run("b", 0.5)
    assert len(calls) == 4  # another tolerance: nothing reused
    assert [r.dice for r in tight] == [r.dice for r in wide]
    assert all(t.nsd <= w.nsd for t, w in zip(tight, wide, strict=True))
    assert run("c", 0.5) == tight and len(calls) == 4  # the same tolerance again: every row reused
    assert len(list((tmp_path / "shared").iterdir())) == 2  # one settings folder per tolerance


def test_a_quick_evaluation_writes_nsd_beside_dice(tmp_path):
    overrides = ["experiment=quick", "evaluation.strategies=[S5]", "evaluation.overlays=0", "metrics.nsd_tolerance=1"]
    results = evaluate_model(compose_config("evaluate", tmp_path, overrides))
    metrics = pd.read_csv(results / "metrics.csv")
    assert "nsd" in metrics and len(metrics) > 0
    assert metrics["nsd"].between(0, 1).all()
    meta = json.loads((results / "summary.json").read_text())["meta"]
    assert meta["nsd"].startswith("tolerance 1 (mm where the spacing is known") and meta["nsd"].endswith("standard")
    assert meta["metric_rules"] == 2
    comp = pd.read_csv(results / "comparison.csv")  # one phase: its means per target, NSD beside Dice
    assert list(comp.columns[2:4]) == ["dice_zero_shot", "nsd_zero_shot"] and comp["nsd_zero_shot"].notna().all()
    tables = (results / "tables.md").read_text()
    assert "Mean NSD" in tables and (results / "table_nsd.csv").is_file()
