"""``predict_masks(cfg)``: masks for images or volumes from prompts, without labels (``predict.py``)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sam4med.command import check_required
from sam4med.errors import ConfigError, DataError
from sam4med.files import write_text
from sam4med.inference.inputs import Reading, find_inputs
from sam4med.inference.outputs import PredictionFolder
from sam4med.inference.requests import from_file, from_labels
from sam4med.inference.run import predict_requests
from sam4med.inference.settings import PredictSettings
from sam4med.models.finetuned import read_finetuned
from sam4med.prompts.prompt_file import read_prompt_file
from sam4med.run_files import RunFolder
from sam4med.run_lock import RunLock

log = logging.getLogger("sam4med")


def predict_masks(cfg: DictConfig) -> Path:
    """Decode the prompts of every input and write its mask; returns the run folder.

    Everything that can be checked without the model is checked first (settings, inputs, every prompt
    against its image, the labels, the checkpoint), so a mistake never waits for a model to load. The run
    holds its folder's lock (:class:`~sam4med.run_lock.RunLock`) as ``evaluate.py`` does.
    """
    check_required(cfg)
    with RunLock(RunFolder(cfg.paths.output_dir)):
        return _predict(cfg)


def _predict(cfg: DictConfig) -> Path:
    started = time.perf_counter()
    reading: Reading = instantiate(cfg.reading)
    settings: PredictSettings = instantiate(cfg.prediction)
    prompts, labels = cfg.get("prompts"), cfg.get("labels")
    if bool(prompts) == bool(labels):
        raise ConfigError(
            "give one source of prompts: prompts=FILE (a CSV or JSON file of boxes and points) or labels=PATH "
            f"(prompts drawn from label files); got prompts={prompts} labels={labels}"
        )
    inputs = find_inputs(cfg.inputs)
    if prompts:
        requests = from_file(read_prompt_file(prompts), inputs, axis=reading.axis, propagate=settings.propagate)
    else:
        requests = from_labels(labels, inputs, settings, axis=reading.axis)
    if not requests:
        raise DataError(f"inputs={cfg.inputs}: no input has a prompt (every label file is empty?); nothing to predict")
    finetuned = read_finetuned(cfg.finetuned) if cfg.get("finetuned") else None
    if finetuned is not None and finetuned.multimask not in (None, settings.multimask):
        raise ConfigError(
            f"{cfg.finetuned} was trained for multimask={finetuned.multimask}; predict with the same setting "
            f"(prediction.multimask={finetuned.multimask}), not prediction.multimask={settings.multimask}"
        )
    trained = finetuned.training_data.settings if finetuned is not None and finetuned.training_data else None
    if trained is not None and trained.clip_percentiles != reading.clip_percentiles:
        log.warning(
            "%s was trained on images read with dataset.clip_percentiles=%s, these are read with "
            "reading.clip_percentiles=%s",
            cfg.finetuned,
            None if trained.clip_percentiles is None else list(trained.clip_percentiles),
            None if reading.clip_percentiles is None else list(reading.clip_percentiles),
        )
    folder = PredictionFolder(cfg.paths.output_dir)
    folder.path.mkdir(parents=True, exist_ok=True)
    write_text(folder.config, OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True)))

    model = instantiate(cfg.model)
    if finetuned is not None:
        finetuned.load_into(model)
    settings.compute.place(model)
    log.info("predicting %d inputs on %s", len(requests), model.device)
    cache = instantiate(cfg.embeddings)
    rows = predict_requests(model, cache, requests, reading=reading, settings=settings, folder=folder)
    log.info(cache.stats())
    log.info(
        "%d masks of %d inputs in %s, listed in %s (%.1f s)",
        len(rows),
        len(requests),
        folder.masks,
        folder.predictions.name,
        time.perf_counter() - started,
    )
    return folder.path
