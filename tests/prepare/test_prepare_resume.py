"""A preparation killed with SIGKILL and run again leaves the same files, byte for byte, as one that ran
through; a half-written file is never taken as done."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sam4med.prepare.volumes import VolumePreparer
from tests.helpers import HANG_TIMEOUT_S
from tests.prepare.volumes import preparer_settings, volume_folder

HELPER = Path(__file__).with_name("prepare_subprocess.py")


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Inputs, the files of an uninterrupted run, and how many file writes it made."""
    inputs = volume_folder(tmp_path_factory.mktemp("inputs"), n=4)
    root = tmp_path_factory.mktemp("reference") / "out"
    proc = subprocess.run(
        [sys.executable, str(HELPER), str(inputs), str(root), "plain"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return inputs, files(root), int(proc.stdout.split()[-1])


@pytest.mark.parametrize("fraction", [0.05, 0.5, 0.97])
def test_killed_in_a_file_write_then_resumed(reference, tmp_path, fraction):
    inputs, expected, writes = reference
    root = tmp_path / "out"
    kill_at = max(1, round(fraction * writes))
    proc = subprocess.run([sys.executable, str(HELPER), str(inputs), str(root), "kill-at", str(kill_at)])
    assert proc.returncode == -signal.SIGKILL
    assert list(root.rglob("*.tmp")), "the killed run leaves a half-written file"
    assert not (root / ".complete").exists()
    VolumePreparer(**preparer_settings(inputs))(root)
    assert files(root) == expected


def test_killed_from_outside_mid_way_then_resumed(reference, tmp_path):
    inputs, expected, _ = reference
    root = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, str(HELPER), str(inputs), str(root), "slow"])
    deadline = time.monotonic() + HANG_TIMEOUT_S  # a wait for progress, not a speed target
    while len(list((root / "images").glob("*.png"))) < 5 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    assert not (root / ".complete").exists()
    assert 0 < len(list((root / "images").glob("*.png"))) < len([k for k in expected if k.startswith("images/")])
    VolumePreparer(**preparer_settings(inputs))(root)
    assert files(root) == expected


def test_two_processes_preparing_one_folder_take_turns(reference, tmp_path):
    """The jobs of a sweep start together: one prepares, the other waits and reads the finished folder."""
    inputs, expected, writes = reference
    root = tmp_path / "out"
    procs = [
        subprocess.Popen(
            [sys.executable, str(HELPER), str(inputs), str(root), "slow"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=HANG_TIMEOUT_S) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err[-2000:] for _, err in outputs]
    assert sorted(int(out.split()[-1]) for out, _ in outputs) == [0, writes]  # one wrote it all, the other nothing
    assert files(root) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the lock file went with the last holder
