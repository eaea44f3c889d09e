"""Putting a fine-tuned decoder from a training checkpoint into a model."""

from __future__ import annotations

from pathlib import Path

import torch

from sam4med.errors import CheckpointError
from sam4med.models.checkpoints import load_strict
from sam4med.models.sam_model import SamModel

TRAINED_PREFIX = "model.mask_decoder."


def load_finetuned_decoder(model: SamModel, path: str | Path) -> dict:
    """Load the decoder of a sam4med training checkpoint into ``model`` (in place); returns its metadata.

    The checkpoint must have been trained on the same backbone with the same frozen encoder weights
    (checked through the encoder hash the checkpoint records). The metadata is the checkpoint's
    ``sam4med`` entry (backbone, base-weight hashes, training config); empty if it has none.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise CheckpointError(f"{path}: fine-tuned checkpoint does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise CheckpointError(f"{path}: cannot read as a sam4med training checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: no 'state_dict' inside; expected a checkpoint written by train.py")
    meta = checkpoint.get("sam4med", {})
    if meta.get("backbone") not in (None, model.name):
        raise CheckpointError(f"{path}: trained on backbone '{meta['backbone']}', not '{model.name}'")
    expected = meta.get("base_weights", {}).get("image_encoder")
    if expected and expected != model.module_hash(model.image_encoder):
        raise CheckpointError(f"{path}: trained on other '{model.name}' encoder weights than the ones loaded now")
    state = {k[len(TRAINED_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(TRAINED_PREFIX)}
    if not state:
        raise CheckpointError(f"{path}: holds no mask-decoder weights")
    load_strict(model.mask_decoder, state, path, model.name)
    return meta
