"""One writer per run folder: a lock file that a run holds while it writes into its folder.

Two runs started into the same folder (the same ``hydra.run.dir``) would append to one evaluation log
and overwrite each other's files. :class:`RunLock` creates ``RunFolder.lock`` atomically (``O_CREAT |
O_EXCL``), holding the holder's pid, host and start time; a second run into the folder is refused at
once with a one-line :class:`ConfigError`. A lock whose holder is gone (its pid no longer alive on this
host, or taken by a process started after the lock was written) is stale: it is taken over with a
warning. The lock is removed when the run ends, also when it fails.

Only the process that starts a run takes the lock: Lightning's DDP ranks > 0 (re-launched with
``LOCAL_RANK`` / ``RANK`` / ``NODE_RANK`` set and non-zero) share rank 0's folder and skip it
(:func:`launched_rank`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from sam4med.errors import ConfigError
from sam4med.run_files import RunFolder

log = logging.getLogger("sam4med")

# The environment variables a launcher (Lightning's DDP, torchrun) sets for each process it starts.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK")

# A holder writes its lock right after creating it; one still empty or unreadable after this long was
# left by a process that died in between.
UNREADABLE_GRACE_S = 2.0

# /proc gives a process's start time to the second (boot time) and the wall clock may be adjusted:
# a process counts as started after the lock (a re-used pid) only beyond this margin.
START_MARGIN_S = 5.0

# The locks this process holds (real paths), so that its own lock is told from one left by an earlier
# process that had the same pid.
_HELD: set[str] = set()


def launched_rank() -> int:
    """The largest rank this process was launched with (``RANK``, ``LOCAL_RANK``, ``NODE_RANK``); 0 when none is set.

    Non-zero for the processes a DDP launcher started beside the one that started the run.
    """
    ranks = []
    for name in RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        try:
            ranks.append(int(value) if value else 0)
        except ValueError:
            ranks.append(0)
    return max(ranks, default=0)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: pid, host, start time (seconds since the epoch) and a token of its own."""

    pid: int
    host: str
    started: float
    token: str

    @classmethod
    def me(cls) -> Holder:
        """The holder this process is, now."""
        return cls(os.getpid(), socket.gethostname(), time.time(), uuid.uuid4().hex)

    def to_json(self) -> str:
        """The lock file's content (with the start time also in words, for a reader)."""
        return json.dumps(
            {
                "pid": self.pid,
                "host": self.host,
                "started": self.started,
                "started_at": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)),
                "token": self.token,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Holder:
        """The holder written by :meth:`to_json`; ``ValueError`` where the text is not one."""
        try:
            data = json.loads(text)
            return cls(int(data["pid"]), str(data["host"]), float(data["started"]), str(data["token"]))
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a lock: {exc!r}") from exc

    def describe(self) -> str:
        """``pid P on host H, since T``, for a message."""
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"pid {self.pid} on host {self.host}, since {since}"


def _process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), from ``/proc``; None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, counted after the command name
        boot = next(int(row.split()[1]) for row in Path("/proc/stat").read_text().splitlines() if row[:5] == "btime")
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def holder_alive(holder: Holder) -> bool | None:
    """Whether ``holder`` still runs: None where that cannot be told (another host)."""
    if holder.host != socket.gethostname():
        return None
    if holder.pid <= 0:
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    except OSError:
        return None
    begun = _process_start(holder.pid)
    return not (begun is not None and begun > holder.started + START_MARGIN_S)  # else: a re-used pid


class RunLock:
    """``with RunLock(run):`` holds ``run.lock`` for the block; a second holder is refused (see the module).

    Args:
        run: the run folder (created if missing).
        enabled: False: a no-op (a DDP rank > 0, see :func:`launched_rank`).
    """

    def __init__(self, run: RunFolder | str | Path, *, enabled: bool = True) -> None:
        self.run = run if isinstance(run, RunFolder) else RunFolder(Path(run))
        self.enabled = enabled
        self.holder: Holder | None = None

    @property
    def path(self) -> Path:
        """The lock file (``RunFolder.lock``)."""
        return self.run.lock

    def __enter__(self) -> RunLock:
        if not self.enabled:
            return self
        self.run.path.mkdir(parents=True, exist_ok=True)
        me = Holder.me()
        for _ in range(5):  # a stale lock taken over, then the lock created: a few rounds at most
            if self._create(me):
                self.holder = me
                _HELD.add(self._key)
                return self
            try:
                other = self._read_holder()
            except FileNotFoundError:  # removed meanwhile: try again
                continue
            if other is not None and (other.pid, other.host) == (me.pid, me.host):
                alive = self._key in _HELD  # else a lock of an earlier process that had this pid
            else:
                alive = holder_alive(other) if other is not None else False
            if alive is False:
                self._take_over(other)
                continue
            raise self._refusal(other, alive)
        raise ConfigError(f"{self.run.path}: could not take the run folder's lock {self.path}; run the command again")

    @property
    def _key(self) -> str:
        return os.path.realpath(self.path)

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self.holder is None:
            return
        try:
            if Holder.from_json(self.path.read_text()).token == self.holder.token:
                self.path.unlink()
        except (OSError, ValueError) as exc:  # gone, or taken over: never fail a finished run here
            log.warning("%s: the run folder's lock was not removed (%s)", self.path, exc)
        _HELD.discard(self._key)
        self.holder = None

    def _create(self, me: Holder) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(me.to_json() + "\n")
        except BaseException:  # e.g. no space left: leave no empty lock behind
            self.path.unlink(missing_ok=True)
            raise
        return True

    def _read_holder(self) -> Holder | None:
        """The holder written in the lock; None where it stays unreadable (left by a process that died at
        once); ``FileNotFoundError`` where the lock is gone.
        """
        deadline = time.monotonic() + UNREADABLE_GRACE_S
        while True:
            try:
                return Holder.from_json(self.path.read_text())
            except FileNotFoundError:
                raise
            except (OSError, ValueError):
                if time.monotonic() >= deadline:
                    return None
            time.sleep(0.1)

    def _take_over(self, stale: Holder | None) -> None:
        """Remove a stale lock, unless another process took it over meanwhile (then it is put back)."""
        aside = self.path.with_name(f"{self.path.name}.{os.getpid()}.stale")
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = Holder.from_json(aside.read_text())
        except (OSError, ValueError):
            moved = None
        if moved != stale:  # a live lock, written by a process that took the stale one over first
            try:
                os.link(aside, self.path)
            except OSError:
                pass
            aside.unlink(missing_ok=True)
            return
        aside.unlink(missing_ok=True)
        who = stale.describe() if stale is not None else "a process that died before writing it"
        log.warning(
            "%s: took over the lock of a run that is no longer alive (%s); its files in %s are kept",
            self.path,
            who,
            self.run.path,
        )

    def _refusal(self, holder: Holder | None, alive: bool | None) -> ConfigError:
        who = holder.describe() if holder is not None else "a process that is writing the lock"
        unknown = f"; if no such run is alive any more, delete {self.path}" if alive is None else ""
        return ConfigError(
            f"{self.run.path}: another run is writing into this run folder ({who}); wait for it to end, "
            f"or use another run folder (hydra.run.dir=...){unknown}"
        )
