"""Reading checkpoint files with errors that say which file, which backbone and what was expected."""

from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sam4med.errors import CheckpointError

# Width of the ViT image encoder, which tells the three SAM checkpoints apart.
SAM_ENCODER_WIDTH = {768: "vit_b", 1024: "vit_l", 1280: "vit_h"}


def load_file(path: str | Path, what: str) -> Any:
    """The contents of a checkpoint file (on the CPU), read with ``weights_only=True``.

    The safe loader accepts tensors and plain containers only, so no file can run code when it is
    opened. ``what`` says what the file should be, for the one-line errors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: {what} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        thing = f"'{found.group(1)}'" if found else "objects other than tensors and plain data"
        raise CheckpointError(
            f"{path}: cannot read as {what}: refused by the safe loader (WeightsUnpickler): it holds {thing}, "
            "which could run code when opened; only tensors and plain data are accepted"
        ) from exc
    except Exception as exc:  # torch raises many types for truncated or foreign files
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise CheckpointError(f"{path}: cannot read as {what} ({type(exc).__name__}: {first_line})") from exc


def read_state_dict(path: str | Path, backbone: str) -> dict[str, torch.Tensor]:
    """Load a state dict from ``path`` (a plain state dict, or one under ``model``/``state_dict``)."""
    path = Path(path).expanduser()
    state = load_file(path, f"a PyTorch checkpoint for backbone '{backbone}'")
    for key in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: holds no state dict of tensors, so it is no '{backbone}' checkpoint")
    return state


def guess_sam_variant(state: dict[str, torch.Tensor]) -> str | None:
    """Which SAM ViT a state dict belongs to, from its patch-embedding width (None if unknown)."""
    weight = state.get("image_encoder.patch_embed.proj.weight")
    return SAM_ENCODER_WIDTH.get(int(weight.shape[0])) if weight is not None else None


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path, backbone: str) -> None:
    """``load_state_dict(strict=True)`` that explains a mismatch in one line."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        guess = guess_sam_variant(state)
        hint = f"; it looks like a '{guess}' checkpoint" if guess and guess != backbone else ""
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong_shape:
            k = wrong_shape[0]
            parts.append(
                f"{len(wrong_shape)} keys of the wrong shape (e.g. {k}: "
                f"{tuple(state[k].shape)} instead of {tuple(own[k].shape)})"
            )
        raise CheckpointError(f"{path}: does not fit backbone '{backbone}': {', '.join(parts)}{hint}")
    module.load_state_dict(state, strict=True)
