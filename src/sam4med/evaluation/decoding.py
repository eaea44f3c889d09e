"""Batched decoding in calls sized for the device.

The mask decoder repeats the image embedding once per prompt, so one call for N prompts works on N
copies of the C x h x w embedding. On a CPU large calls are slower per prompt than small ones (the
tensors leave the caches: with LiteMedSAM about 60 ms per prompt at 4 prompts per call against 100 ms
at 96); on a GPU large calls fill the device. So a call takes as many prompts as fit in an element
budget per device type (4 LiteMedSAM / SAM embeddings of 256 x 64 x 64 on a CPU, 64 on a GPU), unless
a fixed ``prompts_per_call`` is given. The masks do not depend on the call size; logits may differ in
the last float bits (the matrix kernels depend on the number of rows; ``tests/evaluation/test_decoding.py``).
"""

from __future__ import annotations

import torch

from sam4med.models.sam_model import DecoderOutput, SamModel

# embedding elements one decoder call may repeat, by device type (256 x 64 x 64 = one SAM embedding)
ELEMENTS_PER_CALL = {"cpu": 4 * 256 * 64 * 64, "cuda": 64 * 256 * 64 * 64, "mps": 16 * 256 * 64 * 64}


def prompts_per_call(device: torch.device | str, embedding: torch.Tensor, fixed: int | None = None) -> int:
    """Prompts per decoder call for the C x h x w ``embedding`` on ``device``: ``fixed`` if given, else the budget's."""
    if fixed is not None:
        if int(fixed) < 1:
            raise ValueError(f"prompts per decoder call must be at least 1, got {fixed}")
        return int(fixed)
    budget = ELEMENTS_PER_CALL.get(torch.device(device).type, ELEMENTS_PER_CALL["mps"])
    return max(1, budget // max(1, embedding.numel()))


def decode_in_calls(
    model: SamModel,
    embedding: torch.Tensor,
    *,
    point_coords: torch.Tensor | None,
    point_labels: torch.Tensor | None,
    boxes: torch.Tensor | None,
    multimask_output: bool,
    per_call: int | None = None,
    shared_work: bool = False,
    mask_input: torch.Tensor | None = None,
) -> DecoderOutput:
    """:meth:`SamModel.decode` of N prompts in calls of ``per_call`` prompts (None: :func:`prompts_per_call`).

    Arguments are those of :meth:`SamModel.decode` (points N x P x 2 XY and boxes N x 4 XYXY, in
    model-input pixels, ``shared_work``, and ``mask_input``: N x 1 x h x w low-resolution logits given as
    SAM's mask prompt, or None); the outputs (N x M x h x w logits, N x M predicted IoU) are
    concatenated in prompt order.
    """
    n = len(point_coords) if point_coords is not None else len(boxes)
    size = prompts_per_call(model.device, embedding, per_call)
    embedding = embedding.to(model.device)  # once, not once per call
    logits, ious = [], []
    for start in range(0, n, size):
        part = slice(start, start + size)
        out = model.decode(
            embedding,
            point_coords=point_coords[part] if point_coords is not None else None,
            point_labels=point_labels[part] if point_labels is not None else None,
            boxes=boxes[part] if boxes is not None else None,
            multimask_output=multimask_output,
            shared_work=shared_work,
            mask_input=mask_input[part] if mask_input is not None else None,
        )
        logits.append(out.low_res_logits.float())  # float32 also under bf16 autocast
        ious.append(out.iou_predictions.float())
    return DecoderOutput(low_res_logits=torch.cat(logits), iou_predictions=torch.cat(ious))
