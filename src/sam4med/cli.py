"""What every command shares: one-line user errors, required-setting checks, quiet libraries.

``prepare.py``, ``train.py``, ``evaluate.py`` (Hydra) and ``python -m sam4med.export`` /
``python -m sam4med.prepare.summary`` (argparse) all wrap their ``main`` in :func:`user_errors_in_one_line`.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sam4med.errors import ConfigError, DataError, Sam4MedError

# What a missing setting means, for the one-line error.
REQUIRED_HINTS = {
    "model.checkpoint": (
        "the checkpoint file of this backbone (e.g. model.checkpoint=/path/to/sam_vit_b_01ec64.pth; "
        "MedSAM: medsam_vit_b.pth; micro-sam: vit_b_lm.pt)"
    ),
}

EXIT_USER_ERROR = 2


def check_required(cfg: DictConfig) -> None:
    """Fail with one line naming the first setting left as ``???``."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        key = missing[0]
        raise ConfigError(f"missing setting {key}: {REQUIRED_HINTS.get(key, 'it has no default')}")


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


def _disk_full(exc: BaseException) -> DataError | None:
    """A write that failed for lack of space, in one line (every write is atomic: nothing torn is left)."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        where = exc.filename or "a file"
        return DataError(f"{where}: no space left on device; free some space and run the same command again")
    return None


def user_error(exc: BaseException) -> Sam4MedError | None:
    """The :class:`Sam4MedError` behind ``exc`` (Hydra's ``instantiate`` wraps errors), or None."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, Sam4MedError):
        unknown = _unknown_setting(cause) or _disk_full(cause)
        if unknown is not None:
            return unknown
        cause = cause.__cause__ or cause.__context__
    return cause


def user_errors_in_one_line(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a ``main`` so that a user error prints ``error: ...`` on stderr and exits with status 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except Exception as exc:
            cause = user_error(exc)
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr)
            sys.exit(EXIT_USER_ERROR)

    return wrapper
