"""Side-by-side tables of a multirun sweep, merged from its jobs' results."""

import json
import subprocess
import sys

import pandas as pd

from sam4med.evaluation.sweep import run_labels, side_by_side, write_sweep_tables
from tests.conftest import REPO


def fake_run(directory, backbone, overrides, dice):
    results = directory / "results"
    results.mkdir(parents=True)
    (directory / ".hydra").mkdir()
    (directory / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (results / "summary.json").write_text(json.dumps({"meta": {"backbone": backbone}}))
    rows = [
        {"phase": "zero_shot", "strategy": s, "target": "Liver-CT", "dice": dice + k / 10, "iou": 0.5, "hd_px": 3.0}
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
    a = fake_run(tmp_path / "0", "tiny", ["model=tiny", "multimask=single"], 0.5)
    b = fake_run(tmp_path / "1", "tiny", ["model=tiny", "multimask=oracle"], 0.6)
    assert run_labels([a, b]) == {a: "multimask=single", b: "multimask=oracle"}
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
            "strategies=[S1,S5]",
            "everything.points_per_side=4",
            f"paths.root_dir={tmp_path}",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = pd.read_csv(tmp_path / "sweep" / "sweep_dice.csv")
    assert [c for c in table.columns if c.endswith(("S1", "S5"))] == [
        "model.seed=0 S1",
        "model.seed=0 S5",
        "model.seed=1 S1",
        "model.seed=1 S5",
    ]
    assert (tmp_path / "sweep" / "sweep_hd.md").is_file()
