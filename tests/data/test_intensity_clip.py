import numpy as np
import pytest

from sam4med.data.intensity_clip import check_percentiles, clip_percentiles
from sam4med.errors import ConfigError


def test_clip_by_hand():
    # 200 pixels 0..199, the value repeated in 3 channels: 600 sorted values, each value 3 times.
    # 0.95th percentile: position 0.0095 * 599 = 5.6905, between value 1 (positions 3-5) and 2 -> 1.6905;
    # 99.5th: position 596.005, between 198 (594-596) and 199 -> 198.005 (all channels count together)
    values = np.arange(200, dtype=np.uint8).reshape(10, 20)
    image = np.repeat(values[..., None], 3, axis=2)
    out = clip_percentiles(image, 0.95, 99.5)
    low, high = 1.6905, 198.005
    expected = (np.clip(values.astype(float), low, high) - low) / (high - low) * 255
    expected[values == 0] = 0  # pixels that were 0 stay 0
    assert np.array_equal(out[..., 0], expected.astype(np.uint8))
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 0 and out[0, 2, 0] == int((2 - low) / (high - low) * 255)
    assert out.max() == 255 and out.dtype == np.uint8


def test_flat_image_becomes_zero_and_bad_settings_are_refused():
    assert not clip_percentiles(np.full((4, 4, 3), 7, np.uint8), 0.95, 99.5).any()
    with pytest.raises(ConfigError, match=r"clip_percentiles must be \[low, high\]"):
        check_percentiles([99.5, 0.95])


def test_dataset_applies_the_clip_as_it_reads(synthetic_root):
    from sam4med.data.dataset import CosmosDataset

    plain, clipped = CosmosDataset(synthetic_root)[0], CosmosDataset(synthetic_root, clip_percentiles=[0.95, 99.5])[0]
    assert np.array_equal(clipped.image, clip_percentiles(plain.image, 0.95, 99.5))
    assert np.array_equal(clipped.masks, plain.masks)


def test_min_object_area_keeps_an_object_of_exactly_that_area(synthetic_root):
    # the COSMOS rule "objects of 50 pixels or fewer are removed" is min_object_area=51
    from sam4med.data.dataset import CosmosDataset

    item = CosmosDataset(synthetic_root)[0]
    area = int(item.masks.sum(axis=(1, 2)).min())
    smallest = item.objects[int(item.masks.sum(axis=(1, 2)).argmin())].key
    assert smallest in {o.key for o in CosmosDataset(synthetic_root, min_object_area=area)[0].objects}
    assert smallest not in {o.key for o in CosmosDataset(synthetic_root, min_object_area=area + 1)[0].objects}
