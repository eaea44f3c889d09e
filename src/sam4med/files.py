"""Atomic file writes, used by every layer: a half-written file never has its final name.

Each writer writes ``<name>.tmp`` next to the target and renames it over the target, so a reader (or a
run resumed after a kill) sees either the old file or the new one, never a torn one.

A write that fails (a full disk, the file-size limit, a read-only file system, a folder without write
permission, or anything else) removes its temporary file, so the target keeps its previous content and
nothing else is left behind. The faults a user can fix end in a :class:`~sam4med.errors.DataError` that
names the target and what to do (:func:`write_problem`); any other error is raised as it was.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from sam4med.errors import DataError

if TYPE_CHECKING:  # torch and PIL load in the writers that need them
    import numpy as np

_ELSEWHERE = "write somewhere else (SAM4MED_ROOT, hydra.run.dir, paths.cache_dir)"

# What a user can do about each write fault, by errno (command.py's one-line errors use this table too).
WRITE_FAULTS = {
    errno.ENOSPC: "no space left on device; free some space and run the same command again",
    errno.EDQUOT: "disk quota exceeded; free some space (or raise the quota) and run the same command again",
    errno.EFBIG: (
        "file too large for the file-size limit (ulimit -f) or the file system; raise the limit or "
        f"{_ELSEWHERE}, and run the same command again"
    ),
    errno.EROFS: f"read-only file system; remount it writable or {_ELSEWHERE}, and run the same command again",
    errno.EACCES: (
        f"permission denied; give this user permission on it and its folder or {_ELSEWHERE}, "
        "and run the same command again"
    ),
    errno.EPERM: (
        "operation not permitted (an immutable or protected file or folder?); make it writable or "
        f"{_ELSEWHERE}, and run the same command again"
    ),
}


def _os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` in ``exc``'s chain: torch's writer reports a failed ``write()`` as a RuntimeError."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, OSError) and cause.errno is not None:
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def write_problem(path: Path, exc: BaseException) -> DataError | None:
    """The one-line error for a write of ``path`` that failed with ``exc``, or None if a user cannot fix it."""
    error = _os_error(exc)
    if error is None or error.errno not in WRITE_FAULTS:
        return None
    return DataError(f"cannot write {path}: {WRITE_FAULTS[error.errno]}")


def _temporary(path: Path, unique: bool = False) -> Path:
    """The temporary name next to ``path``; ``unique`` adds the process id (for concurrent writers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f"{path.name}.{os.getpid()}.tmp" if unique else f"{path.name}.tmp")


@contextlib.contextmanager
def _atomic(path: Path, unique: bool = False) -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s new content into; it replaces ``path`` when the block ends.

    On any failure the temporary file is removed and ``path`` is left as it was; a fault a user can fix
    (:data:`WRITE_FAULTS`) is raised as a :class:`DataError` naming ``path``.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        tmp = _temporary(path, unique)
        with open(tmp, "wb") as handle:  # closing flushes: a full disk may first show here
            yield handle
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        problem = write_problem(path, exc) if isinstance(exc, Exception) else None
        if problem is None:
            raise
        raise problem from exc


def _write_with(path: Path, write: Callable[[IO[bytes]], object], unique: bool = False) -> None:
    with _atomic(path, unique) as handle:
        write(handle)


def write_text(path: Path, text: str, *, unique_tmp: bool = False) -> None:
    """Write a text file (UTF-8) atomically; ``unique_tmp`` names the temporary file by process (concurrent writers)."""
    _write_with(path, lambda handle: handle.write(text.encode("utf-8")), unique_tmp)


def write_bytes(path: Path, data: bytes, *, unique_tmp: bool = False) -> None:
    """Write a binary file (e.g. a NIfTI image's bytes) atomically; ``unique_tmp`` as in :func:`write_text`."""
    _write_with(path, lambda handle: handle.write(data), unique_tmp)


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write a CSV file (header ``columns``, Unix line ends) atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def save_tensors(path: Path, obj: Any, *, unique_tmp: bool = False) -> None:
    """``torch.save`` atomically; ``unique_tmp`` names the temporary file by process (concurrent writers)."""
    import torch

    # torch.save writes through the file object, so a failed write keeps its errno (with a file name
    # torch's own writer would raise a RuntimeError without it)
    _write_with(path, lambda handle: torch.save(obj, handle), unique_tmp)


def save_png(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array (H x W or H x W x 3) as a PNG atomically."""
    from PIL import Image

    image = Image.fromarray(array)
    _write_with(path, lambda handle: image.save(handle, format="PNG"))


def save_figure(path: Path, figure: Any, **savefig: Any) -> None:
    """``figure.savefig`` (a matplotlib figure) atomically, in the format of ``path``'s suffix (``.png``, ``.svg``)."""
    path = Path(path)
    _write_with(path, lambda handle: figure.savefig(handle, format=path.suffix.lstrip(".") or None, **savefig))
