"""``python prepare.py``: prepares a configured dataset and prints its summary."""

import subprocess
import sys

from sam4med.dataset_format import read_manifest
from sam4med.jobs.prepare import prepare_dataset
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S, compose_config


def run_prepare(*overrides, cwd=REPO):
    return subprocess.run(
        [sys.executable, str(REPO / "prepare.py"), *overrides],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )


def test_prepares_a_configured_dataset(tmp_path, capsys):
    root = tmp_path / "syn"
    cfg = compose_config(
        "prepare", tmp_path, ["dataset=synthetic", f"dataset.root={root}", f"plot={tmp_path / 'p.png'}"]
    )
    assert prepare_dataset(cfg) == root
    out = capsys.readouterr().out
    assert "dataset synthetic: 12 images" in out and "Ring-Synthetic CT" in out
    assert len(read_manifest(root)) == 12 and (tmp_path / "p.png").is_file()


def test_user_errors_are_one_line(tmp_path):
    for overrides, message in (
        (["dataset=folder", f"dataset.root={tmp_path}"], "has no preparer"),
        (["dataset=example_volumes"], "missing setting dataset.preparer.images"),
    ):
        proc = run_prepare(*overrides)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]
    proc = run_prepare("dataset=no_such_dataset")
    assert proc.returncode != 0 and "Could not find 'dataset/no_such_dataset'" in proc.stderr


def test_runs_from_any_folder_and_writes_no_run_folder(tmp_path):
    proc = run_prepare("dataset=stardist_nuclei", f"dataset.root={tmp_path / 'n'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Cell-Microscopy" in proc.stdout and "ready in" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["n"]
