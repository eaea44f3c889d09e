"""Disk faults on real file systems end in one line naming the path, leave no temporary file and keep the
previous content of the target: a file-size limit (RLIMIT_FSIZE, EFBIG), a full file system (a 1 MiB
tmpfs, ENOSPC), a read-only file system (a tmpfs remounted read-only, EROFS), a folder without write
permission (EACCES) and an immutable folder (``chattr +i``, EPERM).

Mounting needs CAP_SYS_ADMIN (root in a container that allows it), so the tmpfs tests skip, saying why,
where ``mount`` is refused; the file-size limit and permission tests work for any user.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sam4med import files
from sam4med.command import DISK_FAULTS, user_error
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import DataError
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S

ENV = {**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1", "PYTHONPATH": str(REPO)}
NOBODY = 65534


def temporaries(root: Path) -> list[Path]:
    return sorted(root.rglob("*.tmp"))


def _mount(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=HANG_TIMEOUT_S)


def _unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True, timeout=HANG_TIMEOUT_S).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=HANG_TIMEOUT_S)


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size, read_only=False)``: a fresh tmpfs of ``size`` under ``tmp_path``; unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str = "1m") -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        proc = _mount(["-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)])
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs CAP_SYS_ADMIN): {proc.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in reversed(mounted):
        _unmount(folder)


def read_only(folder: Path) -> None:
    """Remount the tmpfs at ``folder`` read-only (what was written stays readable)."""
    proc = _mount(["-o", "remount,ro", str(folder)])
    if proc.returncode != 0:
        pytest.skip(f"cannot remount a tmpfs read-only here: {proc.stderr.strip()}")
    assert os.statvfs(folder).f_flag & os.ST_RDONLY


def fill(folder: Path) -> Path:
    """Fill the file system of ``folder`` to the last byte; returns the filler file (delete it to free the space)."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as handle:
        for size in (1 << 16, 1 << 12, 1 << 8, 1):
            try:
                while True:
                    handle.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return filler


def test_both_tables_of_disk_faults_agree():
    # command.py may not import files (it loads before torch): the same advice is written twice
    assert files.WRITE_FAULTS == DISK_FAULTS


# --- (a) the file-size limit -------------------------------------------------------------------------

LIMITED_WRITER = textwrap.dedent(
    """
    import json, resource, signal, sys
    from pathlib import Path
    import torch
    from sam4med import files
    from sam4med.errors import DataError

    folder = Path(sys.argv[1])
    files.write_text(folder / "notes.txt", "old notes")
    files.save_tensors(folder / "entry.pt", {"old": torch.ones(3)})
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # or the kernel kills the process at the limit
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
    outcome = {}
    for name, write in [
        ("notes.txt", lambda: files.write_text(folder / "notes.txt", "x" * 200_000)),
        ("entry.pt", lambda: files.save_tensors(folder / "entry.pt", {"new": torch.zeros(100_000)}, unique_tmp=True)),
    ]:
        try:
            write()
            outcome[name] = "written"
        except DataError as exc:
            outcome[name] = "DataError: " + str(exc)
        except Exception as exc:
            outcome[name] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(outcome))
    """
)


def test_a_write_over_the_file_size_limit_names_the_file_and_keeps_the_old_one(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED_WRITER, str(tmp_path)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=HANG_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    outcome = json.loads(proc.stdout.splitlines()[-1])
    for name in ("notes.txt", "entry.pt"):
        assert outcome[name] == f"DataError: cannot write {tmp_path / name}: {files.WRITE_FAULTS[errno.EFBIG]}", outcome
        assert "ulimit -f" in outcome[name]
    assert temporaries(tmp_path) == []
    assert (tmp_path / "notes.txt").read_text() == "old notes"
    assert torch.equal(torch.load(tmp_path / "entry.pt")["old"], torch.ones(3))


# --- (b) a full file system --------------------------------------------------------------------------


def test_a_full_file_system_names_the_file_keeps_the_old_one_and_the_rerun_completes(tmpfs):
    disk = tmpfs("1m")
    run = disk / "run" / "results"
    files.write_text(run / "metrics.csv", "old,rows\n")
    files.save_tensors(disk / "cache" / "ab" / "ab12.pt", {"old": torch.ones(3)}, unique_tmp=True)
    files.save_png(run / "mask.png", np.zeros((4, 4), np.uint8))
    filler = fill(disk)

    big_image = np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8)  # incompressible
    writes = {
        run / "metrics.csv": lambda: files.write_csv(run / "metrics.csv", ["a"], [{"a": "x" * 10_000}]),
        disk / "cache" / "ab" / "ab12.pt": lambda: files.save_tensors(
            disk / "cache" / "ab" / "ab12.pt", {"new": torch.zeros(50_000)}, unique_tmp=True
        ),
        run / "mask.png": lambda: files.save_png(run / "mask.png", big_image),
    }
    for path, write in writes.items():
        with pytest.raises(DataError) as info:
            write()
        assert str(info.value) == f"cannot write {path}: {DISK_FAULTS[errno.ENOSPC]}"
        assert str(user_error(info.value)) == str(info.value)  # the entry points print it as it is
    assert temporaries(disk) == []
    assert (run / "metrics.csv").read_text() == "old,rows\n"
    assert torch.equal(torch.load(disk / "cache" / "ab" / "ab12.pt")["old"], torch.ones(3))
    assert np.array_equal(np.asarray(Image.open(run / "mask.png")), np.zeros((4, 4)))

    filler.unlink()  # space freed: the same writes complete
    for write in writes.values():
        write()
    assert torch.equal(torch.load(disk / "cache" / "ab" / "ab12.pt")["new"], torch.zeros(50_000))
    assert temporaries(disk) == []


