"""Decode the prompts of all objects of one image (in calls sized for the device) and pick one mask per object.

A prompt of several boxes (mode M4) is decoded once per box and its masks merged (see :func:`predict`).
"""

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
    """Stack prompts of one form (the same number of points; all with a box or none, no ``boxes``) into
    model-space tensors (coords N x P x 2, labels N x P, boxes N x 4).
    """
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
    """Masks for ``prompts`` (one per object, any strategy) on the image whose embedding is given.

    Each prompt is decoded as :meth:`Prompt.decoded <sam4med.prompts.prompt.Prompt.decoded>` says: itself,
    or once per box of its ``boxes`` (mode M4). The decoded prompts with the same number of points and
    with or without a box are decoded together, in prompt order, in calls of ``per_call``. The mask
    selection applies to each decoded prompt on its own (``oracle``: against the object's whole ground
    truth); the masks chosen for one object's boxes are merged by union, its score is the mean of their
    predicted IoU and its choice that of its first (largest) box.

    Args:
        model: the model.
        embedding: C x h x w image embedding.
        prompts: one prompt per object.
        original_size: (H, W) of the image.
        multimask: which decoder output is chosen (see :class:`~sam4med.models.multimask.Multimask`).
        gt_masks: N x H x W ground truth, needed for ``oracle``.
        per_call: prompts per decoder call; None: sized for the device and embedding
            (:func:`~sam4med.evaluation.decoding.prompts_per_call`).
        shared_work: decode with the shared-work decoder (:mod:`sam4med.models.shared_decoder`).
    """
    parts = [(owner, part) for owner, prompt in enumerate(prompts) for part in prompt.decoded()]
    groups: dict[tuple[int, bool], list[int]] = {}
    for index, (_, part) in enumerate(parts):
        groups.setdefault((len(part.point_coords), part.box is not None), []).append(index)
    part_masks: list[np.ndarray] = [np.empty(0)] * len(parts)
    part_scores = np.zeros(len(parts), dtype=np.float32)
    part_choice = np.zeros(len(parts), dtype=np.int64)
    for members in groups.values():
        owners = [parts[k][0] for k in members]
        coords, labels, boxes = prompts_to_tensors([parts[k][1] for k in members], model, original_size)
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
        masks = (logits > 0).cpu().numpy()  # G x M x H x W
        scores = out.iou_predictions.cpu().numpy()
        choice = choose(multimask, masks, scores, None if gt_masks is None else np.asarray(gt_masks)[owners])
        for row, k in enumerate(members):
            part_masks[k] = masks[row, choice[row]]
            part_scores[k], part_choice[k] = scores[row, choice[row]], choice[row]
    return _merge(parts, part_masks, part_scores, part_choice, len(prompts))


def _merge(
    parts: Sequence[tuple[int, Prompt]],
    masks: Sequence[np.ndarray],
    scores: np.ndarray,
    choice: np.ndarray,
    count: int,
) -> Prediction:
    """Each object's prediction from those of its decoded prompts: the union of their masks, the mean of
    their scores, the first one's choice (an object of one decoded prompt keeps its mask, score and choice).
    """
    owners = np.array([owner for owner, _ in parts])
    merged = np.zeros((count, *masks[0].shape), dtype=bool)
    merged_scores = np.zeros(count, dtype=scores.dtype)
    merged_choice = np.zeros(count, dtype=np.int64)
    for owner in range(count):
        rows = np.flatnonzero(owners == owner)
        merged[owner] = np.logical_or.reduce([masks[k] for k in rows])
        merged_scores[owner] = scores[rows].mean()
        merged_choice[owner] = choice[rows[0]]
    return Prediction(masks=merged, scores=merged_scores, choice=merged_choice)


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
    """:func:`predict` the way scoring decodes S2–S6 and M1–M5 under ``compute``: its call size, its shared-work decoder
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
