"""The backbones of a sweep side by side on identical prompts (``backbones.csv``/``.md``, ``figures/backbones``)."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sam4med.errors import ConfigError
from sam4med.results.backbones import prompt_key
from sam4med.results.sweep import write_sweep_tables
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S

IMAGES = 6  # one object per image, images 0-2 of target A and 3-5 of target B: 6 image units
REFERENCE = [0.50, 0.60, 0.70, 0.40, 0.55, 0.65]
# vit_h better on every object by a different amount (no ties: exact tests), medsam worse by 0.1 everywhere
DICE = {
    "vit_b": REFERENCE,
    "vit_h": [d + g for d, g in zip(REFERENCE, [0.01, 0.02, 0.03, 0.04, 0.05, 0.06], strict=True)],
    "medsam": [d - 0.1 for d in REFERENCE],
}


def prompt(x, seed=0, mask="m"):
    return {"strategy": "S2", "point_coords": [[x, 5.0]], "point_labels": [1], "box": None, "seed": seed,
            "mask_sha256": mask}  # fmt: skip


def box(seed=0):
    return {"strategy": "S5", "point_coords": [], "point_labels": [], "box": [1.0, 2.0, 8.0, 9.0], "seed": seed,
            "mask_sha256": "m"}  # fmt: skip


def job(directory, backbone, dice, *, seed=0, moved=(), mask=(), everything="points_per_side=32"):
    """A sweep job: S2 and S5 rows of ``dice`` (S5 = S2 + 0.1) and a prompts.json drawn with ``seed``.

    The S2 point of each object lies at x = its index, except the objects in ``moved`` (x + 1); the objects in
    ``mask`` have another mask hash. The S5 box is the same whatever the seed.
    """
    results = directory / "results"
    results.mkdir(parents=True)
    (directory / ".hydra").mkdir()
    (directory / ".hydra" / "overrides.yaml").write_text(f"- model={backbone}\n")
    (directory / ".hydra" / "config.yaml").write_text("seed: 0\n")
    meta = {"backbone": backbone, "everything": everything}
    (results / "summary.json").write_text(json.dumps({"meta": meta}))
    rows, prompts = [], {}
    for k in range(IMAGES):
        key = f"img{k}/1"
        for strategy, shift in (("S2", 0.0), ("S5", 0.1)):
            rows.append({"phase": "zero_shot", "strategy": strategy, "target": "A" if k < 3 else "B",
                         "image_id": f"img{k}", "object_key": key, "source": "", "dice": dice[k] + shift,
                         "iou": 0.5, "hd_px": 3.0})  # fmt: skip
        prompts[f"S2|{key}"] = prompt(float(k + (k in moved)), seed, "other" if k in mask else "m")
        prompts[f"S5|{key}"] = box(seed)
    pd.DataFrame(rows).to_csv(results / "metrics.csv", index=False)
    data = {"prompt_rules": 1, "seed": seed, "sampling": "random", "prompts": prompts}
    (results / "prompts.json").write_text(json.dumps(data))
    return directory


def row(table, strategy, target):
    return table[(table.strategy == strategy) & (table.target == target)].iloc[0]


def test_backbones_side_by_side_against_the_first_run(tmp_path):
    for k, backbone in enumerate(DICE):
        job(tmp_path / str(k), backbone, DICE[backbone])
    paths = write_sweep_tables(tmp_path)
    table = pd.read_csv(paths["backbones_csv"])
    # per strategy: target A, target B, all targets
    assert list(table.target) == ["A", "B", "all targets"] * 2 and list(table.strategy) == ["S2"] * 3 + ["S5"] * 3
    total = row(table, "S2", "all targets")
    assert (total.reference, total.n, total.excluded, total.unit, total.n_units) == ("vit_b", 6, 0, "image", 6)
    assert total.small_n == "small n"
    # each backbone's mean over the 6 objects, and each other backbone minus vit_b, by hand
    assert total.dice_vit_b == pytest.approx(3.40 / 6) and total.dice_medsam == pytest.approx(2.80 / 6)
    assert total.dice_vit_h == pytest.approx((3.40 + 0.21) / 6)
    assert total.delta_vit_h == pytest.approx(0.21 / 6) and total.delta_medsam == pytest.approx(-0.1)
    assert row(table, "S5", "A").dice_vit_b == pytest.approx((0.6 + 0.7 + 0.8) / 3)
    assert row(table, "S2", "B").delta_vit_h == pytest.approx(0.05)
    # the intervals hold their estimate; vit_h is better on all 6 images: exact p = 2 / 2^6 in both tests
    for b in DICE:
        assert total[f"dice_{b}_ci_low"] <= total[f"dice_{b}"] <= total[f"dice_{b}_ci_high"]
    assert 0 < total.delta_vit_h_ci_low <= total.delta_vit_h <= total.delta_vit_h_ci_high
    assert total.p_wilcoxon_vit_h == pytest.approx(2 / 64) and total.p_permutation_vit_h == pytest.approx(2 / 64)
    # medsam 0.1 below on every object: a degenerate bootstrap gives the percentile interval, that point
    assert (total.delta_medsam_ci_low, total.delta_medsam_ci_high) == pytest.approx((-0.1, -0.1))
    assert total.delta_medsam_ci_method == "percentile"
    # sign test over the 2 targets, both better: p = 0.5; only on the all-targets row
    assert total.p_sign_vit_h == pytest.approx(0.5) and np.isnan(row(table, "S2", "A").p_sign_vit_h)
    assert row(table, "S2", "A").n_units == 3 and np.isnan(row(table, "S2", "A").delta_vit_h_ci_low)
    md = paths["backbones_md"].read_text()
    assert "Prompts: identical in every run for all 12 (strategy, object) pairs compared" in md
    assert "| vit_b (reference) | vit_h | medsam | vit_h − vit_b |" in md
    assert "+0.035 [" in md and "0.600 (n too small)" in md and "† small n" in md
    page = paths["report"].read_text()
    assert "backbones side by side (reference vit_b)" in page and page.count("data:image/png;base64,") == 2
    assert (tmp_path / "figures" / "backbones.svg").is_file() and paths["backbones_figure"].is_file()


def test_an_object_with_other_prompts_is_left_out_and_the_notes_say_why(tmp_path):
    job(tmp_path / "0", "vit_b", DICE["vit_b"], seed=0)
    job(tmp_path / "1", "vit_h", DICE["vit_h"], seed=1, moved=(0,), mask=(5,))
    paths = write_sweep_tables(tmp_path)
    table = pd.read_csv(paths["backbones_csv"])
    # S2: object 0's point moved, object 5's mask differs: both left out of every column
    total = row(table, "S2", "all targets")
    assert (total.n, total.excluded) == (4, 2) and (row(table, "S2", "A").n, row(table, "S2", "A").excluded) == (2, 1)
    assert total.dice_vit_b == pytest.approx((0.6 + 0.7 + 0.4 + 0.55) / 4)
    assert total.delta_vit_h == pytest.approx((0.02 + 0.03 + 0.04 + 0.05) / 4)
    # S5: the same box under another seed is the same prompt, so every object is compared
    assert (row(table, "S5", "all targets").n, row(table, "S5", "all targets").excluded) == (6, 0)
    md = paths["backbones_md"].read_text()
    assert "2 of 12 (strategy, object) pairs are left out of every column" in md
    assert "By reason: prompt differs 1, mask differs 1. By strategy: S2 2." in md
    assert "evaluation.prompts.seed 0 (vit_b), 1 (vit_h)" in md
    assert f"evaluation.prompts.file={tmp_path / '0' / 'results' / 'prompts.json'}" in md


def test_missing_prompts_and_other_everything_settings_are_not_compared(tmp_path):
    job(tmp_path / "0", "vit_b", DICE["vit_b"])
    job(tmp_path / "1", "vit_h", DICE["vit_h"], everything="points_per_side=16")
    (tmp_path / "1" / "results" / "prompts.json").unlink()
    rows = pd.read_csv(tmp_path / "0" / "results" / "metrics.csv")
    s1 = rows[rows.strategy == "S2"].assign(strategy="S1")
    for k in ("0", "1"):
        pd.concat([pd.read_csv(tmp_path / k / "results" / "metrics.csv"), s1]).to_csv(
            tmp_path / k / "results" / "metrics.csv", index=False
        )
    table = pd.read_csv(write_sweep_tables(tmp_path)["backbones_csv"])
    assert set(table.n) == {0} and row(table, "S1", "all targets").excluded == 6
    md = (tmp_path / "backbones.md").read_text()
    assert "By reason: everything settings differ 6, no prompts.json in vit_h 12. By strategy: S1 6, S2 6, S5 6." in md
    assert "S1 ran with everything settings points_per_side=32 (vit_b), points_per_side=16 (vit_h)" in md


def test_reference_is_configurable_and_checked(tmp_path):
    for k, backbone in enumerate(DICE):
        job(tmp_path / str(k), backbone, DICE[backbone])
    table = pd.read_csv(write_sweep_tables(tmp_path, reference="medsam")["backbones_csv"])
    total = row(table, "S2", "all targets")
    assert total.reference == "medsam" and "delta_medsam" not in table
    assert total.delta_vit_b == pytest.approx(0.1) and total.delta_vit_h == pytest.approx(0.1 + 0.21 / 6)
    with pytest.raises(ConfigError, match="backbone reference 'vit_l' is not a backbone of the sweep"):
        write_sweep_tables(tmp_path, reference="vit_l")


def test_runs_of_one_backbone_write_no_backbones_table(tmp_path):
    job(tmp_path / "0", "vit_b", DICE["vit_b"])
    job(tmp_path / "1", "vit_b", DICE["vit_h"])
    (tmp_path / "1" / ".hydra" / "overrides.yaml").write_text("- evaluation.multimask=oracle\n")
    paths = write_sweep_tables(tmp_path)
    assert "sweep_stats_csv" in paths and "backbones_csv" not in paths
    assert not (tmp_path / "backbones.csv").exists() and not (tmp_path / "figures" / "backbones.png").exists()


def test_prompt_key_of_each_strategy():
    assert prompt_key("S3", "img0/1") == "S3|img0/1" and prompt_key("I@5", "img0/1") == "I|img0/1"
    assert prompt_key("S1", "img0/1") is None


@pytest.mark.slow  # two evaluate.py jobs: about 25 s on 2 cores
def test_multirun_of_two_backbones_compares_them_on_the_same_prompts(tmp_path):
    """A real multirun of the tiny model (seeds 0 and 1 stand in for two backbones: the tiny builder has one
    name), its jobs renamed as two backbones afterwards; the real prompts.json files must agree.
    """
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "-m",
            "experiment=quick",
            "model.seed=0,1",
            "evaluation.strategies=[S1,S2,S5]",
            "evaluation.overlays=0",
            "everything.points_per_side=4",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={sweep}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not (sweep / "backbones.csv").exists()  # both jobs are the backbone "tiny"
    for job_dir, name in (("0", "tiny_a"), ("1", "tiny_b")):
        summary = sweep / job_dir / "results" / "summary.json"
        data = json.loads(summary.read_text())
        data["meta"]["backbone"] = name
        summary.write_text(json.dumps(data))
    paths = write_sweep_tables(sweep)
    table = pd.read_csv(paths["backbones_csv"])
    assert set(table.strategy) == {"S1", "S2", "S5"} and set(table.excluded) == {0}
    metrics = pd.read_csv(sweep / "0" / "results" / "metrics.csv")
    for strategy in ("S2", "S5"):
        assert row(table, strategy, "all targets").n == (metrics.strategy == strategy).sum()
    assert "Prompts: identical in every run" in paths["backbones_md"].read_text()
