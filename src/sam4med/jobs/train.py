"""``fine_tune(cfg)``: zero-shot evaluation, decoder fine-tuning, fine-tuned evaluation (via the callback)."""

from __future__ import annotations

import logging
import subprocess
import warnings
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytorch_lightning as pl
import torch.distributed as dist
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities.warnings import PossibleUserWarning

from sam4med.callbacks.before_after import BeforeAfterEvaluation
from sam4med.command import check_required
from sam4med.errors import ConfigError
from sam4med.evaluation.rescoring import training_data
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.models.checkpoints import load_file
from sam4med.run_files import RunFolder
from sam4med.run_lock import RunLock, launched_rank

log = logging.getLogger("sam4med")


def git_commit() -> str:
    """The source tree's commit (with ``+dirty`` for uncommitted changes), or ``unknown``."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=here, capture_output=True, text=True)
        return commit.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


@dataclass(frozen=True)
class FineTuned:
    """What a training run gives back: its results folder and the trainer's final metrics."""

    results_dir: Path
    metrics: dict[str, float]


def resolve_resume(ckpt_path: str | None, run: RunFolder) -> str | None:
    """``last`` means this run folder's ``checkpoints/last.ckpt`` if it exists (else a fresh start)."""
    if ckpt_path != "last":
        return ckpt_path
    last = run.last_checkpoint
    if last.is_file():
        log.info("resuming from %s", last)
        return str(last)
    log.info("no %s yet: starting from the beginning", last)
    return None


def check_fresh_run_folder(run: RunFolder, ckpt_path: str | None) -> None:
    """A new run (no ``ckpt_path``) must not start in a folder that holds another run's checkpoints or results:
    they would be reported as its own (and Lightning would write ``last-v1.ckpt`` beside ``last.ckpt``).
    """
    if ckpt_path:
        return
    used = [p for p in (run.checkpoints, run.results.path) if p.is_dir() and any(p.iterdir())]
    if used:
        raise ConfigError(
            f"{run.path}: already holds a run ({', '.join(p.name + '/' for p in used)}); use a new run folder, "
            "or ckpt_path=last to resume that run"
        )


def build_callbacks(cfg: DictConfig, settings: EvaluationSettings, run: RunFolder) -> list[pl.Callback]:
    """The trainer's callbacks; a partial one (``_partial_: true``) is completed with the run's evaluation
    settings, folder and statistics settings, and the suites of its ``analysis`` group (the before/after
    evaluation).
    """
    callbacks = []
    for node in (cfg.get("callbacks") or {}).values():
        if node is None:
            continue
        callback = instantiate(node)
        if isinstance(callback, partial):
            callback = callback(
                settings=settings,
                run_dir=run.path,
                statistics=instantiate(cfg.get("statistics")),
                configured_analyses={name: instantiate(node) for name, node in (cfg.get("analysis") or {}).items()},
            )
        callbacks.append(callback)
    return callbacks


def fine_tune(cfg: DictConfig) -> FineTuned:
    """Fit the mask decoder as configured; returns the results folder and the trainer's final metrics.

    The process that starts the run holds its folder's lock (:class:`~sam4med.run_lock.RunLock`) to the
    end, so a second run into the same folder is refused at once; the DDP ranks Lightning launches beside
    it (``LOCAL_RANK``/``RANK`` set and non-zero) share its folder and take no lock.
    """
    check_required(cfg)
    run = RunFolder(cfg.paths.output_dir)
    with RunLock(run, enabled=launched_rank() == 0):
        return _fine_tune(cfg, run)


def _fine_tune(cfg: DictConfig, run: RunFolder) -> FineTuned:
    check_fresh_run_folder(run, cfg.get("ckpt_path"))
    resume = resolve_resume(cfg.get("ckpt_path"), run)
    if resume:  # a damaged or hostile file fails here in one line, before any work (the safe loader runs nothing)
        load_file(resume, "a checkpoint to resume from")
    pl.seed_everything(cfg.seed, workers=True)
    run.path.mkdir(parents=True, exist_ok=True)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run_config["git_commit"] = git_commit()
    run.config.write_text(OmegaConf.to_yaml(run_config))

    # fail fast: settings and splits are checked before any model is loaded or any image encoded
    settings: EvaluationSettings = instantiate(cfg.evaluation)  # the run's one Compute is in here
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    callbacks = build_callbacks(cfg, settings, run)
    scored = [c.settings.split for c in callbacks if isinstance(c, BeforeAfterEvaluation)]
    datamodule.check_splits(["train", "val", *scored])  # a ConfigError names an empty split; warns on a tiny val

    model = settings.compute.configure(instantiate(cfg.model))  # the trainer places it
    cache = instantiate(cfg.embeddings)
    datamodule.attach(model, cache, prompts=cfg.module.get("prompts", "box"))  # the training samples draw the kinds
    datamodule.save_split(run.split)
    # what every checkpoint records of the data it was fitted on (image content hashes, data settings): read once
    fitted_on = training_data(datamodule, settings)
    # partial first: the run config must reach the module as plain data, not be instantiated by Hydra
    module = instantiate(cfg.module, _partial_=True)(
        model=model, multimask=settings.multimask, run_config=run_config, training_data=fitted_on
    )
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    for logger in loggers:
        logger.log_hyperparams(run_config)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    try:
        with warnings.catch_warnings():
            # the frozen encoders are in eval mode on purpose (SamModel.freeze_encoders): nothing to act on
            warnings.filterwarnings("ignore", r"Found \d+ module\(s\) in eval mode", PossibleUserWarning)
            # Lightning 2.6 calls a torch pytree API that torch deprecates; fixed in Lightning, not here
            warnings.filterwarnings("ignore", r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            # weights_only: a checkpoint handed over by someone else can never run code when it is opened
            trainer.fit(module, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    log.info(cache.stats())
    return FineTuned(run.results.path, {k: float(v) for k, v in trainer.callback_metrics.items()})
