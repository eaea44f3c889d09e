"""Decode the prompts of all objects of one image (in calls sized for the device) and pick one mask per object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from sam4med.compute import Compute
from sam4med.evaluation.decoding import decode_in_calls
from sam4med.models.multimask import Multimask, choose
from sam4med.models.sam_model import SamModel
from sam4med.prompts.prompt import Prompt


@dataclass(frozen=True)
class Prediction:
    """Masks chosen for N objects of one image.

    Attributes:
        masks: N x H x W bool masks in original pixels.
        scores: N predicted IoU of the chosen masks.
        choice: N index of the chosen mask among the decoder's outputs (0 with ``single``).
    """

    masks: np.ndarray
    scores: np.ndarray
    choice: np.ndarray


def prompts_to_tensors(
    prompts: Sequence[Prompt], model: SamModel, original_size: tuple[int, int]
) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
    """Stack prompts of one strategy into model-space tensors (coords N x P x 2, labels N x P, boxes N x 4)."""
    pre = model.preprocessing
    coords = labels = boxes = None
    if prompts[0].point_coords:
        raw = np.stack([p.points_array for p in prompts])
        coords = torch.as_tensor(pre.coords_to_model(raw, original_size), dtype=torch.float32)
        labels = torch.as_tensor(np.stack([p.labels_array for p in prompts]))
    if prompts[0].box is not None:
        raw_boxes = np.asarray([p.box for p in prompts], dtype=np.float64)
        boxes = torch.as_tensor(pre.boxes_to_model(raw_boxes, original_size), dtype=torch.float32)
    return coords, labels, boxes


@torch.no_grad()
def predict(
    model: SamModel,
    embedding: torch.Tensor,
    prompts: Sequence[Prompt],
    original_size: tuple[int, int],
    *,
    multimask: Multimask,
    gt_masks: np.ndarray | None = None,
    per_call: int | None = None,
    shared_work: bool = False,
) -> Prediction:
    """Masks for ``prompts`` (all of one strategy) on the image whose embedding is given.

    Args:
        model: the model.
        embedding: C x h x w image embedding.
        prompts: one prompt per object, all with the same number of points.
        original_size: (H, W) of the image.
        multimask: which decoder output is chosen (see :class:`~sam4med.models.multimask.Multimask`).
        gt_masks: N x H x W ground truth, needed for ``oracle``.
        per_call: prompts per decoder call; None: sized for the device and embedding
            (:func:`~sam4med.evaluation.decoding.prompts_per_call`).
        shared_work: decode with the shared-work decoder (:mod:`sam4med.models.shared_decoder`).
    """
    coords, labels, boxes = prompts_to_tensors(prompts, model, original_size)
    out = decode_in_calls(
        model,
        embedding,
        point_coords=coords,
        point_labels=labels,
        boxes=boxes,
        multimask_output=multimask.multimask_output,
        per_call=per_call,
        shared_work=shared_work,
    )
    logits = model.preprocessing.logits_to_original(out.low_res_logits, original_size)
    masks = (logits > 0).cpu().numpy()  # N x M x H x W
    scores = out.iou_predictions.cpu().numpy()
    choice = choose(multimask, masks, scores, gt_masks)
    rows = np.arange(len(prompts))
    return Prediction(masks=masks[rows, choice], scores=scores[rows, choice], choice=choice)


def predict_scored(
    model: SamModel,
    embedding: torch.Tensor,
    prompts: Sequence[Prompt],
    original_size: tuple[int, int],
    *,
    multimask: Multimask,
    compute: Compute,
    gt_masks: np.ndarray | None = None,
) -> Prediction:
    """:func:`predict` the way scoring decodes S2–S6 under ``compute``: its call size, its shared-work decoder
    and its bfloat16 autocast. Whatever redraws a scored prediction (the overlays) calls this, so a drawn
    mask is the scored one.
    """
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=compute.bf16):
        return predict(
            model,
            embedding,
            prompts,
            original_size,
            multimask=multimask,
            gt_masks=gt_masks,
            per_call=compute.prompts_per_call,
            shared_work=compute.shared_decoder,
        )
