"""The factors suite: its settings, its partial correlations against pingouin and by hand, a run on the tiny model,
and ``evaluate.py analysis=factors`` end to end."""

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from sam4med.analysis.factors import (
    FACTORS,
    OBJECT_COLUMNS,
    TABLE_COLUMNS,
    FactorsSuite,
    dice_range_labels,
    factors_table,
    partial_correlations,
)
from sam4med.errors import ConfigError
from sam4med.evaluation.rows import Phase
from sam4med.jobs.evaluate import evaluate_model
from sam4med.metrics.object_factors import FourierRule, area, aspect_ratio, fourier_order, intensity_difference
from tests.helpers import CONF, compose_config


def test_yaml_equals_the_defaults():
    text = (CONF / "analysis" / "factors.yaml").read_text()
    assert text.startswith("# @package analysis.factors\n")
    node = yaml.safe_load(text)
    assert node.pop("_target_") == "sam4med.analysis.factors.FactorsSuite"
    defaults = FactorsSuite()
    assert set(node) == {f.name for f in dataclasses.fields(FactorsSuite)}
    for name, value in node.items():
        expected = getattr(defaults, name)
        assert (tuple(value) if isinstance(value, list) else value) == expected, name
    assert defaults.rule == FourierRule(0.97, 0.001, 2.0, 50, 10)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("dice_threshold", 1.5, "dice_threshold=1.5"),
        ("min_gain", -0.1, "min_gain=-0.1"),
        ("max_order", 0, "max_order=0"),
        ("min_part_area", 2.5, "min_part_area=2.5"),
        ("box_enlargement", "wide", "box_enlargement=wide"),
        ("dice_bins", [0.0, 0.8, 0.5, 1.0], "dice_bins"),
        ("dice_bins", [0.2, 1.0], "dice_bins"),
        ("strategies", [], "strategies"),
        ("strategies", ["S5", "S5"], r"strategies=\[.S5., .S5.\]: a strategy is listed twice"),
    ],
)
def test_bad_settings_name_the_setting(setting, value, message):
    with pytest.raises(ConfigError, match=f"analysis.factors.{message}"):
        FactorsSuite(**{setting: value})


def constructed(n: int = 40, seed: int = 0) -> pd.DataFrame:
    """Objects whose Dice rises with the intensity difference and falls with the Fourier order, over 2 modalities."""
    rng = np.random.default_rng(seed)
    rows = pd.DataFrame(
        {
            "area": rng.integers(50, 5000, n).astype(float),
            "aspect_ratio": rng.uniform(0.2, 1.0, n),
            "intensity_difference": rng.uniform(0, 150, n),
            "fourier_order": rng.uniform(1, 60, n),
            "modality": rng.integers(0, 2, n).astype(float),
        }
    )
    noise = rng.normal(0, 0.05, n)
    rows["dice"] = np.clip(0.5 + rows["intensity_difference"] / 400 - rows["fourier_order"] / 200 + noise, 0, 1)
    return rows


def ranked_residual_r(rows: pd.DataFrame, x: str, y: str, covariates: list[str]) -> float:
    """Spearman partial correlation the long way: the Pearson correlation of the residuals of the ranks of ``x``
    and ``y`` after a least-squares fit on the ranks of the covariates (and a constant)."""
    ranks = rows.rank()
    design = np.column_stack([np.ones(len(rows)), ranks[covariates].to_numpy()])

    def residual(column: str) -> np.ndarray:
        values = ranks[column].to_numpy()
        coef, *_ = np.linalg.lstsq(design, values, rcond=None)
        return values - design @ coef

    return float(np.corrcoef(residual(x), residual(y))[0, 1])


def test_partial_correlations_equal_pingouin_and_the_ranked_residuals():
    import pingouin

    rows = constructed()
    table = partial_correlations(rows).set_index("factor")
    assert list(table.index) == list(FACTORS)
    for factor in FACTORS:
        others = [f for f in FACTORS if f != factor]
        direct = pingouin.partial_corr(rows, x=factor, y="dice", covar=others, method="spearman")
        got = table.loc[factor]
        assert got["n"] == 40 and got["covariates"] == ",".join(others) and got["note"] == ""
        assert got["r"] == pytest.approx(float(direct["r"].iloc[0]), abs=1e-12)
        assert got["p"] == pytest.approx(float(direct["p_val"].iloc[0]), rel=1e-9)
        assert (got["ci_low"], got["ci_high"]) == tuple(direct["CI95"].iloc[0])
        assert got["r"] == pytest.approx(ranked_residual_r(rows, factor, "dice", others), abs=1e-9)
    # the constructed links come out with their signs
    assert table.loc["intensity_difference", "r"] > 0.5 and table.loc["fourier_order", "r"] < -0.3


def test_a_constant_factor_is_not_computable_and_no_covariate():
    import pingouin

    rows = constructed()
    rows["modality"] = 3.0  # one modality in the split
    table = partial_correlations(rows).set_index("factor")
    assert np.isnan(table.loc["modality", "r"]) and np.isnan(table.loc["modality", "p"])
    assert table.loc["modality", "note"] == "modality is the same (3) for all 40 objects"
    others = ["area", "aspect_ratio", "intensity_difference"]
    assert table.loc["fourier_order", "covariates"] == ",".join(others)
    direct = pingouin.partial_corr(rows, x="fourier_order", y="dice", covar=others, method="spearman")
    assert table.loc["fourier_order", "r"] == pytest.approx(float(direct["r"].iloc[0]), abs=1e-12)
    assert table["r"].notna().sum() == 4