def test_a_figure_on_a_full_file_system_names_the_file(tmpfs):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    disk = tmpfs("1m")
    figure = Figure()
    figure.add_subplot().imshow(np.random.default_rng(0).random((200, 200)))
    files.save_figure(disk / "figure.png", figure, dpi=50)
    old = (disk / "figure.png").read_bytes()
    fill(disk)
    for name in ("figure.png", "figure.svg"):
        with pytest.raises(DataError, match=f"cannot write {disk / name}: no space left on device"):
            files.save_figure(disk / name, figure, dpi=200)
    assert temporaries(disk) == [] and not (disk / "figure.svg").exists()
    assert (disk / "figure.png").read_bytes() == old


# --- (c) read-only, no permission, immutable ---------------------------------------------------------


def test_a_read_only_run_folder_names_the_file_and_keeps_it(tmpfs):
    run = tmpfs("1m") / "run"
    files.write_text(run / "results" / "metrics.csv", "old,rows\n")
    read_only(run.parent)
    with pytest.raises(DataError) as info:
        files.write_text(run / "results" / "metrics.csv", "new,rows\n")
    assert str(info.value) == f"cannot write {run / 'results' / 'metrics.csv'}: {DISK_FAULTS[errno.EROFS]}"
    assert "read-only file system" in str(info.value)
    with pytest.raises(DataError, match=f"cannot write {run / 'checkpoints' / 'last.pt'}: read-only"):
        files.save_tensors(run / "checkpoints" / "last.pt", {"w": torch.ones(1)})  # its folder cannot be made
    assert (run / "results" / "metrics.csv").read_text() == "old,rows\n"
    assert temporaries(run) == []

    # a write outside files.py (Lightning, Hydra, a mkdir): user_error turns the raw error into one line
    with pytest.raises(OSError) as raw:
        (run / "lightning_logs").mkdir()
    assert str(user_error(raw.value)) == f"{run / 'lightning_logs'}: {DISK_FAULTS[errno.EROFS]}"
    with pytest.raises(OSError) as raw:
        open(run / "results" / "metrics.csv", "w")  # noqa: SIM115 - the open itself fails
    wrapped = RuntimeError("a library wrapped it")
    wrapped.__cause__ = raw.value
    assert str(user_error(wrapped)) == f"{run / 'results' / 'metrics.csv'}: {DISK_FAULTS[errno.EROFS]}"


def test_a_read_only_embedding_cache_names_the_entry(tmpfs):
    folder = tmpfs("1m")
    cache = EmbeddingCache(folder / "embeddings")
    cache.store("ab" + "0" * 62, torch.ones(4, 2, 2))
    read_only(folder)
    key = "cd" + "1" * 62
    with pytest.raises(DataError) as info:
        cache.store(key, torch.ones(4, 2, 2))
    assert str(info.value) == f"cannot write {folder / 'embeddings' / 'cd' / (key + '.pt')}: {DISK_FAULTS[errno.EROFS]}"
    assert torch.equal(cache.load("ab" + "0" * 62), torch.ones(4, 2, 2))  # what is there is still read
    assert temporaries(folder) == []


NOBODY_WRITER = textwrap.dedent(
    """
    import json, os, sys
    from pathlib import Path
    from sam4med import files
    from sam4med.command import user_error
    from sam4med.errors import DataError

    locked, open_ = Path(sys.argv[1]), Path(sys.argv[2])
    if os.geteuid() == 0:  # root ignores permission bits: drop to nobody once the modules are loaded
        os.setgid(int(sys.argv[3]))
        os.setuid(int(sys.argv[3]))
    outcome = {}
    try:
        files.write_text(open_ / "control.txt", "a writable folder takes the write")
        outcome["control"] = "written"
    except Exception as exc:
        outcome["control"] = f"{type(exc).__name__}: {exc}"
    try:
        files.write_text(locked / "notes.txt", "new")
        outcome["write"] = "written"
    except Exception as exc:
        outcome["write"] = f"{type(exc).__name__}: {exc}"
    try:
        (locked / "sub").mkdir()
        outcome["mkdir"] = "made"
    except Exception as exc:
        outcome["mkdir"] = str(user_error(exc))
    print(json.dumps(outcome))
    """
)


