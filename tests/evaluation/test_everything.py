"""S1: everything mode on cached embeddings equals segment_anything's SamAutomaticMaskGenerator."""

import inspect

import numpy as np
import pytest
from hydra.utils import instantiate
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.modeling import Sam

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import (
    EverythingMode,
    EverythingSettings,
    GeneratedMasks,
    dice_matrix,
    match_masks,
)
from sam4med.evaluation.sam_generator import SamGenerator
from sam4med.metrics import dice
from sam4med.models.builders import build_tiny
from tests.helpers import compose_config

# tiny random models make near-identical masks for every point; this seed makes several distinct ones.
# Their stability scores are all 0, so the stability filter is off here (it is exercised by the default test).
SMALL = EverythingSettings(points_per_side=16, points_per_batch=50, pred_iou_thresh=0.15, stability_score_thresh=0.0)


@pytest.fixture(scope="module")
def diverse_model():
    return build_tiny(seed=34)


def reference_generator(model, settings: EverythingSettings) -> SamAutomaticMaskGenerator:
    """The unmodified generator, encoding the image itself."""
    sam = Sam(image_encoder=model.image_encoder, prompt_encoder=model.prompt_encoder, mask_decoder=model.mask_decoder)
    return SamAutomaticMaskGenerator(
        sam.eval(),
        points_per_side=settings.points_per_side,
        points_per_batch=settings.points_per_batch,
        pred_iou_thresh=settings.pred_iou_thresh,
        stability_score_thresh=settings.stability_score_thresh,
    )


def test_s1_masks_and_matches_equal_the_automatic_mask_generator(diverse_model, synthetic_root, tmp_path):
    dataset = CosmosDataset(synthetic_root)
    cache = EmbeddingCache(tmp_path)
    mode = EverythingMode(diverse_model, SMALL)
    reference = reference_generator(diverse_model, SMALL)
    compared = 0
    for index in range(3):
        item = dataset[index]
        cache.get(diverse_model, item.image)
        embedding = cache.get(diverse_model, item.image)  # read back from disk
        ours = mode(embedding, item.image.shape[:2])
        records = reference.generate(item.image)
        assert len(ours.masks) == len(records) > 1
        for k, record in enumerate(records):
            np.testing.assert_array_equal(ours.masks[k], record["segmentation"])
            assert ours.predicted_iou[k] == record["predicted_iou"]
        # Eq. 1 done by hand on the reference masks: each object takes the mask with the best Dice
        matched = match_masks(ours, item.masks)
        for gt, mask, index_k in zip(item.masks, matched.masks, matched.index, strict=True):
            scores = [dice(r["segmentation"], gt) for r in records]
            assert index_k == int(np.argmax(scores))
            np.testing.assert_array_equal(mask, records[int(np.argmax(scores))]["segmentation"])
            compared += 1
    assert cache.misses == 3 and cache.hits == 3
    assert compared > 5


def test_s1_never_runs_the_image_encoder(diverse_model, synthetic_root, monkeypatch):
    item = CosmosDataset(synthetic_root)[0]
    embedding = diverse_model.embed_image(item.image)
    reference = SamGenerator(diverse_model, SMALL)
    assert not any(p is diverse_model.image_encoder for p in reference.generator.predictor.model.children())
    with pytest.raises(RuntimeError, match="cached embeddings"):
        reference.generator.predictor.model.image_encoder(item.image)

    def refuse(*args):
        raise AssertionError("the image encoder ran")

    monkeypatch.setattr(diverse_model.image_encoder, "forward", refuse)
    assert len(EverythingMode(diverse_model, SMALL)(embedding, item.image.shape[:2]).masks) > 1


def test_default_settings_are_sams_and_the_config_uses_them(tmp_path):
    signature = inspect.signature(SamAutomaticMaskGenerator.__init__).parameters
    defaults = EverythingSettings()
    for name, value in vars(defaults).items():
        assert signature[name].default == value, name
    assert (defaults.points_per_side, defaults.points_per_batch) == (32, 64)
    assert (defaults.pred_iou_thresh, defaults.stability_score_thresh, defaults.box_nms_thresh) == (0.88, 0.95, 0.7)
    cfg = compose_config("evaluate", tmp_path)
    assert instantiate(cfg.everything) == defaults
    assert list(cfg.evaluation.strategies) == ["S1", "S2", "S3", "S4", "S5", "S6"]
    grid = compose_config("evaluate", tmp_path, ["everything.points_per_side=16"])
    assert instantiate(grid.everything).points_per_side == 16


def test_an_image_without_surviving_masks_matches_nothing(tiny_model, synthetic_root):
    item = CosmosDataset(synthetic_root)[0]
    generated = EverythingMode(tiny_model, EverythingSettings())(
        tiny_model.embed_image(item.image), item.image.shape[:2]
    )
    assert len(generated.masks) == 0  # a random model never passes SAM's default filters
    matched = match_masks(generated, item.masks)
    assert matched.masks.shape == item.masks.shape and not matched.masks.any()
    assert (matched.index == -1).all() and (matched.scores == 0).all()


def test_dice_matrix_equals_the_metric_and_ties_take_the_first():
    rng = np.random.default_rng(0)
    generated = rng.random((7, 9, 11)) < 0.3
    generated[3] = False  # an empty generated mask
    generated[5] = generated[1]  # a tie
    gt = rng.random((4, 9, 11)) < 0.4
    gt[2] = False  # an empty ground truth
    matrix = dice_matrix(generated, gt, chunk=3)
    for i in range(len(gt)):
        for k in range(len(generated)):
            assert matrix[i, k] == dice(generated[k], gt[i])
    gt[0] = generated[1]
    matched = match_masks(GeneratedMasks(generated, np.arange(7.0), np.zeros(7)), gt)
    assert matched.index[0] == 1 and matched.scores[0] == 1.0
    assert matched.index[2] == 3  # an empty ground truth best matches the empty mask (Dice 1)


def test_the_reference_generator_refuses_crops(diverse_model):
    reference = SamGenerator(diverse_model, SMALL)
    reference.predictor.pending = (diverse_model.embed_image(np.zeros((40, 40, 3), np.uint8)), (40, 40), (64, 64))
    with pytest.raises(ValueError, match="whole image"):
        reference.predictor.set_image(np.zeros((20, 40, 3), np.uint8))
