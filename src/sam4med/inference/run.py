"""Decode every request of a ``predict.py`` run and write its masks and ``predictions.csv``.

Each image (or slice) is encoded through the embedding cache and its objects decoded together by
:func:`sam4med.evaluation.predict.predict_scored`, the one path scoring decodes S2-S6 through (the
run's call size, shared-work decoder and bf16 autocast): a prompt gives the mask ``evaluate.py`` scores
for it on the same image.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.predict import Prediction, predict_scored
from sam4med.inference.inputs import Reading, read_volume
from sam4med.inference.outputs import (
    PredictionFolder,
    PredictionRow,
    dtype_for,
    label_image,
    write_nifti,
    write_png,
    write_predictions,
)
from sam4med.inference.propagate import SliceResult, propagate
from sam4med.inference.requests import ObjectPrompt, Request
from sam4med.inference.settings import PredictSettings
from sam4med.models.sam_model import SamModel

log = logging.getLogger("sam4med")


def decode(
    model: SamModel,
    cache: EmbeddingCache,
    image: np.ndarray,
    prompts: Sequence[ObjectPrompt],
    settings: PredictSettings,
) -> Prediction:
    """The masks of ``prompts`` on ``image`` (H x W x 3 uint8, as the model's images are read)."""
    embedding = cache.get(model, image)
    return predict_scored(
        model,
        embedding,
        [p.prompt for p in prompts],
        image.shape[:2],
        multimask=settings.multimask,
        compute=settings.compute,
    )


def _rows(image: str, index: int | None, result: SliceResult) -> list[PredictionRow]:
    return [
        PredictionRow(image, index, p.object, p.prompt, p.source, float(score), int(mask.sum()))
        for p, mask, score in zip(result.prompts, result.masks, result.scores, strict=True)
    ]


def predict_requests(
    model: SamModel,
    cache: EmbeddingCache,
    requests: Sequence[Request],
    *,
    reading: Reading,
    settings: PredictSettings,
    folder: PredictionFolder,
    progress: bool = True,
) -> list[PredictionRow]:
    """Decode ``requests``, write each input's mask file as it finishes and ``predictions.csv`` at the end.

    Returns the rows of ``predictions.csv``: per input, per slice in slice order, the objects in drawing order.
    """
    model.eval()
    rows: list[PredictionRow] = []
    bar = tqdm(total=len(requests), desc="predict", unit="file", disable=not progress)
    for request in requests:
        item = request.item
        bar.set_postfix_str(item.name)
        if request.grid is None:
            image = reading.image(item)
            prompts = request.slices[-1]
            prediction = decode(model, cache, image, prompts, settings)
            result = SliceResult(-1, prompts, prediction.masks, prediction.scores)
            ids = [p.object for p in prompts]
            write_png(folder.mask_png(item.stem), label_image(result.masks, ids, dtype_for(ids)))
            rows += _rows(item.name, None, result)
        else:
            volume = read_volume(request.grid)

            def on_slice(index: int, prompts: Sequence[ObjectPrompt], volume=volume, name=item.name) -> Prediction:
                bar.set_postfix_str(f"{name} slice {index}")  # a volume's slices can take minutes: show each
                return decode(model, cache, reading.slice_image(volume, index), prompts, settings)

            results = [SliceResult(i, p, *_masks(on_slice(i, p))) for i, p in request.slices.items()]
            if request.starts:
                results += propagate(request.starts, request.grid.slices, on_slice, margin=settings.margin)
            results.sort(key=lambda r: r.index)
            ids = [p.object for r in results for p in r.prompts]
            dtype = dtype_for(ids)
            labels = {r.index: label_image(r.masks, [p.object for p in r.prompts], dtype) for r in results}
            write_nifti(folder.mask_nifti(item.stem), request.grid, labels, dtype)
            for r in results:
                rows += _rows(item.name, r.index, r)
        bar.update(1)
    bar.close()
    write_predictions(folder.predictions, rows)
    return rows


def _masks(prediction: Prediction) -> tuple[np.ndarray, np.ndarray]:
    return prediction.masks, prediction.scores
