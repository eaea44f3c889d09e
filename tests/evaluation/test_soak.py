"""Soak: 2,000 images with the tiny model. Peak memory does not grow with the number of images, and a run
killed with SIGKILL half-way and resumed gives the rows of a run that went through.

Memory is the peak resident set size of the scoring process (``ru_maxrss``, mostly torch itself); the peak
of Python allocations traced by ``tracemalloc`` is printed beside it: it grows with the rows a run returns
and the prompts it holds, about 3 KiB per object. Measured on two busy cores: 910,572 KiB at 200 images,
975,164 KiB at 2,000 (+7.1 %); tracemalloc 4.9 MB and 30.5 MB.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from sam4med.prepare.synthetic import SyntheticShapes
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S

IMAGES = 2000


def child(root, tmp_path, name, *extra):
    """Score ``root`` in a child process logging to ``name``.jsonl, with a disk cache of its own name."""
    command = [sys.executable, "-m", "tests.evaluation.evaluate_subprocess", str(root), str(tmp_path / f"{name}.jsonl"),
               str(tmp_path / f"{name}.out"), "--cache", str(tmp_path / f"{name}.cache"), *extra]  # fmt: skip
    command += ["--strategies", "S5"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: steady timing on a shared CPU
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S * 2)


@pytest.mark.slow  # about 9 minutes on two busy cores
def test_2000_images_in_flat_memory_and_a_sigkill_split_run_equals_a_whole_one(tmp_path):
    root = SyntheticShapes(n_images=IMAGES, size=(32, 32), seed=0)(tmp_path / "data")
    memory = {}
    for n in (200, IMAGES):
        proc = child(root, tmp_path, f"whole{n}", "--limit", str(n), "--memory", str(tmp_path / f"memory{n}.json"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        memory[n] = json.loads((tmp_path / f"memory{n}.json").read_text())
    killed = child(root, tmp_path, "split", "--kill-after", str(IMAGES // 2))
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (tmp_path / "split.out").exists()
    logged = {json.loads(line)["image_id"] for line in (tmp_path / "split.jsonl").read_text().splitlines()}
    assert len(logged) == IMAGES // 2
    resumed = child(root, tmp_path, "split")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    whole = (tmp_path / f"whole{IMAGES}.out").read_text().splitlines()
    assert len({json.loads(line)["image_id"] for line in whole}) == IMAGES
    assert (tmp_path / "split.out").read_text().splitlines() == whole
    print(f"peak memory: {json.dumps(memory)}")
    assert memory[IMAGES]["maxrss_kib"] <= 1.10 * memory[200]["maxrss_kib"]
