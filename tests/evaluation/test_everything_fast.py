"""The fast everything mode gives SamAutomaticMaskGenerator's masks, scores and order under every setting.

Called with SAM's batch (``points_per_batch``) everything is bit-identical. With other decoder call
sizes the masks are still identical here, but predicted IoU and stability may differ in the last float
bits (the CPU's matrix kernels depend on the number of rows), so those are compared to 1e-6.
"""

from dataclasses import replace

import numpy as np
import pytest

from sam4med.data.dataset import CosmosDataset
from sam4med.evaluation.everything import EverythingMode, EverythingSettings
from sam4med.evaluation.sam_generator import SamGenerator
from sam4med.models.builders import build_tiny

# a tiny random model's logits stay within (-1, 1), so a small offset is what lets the stability filter bite
BASE = EverythingSettings(points_per_side=12, points_per_batch=64, pred_iou_thresh=0.15, stability_score_thresh=0.0)
CASES = {
    "iou filter only": BASE,
    "stability filter": replace(BASE, stability_score_offset=0.02, stability_score_thresh=0.3),
    "no filter, strict NMS": replace(BASE, pred_iou_thresh=0.0, box_nms_thresh=0.3),
    "small regions removed": replace(BASE, min_mask_region_area=6),
    "odd grid and batch": replace(BASE, points_per_side=9, points_per_batch=10),
}


@pytest.fixture(scope="module")
def diverse_model():
    return build_tiny(seed=34)


def assert_same(ours, reference, *, exact: bool) -> None:
    assert ours.masks.shape == reference.masks.shape
    np.testing.assert_array_equal(ours.masks, reference.masks)
    compare = np.testing.assert_array_equal if exact else lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6)
    compare(ours.predicted_iou, reference.predicted_iou)
    compare(ours.stability_score, reference.stability_score)


@pytest.mark.parametrize("case", list(CASES))
def test_fast_mode_equals_sams_generator(diverse_model, synthetic_root, case):
    settings = CASES[case]
    dataset = CosmosDataset(synthetic_root)
    found = 0
    for index in range(1):
        image = dataset[index].image
        embedding = diverse_model.embed_image(image)
        reference = SamGenerator(diverse_model, settings)(embedding, image.shape[:2])
        for per_call in (settings.points_per_batch, 7):
            ours = EverythingMode(diverse_model, settings, per_call=per_call)(embedding, image.shape[:2])
            assert_same(ours, reference, exact=per_call == settings.points_per_batch)
        found += len(reference.masks)
    assert found >= 1  # the case generates masks, so the comparison says something


def test_stability_filter_drops_masks(diverse_model, synthetic_root):
    image = CosmosDataset(synthetic_root)[0].image
    embedding = diverse_model.embed_image(image)
    kept = EverythingMode(diverse_model, replace(CASES["stability filter"], stability_score_thresh=0.0))
    filtered = EverythingMode(diverse_model, CASES["stability filter"])
    assert len(filtered(embedding, image.shape[:2]).masks) < len(kept(embedding, image.shape[:2]).masks)


@pytest.mark.slow
def test_fast_mode_equals_sams_generator_with_litemedsam(colin27_root):
    from sam4med.models.builders import build_litemedsam

    model = build_litemedsam()
    dataset = CosmosDataset(colin27_root)
    # no filters: at SAM's thresholds no LiteMedSAM mask of a Colin27 slice survives, which would compare nothing
    settings = EverythingSettings(points_per_side=8, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    found = 0
    for index in (len(dataset) // 2,):
        image = dataset[index].image
        embedding = model.embed_image(image)
        reference = SamGenerator(model, settings)(embedding, image.shape[:2])
        assert_same(EverythingMode(model, settings)(embedding, image.shape[:2]), reference, exact=True)
        found += len(reference.masks)
    assert found >= 2
