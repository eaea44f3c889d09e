"""The runs of a k-fold over sources merged into per-fold and pooled tables, and runs that are not one k-fold."""

import logging

import pandas as pd
import pytest
import yaml

from sam4med.evaluation.rows import ObjectResult
from sam4med.results.folds import FoldRun, fold_problem, fold_tables, read_fold_run
from sam4med.results.frame import to_frame
from sam4med.results.sweep import write_sweep_tables

ZERO_SHOT = {0: 0.5, 1: 0.6, 2: 0.4}  # per fold: zero-shot Dice of the first object of each image
FINETUNED = {0: 0.7, 1: 0.6, 2: 0.5}  # the second object scores 0.1 more in both phases


def fold_frame(fold, phases=("zero_shot", "finetuned")):
    rows = [
        ObjectResult(
            phase=phase,
            strategy=strategy,
            target="Liver-CT",
            modality="CT",
            object="Liver",
            image_id=f"f{fold}_i{image}",
            object_key=f"f{fold}_i{image}/organs/{obj}",
            dice=(ZERO_SHOT if phase == "zero_shot" else FINETUNED)[fold] + 0.1 * obj,
            iou=0.5,
            hd=2.0,
            hd95=2.0,
            hd_unit="px",
            score=0.9,
            nsd=0.5,
            hd_px=2.0,
            hd95_px=2.0,
            candidates=1,
            source=f"p{fold}_{image}",
        )
        for phase in phases
        for strategy in ("S2", "S5")
        for image in range(2)
        for obj in range(2)
    ]
    return to_frame(rows)


def fake_fold_run(directory, fold, folds=3, split_seed=0, root="/data/x"):
    (directory / "results").mkdir(parents=True)
    (directory / ".hydra").mkdir()
    (directory / ".hydra" / "overrides.yaml").write_text(f"- dataset.folds={folds}\n- dataset.fold={fold}\n")
    config = {"seed": 0, "dataset": {"root": root, "folds": folds, "fold": fold, "split_seed": split_seed}}
    (directory / "config.yaml").write_text(yaml.safe_dump(config))
    fold_frame(fold % 3).to_csv(directory / "results" / "metrics.csv", index=False)
    return directory


def test_fold_tables_give_per_fold_and_pooled_means():
    tables = fold_tables({k: fold_frame(k) for k in range(3)})
    per_fold = tables.per_fold.set_index(["fold", "strategy"])
    assert list(per_fold.index) == [(f, s) for f in ("0", "1", "2", "pooled") for s in ("S2", "S5")]
    assert per_fold.loc[("0", "S5"), "dice_zero_shot"] == pytest.approx(0.55)
    assert per_fold.loc[("0", "S5"), "dice_finetuned"] == pytest.approx(0.75)
    assert per_fold.loc[("1", "S2"), "dice_delta"] == pytest.approx(0.0)
    assert per_fold.loc[("pooled", "S5"), "dice_delta"] == pytest.approx(0.1)
    assert per_fold.loc[("pooled", "S5"), "n_images"] == 6 and per_fold.loc[("0", "S5"), "n_images"] == 2
    assert per_fold.loc[("pooled", "S5"), "n_objects"] == 12 and per_fold.loc[("pooled", "S5"), "n_sources"] == 6
    pooled = tables.pooled
    s5 = pooled[(pooled.strategy == "S5") & (pooled.target == "all targets")].iloc[0]
    assert s5["dice_delta"] == pytest.approx(0.1) and s5["dice_zero_shot"] == pytest.approx(0.55)


def test_zero_shot_only_folds_leave_the_fine_tuned_columns_empty():
    per_fold = fold_tables({k: fold_frame(k, phases=("zero_shot",)) for k in range(2)}).per_fold
    assert per_fold["dice_zero_shot"].notna().all() and per_fold["dice_finetuned"].isna().all()


def test_a_fold_sweep_writes_the_merged_tables(tmp_path):
    for job in range(3):
        fake_fold_run(tmp_path / str(job), fold=2 - job)  # job order need not be fold order
    paths = write_sweep_tables(tmp_path)
    assert {"folds_csv", "folds_pooled_csv", "folds_md"} <= set(paths)
    per_fold = pd.read_csv(tmp_path / "folds.csv", dtype={"fold": str})
    assert list(per_fold["fold"]) == ["0", "0", "1", "1", "2", "2", "pooled", "pooled"]
    row = per_fold[(per_fold.fold == "2") & (per_fold.strategy == "S5")].iloc[0]
    assert row["dice_zero_shot"] == pytest.approx(0.45) and row["dice_delta"] == pytest.approx(0.1)
    text = (tmp_path / "folds.md").read_text()
    assert text.startswith("# 3-fold cross-validation over sources")
    assert "fold 0: 2, fold 1: 1, fold 2: 0" in text
    assert len(pd.read_csv(tmp_path / "folds_pooled.csv")) > 0


@pytest.mark.parametrize(
    "folds, message",
    [
        ([(3, 0, 0), (3, 1, 0)], "dataset.folds=3 needs every fold 0..2 exactly once: fold(s) 2 without results"),
        ([(3, 0, 0), (3, 0, 0), (3, 1, 0)], "fold(s) 0 run more than once; fold(s) 2 without results"),
        ([(3, 0, 0), (3, 1, 1), (3, 2, 0)], "the runs differ in dataset.split_seed (0: 0, 1: 1, 2: 0)"),
        ([(3, 0, 0), (2, 1, 0)], "the runs differ in dataset.folds (0: 3, 1: 2)"),
        ([(3, 0, 0), (None, None, 0)], "the runs differ in dataset.folds (0: 3, 1: None)"),
    ],
)
def test_runs_that_are_not_one_k_fold_are_named(tmp_path, folds, message):
    runs = [FoldRun(tmp_path / str(k), "/data/x", f, fold, seed) for k, (f, fold, seed) in enumerate(folds)]
    assert message in fold_problem(runs)
    assert fold_problem([FoldRun(tmp_path / str(k), "/data/x", 3, k, 0) for k in range(3)]) is None


def test_an_incomplete_fold_sweep_is_not_merged_and_says_why(tmp_path, caplog):
    fake_fold_run(tmp_path / "0", fold=0)
    fake_fold_run(tmp_path / "1", fold=1)
    assert read_fold_run(tmp_path / "1") == FoldRun(tmp_path / "1", "/data/x", 3, 1, 0)
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        paths = write_sweep_tables(tmp_path)
    assert "sweep_dice_csv" in paths and "folds_csv" not in paths and not (tmp_path / "folds.csv").exists()
    assert "not merged as the folds of one k-fold: dataset.folds=3 needs every fold 0..2 exactly once" in caplog.text
