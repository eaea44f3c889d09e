"""``evaluate_model(cfg)``: score a model (zero-shot, or with a fine-tuned decoder) without training."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sam4med.analysis.suite import AnalysisInput, run_analyses
from sam4med.command import check_required
from sam4med.errors import ConfigError
from sam4med.evaluation.rescoring import check_allow, check_rescoring, data_settings
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.models.finetuned import read_finetuned
from sam4med.results.finish import OverlaySource, finish
from sam4med.results.frame import to_frame
from sam4med.results.volumes import volume_outputs
from sam4med.run_files import RunFolder
from sam4med.run_lock import RunLock

log = logging.getLogger("sam4med")


def evaluate_model(cfg: DictConfig) -> Path:
    """Run the configured strategies on one split; returns the results folder.

    Everything that can be checked without the model is checked first (settings, the prompts and
    checkpoint files named, the dataset and its split, and for a fine-tuned checkpoint that the split holds
    none of its training or validation images and is read under its training's data settings, unless
    ``allow_mismatch`` names the difference: :mod:`sam4med.evaluation.rescoring`), so a mistake never waits
    for a model to load.
    The run holds its folder's lock (:class:`~sam4med.run_lock.RunLock`) from the start to the end: a
    second run into the same folder is refused before any work.
    """
    check_required(cfg)
    with RunLock(RunFolder(cfg.paths.output_dir)):
        return _evaluate(cfg)


def _evaluate(cfg: DictConfig) -> Path:
    started = time.perf_counter()
    settings: EvaluationSettings = instantiate(cfg.evaluation)
    statistics = instantiate(cfg.get("statistics"))  # a bad statistics.unit fails here, before any work
    # the suites of analysis=robustness | grid | timing | factors (or a list): their settings fail here too
    suites = [instantiate(node) for node in (cfg.get("analysis") or {}).values()]
    for suite in suites:
        suite.check(settings)
    finetuned = read_finetuned(cfg.finetuned) if cfg.get("finetuned") else None
    if finetuned is not None and finetuned.multimask not in (None, settings.multimask):
        raise ConfigError(
            f"{cfg.finetuned} was trained for multimask={finetuned.multimask}; score it with the same setting "
            f"(evaluation.multimask={finetuned.multimask}), not evaluation.multimask={settings.multimask}"
        )
    allow = check_allow(cfg.get("allow_mismatch"))
    if allow and finetuned is None:
        raise ConfigError(
            f"allow_mismatch={list(allow)} applies to finetuned=CKPT only (a zero-shot run has no training data to "
            "differ from); leave it out"
        )
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    dataset = datamodule.dataset(settings.split)  # an empty split fails here, before any model is loaded
    allowed: list[str] = []
    if finetuned is not None:  # never its own training images, never other data settings unless allowed
        now = data_settings(datamodule, dataset, settings)
        training = finetuned.training_data
        allowed = check_rescoring(cfg.finetuned, training, dataset, now, split=settings.split, allow=allow)
        for sentence in allowed:
            log.warning("allowed mismatch with the checkpoint's training (allow_mismatch): %s", sentence)
    run = RunFolder(cfg.paths.output_dir)
    run.results.path.mkdir(parents=True, exist_ok=True)
    run_config = OmegaConf.to_container(cfg, resolve=True)
    run.config.write_text(OmegaConf.to_yaml(run_config))
    datamodule.save_split(run.split)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    for logger in loggers:
        logger.log_hyperparams(run_config)

    model = instantiate(cfg.model)
    phase = Phase.ZERO_SHOT
    if finetuned is not None:
        finetuned.load_into(model)
        phase = Phase.FINETUNED
    settings.compute.place(model)  # the model, hence the embeddings and prompts, on compute.device
    log.info("evaluating on %s", model.device)
    # scores on exactly the prompts of an earlier run (evaluation.prompts.file=PATH) or resumes its own
    session = EvaluationSession(run.results, settings, cache=instantiate(cfg.embeddings))
    rows = session.score(model, dataset, phase=phase)
    frame = to_frame(rows)
    extra = run_analyses(suites, AnalysisInput(model, dataset, session, {phase: None}, frame, statistics))
    volumes = volume_outputs(run.results, dataset, settings, [phase], statistics)  # saved masks, volume_metrics
    finish(
        run.results,
        frame,
        session.describe(
            model, rows, title=f"{phase} evaluation", finetuned=cfg.get("finetuned") or "", allowed_mismatches=allowed
        ),
        title=f"{model.name} on the {settings.split} split",
        loggers=loggers,
        overlays=OverlaySource(model, dataset, session, {phase: None}),
        statistics=statistics,
        tables={**extra.tables, **volumes},
        figures=extra.figures,
    )
    for note in extra.notes:
        log.info(note)
    for logger in loggers:
        logger.finalize("success")
    log.info(session.cache.stats())
    log.info("results in %s (%.1f s)", run.results.path, time.perf_counter() - started)
    return run.results.path
