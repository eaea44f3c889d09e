"""The comparison statistics on cases small enough to compute by hand: units, intervals, tests, small n."""

import math

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from scipy import stats

from sam4med.errors import ConfigError
from sam4med.evaluation.rows import ObjectResult
from sam4med.results.comparison import ALL_TARGETS, comparison
from sam4med.results.frame import overall, to_frame
from sam4med.results.statistics import (
    BCA,
    PERCENTILE,
    SMALL,
    TOO_SMALL,
    StatisticsSettings,
    format_change,
    format_p,
    pair,
    paired_delta,
    resolve_unit,
    sign_test,
    small_n,
)
from tests.helpers import compose_config


def pairs(rows):
    """rows: (image_id, before, after) or (image_id, before, after, source) per object."""
    return pd.DataFrame(
        [
            {
                "strategy": "S5",
                "target": "t",
                "image_id": row[0],
                "object_key": f"{row[0]}/{k}",
                "source": row[3] if len(row) > 3 else "",
                "before": row[1],
                "after": row[2],
            }
            for k, row in enumerate(rows)
        ]
    )


def result(phase, image, key, dice, *, target="t", strategy="S5", hd=1.0, empty=False, source=""):
    return ObjectResult(
        phase=phase, strategy=strategy, target=target, modality="MRI", object="o", image_id=image,
        object_key=key, dice=dice, iou=dice, hd=hd, hd95=hd, hd_unit="px", score=0.5, hd_px=hd, hd95_px=hd,
        nsd=dice, candidates=1, empty=empty, source=source,
    )  # fmt: skip


def correlated_frame(seed=0):
    """8 images x 12 objects: each image's objects share one shift (5 images up, 3 down), tiny object noise."""
    shifts = [0.30, 0.25, -0.20, 0.15, -0.15, 0.20, -0.10, 0.05]
    noise = np.random.default_rng(seed).normal(0, 0.005, (len(shifts), 12))
    rows = []
    for i, shift in enumerate(shifts):
        for k in range(12):
            before = 0.4 + 0.01 * k
            rows.append(result("zero_shot", f"img{i}", f"img{i}/{k}", before))
            rows.append(result("finetuned", f"img{i}", f"img{i}/{k}", before + shift + noise[i, k]))
    return to_frame(rows)


def test_correlated_objects_give_a_small_object_p_but_the_project_reports_the_unit_p():
    # the "done when": objects within images move together, so 96 objects are not 96 observations
    frame = correlated_frame()
    diff = pair(frame, "zero_shot", "finetuned").eval("after - before").to_numpy()
    object_p = stats.wilcoxon(diff).pvalue
    assert object_p < 0.001  # what a test over objects (the old p_wilcoxon) would claim
    object_ci = stats.bootstrap((diff,), np.mean, rng=np.random.default_rng(0)).confidence_interval
    assert object_ci.low > 0  # and an interval over objects would exclude no change
    total = comparison(frame).set_index("target").loc[ALL_TARGETS]
    assert (total["unit"], total["n_units"], total["n"]) == ("image", 8, 96)
    assert total["p_wilcoxon"] == pytest.approx(stats.wilcoxon(diff.reshape(8, 12).mean(axis=1)).pvalue)
    assert total["p_wilcoxon"] > 0.05 and total["p_permutation"] > 0.05
    assert total["dice_delta_ci_low"] < 0 < total["dice_delta_ci_high"]
    assert total["ci_method"] == BCA and total["small_n"] == SMALL


def test_wilcoxon_and_permutation_exact_by_hand():
    # unit differences 0.3, 0.4, 0.1, -0.2, 0.5: ranks 3, 4, 1, 2, 5; W- = 2, and of the 32 sign patterns
    # 3 give W- <= 2 ({}, {1}, {2}): two-sided p = 6/32. The sign flips of the mean: the sum 1.1 is reached
    # or passed by flipping nothing, 0.1 or 0.2 (3 of 32): p = 6/32 too, exact (2^5 < 9999 resamples)
    rows = [("a", 0, 0.3), ("b", 0, 0.4), ("c", 0, 0.1), ("d", 0.2, 0), ("e", 0, 0.5)]
    stat = paired_delta(pairs(rows))
    assert stat.p_wilcoxon == pytest.approx(6 / 32)
    assert stat.p_permutation == pytest.approx(6 / 32)
    assert paired_delta(pairs(rows), StatisticsSettings(seed=7)).p_permutation == pytest.approx(6 / 32)
    assert stat.delta == pytest.approx(0.22) and (stat.objects, stat.images, stat.n_units) == (5, 5, 5)


