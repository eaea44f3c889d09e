"""The robustness suite: settings, the shifted prompts it saves, its table against hand computation, phases,
and ``evaluate.py analysis=robustness`` end to end."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sam4med.analysis.robustness import OBJECT_COLUMNS, RobustnessSuite, robustness_table
from sam4med.analysis.suite import AnalysisInput, phase_decoder
from sam4med.errors import ConfigError
from sam4med.evaluation.rows import Phase
from sam4med.jobs.evaluate import evaluate_model
from sam4med.prompts.perturb import ShiftLevel, shift_prompt
from sam4med.prompts.prompt import Prompt
from sam4med.results.frame import to_frame
from sam4med.results.statistics import StatisticsSettings
from tests.helpers import CONF, compose_config

YAML = CONF / "analysis" / "robustness.yaml"


def test_the_yaml_mirrors_the_dataclass_defaults():
    assert YAML.read_text().startswith("# @package analysis.robustness\n")
    node = OmegaConf.load(YAML)
    assert node._target_ == "sam4med.analysis.robustness.RobustnessSuite"
    defaults = RobustnessSuite()
    assert (
        OmegaConf.to_container(node.levels)
        == [list(level) for level in defaults.levels]
        == [[0, 10], [10, 20], [20, 30]]
    )
    assert node.repeats == defaults.repeats == 3
    assert node.strategies is None and defaults.strategies is None
    assert instantiate(node) == defaults
    assert RobustnessSuite.name == "robustness"


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"levels": []}, r"analysis.robustness.levels=\[\]: must be a non-empty list"),
        ({"levels": [[10, 5]]}, r"analysis.robustness.levels: \[10, 5\] is not a \[low, high\] pair"),
        ({"levels": [[-1, 5]]}, "0 <= low <= high"),
        ({"levels": [[0, 10, 20]]}, "is not a"),
        ({"levels": [["a", 10]]}, "is not a"),
        ({"levels": [[0, 10], [0, 10]]}, "listed twice"),
        ({"repeats": 0}, r"analysis.robustness.repeats=0: must be an integer >= 1"),
        ({"repeats": 1.5}, "must be an integer"),
        ({"strategies": ["S1", "S5"]}, r"S1 cannot be shifted \(S1 and I have no saved prompt"),
        ({"strategies": ["I"]}, "I cannot be shifted"),
        ({"strategies": []}, "the list is empty"),
        ({"strategies": ["S5", "S5"]}, "listed twice"),
    ],
)
def test_bad_settings_are_config_errors_naming_the_setting(settings, message):
    with pytest.raises(ConfigError, match=message):
        RobustnessSuite(**settings)


def test_strategies_default_to_the_shiftable_ones_the_run_scored():
    chosen, notes = RobustnessSuite().chosen(("S1", "S2", "S5", "M4", "I"))
    assert chosen == ("S2", "S5", "M4")
    assert notes == ["robustness: S1, I left out (no saved prompt to shift)."]
    assert RobustnessSuite(strategies=["S5"]).chosen(("S2", "S5")) == (("S5",), [])
    with pytest.raises(ConfigError, match=r"analysis.robustness.strategies: S6 not scored by this run"):
        RobustnessSuite(strategies=["S6"]).chosen(("S2", "S5"))
    with pytest.raises(ConfigError, match="the run scores none of"):
        RobustnessSuite().chosen(("S1",))


def _objects(rows: list[tuple[str, str, float, float]], repeats: tuple[float, ...]) -> pd.DataFrame:
    """Per-object rows of one phase/strategy/level: (image, object, unshifted Dice, shifted Dice of repeat 1)
    with repeat r's Dice = repeat 1's + ``repeats[r - 2]``."""
    out = []
    for image, key, unshifted, first in rows:
        for r, value in enumerate((first, *(first + d for d in repeats)), start=1):
            out.append(
                {
                    "phase": "zero_shot",
                    "strategy": "S5",
                    "level": "10-20",
                    "level_low": 10.0,
                    "level_high": 20.0,
                    "repeat": r,
                    "image_id": image,
                    "object_key": key,
                    "target": "t",
                    "source": "",
                    "shift_seed": "1",
                    "dice": value,
                    "iou": value / 2,
                    "dice_unshifted": unshifted,
                }
            )
    return pd.DataFrame(out, columns=list(OBJECT_COLUMNS))


def test_the_table_by_hand_every_unit_drops_the_same():
    # 6 images of one object; repeat 1 is 0.1 below the unshifted Dice, repeat 2 0.3 below: each drops 0.2
    unshifted = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    objects = _objects([(f"i{k}", f"i{k}/l/1", u, u - 0.1) for k, u in enumerate(unshifted)], repeats=(-0.2,))
    table = robustness_table(objects, [ShiftLevel(10, 20)], 2, StatisticsSettings(resamples=999))
    row = table.iloc[0]
    assert (row["phase"], row["strategy"], row["level"], row["objects"]) == ("zero_shot", "S5", "10-20", 6)
    assert row["dice_r1"] == pytest.approx(0.75 - 0.1) and row["dice_r2"] == pytest.approx(0.75 - 0.3)
    assert row["dice_mean"] == pytest.approx(0.55) and row["dice_unshifted"] == pytest.approx(0.75)
    assert row["iou_mean"] == pytest.approx(0.55 / 2)
    assert row["dice_drop"] == pytest.approx(0.2) and row["dice_drop_pct"] == pytest.approx(100 * 0.2 / 0.75)
    # every unit drops by 0.2: the bootstrap distribution is that point (percentile interval)
    assert (row["dice_drop_ci_low"], row["dice_drop_ci_high"]) == pytest.approx((0.2, 0.2))
    assert row["ci_method"] == "percentile"
    # 6 units all the same sign: both exact two-sided tests give 2 / 2^6
    assert row["p_wilcoxon"] == pytest.approx(2 / 64) and row["p_permutation"] == pytest.approx(2 / 64)
    assert (row["unit"], row["n_units"], row["small_n"]) == ("image", 6, "small n")


def test_the_table_by_hand_the_drop_is_over_units_and_its_sign_turned():
    # two objects in image a, one in each of b ... e (5 images); the drop weighs objects, the tests units
    rows = [
        ("a", "a/1", 0.9, 0.5),
        ("a", "a/2", 0.7, 0.7),
        ("b", "b/1", 0.8, 0.55),
        ("c", "c/1", 0.6, 0.65),
        ("d", "d/1", 0.9, 0.3),
        ("e", "e/1", 0.5, 0.4),
    ]
    objects = _objects(rows, repeats=(0.0, 0.0))
    table = robustness_table(objects, [ShiftLevel(10, 20)], 3, StatisticsSettings(resamples=999))
    row = table.iloc[0]
    drops = [0.4, 0.0, 0.25, -0.05, 0.6, 0.1]
    assert row["dice_drop"] == pytest.approx(np.mean(drops))
    assert row["dice_r1"] == row["dice_r2"] == row["dice_r3"] == pytest.approx(np.mean([r[3] for r in rows]))
    assert row["n_units"] == 5 and row["dice_drop_ci_low"] <= row["dice_drop"] <= row["dice_drop_ci_high"]
    # unit means of the drop: a 0.2, b 0.25, c -0.05, d 0.6, e 0.1; only c (rank 1 of 5) rises: exact
    # Wilcoxon p = 2 * P(W <= 1) = 2 * 2/32
    assert row["p_wilcoxon"] == pytest.approx(4 / 32)


def _suite_output(inputs: AnalysisInput, suite: RobustnessSuite) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    out = suite.run(inputs)
    objects = pd.read_csv(inputs.folder.table("robustness_objects"), dtype={"shift_seed": str})
    shifts = json.loads(inputs.folder.robustness_prompts.read_text())
    return out.tables["robustness"], objects, shifts | {"out": out}


def test_the_suite_on_the_tiny_model(analysis_input):
    inputs = analysis_input(["S1", "S2", "S5"])
    suite = RobustnessSuite(levels=[[0, 0], [5, 15]], repeats=2)
    table, objects, shifts = _suite_output(inputs, suite)
    out = shifts.pop("out")
    assert "robustness: S1 left out (no saved prompt to shift)." in out.notes
    assert set(out.figures) == {"robustness"} and len(out.figures["robustness"].axes) == 1
    run = inputs.frame.set_index(["strategy", "object_key"])["dice"]
    n = int((inputs.frame["strategy"] == "S2").sum())
    assert len(objects) == 2 * 2 * 2 * n  # strategies x levels x repeats x objects
    # level [0, 0] is the run's own prompt: every object's Dice is the run's
    still = objects[objects["level"] == "0-0"].set_index(["strategy", "object_key"])
    np.testing.assert_array_equal(still["dice"].to_numpy(), run.loc[still.index].to_numpy())
    keys = list(zip(objects["strategy"], objects["object_key"], strict=True))
    np.testing.assert_array_equal(objects["dice_unshifted"], run.loc[keys])
    # the table's means and drops from the per-object rows, by hand
    assert list(table["strategy"]) == ["S2", "S2", "S5", "S5"] and list(table["level"]) == ["0-0", "5-15"] * 2
    for _, row in table.iterrows():
        rows = objects[(objects["strategy"] == row["strategy"]) & (objects["level"] == row["level"])]
        for r in (1, 2):
            assert row[f"dice_r{r}"] == pytest.approx(rows.loc[rows["repeat"] == r, "dice"].mean())
        per_object = rows.groupby("object_key")[["dice", "dice_unshifted"]].mean()
        assert row["dice_mean"] == pytest.approx(per_object["dice"].mean())
        assert row["dice_unshifted"] == pytest.approx(run.loc[row["strategy"]].mean())
        assert row["dice_drop"] == pytest.approx(per_object["dice_unshifted"].mean() - per_object["dice"].mean())
    assert (table.loc[table["level"] == "0-0", "dice_drop"] == 0).all()
    # the saved shifts reproduce every prompt decoded
    assert shifts["prompt_seed"] == inputs.session.prompts.seed and shifts["levels"] == [[0.0, 0.0], [5.0, 15.0]]
    assert len(shifts["shifts"]) == len(objects)
    size = inputs.dataset[0].image.shape[:2]
    item = inputs.dataset[0]
    for obj, mask in zip(item.objects, item.masks, strict=True):
        saved = inputs.session.prompts.get(mask, "S5", obj.key)
        record = next(
            s
            for s in shifts["shifts"]
            if (s["strategy"], s["level"], s["repeat"], s["object_key"]) == ("S5", [5.0, 15.0], 2, obj.key)
        )
        again = shift_prompt(
            saved, ShiftLevel(5, 15), seed=shifts["prompt_seed"], repeat=2, object_key=obj.key, size=size
        )
        assert Prompt.from_dict(record["prompt"]) == again.prompt and record["shift_seed"] == again.shift.seed
        assert again.prompt.box != saved.box


def test_a_strategy_the_run_did_not_score_is_refused(analysis_input):
    inputs = analysis_input(["S2"])
    with pytest.raises(ConfigError, match="S5 not scored by this run"):
        RobustnessSuite(strategies=["S5"], repeats=1).run(inputs)


def test_two_phases_each_with_its_decoder(analysis_input):
    inputs = analysis_input(["S5"])
    model = inputs.model
    own = {k: v.clone() for k, v in model.mask_decoder.state_dict().items()}
    torch.manual_seed(0)
    other = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v for k, v in own.items()}
    with phase_decoder(model, other):  # the fine-tuned phase's own rows, as the callback scores them
        tuned = inputs.session.score(model, inputs.dataset, phase=Phase.FINETUNED, log=False, progress=False)
    frame = pd.concat([inputs.frame, to_frame(tuned)], ignore_index=True)
    both = AnalysisInput(
        model, inputs.dataset, inputs.session, {Phase.ZERO_SHOT: None, Phase.FINETUNED: other}, frame, inputs.statistics
    )
    table, objects, _ = _suite_output(both, RobustnessSuite(levels=[[0, 0], [10, 20]], repeats=1))
    assert list(table["phase"]) == ["zero_shot", "zero_shot", "finetuned", "finetuned"]
    # at level [0, 0] each phase reproduces its own rows: the fine-tuned phase predicted with its decoder
    run = frame.set_index(["phase", "object_key"])["dice"]
    still = objects[objects["level"] == "0-0"].set_index(["phase", "object_key"])
    np.testing.assert_array_equal(still["dice"].to_numpy(), run.loc[still.index].to_numpy())
    by_phase = still.groupby("phase")["dice"].apply(np.asarray)
    assert not np.array_equal(by_phase["zero_shot"], by_phase["finetuned"])
    assert all(torch.equal(v, own[k]) for k, v in model.mask_decoder.state_dict().items())  # decoder restored


def test_evaluate_with_analysis_robustness_writes_its_table_figure_and_files(tmp_path: Path):
    overrides = [
        "experiment=quick",
        "evaluation.strategies=[S2,S5]",
        "evaluation.overlays=0",
        "analysis=robustness",
        "analysis.robustness.repeats=1",
    ]
    results = evaluate_model(compose_config("evaluate", tmp_path, overrides))
    table = pd.read_csv(results / "robustness.csv")
    assert list(table["strategy"]) == ["S2"] * 3 + ["S5"] * 3
    assert list(table["level"]) == ["0-10", "10-20", "20-30"] * 2 and set(table["phase"]) == {"zero_shot"}
    metrics = pd.read_csv(results / "metrics.csv")
    for strategy in ("S2", "S5"):
        own = metrics.loc[metrics["strategy"] == strategy, "dice"].mean()
        assert table.loc[table["strategy"] == strategy, "dice_unshifted"].to_numpy() == pytest.approx([own] * 3)
    assert (results / "robustness.md").is_file()
    assert (results / "figures" / "robustness.png").stat().st_size > 0
    assert (results / "figures" / "robustness.svg").is_file()
    objects = pd.read_csv(results / "robustness_objects.csv")
    assert len(objects) == 2 * 3 * len(metrics[metrics["strategy"] == "S2"])
    assert len(json.loads((results / "robustness_prompts.json").read_text())["shifts"]) == len(objects)
    page = (results / "report.html").read_text()
    assert "robustness" in page and "dice_drop" in page
