"""Result tables (the paper's Tables 2/3, Fig. 6/10 means), S1 empty counts, and the per-object scoring."""

import math

import numpy as np
import pandas as pd
import pytest

from sam4med.data.dataset import ObjectRef
from sam4med.evaluation.rows import ObjectResult
from sam4med.evaluation.scoring import distances, score_objects
from sam4med.results.frame import to_frame
from sam4med.results.tables import modality_table, s1_empty_table, strategy_table, target_table
from sam4med.results.write import write_results
from sam4med.run_files import ResultsFolder


def row(strategy, target, image, dice, hd=10.0, modality="CT", candidates=1):
    return ObjectResult(
        phase="zero_shot",
        strategy=strategy,
        target=f"{target}-{modality}",
        modality=modality,
        object=target,
        image_id=image,
        object_key=f"{image}/m/{target}",
        dice=dice,
        iou=dice / (2 - dice),
        hd=hd,
        hd95=hd,
        hd_unit="px",
        score=0.5,
        nsd=dice,
        hd_px=hd,
        hd95_px=hd,
        candidates=candidates,
    )


@pytest.fixture
def frame():
    rows = [
        row("S5", "Liver", "a", 0.8, 4.0),
        row("S5", "Liver", "b", 0.6, 8.0),
        row("S1", "Liver", "a", 0.0, 90.0, candidates=0),
        row("S1", "Liver", "b", 0.5, 20.0, candidates=4),
        row("S5", "Lung", "a", 1.0, 0.0, modality="MRI"),
        row("S1", "Lung", "a", 0.0, 90.0, modality="MRI", candidates=0),
        row("S2", "Lung", "a", 0.3, 30.0, modality="MRI"),
    ]
    return to_frame(rows)


def test_target_table_is_targets_by_strategies_in_order(frame):
    table = target_table(frame, "dice")
    assert list(table.columns) == ["phase", "target", "n", "S1", "S2", "S5"]
    liver = table.set_index("target").loc["Liver-CT"]
    assert liver["n"] == 2 and liver["S5"] == pytest.approx(0.7) and liver["S1"] == pytest.approx(0.25)
    assert math.isnan(liver["S2"])  # not scored for this target: shown empty, not as zero
    hd = target_table(frame, "hd_px").set_index("target")
    assert hd.loc["Liver-CT", "S1"] == pytest.approx(55.0)


def test_means_include_every_failure_and_nan_is_an_error(frame):
    overall = strategy_table(frame).set_index("strategy")
    assert overall.loc["S1", "n"] == 3
    assert overall.loc["S1", "dice_mean"] == pytest.approx(0.5 / 3)  # two failures count as 0
    assert overall.loc["S5", "dice_std"] == pytest.approx(np.std([0.8, 0.6, 1.0]))
    bad = frame.copy()
    bad.loc[0, "dice"] = float("nan")
    with pytest.raises(ValueError, match="missing"):
        strategy_table(bad)


def test_modality_table(frame):
    table = modality_table(frame).set_index(["modality", "strategy"])
    assert table.loc[("CT", "S5"), "dice_mean"] == pytest.approx(0.7)
    assert table.loc[("MRI", "S1"), "n"] == 1
    assert list(table.reset_index()["strategy"][:3]) == ["S1", "S5", "S1"]


def test_s1_empty_images_are_counted_per_image(frame):
    table = s1_empty_table(frame).iloc[0]
    assert (table["images"], table["empty_images"]) == (2, 1)
    assert table["empty_fraction"] == 0.5
    assert s1_empty_table(frame[frame.strategy != "S1"]).empty


def test_write_results_writes_the_tables(frame, tmp_path):
    paths = write_results(frame, ResultsFolder(tmp_path), meta={"title": "t", "multimask": "single"})
    for name in ("table_dice", "table_hd", "per_modality", "per_strategy", "s1_empty", "metrics", "summary"):
        assert paths[name].is_file()
    text = (tmp_path / "tables.md").read_text()
    assert "| phase | target | n | S1 | S2 | S5 |" in text and "Table 3" in text
    assert pd.read_csv(paths["metrics"]).shape[0] == len(frame)


def test_distances_in_pixels_and_mm():
    a = np.zeros((30, 30), dtype=bool)
    a[5:15, 5:15] = True
    b = np.roll(a, 4, axis=1)
    d = distances(b, a, (0.5, 2.0))
    assert (d.hd_px, d.hd) == (pytest.approx(4.0), pytest.approx(2.0))
    assert d.nsd == 1.0  # NSD in mm like HD: 4 columns of 0.5 mm are within the 2 mm tolerance
    assert distances(b, a, None).nsd < 1.0  # 4 pixels are not within 2 pixels
    assert distances(b, a, (1.0, 1.0)) == distances(b, a, None)


def test_score_objects_empty_prediction_rules():
    gt = np.zeros((2, 10, 12), dtype=bool)
    gt[0, 2:5, 2:5] = True
    gt[1, 6:9, 6:9] = True
    pred = np.zeros_like(gt)
    pred[1] = gt[1]
    objects = [ObjectRef("img", "m", v, f"o{v}", "CT") for v in (1, 2)]
    rows = score_objects(
        phase="zero_shot",
        strategy="S5",
        objects=objects,
        gt_masks=gt,
        pred_masks=pred,
        scores=np.array([0.1, 0.9]),
        candidates=1,
        spacing=(2.0, 2.0),
    )
    assert rows[0].dice == 0 and rows[0].hd == pytest.approx(math.hypot(20, 24)) and rows[0].hd_unit == "mm"
    assert rows[0].hd_px == pytest.approx(math.hypot(10, 12))
    assert rows[1].dice == 1 and rows[1].hd == 0 and rows[1].score == 0.9


def test_printed_summary_has_one_row_per_strategy_with_its_means(frame, capsys):
    from sam4med.results.terminal import print_summary

    print_summary(frame, title="run")
    out = capsys.readouterr().out
    assert "run" in out and "S5" in out
    s5 = frame[frame["strategy"] == "S5"]
    assert f"{s5['dice'].mean():.3f}" in out
