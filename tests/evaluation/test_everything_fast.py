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
        # a threshold some LiteMedSAM masks pass, so the prefilter (real weights) both keeps and drops points
        low = replace(settings, pred_iou_thresh=0.1)
        reference = SamGenerator(model, low)(embedding, image.shape[:2])
        assert_same(EverythingMode(model, low)(embedding, image.shape[:2]), reference, exact=False)
    assert found >= 2


@pytest.mark.parametrize("case", ["iou filter only", "stability filter", "small regions removed"])
def test_prefilter_changes_no_mask_and_decodes_fewer_points(diverse_model, synthetic_root, case, monkeypatch):
    # at 0.15 every grid point of this model has a mask within the margin; at 0.25 more than half are dropped
    settings = replace(CASES[case], pred_iou_thresh=0.25)
    image = CosmosDataset(synthetic_root)[0].image
    embedding = diverse_model.embed_image(image)
    decoded = {True: 0, False: 0}
    results = {}
    for prefilter in (True, False):
        mode = EverythingMode(diverse_model, settings, prefilter=prefilter)
        decode = mode._decode

        def counting(points, image_embedding, decode=decode, prefilter=prefilter):
            decoded[prefilter] += len(points)
            return decode(points, image_embedding)

        monkeypatch.setattr(mode, "_decode", counting)
        results[prefilter] = mode(embedding, image.shape[:2])
    assert len(results[False].masks) >= 1
    assert_same(results[True], results[False], exact=False)
    assert decoded[False] == settings.points_per_side**2
    assert decoded[True] < decoded[False]


def test_prefilter_that_keeps_no_point_gives_no_mask(diverse_model, synthetic_root):
    image = CosmosDataset(synthetic_root)[0].image
    embedding = diverse_model.embed_image(image)
    settings = replace(BASE, pred_iou_thresh=0.99)  # a random decoder's predicted IoU stays far below
    ours = EverythingMode(diverse_model, settings)(embedding, image.shape[:2])
    reference = SamGenerator(diverse_model, settings)(embedding, image.shape[:2])
    assert len(reference.masks) == 0
    assert_same(ours, reference, exact=True)
    assert ours.masks.shape == (0, *image.shape[:2])


def test_where_the_sample_passes_the_prefilter_stops_and_every_point_is_decoded_once(
    diverse_model, synthetic_root, monkeypatch
):
    import sam4med.evaluation.everything as everything

    image = CosmosDataset(synthetic_root)[0].image
    embedding = diverse_model.embed_image(image)
    settings = replace(BASE, points_per_batch=16)  # at 0.15 every point of this model passes the prefilter
    mode = EverythingMode(diverse_model, settings)
    prefilter, decoded = [], []
    original_iou, original_decode = everything.shared_decoder.predict_iou, mode._decode
    monkeypatch.setattr(everything.shared_decoder, "predict_iou", lambda *a: prefilter.append(1) or original_iou(*a))
    monkeypatch.setattr(
        mode, "_decode", lambda points, image: decoded.append(len(points)) or original_decode(points, image)
    )
    ours = mode(embedding, image.shape[:2])
    points = settings.points_per_side**2
    sampled = -(-points // everything.PREFILTER_SAMPLE)  # every 8th point of the grid
    assert len(prefilter) == -(-sampled // 16)  # the IoU heads of the sample only, 16 per call
    assert sum(decoded) == points  # each point then decoded once by SAM's decoder
    assert_same(ours, SamGenerator(diverse_model, settings)(embedding, image.shape[:2]), exact=False)
