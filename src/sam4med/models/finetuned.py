"""Training checkpoints written by ``train.py``: read once, then put the fine-tuned decoder into a model.

A training checkpoint is a Lightning checkpoint whose ``state_dict`` holds only the mask decoder
(keys under ``model.mask_decoder.``), whose ``hyper_parameters`` hold the module's settings and the
resolved run config (``run_config``), and whose ``sam4med`` entry names the backbone, the hashes of
the frozen base weights and where those weights came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sam4med.errors import CheckpointError
from sam4med.models.checkpoints import load_file, load_strict
from sam4med.models.multimask import Multimask
from sam4med.models.sam_model import SamModel

TRAINED_PREFIX = "model.mask_decoder."


@dataclass(frozen=True)
class FinetunedDecoder:
    """What a training checkpoint holds.

    Attributes:
        path: the file.
        decoder_state: the mask decoder's state dict (segment_anything's key names, no prefix).
        backbone: the backbone it was trained on (``vit_b``, ``litemedsam``...), or None if unrecorded.
        base_weights: hashes of the frozen base modules (``image_encoder``...), as :meth:`SamModel.module_hash`.
        multimask: the mask selection it was trained for, or None if unrecorded.
        run_config: the resolved config of the training run (plain data; empty if unrecorded).
    """

    path: Path
    decoder_state: dict[str, torch.Tensor]
    backbone: str | None
    base_weights: dict[str, str] = field(default_factory=dict)
    multimask: Multimask | None = None
    run_config: dict[str, Any] = field(default_factory=dict)

    def load_into(self, model: SamModel) -> None:
        """Put the decoder into ``model`` (in place) after checking it is the same backbone and encoder."""
        if self.backbone not in (None, model.name):
            raise CheckpointError(f"{self.path}: trained on backbone '{self.backbone}', not '{model.name}'")
        expected = self.base_weights.get("image_encoder")
        if expected and expected != model.module_hash(model.image_encoder):
            raise CheckpointError(
                f"{self.path}: trained on other '{model.name}' encoder weights than the ones loaded now"
            )
        load_strict(model.mask_decoder, self.decoder_state, self.path, model.name)


def read_finetuned(path: str | Path) -> FinetunedDecoder:
    """Read a training checkpoint (safely: tensors and plain data only)."""
    path = Path(path).expanduser()
    checkpoint = load_file(path, "a sam4med training checkpoint")
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: no 'state_dict' inside; expected a checkpoint written by train.py")
    meta = checkpoint.get("sam4med") or {}
    hparams = checkpoint.get("hyper_parameters") or {}
    state = {k[len(TRAINED_PREFIX) :]: v for k, v in checkpoint["state_dict"].items() if k.startswith(TRAINED_PREFIX)}
    if not state:
        raise CheckpointError(f"{path}: holds no mask-decoder weights")
    multimask = hparams.get("multimask")
    return FinetunedDecoder(
        path=path,
        decoder_state=state,
        backbone=meta.get("backbone"),
        base_weights=dict(meta.get("base_weights") or {}),
        multimask=Multimask.parse(multimask) if multimask is not None else None,
        run_config=dict(hparams.get("run_config") or {}),
    )


def load_finetuned_decoder(model: SamModel, path: str | Path) -> FinetunedDecoder:
    """Read the training checkpoint at ``path`` and put its decoder into ``model``; returns what was read."""
    finetuned = read_finetuned(path)
    finetuned.load_into(model)
    return finetuned
