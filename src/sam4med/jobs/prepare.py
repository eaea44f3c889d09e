"""``prepare_dataset(cfg)``: build one dataset folder (as train.py and evaluate.py do on first use)."""

from __future__ import annotations

import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig

from sam4med.command import check_required
from sam4med.errors import ConfigError
from sam4med.prepare.summary import plot_summary, summarize_folder


def prepare_dataset(cfg: DictConfig) -> Path:
    """Prepare ``cfg.dataset.root`` with ``cfg.dataset.preparer``, print its summary; returns the folder."""
    check_required(cfg)
    if cfg.dataset.get("preparer") is None:
        raise ConfigError("this dataset has no preparer: its folder is used as it is (see docs/data.md)")
    root = Path(cfg.dataset.root)
    preparer = instantiate(cfg.dataset.preparer)
    start = time.perf_counter()
    preparer(root)
    print(f"{root}: ready in {time.perf_counter() - start:.1f} s")
    if cfg.summary or cfg.plot:
        summary = summarize_folder(root)
        if cfg.summary:
            print(summary.as_text())
        if cfg.plot:
            plot_summary(summary, Path(cfg.plot))
    return root
