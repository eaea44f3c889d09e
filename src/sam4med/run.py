"""What the entry points share: config checks, seeding, and turning user errors into one line."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sam4med.errors import ConfigError, Sam4MedError

log = logging.getLogger("sam4med")

# What a missing setting means, for the one-line error.
REQUIRED_HINTS = {
    "model.checkpoint": (
        "the SAM checkpoint file of this backbone (e.g. model.checkpoint=/path/to/sam_vit_b_01ec64.pth)"
    ),
}


def check_required(cfg: DictConfig) -> None:
    """Fail with one line naming the first setting left as ``???``."""
    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        key = missing[0]
        hint = REQUIRED_HINTS.get(key, "it has no default")
        raise ConfigError(f"missing setting {key}: {hint}")


def quiet_libraries() -> None:
    """Silence update checks and library chatter that would bury the framework's own output."""
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    for name in ("timm", "torch.distributed"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")


def user_errors_in_one_line(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a Hydra main so a :class:`Sam4MedError` prints ``error: ...`` and exits with status 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return main(*args, **kwargs)
        except Exception as exc:
            cause: BaseException | None = exc
            while cause is not None and not isinstance(cause, Sam4MedError):
                cause = cause.__cause__ or cause.__context__  # Hydra's instantiate wraps errors
            if cause is None:
                raise
            print(f"error: {cause}", file=sys.stderr)
            sys.exit(2)

    return wrapper
