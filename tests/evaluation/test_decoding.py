"""Decoding in calls sized for the device gives the masks of one call for all prompts."""

import numpy as np
import pytest
import torch

import sam4med.models.sam_model as sam_model
from sam4med.compute import Compute
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError
from sam4med.evaluation.decoding import decode_in_calls, prompts_per_call
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.predict import predict, prompts_to_tensors
from sam4med.evaluation.session import EvaluationSession
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.models.multimask import Multimask
from sam4med.prompts.generate import make_prompt
from sam4med.run_files import ResultsFolder


def test_call_size_follows_the_device_budget():
    sam_embedding = torch.zeros(256, 64, 64)
    assert prompts_per_call("cpu", sam_embedding) == 4
    assert prompts_per_call("cuda", sam_embedding) == 64
    assert prompts_per_call("cpu", torch.zeros(32, 8, 8)) == 2048  # small embeddings: one call for an image
    assert prompts_per_call("cpu", sam_embedding, 7) == 7
    with pytest.raises(ValueError, match="at least 1"):
        prompts_per_call("cpu", sam_embedding, 0)


@pytest.mark.parametrize("strategy", ["S2", "S4", "S6"])
def test_chunked_decoding_equals_one_call(tiny_model, synthetic_root, strategy):
    dataset = CosmosDataset(synthetic_root)
    item = max((dataset[i] for i in range(3)), key=lambda it: len(it.objects))
    assert len(item.objects) >= 3
    prompts = [
        make_prompt(m, strategy, seed=0, object_key=o.key) for o, m in zip(item.objects, item.masks, strict=True)
    ]
    size = item.image.shape[:2]
    embedding = tiny_model.embed_image(item.image)
    coords, labels, boxes = prompts_to_tensors(prompts, tiny_model, size)
    with torch.no_grad():
        whole = tiny_model.decode(
            embedding, point_coords=coords, point_labels=labels, boxes=boxes, multimask_output=True
        )
        for per_call in (1, 2):
            parts = decode_in_calls(
                tiny_model,
                embedding,
                point_coords=coords,
                point_labels=labels,
                boxes=boxes,
                multimask_output=True,
                per_call=per_call,
            )
            torch.testing.assert_close(parts.low_res_logits, whole.low_res_logits, atol=1e-5, rtol=0)
            torch.testing.assert_close(parts.iou_predictions, whole.iou_predictions, atol=1e-6, rtol=0)
    reference = predict(
        tiny_model, embedding, prompts, size, multimask=Multimask.ORACLE, gt_masks=item.masks, per_call=len(prompts)
    )
    for per_call in (1, 2, None):
        got = predict(
            tiny_model, embedding, prompts, size, multimask=Multimask.ORACLE, gt_masks=item.masks, per_call=per_call
        )
        np.testing.assert_array_equal(got.masks, reference.masks)
        np.testing.assert_array_equal(got.choice, reference.choice)
        np.testing.assert_allclose(got.scores, reference.scores, atol=1e-6)


def test_compute_refuses_a_call_size_below_one_and_reaches_the_settings():
    with pytest.raises(ConfigError, match="prompts_per_call"):
        Compute(prompts_per_call=0)
    built = EvaluationSettings.build(
        strategies=["S2"],
        multimask="single",
        everything=EverythingSettings(),
        split="test",
        compute=Compute(prompts_per_call=8),
    )
    assert built.compute.prompts_per_call == 8
    assert (
        EvaluationSettings.build(
            strategies=["S2"], multimask="single", everything=EverythingSettings(), split="test"
        ).compute
        == Compute()
    )


@pytest.mark.parametrize("strategy", ["S2", "S3", "S4", "S5", "S6"])
@pytest.mark.parametrize("multimask", [Multimask.SINGLE, Multimask.ORACLE])
def test_shared_work_decoder_gives_the_same_masks(tiny_model, synthetic_root, strategy, multimask):
    dataset = CosmosDataset(synthetic_root)
    for index in range(3):
        item = dataset[index]
        prompts = [
            make_prompt(m, strategy, seed=0, object_key=o.key) for o, m in zip(item.objects, item.masks, strict=True)
        ]
        size, embedding = item.image.shape[:2], tiny_model.embed_image(item.image)
        kwargs = {"multimask": multimask, "gt_masks": item.masks, "per_call": 2}
        reference = predict(tiny_model, embedding, prompts, size, **kwargs)
        shared = predict(tiny_model, embedding, prompts, size, shared_work=True, **kwargs)
        np.testing.assert_array_equal(shared.masks, reference.masks)
        np.testing.assert_array_equal(shared.choice, reference.choice)
        np.testing.assert_allclose(shared.scores, reference.scores, atol=1e-6)


def test_compute_setting_reaches_the_decoder(tiny_model, synthetic_root, monkeypatch, tmp_path):
    calls = []
    original = sam_model.shared_decoder.decode
    monkeypatch.setattr(sam_model.shared_decoder, "decode", lambda *a: calls.append(1) or original(*a))
    settings = EvaluationSettings.build(
        strategies=["S5"],
        multimask="single",
        everything=EverythingSettings(),
        split="test",
        compute=Compute(shared_decoder=True),
    )
    session = EvaluationSession(ResultsFolder(tmp_path), settings, cache=EmbeddingCache(None))
    dataset = CosmosDataset(synthetic_root, image_ids=["syn0000"])
    rows = session.score(tiny_model, dataset, phase="zero_shot", log=False, progress=False)
    assert rows and calls
