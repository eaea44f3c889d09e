import numpy as np
import pytest
import torch

from sam4med.models.preprocessing import Preprocessing


@pytest.mark.parametrize("normalization", ["mean_std", "minmax"])
@pytest.mark.parametrize("interpolation", ["bilinear", "area"])
def test_resize_longest_side_and_pad(normalization, interpolation):
    pre = Preprocessing(img_size=64, normalization=normalization, interpolation=interpolation)
    image = np.full((30, 60, 3), 200, dtype=np.uint8)
    image[0, 0] = 0
    x = pre.image_to_tensor(image)
    assert x.shape == (3, 64, 64)
    assert pre.resized_shape((30, 60)) == (32, 64)
    assert torch.all(x[:, 32:, :] == 0)  # padding at the bottom
    if normalization == "minmax":
        assert x[:, :32].max() == pytest.approx(1.0) and x[:, :32].min() == pytest.approx(0.0)


def test_coordinates_scale_per_axis():
    pre = Preprocessing(img_size=64)
    xy = pre.coords_to_model(np.array([[59.0, 29.0]]), (30, 60))
    np.testing.assert_allclose(xy, [[59 * 64 / 60, 29 * 32 / 30]])
    box = pre.boxes_to_model(np.array([[0, 0, 60, 30]]), (30, 60))
    np.testing.assert_allclose(box, [[0, 0, 64, 32]])


def test_mask_round_trip_through_model_space():
    pre = Preprocessing(img_size=64)
    mask = np.zeros((30, 60), dtype=bool)
    mask[5:20, 10:40] = True
    model_mask = pre.mask_to_model(mask)
    assert model_mask.shape == (64, 64) and model_mask[32:].sum() == 0
    logits = (model_mask * 20 - 10)[None, None]
    back = pre.logits_to_original(logits, (30, 60))[0, 0] > 0
    assert (back.numpy() == mask).mean() > 0.97


def test_rejects_grey_image():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        Preprocessing(img_size=64).image_to_tensor(np.zeros((10, 10), dtype=np.uint8))