def test_a_folder_without_write_permission_names_the_file():
    # not tmp_path: nobody must reach the folders (pytest's base folder is private to its user)
    with tempfile.TemporaryDirectory(prefix="sam4med-perm-") as base:
        base = Path(base)
        os.chmod(base, 0o755)
        locked, open_ = base / "locked", base / "open"
        locked.mkdir()
        open_.mkdir(mode=0o777)
        os.chmod(open_, 0o777)
        (locked / "notes.txt").write_text("old")
        os.chmod(locked, 0o555)
        try:
            proc = subprocess.run(
                [sys.executable, "-c", NOBODY_WRITER, str(locked), str(open_), str(NOBODY)],
                cwd=REPO, env=ENV, capture_output=True, text=True, timeout=HANG_TIMEOUT_S,
            )  # fmt: skip
        finally:
            os.chmod(locked, 0o755)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outcome = json.loads(proc.stdout.splitlines()[-1])
        assert outcome["control"] == "written", outcome
        assert outcome["write"] == f"DataError: cannot write {locked / 'notes.txt'}: {DISK_FAULTS[errno.EACCES]}", (
            outcome
        )
        assert outcome["mkdir"] == f"{locked / 'sub'}: {DISK_FAULTS[errno.EACCES]}", outcome
        assert (locked / "notes.txt").read_text() == "old"
        assert temporaries(base) == []


def test_an_immutable_folder_names_the_file(tmp_path):
    folder = tmp_path / "frozen"
    files.write_text(folder / "notes.txt", "old")
    proc = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
    if proc.returncode != 0:
        pytest.skip(
            f"cannot make a folder immutable here (chattr +i needs root, ext4/xfs/btrfs): {proc.stderr.strip()}"
        )
    try:
        with pytest.raises(DataError) as info:
            files.write_text(folder / "notes.txt", "new")
        assert str(info.value) == f"cannot write {folder / 'notes.txt'}: {DISK_FAULTS[errno.EPERM]}"
        assert (folder / "notes.txt").read_text() == "old"
        assert temporaries(folder) == []
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True, timeout=HANG_TIMEOUT_S)


# --- (d) end to end ----------------------------------------------------------------------------------


# Runs the rest of its command line under a file-size limit of argv[1] bytes, with SIGXFSZ ignored (an
# ignored signal stays ignored across exec; otherwise the kernel kills the process at the limit).
FILE_SIZE_LIMIT = (
    "import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); os.execv(sys.argv[2], sys.argv[2:])"
)


def _evaluate(root: Path, *overrides: str, file_size_limit: int | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "evaluate.py", "model=tiny", "dataset=synthetic", "evaluation.strategies=[S5]"]
    if file_size_limit is not None:
        command = [sys.executable, "-c", FILE_SIZE_LIMIT, str(file_size_limit), *command]
    return subprocess.run(
        [*command, *overrides], cwd=REPO, env={**ENV, "SAM4MED_ROOT": str(root)}, capture_output=True, text=True,
        timeout=HANG_TIMEOUT_S,
    )  # fmt: skip


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    # progress bars share stderr: a bar left open may precede the error on its line and redraw after it
    errors = [line[line.index("error: ") :] for line in proc.stderr.splitlines() if "error: " in line]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return errors[0]


def test_evaluate_over_the_file_size_limit_exits_2_with_one_line_naming_the_file(tmp_path):
    # every file of the run fits under 512 KiB but the report page (about 1.3 MB)
    proc = _evaluate(tmp_path, f"hydra.run.dir={tmp_path / 'run'}", file_size_limit=512 * 1024)
    last = _one_error_line(proc)
    assert last.startswith(f"error: cannot write {tmp_path}/") and last.endswith(DISK_FAULTS[errno.EFBIG]), last
    assert temporaries(tmp_path) == []


def test_evaluate_with_a_read_only_embedding_cache_exits_2_with_one_line_naming_the_entry(tmp_path, tmpfs):
    cache = tmpfs("1m")
    read_only(cache)
    proc = _evaluate(tmp_path, f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={cache}")
    last = _one_error_line(proc)
    assert last.startswith(f"error: cannot write {cache}/") and last.endswith(DISK_FAULTS[errno.EROFS]), last
    assert temporaries(tmp_path) == []
