"""``python -m sam4med.data.prepare dataset=<name> [overrides]``: prepare one dataset folder.

The arguments are Hydra overrides of ``conf/prepare.yaml`` (e.g. ``dataset=stardist_nuclei
dataset.root=/tmp/nuclei``); ``SAM4MED_CONF`` points to another ``conf`` folder.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig

from sam4med.errors import ConfigError, Sam4MedError
from sam4med.run import check_required

USAGE = "usage: python -m sam4med.data.prepare dataset=<name> [dataset.root=DIR] [other Hydra overrides]"


def config_dir() -> Path:
    """The ``conf`` folder: ``$SAM4MED_CONF``, else the one of this checkout."""
    folder = Path(os.environ.get("SAM4MED_CONF") or Path(__file__).resolve().parents[4] / "conf")
    if not (folder / "prepare.yaml").is_file():
        raise ConfigError(f"{folder / 'prepare.yaml'}: missing; set SAM4MED_CONF to the project's conf folder")
    return folder


def load_config(overrides: Sequence[str]) -> DictConfig:
    """The composed ``prepare`` config."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name="prepare", overrides=list(overrides))


def prepare(cfg: DictConfig) -> Path:
    """Prepare ``cfg.dataset.root`` with ``cfg.dataset.preparer``; returns the folder."""
    check_required(cfg.dataset)
    if cfg.dataset.get("preparer") is None:
        raise ConfigError("this dataset has no preparer: its folder is used as it is (see docs/data.md)")
    root = Path(cfg.dataset.root)
    preparer = instantiate(cfg.dataset.preparer)
    start = time.perf_counter()
    preparer(root)
    print(f"{root}: ready in {time.perf_counter() - start:.1f} s")
    if cfg.summary or cfg.plot:
        from sam4med.data.summary import plot_summary, summarize

        summary = summarize(root)
        if cfg.summary:
            print(summary.as_text())
        if cfg.plot:
            plot_summary(summary, Path(cfg.plot))
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; user errors print one line and return 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        prepare(load_config(args))
    except Sam4MedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except HydraException as exc:
        if isinstance(exc.__cause__ or exc.__context__, Sam4MedError):
            print(f"error: {exc.__cause__ or exc.__context__}", file=sys.stderr)
        else:
            print(f"error: {str(exc).splitlines()[0]} ({USAGE})", file=sys.stderr)
        return 2
    except Exception as exc:  # Hydra wraps errors raised while instantiating
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, Sam4MedError):
            print(f"error: {cause}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
