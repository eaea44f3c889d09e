"""Where and how the models run: one ``device`` setting (``auto``: CUDA when present) and GPU options.

``evaluate.py`` moves the model to :meth:`Compute.device`; in ``train.py`` Lightning's trainer places
the model (``trainer.accelerator``) and the embedding precomputation and the before/after evaluation
follow it, unless ``compute.device`` names another device for the evaluation. The GPU options are
off by default: ``bf16`` decodes under bfloat16 autocast in evaluation (outputs are returned as
float32; masks may differ from float32 runs where logits are near 0), ``bf16_encoder`` runs the image
encoder under bfloat16 autocast (its embeddings get cache keys of their own), ``compile`` compiles the
image encoder with ``torch.compile``, ``shared_decoder`` decodes S2–S6 with the shared-work decoder,
``sdpa`` runs segment_anything's attention layers through PyTorch's scaled-dot-product attention.
All also run on a CPU, where only ``sdpa`` (ViT encoders) and ``shared_decoder`` pay.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from sam4med.errors import ConfigError


def resolve_device(name: str, follow: torch.device | None = None) -> torch.device:
    """``auto``: ``follow`` if given (the trainer's device), else CUDA when present, else the CPU."""
    if name == "auto":
        if follow is not None:
            return torch.device(follow)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"unknown device '{name}' (auto, cpu, cuda, cuda:N)") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device '{name}' asked for, but no CUDA device is available (use device=auto or cpu)")
    return device


@dataclass(frozen=True)
class Compute:
    """The ``compute`` config node.

    Attributes:
        device: ``auto`` (CUDA when present; in ``train.py`` the trainer's device), ``cpu``, ``cuda``, ``cuda:N``.
        prompts_per_call: prompts per decoder call in evaluation; None sizes calls for the device
            (:func:`~sam4med.evaluation.decoding.prompts_per_call`).
        bf16: bfloat16 autocast for the mask decoder in evaluation (a GPU option).
        compile: ``torch.compile`` the image encoder (a GPU option).
        bf16_encoder: bfloat16 autocast for the image encoder (a GPU option); embeddings are stored as
            float32 under their own cache keys, so float32 and bf16 entries never mix.
        shared_decoder: decode S2–S6 with :mod:`sam4med.models.shared_decoder`, which does the work the
            prompts of one image share once (outputs equal to segment_anything's decoder up to float
            rounding; off: segment_anything's decoder, bit-identical to ``SamPredictor``).
        sdpa: segment_anything's attention layers (ViT encoder, mask decoder) through
            ``scaled_dot_product_attention`` (:mod:`sam4med.models.sdpa`; same weights, outputs equal up
            to float rounding; a switched encoder's embeddings are cached under keys of their own).
    """

    device: str = "auto"
    prompts_per_call: int | None = None
    bf16: bool = False
    compile: bool = False
    bf16_encoder: bool = False
    shared_decoder: bool = False
    sdpa: bool = False

    def __post_init__(self) -> None:
        if self.prompts_per_call is not None and int(self.prompts_per_call) < 1:
            raise ConfigError(f"compute.prompts_per_call must be at least 1 or null, got {self.prompts_per_call}")

    def resolve(self, follow: torch.device | None = None) -> torch.device:
        """The device to run on (see :func:`resolve_device`)."""
        return resolve_device(self.device, follow)

    def configure(self, model: nn.Module) -> nn.Module:
        """Set the options that do not move the model (encoder precision, attention kernels); returns it."""
        model.encoder_bf16 = self.bf16_encoder
        model.use_sdpa(self.sdpa)
        return model

    def place(self, model: nn.Module, follow: torch.device | None = None) -> nn.Module:
        """Move ``model`` to the device (and compile its ``image_encoder`` if asked); returns it."""
        self.configure(model)
        model.to(self.resolve(follow))
        if self.compile:
            model.image_encoder.compile()  # in place: parameter names, checkpoints and cache keys stay the same
        return model