def test_tests_run_on_unit_means_each_unit_weighing_the_same():
    # image a: three objects +1 and one -1 (mean +0.5); b-e: one object each. The change weighs objects,
    # the tests weigh units: per-unit means 0.5, 0.2, -0.1, 0.3, 0.4
    rows = [("a", 0, 1), ("a", 0, 1), ("a", 0, 1), ("a", 1, 0), ("b", 0, 0.2), ("c", 0.1, 0), ("d", 0, 0.3)]
    rows += [("e", 0, 0.4)]
    stat = paired_delta(pairs(rows))
    assert stat.delta == pytest.approx((3 - 1 + 0.2 - 0.1 + 0.3 + 0.4) / 8)
    assert stat.p_wilcoxon == pytest.approx(stats.wilcoxon([0.5, 0.2, -0.1, 0.3, 0.4]).pvalue)
    assert stat.p_wilcoxon == pytest.approx(4 / 32)  # W- = 1 (rank 1): {} and {1} of 32 patterns, two-sided


def test_auto_chooses_source_when_sources_hold_several_images():
    # six patients with two slices each: source; a patient's slices move together (one +, one - patient-wide)
    rows = [(f"p{p}s{s}", 0, 0.1 * (p + 1), f"p{p}") for p in range(6) for s in range(2)]
    stat = paired_delta(pairs(rows))
    assert (stat.unit, stat.n_units, stat.images) == ("source", 6, 12)
    assert stat.p_wilcoxon == pytest.approx(2 / 64)  # 6 units all up; over 12 images it would be 2/4096
    assert paired_delta(pairs(rows), StatisticsSettings(unit="image")).n_units == 12
    # one volume (the Colin27 case), one slice per patient, or no sources at all: the image
    one_volume = [(f"s{s}", 0, 0.1, "brain") for s in range(6)]
    one_slice_each = [(f"p{p}", 0, 0.1, f"p{p}") for p in range(6)]
    no_sources = [(f"s{s}", 0, 0.1) for s in range(6)]
    for rows in (one_volume, one_slice_each, no_sources):
        assert resolve_unit(pairs(rows)) == "image"
    assert resolve_unit(pairs(one_volume), "source") == "source"  # asked for: one unit, so n too small
    assert paired_delta(pairs(one_volume), StatisticsSettings(unit="source")).small_n == TOO_SMALL


def test_source_unit_on_rows_without_sources_is_a_config_error():
    with pytest.raises(ConfigError, match=r"statistics.unit=source: 2 of 3 compared objects have no source"):
        paired_delta(pairs([("a", 0, 1, "p1"), ("b", 0, 1), ("c", 0, 1)]), StatisticsSettings(unit="source"))
    with pytest.raises(ConfigError, match=r"statistics.unit=patient: must be one of auto, source, image"):
        StatisticsSettings(unit="patient")
    with pytest.raises(ConfigError, match=r"statistics.resamples=0: must be an integer >= 1"):
        StatisticsSettings(resamples=0)


def test_the_config_node_mirrors_the_constructor(tmp_path):
    for name in ("train", "evaluate"):
        settings = instantiate(compose_config(name, tmp_path, ["statistics.unit=source"]).statistics)
        assert settings == StatisticsSettings(unit="source", resamples=9999, seed=0)


def test_fewer_than_five_units_give_no_interval_and_no_p_value():
    stat = paired_delta(pairs([("a", 0, 0.3), ("b", 0, 0.4), ("c", 0, 0.1), ("d", 0.2, 0)]))
    assert stat.delta == pytest.approx(0.15) and stat.n_units == 4 and stat.small_n == TOO_SMALL
    assert all(math.isnan(v) for v in (stat.ci_low, stat.ci_high, stat.p_wilcoxon, stat.p_permutation))
    assert stat.ci_method == ""
    assert format_change(stat.delta, stat.ci_low, stat.ci_high, stat.n_units) == "+0.150 (n too small)"
    assert format_p(stat.p_wilcoxon, stat.n_units) == "n too small"


def test_five_to_nine_units_are_flagged_and_ten_are_not():
    assert [small_n(n) for n in (0, 4, 5, 9, 10, 50)] == [TOO_SMALL, TOO_SMALL, SMALL, SMALL, "", ""]
    assert format_p(0.0312, 6) == "0.031 †" and format_p(0.0312, 10) == "0.031"
    assert format_change(0.1, 0.05, 0.2, 7) == "+0.100 [+0.050, +0.200] †"
    assert format_change(0.1, 0.05, 0.2, 12) == "+0.100 [+0.050, +0.200]"


