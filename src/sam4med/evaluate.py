"""``evaluate(cfg)``: score a model (zero-shot, or with a fine-tuned decoder) without training."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sam4med.errors import ConfigError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.report import print_strategy_table
from sam4med.evaluation.results import to_frame, write_results
from sam4med.evaluation.runner import evaluate as run_evaluation
from sam4med.evaluation.runner import s1_empty_images
from sam4med.models.finetuned import load_finetuned_decoder
from sam4med.prompts.store import PromptStore
from sam4med.run import check_required

log = logging.getLogger("sam4med")


def evaluate(cfg: DictConfig) -> Path:
    """Run the configured strategies on one split; returns the results folder."""
    check_required(cfg)
    started = time.perf_counter()
    results_dir = Path(cfg.paths.output_dir) / "results"
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir.parent / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))

    model = instantiate(cfg.model)
    phase = "zero_shot"
    if cfg.get("finetuned"):
        config = load_finetuned_decoder(model, cfg.finetuned).get("config", {})
        trained = config.get("multimask") if isinstance(config, dict) else None
        if trained is not None and trained != cfg.multimask:
            raise ConfigError(
                f"{cfg.finetuned} was trained for multimask={trained}; score it with the same setting "
                f"(multimask={trained}), not multimask={cfg.multimask}"
            )
        phase = "finetuned"
    everything = instantiate(cfg.everything) if cfg.get("everything") else EverythingSettings()
    cache = instantiate(cfg.embeddings)
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    datamodule.save_split(results_dir.parent / "split.csv")
    prompts = PromptStore(results_dir / "prompts.json", seed=cfg.seed)
    if cfg.get("prompts"):  # score on the prompts of an earlier run
        prompts = PromptStore(cfg.prompts, seed=cfg.seed)
        prompts.path = results_dir / "prompts.json"
        prompts.mark_dirty()
    rows = run_evaluation(
        model,
        datamodule.dataset(cfg.split),
        strategies=list(cfg.strategies),
        phase=phase,
        cache=cache,
        prompts=prompts,
        multimask=cfg.multimask,
        log_path=results_dir / "evaluation_log.jsonl",
        everything=everything,
    )
    frame = to_frame(rows)
    empty, s1_images = s1_empty_images(rows)
    meta = {
        "title": f"{phase} evaluation",
        "backbone": model.name,
        "weights": model.weights_source,
        "finetuned": cfg.get("finetuned") or "",
        "split": cfg.split,
        "strategies": ",".join(cfg.strategies),
        "multimask": cfg.multimask,
        "prompt_seed": prompts.seed,
        "everything": ", ".join(f"{k}={v}" for k, v in asdict(everything).items()),
        "s1_empty_images": f"{empty} of {s1_images}" if "S1" in cfg.strategies else "",
        "embedding_cache": f"{cache.directory or 'memory'} ({str(cache.dtype).removeprefix('torch.')})",
        "hd_unit": ", ".join(sorted(set(frame["hd_unit"]))) if len(frame) else "",
    }
    write_results(frame, results_dir, meta=meta)
    if len(frame):
        print_strategy_table(frame, title=f"{model.name} on the {cfg.split} split")
    log.info(cache.stats())
    log.info("results in %s (%.1f s)", results_dir, time.perf_counter() - started)
    return results_dir
