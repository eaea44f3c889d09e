"""One preparation per dataset folder at a time, across processes.

Jobs of one sweep (``-m seed=0,1`` through a launcher) start together and all find the dataset folder
missing; each would prepare into it and rename over the others' files. :func:`preparation_lock` holds
an exclusive ``flock`` on ``.<folder>.prepare.lock`` beside the folder while one job prepares; the others
wait, then find the folder complete and read it. The kernel drops the lock when its holder exits, so a
killed preparation never leaves a lock held (the interrupted folder is resumed by the next holder).

The lock file is removed when the block ends without an error (the folder is complete then: a waiter
that gets the removed file's lock finds it complete, and a later process does not lock at all); after
an error it stays, so that two later processes still lock the same file.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger("sam4med")


def lock_path(root: Path) -> Path:
    """The lock file of dataset folder ``root``: a hidden file beside it (not inside: a complete folder
    holds only the dataset).
    """
    return root.parent / f".{root.name}.prepare.lock"


@contextlib.contextmanager
def preparation_lock(root: str | Path) -> Iterator[None]:
    """Hold the preparation lock of ``root`` for the block, waiting (with a log line) while another
    process holds it; the block must leave ``root`` complete unless it raises.
    """
    path = lock_path(Path(root))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("%s: another process is preparing this dataset; waiting for it", root)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
        path.unlink(missing_ok=True)  # still held: no one prepares a complete folder
    finally:
        os.close(fd)  # closing releases the lock
