"""The model the framework runs: SAM's three parts plus the backbone's input contract.

The submodules carry segment_anything's names (``image_encoder``, ``prompt_encoder``,
``mask_decoder``), so ``state_dict()`` has the same keys as a segment_anything checkpoint.
Unlike ``segment_anything.Sam`` nothing here is wrapped in ``no_grad``: the training step calls
:meth:`decode` with gradients on the decoder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from sam4med.models import lora, sdpa, shared_decoder
from sam4med.models.preprocessing import Preprocessing


@dataclass(frozen=True)
class DecoderOutput:
    """What the mask decoder returns for N prompts on one image.

    Attributes:
        low_res_logits: N x M x h x w mask logits in model space (M = 3 with multimask, else 1).
        iou_predictions: N x M predicted IoU of each mask.
    """

    low_res_logits: torch.Tensor
    iou_predictions: torch.Tensor


class SamModel(nn.Module):
    """Image encoder, prompt encoder and mask decoder of a SAM-family model.

    Args:
        name: backbone name recorded with results (``vit_b``, ``litemedsam``, ``tiny`` ...).
        image_encoder: maps B x 3 x S x S inputs to B x C x h x w embeddings.
        prompt_encoder: a ``segment_anything.modeling.PromptEncoder``.
        mask_decoder: a ``segment_anything.modeling.MaskDecoder``.
        preprocessing: the input contract of this backbone.
        weights_source: where the weights came from (a path or a description), for the records.
    """

    def __init__(
        self,
        *,
        name: str,
        image_encoder: nn.Module,
        prompt_encoder: nn.Module,
        mask_decoder: nn.Module,
        preprocessing: Preprocessing,
        weights_source: str,
    ) -> None:
        super().__init__()
        self.name = name
        self.image_encoder = image_encoder
        self.prompt_encoder = prompt_encoder
        self.mask_decoder = mask_decoder
        self.preprocessing = preprocessing
        self.weights_source = weights_source
        # run the image encoder under bfloat16 autocast (a GPU option); part of the embedding cache key
        self.encoder_bf16 = False
        # content hash of the mask decoder the base weights came with (see remember_base_decoder)
        self.base_decoder_hash: str | None = None
        # bumped whenever the image encoder's weights change in place (a LoRA merge, a phase's weights swapped
        # in): the embedding cache computes encoder_key() once per model and version
        self.encoder_version = 0

    @property
    def encoder_trains(self) -> bool:
        """Whether the image encoder holds LoRA adapters (``module.train=lora``): its embeddings change as it
        trains, so they cannot come from the cache.
        """
        return lora.has_adapters(self.image_encoder)

    def encoder_changed(self) -> None:
        """Record that the image encoder's weights changed (its embeddings and cache key change with them)."""
        self.encoder_version += 1

    def remember_base_decoder(self) -> SamModel:
        """Record the hash of the mask decoder as the base weights hold it; returns the model.

        The builders call it once the weights are loaded, so rows scored with the base decoder are
        identified by its content even after a fine-tuned decoder replaced it (a resumed training run), and
        a checkpoint file overwritten in place at the same path is told apart from the old one.
        """
        self.base_decoder_hash = self.module_hash(self.mask_decoder)
        return self

    def freeze_encoders(self) -> None:
        """Freeze image and prompt encoder: no gradients and eval mode (BatchNorm/dropout fixed)."""
        for module in (self.image_encoder, self.prompt_encoder):
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True) -> SamModel:
        """Set train mode on the decoder only where the encoders are frozen."""
        super().train(mode)
        for module in (self.image_encoder, self.prompt_encoder):
            if not any(p.requires_grad for p in module.parameters()):
                module.eval()
        return self

    def use_sdpa(self, on: bool = True) -> None:
        """Run segment_anything's attention layers through PyTorch's scaled-dot-product attention (or back).

        Weights and names stay; outputs change by float rounding only (:mod:`sam4med.models.sdpa`).
        Encoders without segment_anything attention (TinyViT) are left as they are; an encoder that
        was switched gets embedding cache keys of its own.
        """
        sdpa.use_sdpa(self.image_encoder, on)
        sdpa.use_sdpa(self.mask_decoder, on)

    @property
    def encoder_sdpa(self) -> bool:
        """Whether an image-encoder attention layer runs through SDPA (part of the embedding cache key)."""
        return sdpa.uses_sdpa(self.image_encoder)

    @property
    def decoder_sdpa(self) -> bool:
        """Whether a mask-decoder attention layer runs through SDPA."""
        return sdpa.uses_sdpa(self.mask_decoder)

    def module_hash(self, module: nn.Module) -> str:
        """SHA-256 (first 16 hex digits) of a submodule's parameters and buffers."""
        digest = hashlib.sha256()
        for key, value in sorted(module.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    def encoder_key(self) -> str:
        """Identifies what an image embedding depends on: encoder weights, preprocessing, precision, attention."""
        # suffixes only when set, so that float32 keys stay those of earlier versions
        precision = "-bf16" if self.encoder_bf16 else ""
        attention = "-sdpa" if self.encoder_sdpa else ""
        return f"{self.name}-{self.module_hash(self.image_encoder)}-{self.preprocessing.key()}{precision}{attention}"

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Image embeddings, without gradients (see :meth:`encode_with_grad`).

        Args:
            images: B x 3 x S x S preprocessed inputs (see :class:`Preprocessing`).

        Returns:
            B x C x h x w float32 embeddings (C = 256 for every SAM-family backbone), computed under
            bfloat16 autocast when ``encoder_bf16`` is set.
        """
        return self.encode_with_grad(images)

    def encode_with_grad(self, images: torch.Tensor) -> torch.Tensor:
        """As :meth:`encode`, with gradients where the encoder has trainable weights (``module.train=lora``)."""
        images = images.to(self.device)
        with torch.autocast(images.device.type, dtype=torch.bfloat16, enabled=self.encoder_bf16):
            return self.image_encoder(images).float()

    def embed_image(self, image: np.ndarray) -> torch.Tensor:
        """Embedding of one HxWx3 uint8 RGB image: C x h x w."""
        return self.encode(self.preprocessing.image_to_tensor(image)[None])[0]

    def decode(
        self,
        image_embedding: torch.Tensor,
        *,
        point_coords: torch.Tensor | None,
        point_labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
        multimask_output: bool,
        shared_work: bool = False,
        mask_input: torch.Tensor | None = None,
    ) -> DecoderOutput:
        """Decode N prompts on one image in one call.

        Args:
            image_embedding: C x h x w (or 1 x C x h x w) embedding of the image.
            point_coords: N x P x 2 XY points in model-input pixels, or None.
            point_labels: N x P labels (1 foreground, 0 background), or None.
            boxes: N x 4 XYXY boxes in model-input pixels, or None.
            multimask_output: return SAM's three multimask outputs instead of the single mask.
            shared_work: decode with :mod:`sam4med.models.shared_decoder` (the work all prompts of the
                image share done once; equal to segment_anything's decoder up to float rounding); not with
                ``mask_input``, whose dense embedding differs per prompt.
            mask_input: N x 1 x 4h x 4w low-resolution logits of earlier predictions, SAM's mask prompt
                (``SamPredictor.predict(mask_input=...)``), or None.
        """
        if image_embedding.dim() == 3:
            image_embedding = image_embedding[None]
        points = None
        if point_coords is not None:
            points = (point_coords.to(self.device, torch.float32), point_labels.to(self.device, torch.int))
        box_tensor = boxes.to(self.device, torch.float32) if boxes is not None else None
        masks = mask_input.to(self.device, torch.float32) if mask_input is not None else None
        sparse, dense = self.prompt_encoder(points=points, boxes=box_tensor, masks=masks)
        if shared_work and masks is None:  # without a mask prompt every prompt's dense embedding is the same: pass one
            image_pe = self.prompt_encoder.get_dense_pe()
            logits, iou = shared_decoder.decode(
                self.mask_decoder, image_embedding.to(self.device), image_pe, dense[:1], sparse
            )
            chosen = slice(1, None) if multimask_output else slice(0, 1)  # as MaskDecoder.forward
            return DecoderOutput(low_res_logits=logits[:, chosen], iou_predictions=iou[:, chosen])
        logits, iou = self.mask_decoder(
            image_embeddings=image_embedding.to(self.device),
            image_pe=self.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask_output,
        )
        return DecoderOutput(low_res_logits=logits, iou_predictions=iou)

    @property
    def device(self) -> torch.device:
        """Device of the decoder's parameters."""
        return next(self.mask_decoder.parameters()).device
