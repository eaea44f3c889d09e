"""What every command shares: one-line user errors, required-setting checks, quiet libraries, and the
removal of a run folder that a failed start left with nothing in it.

``prepare.py``, ``train.py``, ``evaluate.py`` (Hydra) and ``python -m sam4med.export`` /
``python -m sam4med.prepare.summary`` (argparse) all wrap their ``main`` in :func:`user_errors_in_one_line`.

Only the standard library, OmegaConf and Hydra are imported here: the entry points import this module
before Hydra has parsed the command line, so ``--help`` and ``--cfg job`` answer without loading torch.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import shutil
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sam4med.config_ranges import check_ranges
from sam4med.errors import ConfigError, DataError, Sam4MedError
from sam4med.files import WRITE_FAULTS
from sam4med.run_files import RunFolder

log = logging.getLogger("sam4med")

# What a missing setting means, for the one-line error.
REQUIRED_HINTS = {
    "model.checkpoint": (
        "the checkpoint file of this backbone (e.g. model.checkpoint=/path/to/sam_vit_b_01ec64.pth; "
        "MedSAM: medsam_vit_b.pth; micro-sam: vit_b_lm.pt)"
    ),
}

EXIT_USER_ERROR = 2


def check_required(cfg: DictConfig) -> None:
    """Fail with one line naming the first setting left as ``???``, or the first value outside its range
    (:func:`sam4med.config_ranges.check_ranges`): what every job checks before any work.
    """
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        key = missing[0]
        raise ConfigError(f"missing setting {key}: {REQUIRED_HINTS.get(key, 'it has no default')}")
    check_ranges(cfg)


class _DropLightningTips(logging.Filter):
    """Drops Lightning's advertising tips (``💡 Tip: ...``) and keeps every other record."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


def quiet_libraries() -> None:
    """Silence update checks, advertising and library chatter that would bury the framework's own output.

    Only messages a user cannot act on are dropped, each by its own text; other warnings still show.
    """
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    for name in ("timm", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for name in ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropLightningTips())
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def _unknown_setting(exc: BaseException) -> ConfigError | None:
    """A config node with a setting its constructor does not take (``+dataset.preparer.typo=1``), in one line."""
    try:
        from hydra.errors import InstantiationException
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if not isinstance(exc, InstantiationException) or not isinstance(exc.__cause__, TypeError):
        return None
    cause = str(exc.__cause__)
    if "argument" not in cause:
        return None
    target = re.search(r"target '([^']+)'", str(exc))
    node = re.search(r"full_key: (\S+)", str(exc))
    where = node.group(1) if node else (target.group(1) if target else "a config node")
    return ConfigError(f"{where}: {cause} (a misspelled or unknown setting?)")


# What a user can do about a disk fault, by errno: the one table of sam4med.files (stdlib imports only).
DISK_FAULTS = WRITE_FAULTS


def _disk_full(exc: BaseException) -> DataError | None:
    """A file operation that failed for lack of space or permission, in one line naming the path.

    For errors raised outside :mod:`sam4med.files` (which names its own): a ``mkdir``, Hydra or Lightning
    writing into a full or read-only run folder. No space (ENOSPC, EDQUOT), the file-size limit (EFBIG),
    a read-only file system (EROFS), no permission (EACCES; EPERM only with a path: without one it is
    no file's fault).
    """
    if not isinstance(exc, OSError) or exc.errno not in DISK_FAULTS:
        return None
    if exc.errno == errno.EPERM and exc.filename is None:
        return None
    where = exc.filename if exc.filename is not None else "a file"
    if exc.filename2 is not None:  # a rename or link: the target is the file the user knows
        where = exc.filename2
    return DataError(f"{where}: {DISK_FAULTS[exc.errno]}")


def user_error(exc: BaseException) -> Sam4MedError | None:
    """The :class:`Sam4MedError` behind ``exc`` (Hydra's ``instantiate`` wraps errors), or None."""
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and not isinstance(cause, Sam4MedError) and id(cause) not in seen:
        seen.add(id(cause))
        unknown = _unknown_setting(cause) or _disk_full(cause)
        if unknown is not None:
            return unknown
        cause = cause.__cause__ or cause.__context__
    return cause if isinstance(cause, Sam4MedError) else None


