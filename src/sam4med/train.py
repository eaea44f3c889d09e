"""``train(cfg)``: zero-shot evaluation, decoder fine-tuning, fine-tuned evaluation (via the callback)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sam4med.run import check_required

log = logging.getLogger("sam4med")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the mask decoder as configured; returns the trainer's final metrics."""
    check_required(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    model = instantiate(cfg.model)
    cache = instantiate(cfg.embeddings)
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.attach(model, cache)
    datamodule.save_split(output_dir / "split.csv")
    module = instantiate(cfg.module, model=model)
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    log.info(cache.stats())
    return {k: float(v) for k, v in trainer.callback_metrics.items()}
