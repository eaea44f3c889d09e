"""The comparison statistics on cases small enough to compute by hand."""

import math

import numpy as np
import pandas as pd
import pytest

from sam4med.evaluation.rows import ObjectResult
from sam4med.results.comparison import ALL_TARGETS, comparison
from sam4med.results.frame import overall, to_frame
from sam4med.results.statistics import pair, paired_delta, sign_test


def pairs(rows):
    """rows: (image_id, before, after) per object."""
    return pd.DataFrame(
        [
            {"strategy": "S5", "target": "t", "image_id": i, "object_key": f"{i}/{k}", "before": b, "after": a}
            for k, (i, b, a) in enumerate(rows)
        ]
    )


def test_wilcoxon_exact_by_hand():
    # differences 0.3, 0.4, 0.1, -0.2: ranks 3, 4, 1, 2; W- = 2; P(W- <= 2) = 3/16 of the 16 sign patterns
    stat = paired_delta(pairs([("a", 0, 0.3), ("b", 0, 0.4), ("c", 0, 0.1), ("d", 0.2, 0)]))
    assert stat.p_wilcoxon == pytest.approx(6 / 16)
    assert stat.delta == pytest.approx(0.15) and (stat.objects, stat.images) == (4, 4)


def test_bootstrap_resamples_images_not_objects():
    # image a: three objects that gain 1; image b: one object that gains 0. Resampling the two images gives
    # means 1 (a, a), 0.75 (a, b) or 0 (b, b), each extreme with probability 1/4, so the 95 % percentile
    # interval is [0, 1]. Resampling objects instead would almost never draw four b's (0.4 %): low > 0.
    stat = paired_delta(pairs([("a", 0, 1), ("a", 0, 1), ("a", 0, 1), ("b", 0, 0)]))
    assert stat.delta == pytest.approx(0.75)
    assert (stat.ci_low, stat.ci_high) == (pytest.approx(0.0), pytest.approx(1.0))


def test_identical_images_give_a_point_interval_and_no_change_gives_p_1():
    same = paired_delta(pairs([("a", 0.5, 0.7), ("b", 0.1, 0.3)]))
    assert same.ci_low == pytest.approx(0.2) and same.ci_high == pytest.approx(0.2)
    assert paired_delta(pairs([("a", 0.5, 0.5)])).p_wilcoxon == 1.0


def test_sign_test_by_hand():
    assert sign_test(pd.Series([0.1, 0.2, 0.3, 0.1, 0.05])) == pytest.approx(2 / 32)
    assert sign_test(pd.Series([0.1, 0.2, 0.3, 0.1, 0.05, -0.1, 0.0])) == pytest.approx(14 / 64)  # tie left out
    assert sign_test(pd.Series([0.0, 0.0])) == 1.0


def result(phase, image, key, dice, *, target="t", strategy="S5", hd=1.0, empty=False):
    return ObjectResult(
        phase=phase, strategy=strategy, target=target, modality="MRI", object="o", image_id=image,
        object_key=key, dice=dice, iou=dice, hd=hd, hd95=hd, hd_unit="px", score=0.5, hd_px=hd, hd95_px=hd,
        candidates=1, empty=empty,
    )  # fmt: skip


def test_comparison_has_statistics_columns_and_an_all_targets_row():
    rows = []
    for k, (image, target, before, after) in enumerate(
        [("a", "t1", 0.5, 0.8), ("a", "t2", 0.4, 0.5), ("b", "t1", 0.6, 0.7), ("c", "t2", 0.3, 0.25)]
    ):
        rows += [result("zero_shot", image, f"k{k}", before, target=target)]
        rows += [result("finetuned", image, f"k{k}", after, target=target)]
    comp = comparison(to_frame(rows))
    total = comp[comp.target == ALL_TARGETS].iloc[0]
    assert total["dice_delta"] == pytest.approx((0.3 + 0.1 + 0.1 - 0.05) / 4) and total["n"] == 4
    assert total["dice_delta_ci_low"] <= total["dice_delta"] <= total["dice_delta_ci_high"]
    assert total["p_sign"] == pytest.approx(0.5)  # both targets improved: 2 * (1/2)^2
    per_target = comp[comp.target == "t1"].iloc[0]
    assert per_target["dice_delta"] == pytest.approx(0.2) and math.isnan(per_target["p_sign"])
    assert list(pair(to_frame(rows), "zero_shot", "finetuned").columns[-2:]) == ["before", "after"]


def test_nan_or_inf_metric_is_refused_with_the_rows_named():
    with pytest.raises(ValueError, match=r"metric 'dice' is NaN or infinite in 1 result rows.*'object_key': 'bad'"):
        to_frame([result("zero_shot", "a", "ok", 0.5), result("zero_shot", "a", "bad", float("nan"))])
    with pytest.raises(ValueError, match="metric 'hd' is NaN or infinite"):
        to_frame([result("zero_shot", "a", "far", 0.0, hd=np.inf)])


def test_miss_rate_and_distances_over_non_empty_predictions():
    frame = to_frame(
        [
            result("zero_shot", "a", "1", 0.8, hd=2.0),
            result("zero_shot", "a", "2", 0.6, hd=4.0),
            result("zero_shot", "b", "3", 0.0, hd=100.0, empty=True),
        ]
    )
    row = overall(frame).iloc[0]
    assert row["miss_rate"] == pytest.approx(1 / 3)
    assert row["hd"] == pytest.approx(106 / 3) and row["hd_nonempty"] == pytest.approx(3.0)
