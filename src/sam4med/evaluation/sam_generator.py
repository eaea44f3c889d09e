"""The reference for S1: ``segment_anything.SamAutomaticMaskGenerator`` itself, run on a cached embedding.

Only the image encoder is replaced: the generator's predictor receives the embedding from the cache
instead of encoding the image, and the ``Sam`` it wraps gets an encoder stand-in that refuses to run.
:class:`~sam4med.evaluation.everything.EverythingMode` must give the same masks, in the same order;
the tests and ``benchmarks/everything_mode.py`` compare the two.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator, SamPredictor
from segment_anything.modeling import Sam
from torch import nn

from sam4med.evaluation.everything import EverythingSettings, GeneratedMasks
from sam4med.models.sam_model import SamModel


class _NoEncoder(nn.Module):
    """Stands in for the image encoder: carries ``img_size`` for the predictor and never runs."""

    def __init__(self, img_size: int) -> None:
        super().__init__()
        self.img_size = img_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("everything mode runs on cached embeddings; the image encoder must not be called")


class _EmbeddingPredictor(SamPredictor):
    """A ``SamPredictor`` whose ``set_image`` installs a given embedding instead of encoding the image."""

    def __init__(self, sam: Sam) -> None:
        super().__init__(sam)
        self.pending: tuple[torch.Tensor, tuple[int, int], tuple[int, int]] | None = None

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Install the pending embedding; ``image`` (H x W x C) only gives the size and must be the whole image."""
        if self.pending is None:
            raise RuntimeError("no embedding given for this image")
        embedding, original_size, input_size = self.pending
        if tuple(image.shape[:2]) != original_size:
            raise ValueError(f"everything mode needs the whole image {original_size}, got {image.shape[:2]} (crops?)")
        self.reset_image()
        self.original_size = original_size
        self.input_size = input_size
        self.features = embedding[None].to(self.device, torch.float32)
        self.is_image_set = True


def embedding_only_sam(model: SamModel) -> Sam:
    """A ``segment_anything.Sam`` sharing ``model``'s prompt encoder and decoder, with no usable image encoder."""
    pre = model.preprocessing
    sam = Sam(
        image_encoder=_NoEncoder(pre.img_size),
        prompt_encoder=model.prompt_encoder,
        mask_decoder=model.mask_decoder,
        pixel_mean=list(pre.pixel_mean),
        pixel_std=list(pre.pixel_std),
    )
    return sam.to(model.device).eval()


class SamGenerator:
    """``SamAutomaticMaskGenerator`` on cached embeddings: ``generator(embedding, (H, W))`` -> masks.

    Args:
        model: the model (only its prompt encoder and mask decoder run).
        settings: generator settings; ``points_per_batch`` is the generator's decoder batch.
    """

    def __init__(self, model: SamModel, settings: EverythingSettings) -> None:
        self.model = model
        self.generator = SamAutomaticMaskGenerator(
            embedding_only_sam(model), output_mode="binary_mask", crop_n_layers=0, **asdict(settings)
        )
        self.predictor = _EmbeddingPredictor(self.generator.predictor.model)
        self.generator.predictor = self.predictor

    @torch.no_grad()
    def __call__(self, embedding: torch.Tensor, original_size: tuple[int, int]) -> GeneratedMasks:
        """Masks of the image whose C x h x w ``embedding`` is given; ``original_size`` is its (H, W)."""
        size = (int(original_size[0]), int(original_size[1]))
        self.predictor.pending = (embedding, size, self.model.preprocessing.resized_shape(size))
        try:
            # the generator reads only the shape of the image it is given; no pixel is used
            placeholder = np.broadcast_to(np.zeros((1, 1, 3), dtype=np.uint8), (*size, 3))
            records = self.generator.generate(placeholder)
        finally:
            self.predictor.pending = None
        if not records:
            return GeneratedMasks(np.zeros((0, *size), dtype=bool), np.zeros(0), np.zeros(0))
        return GeneratedMasks(
            masks=np.stack([r["segmentation"] for r in records]).astype(bool),
            predicted_iou=np.array([r["predicted_iou"] for r in records], dtype=np.float64),
            stability_score=np.array([r["stability_score"] for r in records], dtype=np.float64),
        )
