"""NoC of the iterative-click rows on hand-written IoU sequences: the first click that reaches the IoU counts."""

import pandas as pd
import pytest

from sam4med.errors import DataError
from sam4med.evaluation.rows import ObjectResult
from sam4med.results.comparison import ALL_TARGETS
from sam4med.results.frame import to_frame
from sam4med.results.noc import NoC, noc, noc_summary, noc_table


def click_result(phase, image, key, k, iou, *, target="Liver-CT", source="", dice=None):
    return ObjectResult(
        phase=phase, strategy=f"I@{k}", target=target, modality="CT", object="o", image_id=image, object_key=key,
        dice=2 * iou / (1 + iou) if dice is None else dice, iou=iou, hd=1.0, hd95=1.0, hd_unit="px", score=0.5,
        nsd=iou, hd_px=1.0, hd95_px=1.0, candidates=3, source=source,
    )  # fmt: skip


def clicks_frame(sequences):
    """sequences: {(phase, key, target): [IoU after click 1, 2, ...]}."""
    return to_frame(
        click_result(phase, key.split("/")[0], key, k, iou, target=target)
        for (phase, key, target), ious in sequences.items()
        for k, iou in enumerate(ious, start=1)
    )


def test_noc_is_the_first_click_whose_iou_reaches_the_threshold():
    ious = [0.50, 0.82, 0.86, 0.91]
    assert noc(ious, 0.80) == NoC(2, False)
    assert noc(ious, 0.85) == NoC(3, False)
    assert noc(ious, 0.90) == NoC(4, False)
    assert noc([0.85, 0.1], 0.85) == NoC(1, False)  # reaching the threshold exactly counts (IoU >= t)


def test_not_reached_within_k_clicks_is_k_plus_one_and_failed():
    assert noc([0.1, 0.5, 0.84], 0.85) == NoC(4, True)
    nine = [0.3] * 9
    assert noc(nine, 0.80) == NoC(10, True)  # another K: K + 1 = 10
    assert noc([0.3] * 5, 0.80) == NoC(6, True)
    with pytest.raises(ValueError, match="at least one click"):
        noc([], 0.85)


def test_reached_then_lost_counts_the_first_click():
    # the standard definition: a later click that falls below the threshold does not undo the first
    assert noc([0.60, 0.90, 0.40, 0.30], 0.85) == NoC(2, False)
    assert noc([0.92, 0.10, 0.10], 0.90) == NoC(1, False)


def test_noc_table_per_phase_and_object_from_the_iou_column():
    frame = clicks_frame(
        {
            ("zero_shot", "a/1", "Liver-CT"): [0.70, 0.81, 0.86, 0.90, 0.95],
            ("zero_shot", "b/1", "Liver-CT"): [0.10, 0.20, 0.30, 0.40, 0.50],
            ("finetuned", "a/1", "Liver-CT"): [0.91, 0.92, 0.93, 0.94, 0.95],
            ("finetuned", "b/1", "Liver-CT"): [0.50, 0.86, 0.60, 0.70, 0.88],
        }
    )
    table = noc_table(frame)
    assert list(table.columns) == [
        "phase", "image_id", "source", "target", "object_key", "clicks",
        "noc80", "noc85", "noc90", "failed80", "failed85", "failed90",
    ]  # fmt: skip
    assert list(zip(table.phase, table.object_key, strict=True)) == [
        ("zero_shot", "a/1"), ("zero_shot", "b/1"), ("finetuned", "a/1"), ("finetuned", "b/1"),
    ]  # fmt: skip
    assert set(table.clicks) == {5}
    assert table[["noc80", "noc85", "noc90"]].to_numpy().tolist() == [[2, 3, 4], [6, 6, 6], [1, 1, 1], [2, 2, 6]]
    assert table[["failed80", "failed85", "failed90"]].to_numpy().tolist() == [
        [False, False, False], [True, True, True], [False, False, False], [False, False, True],
    ]  # fmt: skip


def test_noc_uses_iou_not_dice():
    # Dice 0.9 is IoU 0.818: NoC@85 is not reached although the Dice is above 0.85
    frame = to_frame([click_result("zero_shot", "a", "a/1", k, 0.818, dice=0.9) for k in (1, 2, 3)])
    row = noc_table(frame).iloc[0]
    assert (row.noc80, row.noc85, row.failed85) == (1, 4, True)


def test_noc_summary_means_and_failure_rates_per_target_and_over_all():
    frame = clicks_frame(
        {
            ("zero_shot", "a/1", "Liver-CT"): [0.90, 0.9, 0.9],
            ("zero_shot", "b/1", "Liver-CT"): [0.10, 0.1, 0.1],
            ("zero_shot", "a/2", "Lung-CT"): [0.10, 0.86, 0.9],
        }
    )
    summary = noc_summary(noc_table(frame)).set_index("target")
    assert list(summary.index) == ["Liver-CT", "Lung-CT", ALL_TARGETS]
    assert summary.loc["Liver-CT", "noc85"] == pytest.approx((1 + 4) / 2)  # the failure counts K + 1 = 4
    assert summary.loc["Liver-CT", "failed85"] == pytest.approx(0.5)
    assert summary.loc[ALL_TARGETS, "noc85"] == pytest.approx((1 + 4 + 2) / 3)
    assert summary.loc[ALL_TARGETS, "failed85"] == pytest.approx(1 / 3)
    assert summary.loc[ALL_TARGETS, "n"] == 3 and summary.loc[ALL_TARGETS, "clicks"] == 3


def test_an_object_without_every_click_is_a_data_error_naming_it():
    frame = clicks_frame({("zero_shot", "a/1", "Liver-CT"): [0.5, 0.6, 0.7], ("zero_shot", "b/1", "Liver-CT"): [0.5]})
    with pytest.raises(DataError, match=r"object b/1 \(zero_shot\) lacks rows I@2, I@3.*interactive.clicks"):
        noc_table(frame)
    twice = pd.concat([frame, frame.iloc[:1]])
    with pytest.raises(DataError, match="exactly one row"):
        noc_table(twice)


def test_no_click_rows_no_noc():
    frame = to_frame([ObjectResult("zero_shot", "S5", "t", "CT", "o", "a", "a/1", 0.5, 0.3, 1, 1, "px", 0.5, 0.4)])
    assert noc_table(frame).empty and noc_summary(noc_table(frame)).empty
