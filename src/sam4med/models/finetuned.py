"""Training checkpoints written by ``train.py``: read once, then put the fine-tuned decoder into a model.

A training checkpoint is a Lightning checkpoint whose ``state_dict`` holds only the mask decoder
(keys under ``model.mask_decoder.``), whose ``hyper_parameters`` hold the module's settings and the
resolved run config (``run_config``), and whose ``sam4med`` entry names the backbone, the hashes of
the frozen base weights and where those weights came from.

A checkpoint is input from elsewhere, so :func:`read_finetuned` refuses, with the reason and before any
model is built or image scored, one without a ``sam4med`` entry (not written by train.py), one that
records no hash of its base image encoder (it could not be checked against the model), and one whose
decoder holds a NaN or infinite value (a diverged training scores Dice 0 everywhere, silently).
:meth:`FinetunedDecoder.load_into` then checks the recorded hashes of the image and prompt encoders
against the model's.
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
        backbone: the backbone it was trained on (``vit_b``, ``litemedsam``...).
        base_weights: hashes of the frozen base modules (``image_encoder``, ``prompt_encoder``...), as
            :meth:`SamModel.module_hash`; :func:`read_finetuned` requires the image encoder's.
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
        """Put the decoder into ``model`` (in place) after checking it is the same backbone and base weights.

        The image encoder's hash must be recorded and equal the model's; the prompt encoder's is
        compared too where recorded.
        """
        if self.backbone not in (None, model.name):
            raise CheckpointError(f"{self.path}: trained on backbone '{self.backbone}', not '{model.name}'")
        if not self.base_weights.get("image_encoder"):
            raise CheckpointError(f"{self.path}: {NO_ENCODER_HASH}")
        for part, module in (("image_encoder", model.image_encoder), ("prompt_encoder", model.prompt_encoder)):
            expected = self.base_weights.get(part)
            actual = model.module_hash(module) if expected else None
            if expected and expected != actual:
                raise CheckpointError(
                    f"{self.path}: trained on other '{model.name}' {part.replace('_', '-')} weights than the ones "
                    f"loaded now (sam4med.base_weights.{part} is {expected}, the model's {actual})"
                )
        load_strict(model.mask_decoder, self.decoder_state, self.path, model.name)


NO_ENCODER_HASH = (
    "records no hash of the image encoder it was trained on (sam4med.base_weights.image_encoder), "
    "so it cannot be checked against the model; refusing it"
)


def read_finetuned(path: str | Path) -> FinetunedDecoder:
    """Read a training checkpoint (safely: tensors and plain data only) and check what it records.

    Refused with a :class:`CheckpointError` naming the file and the reason: no ``sam4med`` entry, no
    backbone or image-encoder hash in it, no decoder weights, or a decoder tensor that is not finite
    (the first one is named).
    """
    path = Path(path).expanduser()
    checkpoint = load_file(path, "a sam4med training checkpoint")
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path}: no 'state_dict' inside; expected a checkpoint written by train.py")
    meta = checkpoint.get("sam4med")
    if not isinstance(meta, dict) or not meta:
        raise CheckpointError(
            f"{path}: has no 'sam4med' entry, so it was not written by sam4med's train.py "
            "(no backbone or base-weight hashes to check it against); refusing it"
        )
    backbone = meta.get("backbone")
    if not isinstance(backbone, str) or not backbone:
        raise CheckpointError(f"{path}: records no backbone (sam4med.backbone); refusing it")
    base_weights = meta.get("base_weights")
    if not isinstance(base_weights, dict) or not isinstance(base_weights.get("image_encoder"), str):
        raise CheckpointError(f"{path}: {NO_ENCODER_HASH}")
    hparams = checkpoint.get("hyper_parameters")
    hparams = hparams if isinstance(hparams, dict) else {}
    state = {
        k[len(TRAINED_PREFIX) :]: v
        for k, v in checkpoint["state_dict"].items()
        if isinstance(k, str) and k.startswith(TRAINED_PREFIX)
    }
    if not state:
        raise CheckpointError(f"{path}: holds no mask-decoder weights")
    check_finite(path, state)
    multimask = hparams.get("multimask")
    return FinetunedDecoder(
        path=path,
        decoder_state=state,
        backbone=backbone,
        base_weights={str(k): str(v) for k, v in base_weights.items()},
        multimask=Multimask.parse(multimask) if multimask is not None else None,
        run_config=dict(run_config) if isinstance(run_config := hparams.get("run_config"), dict) else {},
    )


def check_finite(path: Path, state: dict[str, Any]) -> None:
    """Refuse a decoder state with a value that is no tensor or a tensor holding NaN or infinity (the first one)."""
    for key, value in state.items():
        name = TRAINED_PREFIX + key
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: decoder entry '{name}' is a {type(value).__name__}, not a tensor")
        if not (value.is_floating_point() or value.is_complex()):
            continue
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            nan = int(torch.isnan(value).sum())
            bad = int((~finite).sum())
            raise CheckpointError(
                f"{path}: decoder tensor '{name}' holds {nan} NaN and {bad - nan} infinite values "
                f"(of {value.numel()}): the training diverged or the file is damaged; refusing it before any scoring"
            )


def load_finetuned_decoder(model: SamModel, path: str | Path) -> FinetunedDecoder:
    """Read the training checkpoint at ``path`` and put its decoder into ``model``; returns what was read."""
    finetuned = read_finetuned(path)
    finetuned.load_into(model)
    return finetuned
