"""Side-by-side tables of a multirun sweep, merged from its jobs' results."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sam4med.results.statistics import StatisticsSettings
from sam4med.results.sweep import run_labels, run_statistics, side_by_side, write_sweep_tables
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S


def fake_run(directory, backbone, overrides, dice, seed=0, phases=("zero_shot",)):
    results = directory / "results"
    results.mkdir(parents=True)
    (directory / ".hydra").mkdir()
    (directory / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (directory / ".hydra" / "config.yaml").write_text(f"seed: {seed}\n")
    (results / "summary.json").write_text(json.dumps({"meta": {"backbone": backbone}}))
    rows = [
        {
            "phase": phase,
            "strategy": s,
            "target": "Liver-CT",
            "image_id": "img0",
            "object_key": "img0/liver/1",
            "dice": dice + k / 10 + (0.1 if phase == "finetuned" else 0),
            "iou": 0.5,
            "hd_px": 3.0,
        }
        for phase in phases
        for k, s in enumerate(["S5", "S1"])
    ]
    pd.DataFrame(rows).to_csv(results / "metrics.csv", index=False)
    return directory


def test_side_by_side_by_backbone(tmp_path):
    fake_run(tmp_path / "0", "vit_b", ["model=vit_b"], 0.5)
    fake_run(tmp_path / "1", "vit_h", ["model=vit_h"], 0.6)
    paths = write_sweep_tables(tmp_path)
    table = pd.read_csv(paths["sweep_dice_csv"])
    assert list(table.columns) == ["phase", "target", "vit_b S1", "vit_b S5", "vit_h S1", "vit_h S5"]
    assert table.loc[0, "vit_h S1"] == 0.7
    assert "vit_b (0)" in paths["sweep_dice_md"].read_text()
    overall = pd.read_csv(paths["sweep_overall_csv"])
    assert list(overall["run"]) == ["vit_b", "vit_b", "vit_h", "vit_h"]


def test_same_backbone_runs_are_labelled_by_their_differing_overrides(tmp_path):
    a = fake_run(tmp_path / "0", "tiny", ["model=tiny", "evaluation.multimask=single"], 0.5)
    b = fake_run(tmp_path / "1", "tiny", ["model=tiny", "evaluation.multimask=oracle"], 0.6)
    assert run_labels([a, b]) == {a: "evaluation.multimask=single", b: "evaluation.multimask=oracle"}
    assert write_sweep_tables(tmp_path / "nothing") == {}
    frame = pd.concat([pd.read_csv(r / "results" / "metrics.csv").assign(run=r.name) for r in (a, b)])
    assert list(side_by_side(frame, "dice").columns[2:]) == ["0 S1", "0 S5", "1 S1", "1 S5"]


def test_multirun_writes_side_by_side_tables(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "-m",
            "model=tiny",
            "model.seed=0,1",
            "dataset=synthetic",
            "evaluation.strategies=[S1,S5]",
            "everything.points_per_side=4",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_csv(tmp_path / "sweep" / "sweep_dice.csv")
    assert [c for c in table.columns if c.endswith(("S1", "S5"))] == [
        "model.seed=0 S1",
        "model.seed=0 S5",
        "model.seed=1 S1",
        "model.seed=1 S5",
    ]
    assert (tmp_path / "sweep" / "sweep_hd.md").is_file() and (tmp_path / "sweep" / "report.html").is_file()


def test_seed_sweep_writes_mean_sd_and_per_seed_values(tmp_path):
    for seed, dice in [(0, 0.5), (1, 0.6), (2, 0.8)]:
        fake_run(tmp_path / str(seed), "tiny", [f"seed={seed}"], dice, seed=seed, phases=("zero_shot", "finetuned"))
    paths = write_sweep_tables(tmp_path)
    seeds = pd.read_csv(paths["seeds_csv"])
    row = seeds[(seeds.phase == "finetuned") & (seeds.strategy == "S5") & (seeds.target == "Liver-CT")].iloc[0]
    assert [row.seed_0, row.seed_1, row.seed_2] == pytest.approx([0.6, 0.7, 0.9])
    assert row["mean"] == pytest.approx(2.2 / 3) and row["sd"] == pytest.approx(np.std([0.6, 0.7, 0.9], ddof=1))
    assert row["n"] == 3 and "all targets" in set(seeds.target)
    stats = pd.read_csv(paths["sweep_stats_csv"])
    assert set(stats.run) == {"seed=1", "seed=2"} and {"dice_delta_ci_low", "p_wilcoxon", "p_sign"} <= set(stats)
    # one image per run: the same unit rules as a run's comparison, so no interval and no p-value
    assert set(stats.unit) == {"image"} and set(stats.n_units) == {1} and set(stats.small_n) == {"n too small"}
    assert stats[["dice_delta_ci_low", "p_wilcoxon", "p_permutation"]].isna().all().all()
    assert "| n too small | n too small |" in paths["sweep_stats_md"].read_text()
    # the sweep's report: its tables and the runs side by side, zero-shot panel before fine-tuned
    page = paths["report"].read_text()
    assert page.count("data:image/png;base64,") == 1 and "Mean Dice over seeds" in page
    assert (tmp_path / "figures" / "sweep_means.svg").is_file()


def test_runs_of_one_seed_write_no_seed_table(tmp_path):
    fake_run(tmp_path / "0", "vit_b", ["model=vit_b"], 0.5)
    fake_run(tmp_path / "1", "vit_h", ["model=vit_h"], 0.6)
    assert "seeds_csv" not in write_sweep_tables(tmp_path)


@pytest.mark.slow
def test_train_sweep_scores_its_zero_shot_baseline_once(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "train.py",
            "-m",
            "experiment=quick",
            "trainer.max_epochs=1,2",
            "trainer.enable_progress_bar=false",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S * 2,  # two training jobs
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    logs = [(tmp_path / "sweep" / job / "train.log").read_text() for job in ("0", "1")]
    assert "results reused" not in logs[0] and "18 (image, strategy) results reused" in logs[1]
    frames = [pd.read_csv(tmp_path / "sweep" / job / "results" / "metrics.csv") for job in ("0", "1")]
    zero_shot = [f[f.phase == "zero_shot"].reset_index(drop=True) for f in frames]
    pd.testing.assert_frame_equal(zero_shot[0], zero_shot[1])
    prompts = [(tmp_path / "sweep" / job / "results" / "prompts.json").read_text() for job in ("0", "1")]
    assert prompts[0] == prompts[1]


def test_run_statistics_pair_runs_by_object_over_the_same_units():
    # six patients x two slices, run b 0.1 better on every object: source is the unit, 6 of them (p = 2/64)
    rows = [
        {"run": run, "phase": "finetuned", "strategy": "S5", "target": "t", "image_id": f"p{p}s{s}",
         "object_key": f"p{p}s{s}/1", "source": f"p{p}", "dice": 0.5 + 0.01 * p + (0.1 if run == "b" else 0)}
        for run in ("a", "b") for p in range(6) for s in range(2)
    ]  # fmt: skip
    row = run_statistics(pd.DataFrame(rows)).iloc[0]
    assert (row["reference"], row["run"], row["unit"], row["n_units"], row["n"]) == ("a", "b", "source", 6, 12)
    assert row["dice_delta"] == pytest.approx(0.1) and row["p_permutation"] == pytest.approx(2 / 64)
    image_level = run_statistics(pd.DataFrame(rows), StatisticsSettings(unit="image")).iloc[0]
    assert image_level["n_units"] == 12 and image_level["small_n"] == ""
