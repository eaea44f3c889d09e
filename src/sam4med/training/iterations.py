"""The prompts of a training batch and the corrective clicks of ``module.iterations``.

A training batch (:class:`sam4med.data.training_samples.DecoderSamples`) carries each object's prompt
padded to a fixed number of points. :class:`ObjectPrompt` is that prompt without its padding: exactly the
points (and box) the evaluation decodes for the same kind, so the decoder is trained on the token
sequences it is scored on (SAM's prompt encoder adds its own padding point to a prompt without a box,
as at evaluation).

Corrective clicks follow the evaluation's iterative clicks (:mod:`sam4med.prompts.clicks`): the
prediction is the chosen output's logits upsampled to the object's original pixels
(``Preprocessing.logits_to_original``, logit > 0), the click is the point of the largest region of
``prediction XOR ground truth``, positive where it lies in the object; it is added to the object's prompt
in model-input pixels. An object whose prediction equals its ground truth gets no click.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from sam4med.models.multimask import Multimask, choose
from sam4med.models.preprocessing import Preprocessing
from sam4med.prompts.clicks import Click, next_click


@dataclass(frozen=True)
class ObjectPrompt:
    """One object's prompt in model-input pixels.

    Attributes:
        points: P x 2 float32 XY points (P = 0: no points).
        labels: P int64 labels, 1 positive, 0 negative.
        box: 4 float32 XYXY box, or None.
    """

    points: torch.Tensor
    labels: torch.Tensor
    box: torch.Tensor | None

    @property
    def form(self) -> tuple[int, bool]:
        """(number of points, has a box): prompts of one form decode in one call."""
        return len(self.labels), self.box is not None

    def with_click(self, click: Click, original_size: tuple[int, int], preprocessing: Preprocessing) -> ObjectPrompt:
        """The prompt with ``click`` (original pixels) appended as a point."""
        xy = preprocessing.coords_to_model(np.array([[click.x, click.y]]), original_size)
        point = torch.as_tensor(xy, dtype=self.points.dtype, device=self.points.device)
        label = torch.tensor([click.label], dtype=self.labels.dtype, device=self.labels.device)
        return replace(self, points=torch.cat([self.points, point]), labels=torch.cat([self.labels, label]))


def batch_prompts(batch: dict[str, Any]) -> list[ObjectPrompt]:
    """The prompt of each object of a batch, padding points (label -1) removed; a batch of boxes alone
    (without ``labels``: an older sample) gives box prompts.
    """
    boxes = batch["box"]
    if "labels" not in batch:
        return boxes_only(boxes)
    prompts = []
    for box, points, labels, use_box in zip(boxes, batch["points"], batch["labels"], batch["use_box"], strict=True):
        real = labels != -1
        prompts.append(ObjectPrompt(points[real], labels[real], box if bool(use_box) else None))
    return prompts


def boxes_only(boxes: torch.Tensor) -> list[ObjectPrompt]:
    """B box prompts from B x 4 boxes."""
    empty = boxes.new_zeros((0, 2))
    no_labels = torch.zeros(0, dtype=torch.int64, device=boxes.device)
    return [ObjectPrompt(empty, no_labels, box) for box in boxes]


@torch.no_grad()
def chosen_outputs(
    low_res_logits: torch.Tensor,
    ious: torch.Tensor,
    gts: Sequence[torch.Tensor],
    preprocessing: Preprocessing,
    multimask: Multimask,
) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Per object, the output the evaluation would choose: its low-resolution logits (B x 1 x h x w,
    detached) and its mask in original pixels (H x W bool).

    Args:
        low_res_logits: B x M x h x w decoder logits.
        ious: B x M predicted IoU.
        gts: B ground-truth masks (H x W, original pixels; sizes may differ).
        preprocessing: the model's preprocessing (upsampling to the original pixels).
        multimask: the run's mask selection (with M = 1 always the one output).
    """
    rows, masks = [], []
    for logits, iou, gt in zip(low_res_logits, ious, gts, strict=True):
        full = preprocessing.logits_to_original(logits[None].detach().float(), tuple(gt.shape))  # 1 x M x H x W
        candidates = (full > 0).cpu().numpy()
        gt_np = gt.cpu().numpy().astype(bool)
        scores = iou[None].float().cpu().numpy()
        best = 0 if len(logits) == 1 else int(choose(multimask, candidates, scores, gt_np[None])[0])
        rows.append(logits[best : best + 1].detach())
        masks.append(candidates[0, best])
    return torch.stack(rows), masks


def corrective_clicks(
    prompts: Sequence[ObjectPrompt],
    predictions: Sequence[np.ndarray],
    gts: Sequence[torch.Tensor],
    *,
    seeds: Sequence[int],
    object_keys: Sequence[str],
    click: int,
    preprocessing: Preprocessing,
) -> list[ObjectPrompt]:
    """Each object's prompt with click number ``click`` (2, 3 ...) placed from its prediction's error (see
    module docs); an object whose prediction is exact keeps its prompt.
    """
    out = []
    for prompt, pred, gt, seed, key in zip(prompts, predictions, gts, seeds, object_keys, strict=True):
        gt_np = gt.cpu().numpy().astype(bool)
        placed = next_click(pred, gt_np, seed=int(seed), object_key=key, click=click)
        out.append(prompt if placed is None else prompt.with_click(placed, gt_np.shape, preprocessing))
    return out
