"""Scoring the modes M1-M5: our masks equal SamPredictor's for the same prompts, M4 merges its boxes' masks,
and evaluate.py scores the modes next to S1-S6."""

import json

import numpy as np
import pandas as pd
import pytest
from segment_anything import SamPredictor
from segment_anything.modeling import Sam

from sam4med.evaluation.predict import predict
from sam4med.jobs.evaluate import evaluate_model
from sam4med.metrics import dice
from sam4med.models.multimask import Multimask
from sam4med.prompts.generate import make_prompt
from sam4med.prompts.modes import MODES
from sam4med.prompts.prompt import Prompt
from tests.helpers import compose_config


def as_sam(model) -> Sam:
    return Sam(
        image_encoder=model.image_encoder, prompt_encoder=model.prompt_encoder, mask_decoder=model.mask_decoder
    ).eval()


@pytest.fixture(scope="module")
def image_and_masks():
    """Three objects of two, three and one regions."""
    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, size=(60, 80, 3), dtype=np.uint8)
    masks = np.zeros((3, 60, 80), dtype=bool)
    masks[0, 5:20, 5:25] = masks[0, 30:40, 8:20] = True
    masks[1, 5:15, 40:50] = masks[1, 20:35, 55:75] = masks[1, 45:55, 40:52] = True
    masks[2, 42:57, 5:30] = True
    return image, masks


def reference(predictor: SamPredictor, prompt: Prompt, gt: np.ndarray, multimask: str) -> tuple[np.ndarray, float]:
    """SamPredictor's mask and score for ``prompt``: each box of ``boxes`` on its own, masks merged by union."""
    boxes = prompt.boxes or (prompt.box,)  # M4's boxes one by one, else the prompt's one box or none
    calls = [{"box": None if b is None else np.asarray(b)} for b in boxes]
    masks, scores = [], []
    for kwargs in calls:
        if prompt.point_coords:
            kwargs.update(point_coords=prompt.points_array, point_labels=prompt.labels_array)
        ref_masks, ref_scores, _ = predictor.predict(multimask_output=multimask != "single", **kwargs)
        if multimask == "oracle":  # per box, the best Dice against the object's whole ground truth
            best = int(np.argmax([dice(m, gt) for m in ref_masks]))
        else:
            best = int(np.argmax(ref_scores))
        masks.append(ref_masks[best])
        scores.append(ref_scores[best])
    return np.logical_or.reduce(masks), float(np.mean(scores))


@pytest.mark.parametrize("multimask", ["single", "confidence", "oracle"])
def test_every_mode_decodes_like_the_predictor(tiny_model, image_and_masks, multimask):
    image, masks = image_and_masks
    predictor = SamPredictor(as_sam(tiny_model))
    predictor.set_image(image)
    embedding = tiny_model.embed_image(image)
    for mode in MODES:
        prompts = [make_prompt(m, mode, seed=1, object_key=f"o{i}") for i, m in enumerate(masks)]
        ours = predict(tiny_model, embedding, prompts, image.shape[:2], multimask=Multimask(multimask), gt_masks=masks)
        assert 0 < ours.masks.mean() < 1  # the comparison is between non-trivial masks
        for i, prompt in enumerate(prompts):
            mask, score = reference(predictor, prompt, masks[i], multimask)
            np.testing.assert_array_equal(ours.masks[i], mask, err_msg=f"{mode} object {i}")
            assert ours.scores[i] == pytest.approx(score, abs=1e-6)
    assert [len(make_prompt(m, "M2", seed=1, object_key="o").point_coords) for m in masks] == [2, 3, 1]
    assert [len(make_prompt(m, "M4", seed=1, object_key="o").boxes) for m in masks] == [2, 3, 1]


@pytest.mark.parametrize("multimask", ["single", "oracle"])
def test_m4_merges_the_masks_of_its_boxes_decoded_one_by_one(tiny_model, image_and_masks, multimask):
    image, masks = image_and_masks
    size, selection = image.shape[:2], Multimask(multimask)
    embedding = tiny_model.embed_image(image)
    m4 = make_prompt(masks[1], "M4", seed=0, object_key="o1")
    singles = [Prompt("M3", box=b) for b in m4.boxes]
    per_box = predict(
        tiny_model, embedding, singles, size, multimask=selection, gt_masks=np.repeat(masks[1:2], len(singles), axis=0)
    )
    merged = predict(tiny_model, embedding, [m4], size, multimask=selection, gt_masks=masks[1:2])
    np.testing.assert_array_equal(merged.masks[0], np.logical_or.reduce(per_box.masks))
    assert merged.scores[0] == pytest.approx(float(per_box.scores.mean()), abs=1e-6)
    assert merged.choice[0] == per_box.choice[0]  # the first (largest) box's choice
    assert merged.masks[0].sum() > max(m.sum() for m in per_box.masks)  # each box adds pixels of its own
    for per_call in (1, 2):  # the call size does not change the masks, however the boxes are split
        again = predict(tiny_model, embedding, [m4], size, multimask=selection, gt_masks=masks[1:2], per_call=per_call)
        np.testing.assert_array_equal(again.masks, merged.masks)


def test_evaluate_writes_mode_rows_and_prompts(tmp_path):
    strategies = "evaluation.strategies=[S5,M1,M2,M3,M4,M5]"  # overlays left out: drawn in the test below
    cfg = compose_config("evaluate", tmp_path, ["experiment=quick", strategies, "evaluation.overlays=0"])
    results = evaluate_model(cfg)
    metrics = pd.read_csv(results / "metrics.csv")
    assert set(metrics["strategy"]) == {"S5", "M1", "M2", "M3", "M4", "M5"}
    counts = metrics.groupby("strategy").size()
    assert (counts == counts["S5"]).all() and counts["S5"] > 0
    by = metrics.set_index(["strategy", "object_key"])["dice"]
    pd.testing.assert_series_equal(by["M5"], by["S5"])  # M5 is S5's tight box under its own name
    assert (metrics["candidates"] == 1).all()  # multimask single: one candidate per box
    stored = json.loads((results / "prompts.json").read_text())["prompts"]
    m4 = [p for key, p in stored.items() if key.startswith("M4|")]
    assert len(m4) == counts["M4"] and all(p["box"] is None and 1 <= len(p["boxes"]) <= 3 for p in m4)
    assert all("boxes" not in p for key, p in stored.items() if key.startswith("S5|"))


def test_overlays_draw_every_box_of_a_prompt():
    import matplotlib.pyplot as plt

    from sam4med.results.overlays import _crop, _draw_prompt

    prompt = Prompt("M4", boxes=((2.0, 2.0, 5.0, 5.0), (20.0, 3.0, 30.0, 9.0), (8.0, 40.0, 12.0, 44.0)))
    fig, ax = plt.subplots()
    try:
        _draw_prompt(ax, prompt, 0, 0)
        assert [p.get_xy() for p in ax.patches] == [(1.5, 1.5), (19.5, 2.5), (7.5, 39.5)]
    finally:
        plt.close(fig)
    gt = np.zeros((200, 200), dtype=bool)
    gt[3:5, 3:5] = True
    rows, cols = _crop(gt, prompt, gt.shape)  # the crop holds every box, not only the object
    assert rows.start <= 2 and rows.stop > 44 and cols.start <= 2 and cols.stop > 30
