"""Augmentation moves an image and its masks together and is deterministic under a seed."""

import numpy as np
import pytest

from sam4med.data.augment import Augmentation, apply, build_pipeline
from sam4med.errors import ConfigError


def pair():
    image = np.zeros((48, 64, 3), dtype=np.uint8)
    masks = np.zeros((2, 48, 64), dtype=bool)
    masks[0, 10:20, 8:24] = True
    masks[1, 28:40, 36:56] = True
    image[masks[0]] = (200, 60, 60)
    image[masks[1]] = (60, 200, 60)
    return image, masks


def test_masks_follow_the_image():
    image, masks = pair()
    pipeline = build_pipeline(hflip=0.5, vflip=0.5, rotate=20, scale=0.2, translate=0.1, p_affine=1.0, p_intensity=0)
    for seed in range(6):
        out_image, out_masks = apply(pipeline, image, masks, seed)
        assert out_image.shape == image.shape and out_masks.shape == masks.shape and out_masks.dtype == bool
        red, green = out_image[..., 0] > 130, out_image[..., 1] > 130
        # nearest-neighbour masks and bilinear images differ on the rim only
        assert (red ^ out_masks[0]).sum() <= 0.25 * out_masks[0].sum() + 4
        assert (green ^ out_masks[1]).sum() <= 0.25 * out_masks[1].sum() + 4


def test_flip_only_is_exact():
    image, masks = pair()
    out_image, out_masks = apply(build_pipeline(hflip=1.0, p_affine=0, p_intensity=0), image, masks, 0)
    np.testing.assert_array_equal(out_image, image[:, ::-1])
    np.testing.assert_array_equal(out_masks, masks[:, :, ::-1])


def test_deterministic_under_a_seed():
    image, masks = pair()
    augment = Augmentation(p_affine=1.0, p_intensity=1.0)
    a = augment(image, masks, np.random.default_rng([1, 2]))
    b = augment(image, masks, np.random.default_rng([1, 2]))
    c = augment(image, masks, np.random.default_rng([1, 3]))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_intensity_changes_leave_masks_alone():
    image, masks = pair()
    out_image, out_masks = apply(build_pipeline(hflip=0, p_affine=0, p_intensity=1.0), image, masks, 5)
    np.testing.assert_array_equal(out_masks, masks)
    assert not np.array_equal(out_image, image)


def test_no_masks_and_bad_settings():
    image, _ = pair()
    out_image, out_masks = apply(build_pipeline(), image, np.zeros((0, 48, 64), dtype=bool), 0)
    assert out_image.shape == image.shape and out_masks.shape == (0, 48, 64)
    with pytest.raises(ConfigError):
        build_pipeline(hflip=2.0)
