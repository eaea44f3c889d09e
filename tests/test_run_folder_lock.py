"""One writer per run folder: a second run into a folder in use is refused at once, a stale lock is taken over."""

import collections
import csv
import json
import logging
import os
import socket
import subprocess
import sys
import time

import pytest

from sam4med.command import user_error
from sam4med.errors import CheckpointError, ConfigError
from sam4med.jobs.evaluate import evaluate_model
from sam4med.jobs.train import fine_tune
from sam4med.run_files import RunFolder
from sam4med.run_lock import Holder, RunLock, launched_rank
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S, compose_config

EVALUATE = ["model=tiny", "dataset=synthetic", "evaluation.strategies=[S2,S5]"]
NO_MODEL = ["model=vit_b", "model.checkpoint=/nonexistent/sam_vit_b.pth", "dataset=synthetic"]


@pytest.fixture
def other_process():
    """A live process that is not this one (the holder of a lock written for it)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait(timeout=HANG_TIMEOUT_S)


@pytest.fixture(autouse=True)
def no_rank(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)


def write_lock(run, pid, *, host=None, started=None):
    run.mkdir(parents=True, exist_ok=True)
    holder = Holder(pid, host or socket.gethostname(), time.time() if started is None else started, "theirs")
    RunFolder(run).lock.write_text(holder.to_json() + "\n")
    return RunFolder(run).lock


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=HANG_TIMEOUT_S)
    return proc.pid


def one_line(exc):
    error = user_error(exc)
    assert isinstance(error, ConfigError), f"not a one-line user error: {exc!r}"
    assert "\n" not in str(error)
    return str(error)


# --- evaluate_model / fine_tune ----------------------------------------------------------------------


def test_a_folder_in_use_is_refused_in_one_line_before_any_work(tmp_path, other_process):
    run = tmp_path / "run"
    lock = write_lock(run, other_process.pid)
    with pytest.raises(ConfigError) as info:
        evaluate_model(compose_config("evaluate", tmp_path, EVALUATE))
    message = one_line(info.value)
    assert message.startswith(f"{run}: another run is writing into this run folder")
    assert f"pid {other_process.pid} on host {socket.gethostname()}" in message
    assert "wait for it to end, or use another run folder (hydra.run.dir=...)" in message
    assert sorted(p.name for p in run.iterdir()) == ["run.lock"]  # nothing written into the folder
    assert not (tmp_path / "data").exists()  # nor the dataset prepared: refused before any work
    assert json.loads(lock.read_text())["token"] == "theirs"  # the holder's lock is left alone


def test_a_lock_held_on_another_host_says_how_to_clear_it(tmp_path):
    run = tmp_path / "run"
    lock = write_lock(run, os.getpid(), host="elsewhere.invalid")
    with pytest.raises(ConfigError) as info:
        evaluate_model(compose_config("evaluate", tmp_path, EVALUATE))
    message = one_line(info.value)
    assert f"pid {os.getpid()} on host elsewhere.invalid" in message
    assert message.endswith(f"if no such run is alive any more, delete {lock}")


def test_a_stale_lock_is_taken_over_with_a_warning_and_removed_at_the_end(tmp_path, caplog):
    run = tmp_path / "run"
    pid = dead_pid()
    lock = write_lock(run, pid)
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        results = evaluate_model(compose_config("evaluate", tmp_path, EVALUATE))
    assert (results / "metrics.csv").is_file() and not lock.exists()
    taken = [r.getMessage() for r in caplog.records if "took over" in r.getMessage()]
    assert len(taken) == 1 and f"pid {pid} on host {socket.gethostname()}" in taken[0], taken


def test_the_lock_is_removed_when_the_run_fails(tmp_path):
    cfg = compose_config("evaluate", tmp_path, [*EVALUATE, "dataset.min_object_area=100000"])
    with pytest.raises(Exception, match="hold no object to score"):
        evaluate_model(cfg)
    assert not RunFolder(tmp_path / "run").lock.exists()


def test_training_takes_the_lock_in_the_starting_process_only(tmp_path, other_process, monkeypatch):
    write_lock(tmp_path / "run", other_process.pid)
    with pytest.raises(ConfigError, match="another run is writing into this run folder"):
        fine_tune(compose_config("train", tmp_path, NO_MODEL))
    monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP rank Lightning launched: rank 0's folder, no lock of its own
    with pytest.raises(Exception) as info:  # past the lock, to the model
        fine_tune(compose_config("train", tmp_path, NO_MODEL))
    assert isinstance(user_error(info.value), CheckpointError), repr(info.value)


@pytest.mark.parametrize(
    "env, rank", [({}, 0), ({"LOCAL_RANK": "0"}, 0), ({"LOCAL_RANK": "1"}, 1), ({"RANK": "3", "LOCAL_RANK": "1"}, 3)]
)
def test_launched_rank(monkeypatch, env, rank):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert launched_rank() == rank


# --- RunLock ------------------------------------------------------------------------------------------


def test_a_lock_of_a_reused_pid_is_stale(tmp_path, other_process, caplog):
    # the pid is alive, but its process started long after the lock was written: not the holder
    lock = write_lock(tmp_path / "run", other_process.pid, started=time.time() - 3600)
    with caplog.at_level(logging.WARNING, logger="sam4med"), RunLock(tmp_path / "run"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert "took over" in caplog.text and not lock.exists()


def test_this_process_cannot_take_its_own_lock_twice(tmp_path):
    with RunLock(tmp_path / "run"):
        with pytest.raises(ConfigError, match=f"pid {os.getpid()}"), RunLock(tmp_path / "run"):
            pass
        assert RunFolder(tmp_path / "run").lock.is_file()
    assert not RunFolder(tmp_path / "run").lock.exists()


def test_an_empty_lock_left_by_a_process_that_died_at_once_is_taken_over(tmp_path):
    lock = RunFolder(tmp_path / "run").lock
    lock.parent.mkdir(parents=True)
    lock.write_text("")
    with RunLock(tmp_path / "run"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


# --- two evaluate.py processes at once -----------------------------------------------------------------


def evaluate_command(run):
    return [sys.executable, "evaluate.py", *EVALUATE, f"hydra.run.dir={run}"]


def test_two_runs_started_at_once_into_one_folder_one_refuses_and_no_row_is_doubled(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "SAM4MED_ROOT": str(tmp_path)}
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        env.pop(name, None)
    procs = [
        subprocess.Popen(
            evaluate_command(run), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outcomes = [(p.returncode, err) for p in procs for _, err in [p.communicate(timeout=HANG_TIMEOUT_S)]]
    codes = sorted(code for code, _ in outcomes)
    assert codes == [0, 2], [err[-2000:] for _, err in outcomes]
    refused = next(err for code, err in outcomes if code == 2)
    last = refused.strip().splitlines()[-1]
    assert (
        last.startswith(f"error: {run}: another run is writing into this run folder (pid ")
        and "Traceback" not in refused
    )
    log = RunFolder(run).results.evaluation_log()
    lines = log.read_text().splitlines()
    assert len(lines) == len(set(lines))  # the log holds one run's rows, once

    third = subprocess.run(
        evaluate_command(run), cwd=REPO, env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S
    )
    assert third.returncode == 0, third.stderr[-2000:]
    with RunFolder(run).results.metrics.open() as handle:
        keys = collections.Counter((r["phase"], r["strategy"], r["object_key"]) for r in csv.DictReader(handle))
    assert keys and set(keys.values()) == {1} and len(keys) == len(lines)
    assert not RunFolder(run).lock.exists()
