"""One sample per (image, object), consistent with the per-image reader."""

import numpy as np

from sam4med.data.dataset import CosmosDataset, CosmosObjectDataset


def test_object_samples_match_image_items(synthetic_root):
    images = CosmosDataset(synthetic_root, min_object_area=4)
    objects = CosmosObjectDataset(images)
    expected = [(i, k) for i in range(len(images)) for k in range(len(images[i].objects))]
    assert len(objects) == len(expected)
    for position, (i, k) in enumerate(expected):
        sample, item = objects[position], images[i]
        assert sample.ref == item.objects[k]
        assert sample.image_id == item.record.image_id and sample.spacing == (1.0, 1.0)
        np.testing.assert_array_equal(sample.mask, item.masks[k])
        np.testing.assert_array_equal(sample.image, item.image)
    assert {s.object_name for s in (objects[p] for p in range(len(objects)))} == {
        "Disc",
        "Ring",
        "TwoPart",
        "Bar",
        "BorderDisc",
    }
