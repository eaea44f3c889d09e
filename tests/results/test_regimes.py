"""Training regimes of a sweep side by side over seeds (``regimes.csv``/``.md``, ``figures/regimes``)."""

import json

import numpy as np
import pandas as pd
import pytest

from sam4med.errors import ConfigError
from sam4med.results.regimes import group_runs
from sam4med.results.statistics import StatisticsSettings
from sam4med.results.sweep import write_sweep_tables

FAST = StatisticsSettings(resamples=999)  # BCa intervals of 6 units need few resamples
IMAGES = 6  # one object per image: 6 image units, targets A (images 0-2) and B (3-5)
BASE = np.array([0.50, 0.60, 0.70, 0.40, 0.55, 0.65])
# fine-tuned S2 Dice per regime and seed: mixed gains a different amount per object and per seed
GAIN = np.array([0.01, 0.02, 0.03, 0.04, 0.05, 0.06])
DICE = {
    ("box", 0): BASE,
    ("box", 1): BASE + 0.02,
    ("mixed", 0): BASE + 0.10 + GAIN,
    ("mixed", 1): BASE + 0.20 + GAIN,
}


def job(directory, regime, seed, dice, *, moved=(), clicks=0, extra=(), negatives=None, no_s4=()):
    """A train job of ``regime`` and ``seed``: zero-shot S2 = 0.3 everywhere, fine-tuned S2 = ``dice``, and a
    prompts.json whose S2 point depends on the seed (objects in ``moved``: x + 1). ``clicks``: also I@1..I@k rows
    (fine-tuned Dice k * 0.1 + ``dice`` / 10, zero-shot k * 0.05). ``negatives`` (per object): also S3 = ``dice``
    and S4 = ``dice`` + ``negatives`` in both phases (objects in ``no_s4``: no S4 row).
    """
    results = directory / "results"
    results.mkdir(parents=True)
    (directory / ".hydra").mkdir()
    overrides = [f"regime={regime}", f"seed={seed}", "experiment=regimes", *extra]
    (directory / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (directory / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
    (results / "summary.json").write_text(json.dumps({"meta": {"backbone": "litemedsam"}}))
    rows, prompts = [], {}
    for k in range(IMAGES):
        key = f"img{k}/1"
        common = {"target": "A" if k < 3 else "B", "image_id": f"img{k}", "object_key": key, "source": "",
                  "iou": 0.5, "hd_px": 3.0}  # fmt: skip
        rows.append({"phase": "zero_shot", "strategy": "S2", "dice": 0.3, **common})
        rows.append({"phase": "finetuned", "strategy": "S2", "dice": float(dice[k]), **common})
        for phase in ("zero_shot", "finetuned") if negatives is not None else ():
            rows.append({"phase": phase, "strategy": "S3", "dice": float(dice[k]), **common})
            if k not in no_s4:
                rows.append({"phase": phase, "strategy": "S4", "dice": float(dice[k] + negatives[k]), **common})
        for strategy in ("S3", "S4") if negatives is not None else ():
            point = {"point_coords": [[float(seed), 2.0]], "point_labels": [1], "box": None}
            prompts[f"{strategy}|{key}"] = {"strategy": strategy, **point, "seed": seed, "mask_sha256": "m"}
        for c in range(1, clicks + 1):
            rows.append({"phase": "zero_shot", "strategy": f"I@{c}", "dice": 0.05 * c, **common})
            rows.append({"phase": "finetuned", "strategy": f"I@{c}", "dice": 0.1 * c + dice[k] / 10, **common})
        x = float(k + 10 * seed + (k in moved))
        prompts[f"S2|{key}"] = {"strategy": "S2", "point_coords": [[x, 5.0]], "point_labels": [1], "box": None,
                                "seed": seed, "mask_sha256": "m"}  # fmt: skip
        prompts[f"I|{key}"] = {"strategy": "I", "point_coords": [[1.0, 1.0]], "point_labels": [1], "box": None,
                               "seed": seed, "mask_sha256": "m"}  # fmt: skip
    pd.DataFrame(rows).to_csv(results / "metrics.csv", index=False)
    data = {"prompt_rules": 1, "seed": seed, "sampling": "random", "prompts": prompts}
    (results / "prompts.json").write_text(json.dumps(data))


def sweep(tmp_path, dice=DICE, options=None):
    """A sweep folder of ``dice``'s jobs; ``options``: (regime, seed) -> keyword arguments of its :func:`job`."""
    for k, ((regime, seed), values) in enumerate(dice.items()):
        job(tmp_path / str(k), regime, seed, values, **(options or {}).get((regime, seed), {}))
    return tmp_path


def row(table, strategy, target, phase="finetuned"):
    return table[(table.strategy == strategy) & (table.target == target) & (table.phase == phase)].iloc[0]


def test_regimes_averaged_over_seeds_and_paired_by_object(tmp_path):
    paths = write_sweep_tables(sweep(tmp_path), FAST)
    assert "backbones_csv" not in paths  # one backbone: the regimes table, not the backbones table
    table = pd.read_csv(paths["regimes_csv"])
    assert list(table.phase.unique()) == ["finetuned", "zero_shot"]
    total = row(table, "S2", "all targets")
    assert (total.reference, total.seeds, total.n, total.unit, total.n_units) == ("box", 2, 6, "image", 6)
    # box: objects averaged over seeds 0 and 1 (+0.01), then over objects
    assert total.dice_box == pytest.approx(BASE.mean() + 0.01)
    assert total.dice_mixed == pytest.approx(BASE.mean() + 0.15 + GAIN.mean())
    assert total.delta_mixed == pytest.approx(0.14 + GAIN.mean())
    # per-seed means: box 0.5667, 0.5867 (sd 0.0141); mixed - box per seed: 0.135, 0.215
    assert total.dice_box_seed_sd == pytest.approx(np.std([BASE.mean(), BASE.mean() + 0.02], ddof=1))
    assert total.delta_mixed_seed_min == pytest.approx(0.10 + GAIN.mean())
    assert total.delta_mixed_seed_max == pytest.approx(0.18 + GAIN.mean())
    # every object gains: the interval lies above 0 and the exact Wilcoxon p over 6 units is 2/64
    assert 0 < total.delta_mixed_ci_low < total.delta_mixed < total.delta_mixed_ci_high
    assert total.p_wilcoxon_mixed == pytest.approx(2 / 64)
    target_a = row(table, "S2", "A")
    assert target_a.n == 3 and target_a.dice_mixed == pytest.approx(BASE[:3].mean() + 0.15 + GAIN[:3].mean())
    zero = row(table, "S2", "all targets", phase="zero_shot")
    assert zero.dice_box == pytest.approx(0.3) and zero.delta_mixed == pytest.approx(0.0)
    md = paths["regimes_md"].read_text()
    assert "mixed − box" in md and "seeds +0.135..+0.215" in md and "box seed 1 (regime=box seed=1)" in md
    assert paths["regimes_figure"].is_file() and "regimes_clicks_figure" not in paths
    assert "Mean Dice per strategy and training regime" in paths["report"].read_text()


def test_an_object_prompted_differently_in_one_seed_is_left_out_of_every_column(tmp_path):
    paths = write_sweep_tables(sweep(tmp_path, options={("mixed", 1): {"moved": (0,)}}), FAST)
    total = row(pd.read_csv(paths["regimes_csv"]), "S2", "all targets")
    assert total.n == 5
    assert total.dice_box == pytest.approx(BASE[1:].mean() + 0.01)  # object 0 gone from seed 0 too
    md = paths["regimes_md"].read_text()
    assert "Seed 1: Prompts: 1 of" in md and "Seed 0: Prompts: identical" in md


def test_a_seed_not_run_by_every_regime_is_left_out_and_named(tmp_path):
    dice = {**DICE, ("box", 2): BASE + 0.5}
    paths = write_sweep_tables(sweep(tmp_path, dice), FAST)
    total = row(pd.read_csv(paths["regimes_csv"]), "S2", "all targets")
    assert total.seeds == 2 and total.dice_box == pytest.approx(BASE.mean() + 0.01)
    assert "Left out (their seed was not run by every regime): regime=box seed=2." in paths["regimes_md"].read_text()


def test_the_reference_regime_can_be_chosen_and_must_exist(tmp_path):
    sweep(tmp_path)
    paths = write_sweep_tables(tmp_path, FAST, reference="mixed")
    total = row(pd.read_csv(paths["regimes_csv"]), "S2", "all targets")
    assert total.reference == "mixed" and total.delta_box == pytest.approx(-(0.14 + GAIN.mean()))
    with pytest.raises(ConfigError, match="regime reference 'lora' is not a regime"):
        write_sweep_tables(tmp_path, FAST, reference="lora")


def test_click_curves_per_regime_when_the_runs_scored_iterative_clicks(tmp_path):
    paths = write_sweep_tables(sweep(tmp_path, options={key: {"clicks": 3} for key in DICE}), FAST)
    table = pd.read_csv(paths["regimes_csv"])
    assert set(table.strategy) == {"S2", "I@3"}  # the table at the last click, the curve in the figure
    last = row(table, "I@3", "all targets")
    assert last.dice_box == pytest.approx(0.3 + (BASE.mean() + 0.01) / 10)
    assert paths["regimes_clicks_figure"].is_file()


def _group(labels_overrides_seeds):
    labels = {f"/r{k}": lab for k, (lab, _, _) in enumerate(labels_overrides_seeds)}
    overrides = {f"/r{k}": o for k, (_, o, _) in enumerate(labels_overrides_seeds)}
    seeds = {f"/r{k}": s for k, (_, _, s) in enumerate(labels_overrides_seeds)}
    return group_runs(labels, overrides, seeds)


def test_which_sweeps_are_regime_comparisons():
    # the regime group, one seed: a comparison of regimes
    one_seed = _group([("a", ["regime=box", "seed=0"], 0), ("b", ["regime=lora", "seed=0"], 0)])
    assert one_seed.regimes == ("box", "lora") and one_seed.seeds == (0,)
    # any setting over two seeds: a comparison too, labelled by its override
    loss = _group([(f"{v}{s}", [f"module.loss={v}", f"seed={s}"], s) for v in ("x", "y") for s in (0, 1)])
    assert loss.regimes == ("module.loss=x", "module.loss=y") and loss.seeds == (0, 1)
    # one setting, one seed each: the ordinary sweep tables only
    assert _group([("a", ["module.loss=x"], 0), ("b", ["module.loss=y"], 0)]) is None
    # only seeds differ: no regimes
    assert _group([("a", ["seed=0"], 0), ("b", ["seed=1"], 1)]) is None
    # a regime that ran a seed twice is ambiguous
    assert _group([("a", ["regime=box", "seed=0", "x=1"], 0), ("b", ["regime=box", "seed=0", "x=2"], 0)]) is None


def test_within_each_regime_s4_minus_s3_paired_by_object_over_seed_means(tmp_path):
    # box: negatives cost GAIN in both seeds; mixed: they help by GAIN - 0.03 (seed 0) and GAIN + 0.01 (seed 1)
    options = {
        ("box", 0): {"negatives": -GAIN},
        ("box", 1): {"negatives": -GAIN},
        ("mixed", 0): {"negatives": GAIN - 0.03},
        ("mixed", 1): {"negatives": GAIN + 0.01},
    }
    paths = write_sweep_tables(sweep(tmp_path, options=options), FAST)
    table = pd.read_csv(paths["regimes_contrasts_csv"])
    assert set(table.contrast) == {"S4 − S3"} and set(table.phase) == {"finetuned", "zero_shot"}  # no S5/S6 rows
    tuned = table[table.phase == "finetuned"].set_index("regime")
    box, mixed = tuned.loc["box"], tuned.loc["mixed"]
    assert (box.n, box.n_units, box.seeds) == (6, 6, 2)
    assert box.delta == pytest.approx(-GAIN.mean()) and box.ci_high < 0 and box.p_wilcoxon == pytest.approx(2 / 64)
    assert box.dice_baseline == pytest.approx(BASE.mean() + 0.01)  # S3 = the box run's S2 values, seeds averaged
    assert mixed.delta == pytest.approx(GAIN.mean() - 0.01)
    assert (mixed.seed_min, mixed.seed_max) == pytest.approx((GAIN.mean() - 0.03, GAIN.mean() + 0.01))
    md = paths["regimes_md"].read_text()
    assert "S4 − S3 (negatives added to five positives)" in md and "seeds +0.005..+0.045" in md
    # an object without an S4 row in every run is left out of the contrast only
    options = {key: {**value, "no_s4": (0,)} for key, value in options.items()}
    paths = write_sweep_tables(sweep(tmp_path / "missing", options=options), FAST)
    tuned = pd.read_csv(paths["regimes_contrasts_csv"]).query("phase == 'finetuned'").set_index("regime")
    assert tuned.loc["box"].n == 5 and tuned.loc["box"].delta == pytest.approx(-GAIN[1:].mean())
    assert row(pd.read_csv(paths["regimes_csv"]), "S3", "all targets").n == 6


def test_no_contrast_table_without_both_strategies(tmp_path):
    paths = write_sweep_tables(sweep(tmp_path), FAST)  # S2 only
    assert "regimes_contrasts_csv" not in paths and "Within each regime" not in paths["regimes_md"].read_text()
