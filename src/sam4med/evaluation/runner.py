"""Zero-shot (or fine-tuned) evaluation of prompt strategies on a dataset.

Each image is encoded once (through the embedding cache) and its embedding reused by every strategy;
all objects of an image under one strategy are decoded in one batched call. Rows are appended to a
JSON-lines log as each image finishes, so an interrupted run keeps what it has and a re-run with
the same log skips the images already scored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from tqdm import tqdm

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.predict import predict
from sam4med.evaluation.results import ObjectResult
from sam4med.metrics import dice, hausdorff, iou
from sam4med.models.sam_model import SamModel
from sam4med.prompts.generate import STRATEGIES
from sam4med.prompts.store import PromptStore


def _read_log(path: Path | None) -> list[ObjectResult]:
    if path is None or not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(ObjectResult(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            break  # a line cut by an interruption ends the usable log
    return rows


def evaluate(
    model: SamModel,
    dataset: CosmosDataset,
    *,
    strategies: Sequence[str],
    phase: str,
    cache: EmbeddingCache,
    prompts: PromptStore,
    multimask: str = "single",
    log_path: str | Path | None = None,
    progress: bool = True,
) -> list[ObjectResult]:
    """Score every object of every image in ``dataset`` under each strategy.

    Args:
        model: the model to evaluate (its decoder may be fine-tuned).
        dataset: images and objects to score.
        strategies: prompt strategies, e.g. ``["S5"]``.
        phase: label of this evaluation in the results (``zero_shot``, ``finetuned`` ...).
        cache: embedding cache.
        prompts: prompt store; prompts it holds are reused, new ones are added to it.
        multimask: mask selection, see :func:`sam4med.evaluation.predict.predict`.
        log_path: JSON-lines file of finished rows (resumable); None keeps rows in memory only.
        progress: show a progress bar over images.
    """
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown strategies {unknown}; available: {sorted(STRATEGIES)}")
    log = Path(log_path) if log_path else None
    results = [r for r in _read_log(log) if r.phase == phase]
    done = {(r.image_id, r.strategy) for r in results}
    model.eval()
    bar = tqdm(range(len(dataset)), desc=f"evaluate {phase}", unit="img", disable=not progress)
    for index in bar:
        record = dataset.records[index]
        todo = [s for s in strategies if (record.image_id, s) not in done]
        if not todo:
            continue
        item = dataset[index]
        if not item.objects:
            continue
        embedding = cache.get(model, item.image)
        size = item.image.shape[:2]
        new_rows = []
        for strategy in todo:
            batch = [prompts.get(m, strategy, o.key) for o, m in zip(item.objects, item.masks, strict=True)]
            pred = predict(model, embedding, batch, size, multimask=multimask, gt_masks=item.masks)
            spacing = record.spacing
            for obj, gt, mask, score in zip(item.objects, item.masks, pred.masks, pred.scores, strict=True):
                new_rows.append(
                    ObjectResult(
                        phase=phase,
                        strategy=strategy,
                        target=obj.target,
                        modality=obj.modality,
                        object=obj.object_name,
                        image_id=obj.image_id,
                        object_key=obj.key,
                        dice=dice(mask, gt),
                        iou=iou(mask, gt),
                        hd=hausdorff(mask, gt, spacing=spacing),
                        hd95=hausdorff(mask, gt, percentile=95, spacing=spacing),
                        hd_unit="mm" if spacing else "px",
                        score=float(score),
                    )
                )
        prompts.save()
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a") as handle:
                handle.writelines(json.dumps(asdict(r)) + "\n" for r in new_rows)
        results += new_rows
    return results
