"""The one place that says how each backbone wants its input image.

Every backbone takes a square ``img_size`` x ``img_size`` RGB tensor. With ``resize="longest_side"``
(SAM, LiteMedSAM, micro-sam) an image of original size (H, W) is resized so that its longest side equals
``img_size`` (aspect ratio kept, new size ``(round(H * s), round(W * s))`` with ``s = img_size / max(H, W)``),
normalised, and zero-padded at the bottom and right. With ``resize="square"`` (MedSAM) it is stretched
to ``img_size`` x ``img_size`` (X scaled by ``img_size / W``, Y by ``img_size / H``) and not padded.
Prompt coordinates are scaled by the same per-axis factors, so a prompt is always given in original
pixel space (X = column, Y = row) and converted here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Preprocessing:
    """Input contract of one backbone.

    Attributes:
        img_size: side of the square model input, in pixels (1024 for SAM, 256 for LiteMedSAM).
        normalization: ``"mean_std"`` (SAM: ``(x - pixel_mean) / pixel_std`` on 0..255 RGB) or
            ``"minmax"`` (LiteMedSAM: ``(x - min) / max(max - min, 1e-8)`` over the resized image).
        interpolation: ``"bilinear"`` (PIL, as ``SamPredictor`` resizes; OpenCV ``INTER_LINEAR`` with
            ``square``), ``"area"`` (OpenCV ``INTER_AREA``, as LiteMedSAM's inference script resizes) or
            ``"cubic"`` (OpenCV ``INTER_CUBIC``, for MedSAM's bicubic resize).
        pixel_mean: per-channel RGB mean for ``mean_std``.
        pixel_std: per-channel RGB std for ``mean_std``.
        resize: ``"longest_side"`` (keep the aspect ratio, pad) or ``"square"`` (stretch, as MedSAM).
    """

    img_size: int
    normalization: Literal["mean_std", "minmax"] = "mean_std"
    interpolation: Literal["bilinear", "area", "cubic"] = "bilinear"
    pixel_mean: tuple[float, float, float] = SAM_PIXEL_MEAN
    pixel_std: tuple[float, float, float] = SAM_PIXEL_STD
    resize: Literal["longest_side", "square"] = "longest_side"

    def resized_shape(self, original_size: tuple[int, int]) -> tuple[int, int]:
        """(H, W) of the image after the resize, before padding."""
        if self.resize == "square":
            return self.img_size, self.img_size
        return ResizeLongestSide.get_preprocess_shape(original_size[0], original_size[1], self.img_size)

    def key(self) -> str:
        """A string that changes whenever the preprocessing would produce a different tensor."""
        return (
            f"{self.img_size}-{self.normalization}-{self.interpolation}-"
            f"{','.join(map(str, self.pixel_mean))}-{','.join(map(str, self.pixel_std))}"
            + ("" if self.resize == "longest_side" else f"-{self.resize}")
        )

    def _scale(self, original_size: tuple[int, int]) -> np.ndarray:
        """Per-axis (X, Y) factors from original to model pixels under ``square``."""
        return np.array([self.img_size / original_size[1], self.img_size / original_size[0]])

    def image_to_tensor(self, image: np.ndarray) -> torch.Tensor:
        """Turn one image into the model input.

        Args:
            image: HxWx3 uint8 RGB (a grey image must be repeated to three channels by the caller).

        Returns:
            float32 tensor 3 x img_size x img_size.
        """
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
        new_h, new_w = self.resized_shape(image.shape[:2])
        if self.interpolation == "bilinear" and self.resize == "longest_side":
            resized = ResizeLongestSide(self.img_size).apply_image(image)
        else:
            flag = {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA, "cubic": cv2.INTER_CUBIC}[self.interpolation]
            resized = cv2.resize(image, (new_w, new_h), interpolation=flag)
        x = torch.as_tensor(resized).permute(2, 0, 1).float()
        if self.normalization == "mean_std":
            mean = torch.tensor(self.pixel_mean).view(3, 1, 1)
            std = torch.tensor(self.pixel_std).view(3, 1, 1)
            x = (x - mean) / std
        else:
            x = (x - x.min()) / torch.clamp(x.max() - x.min(), min=1e-8)
        return F.pad(x, (0, self.img_size - new_w, 0, self.img_size - new_h))

    def coords_to_model(self, coords: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Scale ...x2 XY coordinates from original pixels to model-input pixels."""
        if self.resize == "square":
            return np.asarray(coords, dtype=np.float64) * self._scale(original_size)
        return ResizeLongestSide(self.img_size).apply_coords(np.asarray(coords, dtype=np.float64), original_size)

    def boxes_to_model(self, boxes: np.ndarray, original_size: tuple[int, int]) -> np.ndarray:
        """Scale Nx4 XYXY boxes from original pixels to model-input pixels."""
        if self.resize == "square":
            return np.asarray(boxes, dtype=np.float64) * np.tile(self._scale(original_size), 2)
        return ResizeLongestSide(self.img_size).apply_boxes(np.asarray(boxes, dtype=np.float64), original_size)

    def mask_to_model(self, mask: np.ndarray) -> torch.Tensor:
        """Resize a HxW binary mask like the image (nearest), pad to img_size; float32 img_size^2."""
        new_h, new_w = self.resized_shape(mask.shape[:2])
        resized = cv2.resize(mask.astype(np.uint8), (new_w, new_h), interpolation=cv2.INTER_NEAREST_EXACT)
        out = torch.zeros(self.img_size, self.img_size)
        out[:new_h, :new_w] = torch.as_tensor(resized > 0, dtype=torch.float32)
        return out

    def logits_to_original(self, low_res_logits: torch.Tensor, original_size: tuple[int, int]) -> torch.Tensor:
        """Upsample decoder logits back to the original image, as ``Sam.postprocess_masks`` does.

        Args:
            low_res_logits: B x M x h x w mask logits from the decoder.
            original_size: (H, W) of the original image.

        Returns:
            B x M x H x W logits; a pixel is foreground where its logit is > 0. Under ``square`` the
            low-resolution logits go straight to (H, W), as MedSAM's inference does.
        """
        if self.resize == "square":
            return F.interpolate(low_res_logits, original_size, mode="bilinear", align_corners=False)
        x = F.interpolate(low_res_logits, (self.img_size, self.img_size), mode="bilinear", align_corners=False)
        new_h, new_w = self.resized_shape(original_size)
        x = x[..., :new_h, :new_w]
        return F.interpolate(x, original_size, mode="bilinear", align_corners=False)