def test_constant_dice_missing_values_and_too_few_objects():
    rows = constructed()
    rows["dice"] = 1.0
    table = partial_correlations(rows)
    assert table["r"].isna().all() and (table["note"] == "dice is the same for all 40 objects").all()
    rows = constructed()
    rows.loc[:9, "fourier_order"] = np.nan  # ten objects without a Fourier order: complete cases only
    assert (partial_correlations(rows)["n"] == 30).all()
    few = partial_correlations(constructed().head(6))  # 6 objects, 4 covariates: at least 7 needed
    assert few["r"].isna().all() and few["note"].str.startswith("too few objects (6) for 4 covariates").all()


def test_table_per_phase_and_strategy():
    rows = constructed()
    joined = pd.concat(
        [rows.assign(phase="zero_shot", strategy=s, object_key=[f"o{i}" for i in range(40)]) for s in ("S5", "S2")]
    )
    table = factors_table(joined)
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert list(table["strategy"]) == ["S2"] * 5 + ["S5"] * 5  # report order, factors in their order
    assert list(table["factor"][:5]) == list(FACTORS)


def test_dice_range_labels():
    assert dice_range_labels((0.0, 0.5, 0.7, 0.8, 0.9, 1.0)) == [
        "[0, 0.5)",
        "[0.5, 0.7)",
        "[0.7, 0.8)",
        "[0.8, 0.9)",
        "[0.9, 1]",
    ]


def test_suite_on_the_tiny_model(analysis_input):
    inputs = analysis_input(["S2", "S5", "I"], ["evaluation.interactive.clicks=2"])
    suite = FactorsSuite()
    assert suite.chosen(inputs.frame) == ["S2", "S5", "I@2"]  # iterative clicks at their last click only
    assert FactorsSuite(strategies=["I", "S2"]).chosen(inputs.frame) == ["S2", "I@2"]
    assert FactorsSuite(strategies=["I@1"]).chosen(inputs.frame) == ["I@1"]
    with pytest.raises(ConfigError, match=r"analysis.factors.strategies: S6 not scored by this run; it scored S2, S5"):
        FactorsSuite(strategies=["S6"]).chosen(inputs.frame)
    out = suite.run(inputs)
    objects = pd.read_csv(inputs.folder.path / "factors_objects.csv")
    assert list(objects.columns) == list(OBJECT_COLUMNS)
    keys = set(inputs.frame["object_key"])
    assert set(objects["object_key"]) == keys and len(objects) == len(keys)
    # one object measured by hand from the dataset
    item = inputs.dataset[0]
    row = objects.set_index("object_key").loc[item.objects[0].key]
    mask = item.masks[0]
    assert row["area"] == area(mask) and row["aspect_ratio"] == pytest.approx(aspect_ratio(mask))
    assert row["intensity_difference"] == pytest.approx(intensity_difference(item.image, mask, 0.1))
    assert row["fourier_order"] == pytest.approx(fourier_order(mask).order)
    table = out.tables["factors"]
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert len(table) == 3 * len(FACTORS) and set(table["phase"]) == {str(Phase.ZERO_SHOT)}
    assert (table["n"] == len(objects.dropna(subset=["fourier_order", "intensity_difference"]))).all()
    # every r is computed or says why not
    assert (table["r"].notna() | (table["note"] != "")).all()
    if objects["modality"].nunique() == 1:
        assert table.loc[table["factor"] == "modality", "note"].str.contains("is the same").all()
    assert set(out.figures) == {"factors_scatter", "factors_fourier_box"}
    scatter = out.figures["factors_scatter"]
    assert len(scatter.axes) == len(FACTORS) and scatter.axes[0].get_xscale() == "log"
    assert "S5" in scatter.texts[0].get_text()  # S5 is drawn when scored
    # both phases (as the before/after callback gives them): the objects are measured once, correlated per phase
    frame = pd.concat([inputs.frame, inputs.frame.assign(phase=str(Phase.FINETUNED))], ignore_index=True)
    both = dataclasses.replace(inputs, frame=frame, decoders={Phase.ZERO_SHOT: None, Phase.FINETUNED: None})
    twice = suite.run(both).tables["factors"]
    assert list(twice["phase"]) == [str(Phase.ZERO_SHOT)] * 15 + [str(Phase.FINETUNED)] * 15
    pd.testing.assert_frame_equal(
        twice.iloc[15:].drop(columns="phase").reset_index(drop=True), table.drop(columns="phase")
    )


def test_evaluate_with_analysis_factors(tmp_path: Path):
    overrides = ["experiment=quick", "analysis=factors", "evaluation.overlays=0", "evaluation.strategies=[S2,S5]"]
    results = evaluate_model(compose_config("evaluate", tmp_path, overrides))
    table = pd.read_csv(results / "factors.csv")
    assert list(table.columns) == list(TABLE_COLUMNS)
    assert set(table["strategy"]) == {"S2", "S5"} and len(table) == 2 * len(FACTORS)
    assert (results / "factors.md").is_file()
    objects = pd.read_csv(results / "factors_objects.csv")
    assert set(objects["object_key"]) == set(pd.read_csv(results / "metrics.csv")["object_key"])
    for name in ("factors_scatter", "factors_fourier_box"):
        assert (results / "figures" / f"{name}.png").stat().st_size > 0
        assert (results / "figures" / f"{name}.svg").is_file()
