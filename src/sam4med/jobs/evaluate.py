"""``evaluate_model(cfg)``: score a model (zero-shot, or with a fine-tuned decoder) without training."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sam4med.cli import check_required
from sam4med.errors import ConfigError
from sam4med.evaluation.figures import write_figures
from sam4med.evaluation.overlays import close_overlays, write_overlays
from sam4med.evaluation.report import print_strategy_table
from sam4med.evaluation.report_html import write_report
from sam4med.evaluation.session import EvaluationSession, EvaluationSettings
from sam4med.models.finetuned import read_finetuned
from sam4med.prompts.generate import check_sampling
from sam4med.prompts.store import PromptStore

log = logging.getLogger("sam4med")


def evaluate_model(cfg: DictConfig) -> Path:
    """Run the configured strategies on one split; returns the results folder.

    Everything that can be checked without the model is checked first (settings, the prompts and
    checkpoint files named, the dataset and its split), so a mistake never waits for a model to load.
    """
    check_required(cfg)
    started = time.perf_counter()
    compute = instantiate(cfg.compute)
    settings = EvaluationSettings.build(
        strategies=cfg.strategies,
        multimask=cfg.multimask,
        everything=instantiate(cfg.everything),
        split=cfg.split,
        compute=compute,
    )
    sampling = check_sampling(cfg.prompts.sampling)
    if cfg.prompts.file and not Path(cfg.prompts.file).is_file():
        raise ConfigError(f"prompts.file={cfg.prompts.file}: file does not exist")
    finetuned = read_finetuned(cfg.finetuned) if cfg.get("finetuned") else None
    if finetuned is not None and finetuned.multimask not in (None, settings.multimask):
        raise ConfigError(
            f"{cfg.finetuned} was trained for multimask={finetuned.multimask}; score it with the same setting "
            f"(multimask={finetuned.multimask}), not multimask={settings.multimask}"
        )
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    dataset = datamodule.dataset(cfg.split)  # an empty split fails here, before any model is loaded
    results_dir = Path(cfg.paths.output_dir) / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir.parent / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    datamodule.save_split(results_dir.parent / "split.csv")

    model = instantiate(cfg.model)
    phase = "zero_shot"
    if finetuned is not None:
        finetuned.load_into(model)
        phase = "finetuned"
    compute.place(model)  # the model, hence the embeddings and prompts, on compute.device
    log.info("evaluating on %s", model.device)
    prompts_file = results_dir / "prompts.json"
    # score on exactly the prompts of an earlier run (prompts.file=PATH) or resume this run's own
    if cfg.prompts.file:
        prompts = PromptStore(
            seed=cfg.seed, sampling=sampling, read_from=cfg.prompts.file, write_to=prompts_file, only_stored=True
        )
    else:
        prompts = PromptStore(seed=cfg.seed, sampling=sampling, read_from=prompts_file, write_to=prompts_file)
    session = EvaluationSession(
        results_dir,
        settings,
        prompts=prompts,
        cache=instantiate(cfg.embeddings),
        zero_shot_dir=None if cfg.prompts.file else cfg.get("zero_shot_dir"),
    )
    rows = session.score(model, dataset, phase=phase)
    meta = session.describe(model, rows, title=f"{phase} evaluation", finetuned=cfg.get("finetuned") or "")
    frame = session.write(rows, meta)
    if len(frame):
        write_figures(frame, results_dir / "figures")
        overlays = write_overlays(
            frame,
            results_dir / "overlays",
            model=model,
            dataset=dataset,
            decoders={phase: None},
            cache=session.cache,
            prompts=prompts,
            multimask=settings.multimask,
            max_targets=cfg.get("overlays", 16),
        )
        close_overlays(overlays)
        write_report(results_dir)
        print_strategy_table(frame, title=f"{model.name} on the {cfg.split} split")
    log.info(session.cache.stats())
    log.info("results in %s (%.1f s)", results_dir, time.perf_counter() - started)
    return results_dir
