"""The framework's embedding and masks equal segment_anything.SamPredictor's for the same weights."""

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor
from segment_anything.modeling import Sam

from sam4med.evaluation.predict import predict
from sam4med.metrics import dice
from sam4med.models.multimask import Multimask
from sam4med.prompts.generate import STRATEGIES, make_prompt


def as_sam(model) -> Sam:
    return Sam(
        image_encoder=model.image_encoder, prompt_encoder=model.prompt_encoder, mask_decoder=model.mask_decoder
    ).eval()


@pytest.fixture
def image_and_masks():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    masks = np.zeros((2, 50, 70), dtype=bool)
    masks[0, 10:30, 8:40] = True
    masks[1, 28:47, 45:66] = True
    masks[1, 35:40, 50:60] = False  # a hole: centre of mass may fall outside
    return image, masks


def test_embedding_equals_predictor(tiny_model, image_and_masks):
    image, _ = image_and_masks
    predictor = SamPredictor(as_sam(tiny_model))
    predictor.set_image(image)
    ours = tiny_model.embed_image(image)
    assert torch.equal(ours, predictor.get_image_embedding()[0])


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("multimask", ["single", "confidence", "oracle"])
def test_masks_equal_predictor(tiny_model, image_and_masks, strategy, multimask):
    image, masks = image_and_masks
    predictor = SamPredictor(as_sam(tiny_model))
    predictor.set_image(image)
    prompts = [make_prompt(m, strategy, seed=1, object_key=f"o{i}") for i, m in enumerate(masks)]
    embedding = tiny_model.embed_image(image)
    ours = predict(tiny_model, embedding, prompts, image.shape[:2], multimask=Multimask(multimask), gt_masks=masks)
    assert 0 < ours.masks.mean() < 1  # the comparison is between non-trivial masks
    for i, prompt in enumerate(prompts):
        kwargs = {}
        if prompt.point_coords:
            kwargs.update(point_coords=prompt.points_array, point_labels=prompt.labels_array)
        if prompt.box is not None:
            kwargs.update(box=np.asarray(prompt.box))
        ref_masks, ref_scores, _ = predictor.predict(multimask_output=multimask != "single", **kwargs)
        if multimask == "oracle":  # the COSMOS choice: best Dice of the three against the ground truth
            best = int(np.argmax([dice(m, masks[i]) for m in ref_masks]))
        else:  # single: the one output; confidence: the highest predicted IoU (Mazurowski et al.)
            best = int(np.argmax(ref_scores))
        assert ours.choice[i] == best
        np.testing.assert_array_equal(ours.masks[i], ref_masks[best])
        assert ours.scores[i] == pytest.approx(float(ref_scores[best]), abs=1e-6)