def test_bca_where_it_can_be_computed_else_percentile():
    varied = paired_delta(pairs([(f"i{k}", 0, d) for k, d in enumerate([0.1, 0.3, -0.2, 0.4, 0.2, 0.05])]))
    assert varied.ci_method == BCA and varied.ci_low < varied.delta < varied.ci_high
    # every unit changes by 0.25: the bootstrap distribution is one point, BCa cannot be computed
    same = paired_delta(pairs([(f"i{k}", 0, 0.25) for k in range(6)]))
    assert same.ci_method == PERCENTILE and same.ci_low == same.ci_high == pytest.approx(0.25)
    nothing = paired_delta(pairs([(f"i{k}", 0.5, 0.5) for k in range(6)]))
    assert (nothing.p_wilcoxon, nothing.p_permutation) == (1.0, 1.0)


def test_same_seed_same_numbers_other_seed_other_interval():
    rows = [(f"i{k}", 0, d) for k, d in enumerate(np.linspace(-0.2, 0.5, 16) ** 3)]
    first, again = paired_delta(pairs(rows)), paired_delta(pairs(rows))
    assert first == again
    other = paired_delta(pairs(rows), StatisticsSettings(seed=1))
    assert other.ci_low != first.ci_low and other.p_permutation != first.p_permutation  # 2^16 > 9999: sampled


def test_sign_test_by_hand():
    assert sign_test(pd.Series([0.1, 0.2, 0.3, 0.1, 0.05])) == pytest.approx(2 / 32)
    assert sign_test(pd.Series([0.1, 0.2, 0.3, 0.1, 0.05, -0.1, 0.0])) == pytest.approx(14 / 64)  # tie left out
    assert sign_test(pd.Series([0.0, 0.0])) == 1.0


def test_comparison_has_statistics_columns_and_an_all_targets_row():
    rows = []
    changes = [("a", "t1", 0.5, 0.8), ("a", "t2", 0.4, 0.5), ("b", "t1", 0.6, 0.7), ("c", "t2", 0.3, 0.25)]
    changes += [("d", "t1", 0.2, 0.3), ("e", "t2", 0.5, 0.6)]
    for k, (image, target, before, after) in enumerate(changes):
        rows += [result("zero_shot", image, f"k{k}", before, target=target, source=f"p{image}")]
        rows += [result("finetuned", image, f"k{k}", after, target=target, source=f"p{image}")]
    comp = comparison(to_frame(rows))
    assert list(comp.columns[-9:]) == [
        "unit", "n_units", "dice_delta_ci_low", "dice_delta_ci_high", "ci_method", "p_wilcoxon",
        "p_permutation", "small_n", "p_sign",
    ]  # fmt: skip
    total = comp[comp.target == ALL_TARGETS].iloc[0]
    assert total["dice_delta"] == pytest.approx((0.3 + 0.1 + 0.1 - 0.05 + 0.1 + 0.1) / 6) and total["n"] == 6
    # one image per patient: auto takes the image; per-image mean changes +0.2, +0.1, -0.05, +0.1, +0.1
    assert (total["unit"], total["n_units"], total["small_n"]) == ("image", 5, SMALL)
    assert total["dice_delta_ci_low"] <= total["dice_delta"] <= total["dice_delta_ci_high"]
    assert total["p_wilcoxon"] == pytest.approx(stats.wilcoxon([0.2, 0.1, -0.05, 0.1, 0.1]).pvalue)
    assert total["p_sign"] == pytest.approx(0.5)  # both targets improved: 2 * (1/2)^2
    per_target = comp[comp.target == "t1"].iloc[0]
    assert per_target["dice_delta"] == pytest.approx(0.5 / 3) and math.isnan(per_target["p_sign"])
    assert per_target["small_n"] == TOO_SMALL and math.isnan(per_target["p_wilcoxon"])  # 3 images hold t1
    assert list(pair(to_frame(rows), "zero_shot", "finetuned").columns[-3:]) == ["source", "before", "after"]


def test_pairs_take_the_source_of_either_side():
    old = pd.DataFrame(
        {"phase": ["zero_shot", "finetuned"], "strategy": "S5", "target": "t", "image_id": "a", "object_key": "a/1"}
    ).assign(dice=[0.1, 0.2], source=[np.nan, "p1"])
    assert pair(old, "zero_shot", "finetuned")["source"].tolist() == ["p1"]
    assert pair(old.drop(columns="source"), "zero_shot", "finetuned")["source"].tolist() == [""]


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
