"""Losses of decoder fine-tuning: pure functions on logits and targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice per mask; logits and target ... x H x W, returns shape ``logits.shape[:-2]``."""
    prob = torch.sigmoid(logits)
    inter = (prob * target).sum(dim=(-2, -1))
    total = prob.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1))
    return 1 - (2 * inter + eps) / (total + eps)


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per mask (mean over pixels); shape ``logits.shape[:-2]``."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(-2, -1))


def hard_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of ``logits > 0`` with the target per mask (no gradient); empty union counts as 1."""
    pred = logits.detach() > 0
    tgt = target > 0.5
    inter = (pred & tgt).sum(dim=(-2, -1)).float()
    union = (pred | tgt).sum(dim=(-2, -1)).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
