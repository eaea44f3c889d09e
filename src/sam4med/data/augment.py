"""Training-time augmentation (online input mode only): an image and its masks transformed together.

Flips, a small affine (rotation, scale, translation; nearest-neighbour for masks, zeros outside) and
intensity changes (brightness, contrast, gamma; image only), with albumentations. Boxes are not
transformed here: the caller recomputes them from the transformed masks. With cached embeddings
there is no augmentation (the embedding of an augmented image does not exist).

Shapes: image H x W x 3 (or H x W) uint8; masks N x H x W bool; the output has the same shapes.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from sam4med.errors import ConfigError


def build_pipeline(
    *,
    hflip: float = 0.5,
    vflip: float = 0.0,
    rotate: float = 10.0,
    scale: float = 0.1,
    translate: float = 0.05,
    p_affine: float = 0.5,
    brightness: float = 0.1,
    contrast: float = 0.1,
    gamma: float = 0.1,
    p_intensity: float = 0.5,
) -> A.Compose:
    """An albumentations pipeline from plain settings.

    Args:
        hflip, vflip: probability of a horizontal / vertical flip.
        rotate: maximum rotation in degrees (either way).
        scale: maximum relative zoom (0.1 = 0.9..1.1).
        translate: maximum shift as a fraction of the image size.
        p_affine: probability of the affine transform.
        brightness, contrast: maximum relative change.
        gamma: maximum relative gamma change (0.1 = gamma 0.9..1.1).
        p_intensity: probability of each intensity transform.
    """
    probabilities = (hflip, vflip, p_affine, p_intensity)
    if any(not 0 <= p <= 1 for p in probabilities):
        raise ConfigError(f"augmentation probabilities must be in 0..1, got {probabilities}")
    if min(rotate, scale, translate, brightness, contrast, gamma) < 0 or scale >= 1 or gamma >= 1:
        raise ConfigError("augmentation ranges must be >= 0 (scale and gamma below 1)")
    return A.Compose(
        [
            A.HorizontalFlip(p=hflip),
            A.VerticalFlip(p=vflip),
            A.Affine(
                rotate=(-rotate, rotate),
                scale=(1 - scale, 1 + scale),
                translate_percent=(-translate, translate),
                interpolation=cv2.INTER_LINEAR,
                mask_interpolation=cv2.INTER_NEAREST,
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=p_affine,
            ),
            A.RandomBrightnessContrast(brightness_limit=brightness, contrast_limit=contrast, p=p_intensity),
            A.RandomGamma(gamma_limit=(100 * (1 - gamma), 100 * (1 + gamma)), p=p_intensity),
        ]
    )


def apply(pipeline: A.Compose, image: np.ndarray, masks: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Transform ``image`` (H x W [x 3] uint8) and ``masks`` (N x H x W bool) together, seeded.

    The same seed gives the same result; masks stay bool and aligned with the image.
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise ValueError(f"image must be H x W or H x W x 3 uint8, got {image.shape} {image.dtype}")
    if masks.ndim != 3 or masks.shape[1:] != image.shape[:2]:
        raise ValueError(f"masks must be N x H x W with H x W = {image.shape[:2]}, got {masks.shape}")
    pipeline.set_random_seed(int(seed))
    if masks.shape[0] == 0:
        return pipeline(image=image)["image"], masks
    out = pipeline(image=image, masks=masks.astype(np.uint8))
    return out["image"], np.asarray(out["masks"]).astype(bool)


class Augmentation:
    """A callable ``(image, masks, rng) -> (image, masks)`` (see :func:`build_pipeline` for the settings).

    The albumentations seed of each call is drawn from ``rng``, so a sample's augmentation depends on
    the caller's seed only.
    """

    def __init__(self, **settings: float) -> None:
        self.settings = dict(settings)
        self.pipeline = build_pipeline(**settings)

    def __call__(self, image: np.ndarray, masks: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Transform one image and its masks together with a seed drawn from ``rng``."""
        return apply(self.pipeline, image, masks, int(rng.integers(0, 2**31 - 1)))
