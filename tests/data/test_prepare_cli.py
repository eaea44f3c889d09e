"""``python -m sam4med.data.prepare``: prepares a configured dataset and prints its summary."""

import subprocess
import sys

from sam4med.data.format import read_manifest
from sam4med.data.prepare.__main__ import main
from tests.conftest import REPO


def test_prepares_a_configured_dataset(tmp_path, capsys):
    root = tmp_path / "syn"
    assert main(["dataset=synthetic", f"dataset.root={root}", f"plot={tmp_path / 'plot.png'}"]) == 0
    out = capsys.readouterr().out
    assert "dataset synthetic: 12 images" in out and "Ring-Synthetic CT" in out
    assert len(read_manifest(root)) == 12 and (tmp_path / "plot.png").is_file()


def test_user_errors_are_one_line(tmp_path, capsys):
    assert main(["dataset=folder", f"dataset.root={tmp_path}"]) == 2
    assert "has no preparer" in capsys.readouterr().err
    assert main(["dataset=example_volumes"]) == 2
    assert "missing setting" in capsys.readouterr().err
    assert main(["dataset=no_such_dataset"]) == 2
    assert "Could not find 'dataset/no_such_dataset'" in capsys.readouterr().err


def test_runs_as_a_module(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sam4med.data.prepare", "dataset=stardist_nuclei", f"dataset.root={tmp_path / 'n'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Cell-Microscopy" in proc.stdout and "ready in" in proc.stdout