def started_only(folder: str | Path, job_name: str, hydra_subdir: str = ".hydra") -> bool:
    """Whether a run folder holds nothing but what a run writes while it starts, so it can go.

    What a start writes: Hydra's ``.hydra/`` (``hydra_subdir``) and ``<job_name>.log``, the run's
    ``config.yaml`` and ``split.csv``, and empty folders (``results/``). Anything else (scored rows,
    ``prompts.json``, ``checkpoints/``, a logger's files, a link, a file nobody knows) keeps the folder.
    A folder without ``hydra_subdir`` was not made by Hydra for this run (``prepare.py`` runs in the
    current folder) and is kept too; so is one that cannot be read to the end.
    """
    run = RunFolder(Path(folder))
    hydra_dir = run.path / hydra_subdir
    if not hydra_dir.is_dir() or hydra_dir.is_symlink():
        return False
    start_files = {run.path / f"{job_name}.log", run.config, run.split}

    def unreadable(error: OSError) -> None:
        raise error

    try:
        for root, dirs, files in os.walk(run.path, onerror=unreadable):
            here = Path(root)
            if here == hydra_dir:
                dirs.clear()
                continue
            for name in dirs:
                if (here / name).is_symlink():
                    return False
            for name in files:
                path = here / name
                if path not in start_files or path.is_symlink() or not path.is_file():
                    return False
    except OSError:
        return False
    return True


def remove_unused_run_folder() -> Path | None:
    """After a failed run: remove Hydra's run folder if :func:`started_only` says it holds nothing else.

    Returns the removed folder, or None. Nothing happens outside a Hydra job or where this process did
    not write ``.hydra/`` itself (``hydra.output_subdir=null``: ``prepare.py``, Lightning's DDP ranks > 0,
    which share rank 0's folder).
    """
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    hydra = HydraConfig.get()
    if hydra.output_subdir is None or not hydra.runtime.output_dir:
        return None
    folder = Path(hydra.runtime.output_dir)
    if not started_only(folder, hydra.job.name, hydra.output_subdir):
        return None
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        log.warning("could not remove the unused run folder %s: %s", folder, exc)
        return None
    log.info("removed the run folder %s: the run stopped before writing anything of its own", folder)
    return folder


def _failed(exc: BaseException) -> bool:
    """Whether ``exc`` ends a run as a failure (``sys.exit(0)`` does not)."""
    return not (isinstance(exc, SystemExit) and exc.code in (0, None))


def _called_by_hydra(args: Sequence[Any]) -> bool:
    """Hydra calls a task function with its config; the argparse commands never do."""
    return bool(args) and isinstance(args[0], DictConfig)


def user_errors_in_one_line(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``main`` so that a user error prints ``error: ...`` on stderr and exits with status 2.

    A Hydra job (called with its config) that fails in any way, a user error or a crash, first has its
    run folder removed if that holds nothing but what starting wrote (:func:`remove_unused_run_folder`),
    so a mistyped command leaves no empty run behind while a long run never loses what it wrote.
    """

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except BaseException as exc:
            if _failed(exc) and _called_by_hydra(args):
                try:
                    remove_unused_run_folder()
                except Exception as cleanup:  # never hide the failure behind one of the clean-up
                    log.warning("the run folder was left as it is: %s", cleanup)
            cause = user_error(exc) if isinstance(exc, Exception) else None
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


# --- help --------------------------------------------------------------------------------------------

GROUPS_RESOLVER = "sam4med.config_groups"


def config_groups(*groups: str, _root_: DictConfig | None = None) -> str:
    """``group: option, option ... (chosen: option)``, one line per group, for an entry point's ``--help``.

    Used as ``${sam4med.config_groups:model,dataset,...}`` in ``conf/hydra/help/*.yaml``: the group names
    are written there (those the entry point's defaults list selects, checked by tests/test_entry_points.py),
    the options are found on Hydra's config search path, as Hydra's own ``$APP_CONFIG_GROUPS`` finds them.
    """
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    hydra = GlobalHydra.instance().hydra if GlobalHydra.instance().is_initialized() else None
    choices = OmegaConf.select(_root_, "hydra.runtime.choices", default=None) if _root_ is not None else None
    width = max((len(group) for group in groups), default=0)
    lines = []
    for group in groups:
        options = sorted(hydra.config_loader.get_group_options(group, ObjectType.CONFIG)) if hydra else []
        chosen = choices.get(group) if choices is not None else None
        line = f"{group + ':':<{width + 1}} {', '.join(options) or '(see --cfg job)'}"
        lines.append(line + (f"  (chosen: {chosen or 'none'})" if choices is not None else ""))
    return "\n".join(lines)


if not OmegaConf.has_resolver(GROUPS_RESOLVER):
    OmegaConf.register_new_resolver(GROUPS_RESOLVER, config_groups)
