"""The evaluation runner: all six strategies, one encoding per image, cache reuse, S1 empty rule, resume."""

import json
import logging
import math

import numpy as np
import pytest

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import ALL_STRATEGIES, s1_empty_images, score_dataset
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.metrics import image_diagonal
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore
from sam4med.results.frame import to_frame

SMALL_GRID = EverythingSettings(points_per_side=4)


class CountingEncoder:
    """Wraps a model's ``embed_image`` to count encoder runs."""

    def __init__(self, model):
        self.model, self.calls, self._embed = model, 0, model.embed_image

    def __enter__(self):
        def embed(image):
            self.calls += 1
            return self._embed(image)

        self.model.embed_image = embed
        return self

    def __exit__(self, *exc):
        del self.model.embed_image


def run(model, dataset, cache, tmp_path, name, **kwargs):
    return score_dataset(
        model,
        dataset,
        strategies=kwargs.pop("strategies", list(ALL_STRATEGIES)),
        phase="zero_shot",
        cache=cache,
        prompts=PromptStore(
            seed=0, read_from=tmp_path / name / "prompts.json", write_to=tmp_path / name / "prompts.json"
        ),
        multimask=Multimask(kwargs.pop("multimask", "single")),
        log_path=tmp_path / name / "log.jsonl",
        progress=False,
        everything=SMALL_GRID,
        **kwargs,
    )


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    return CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001", "syn0002"])


def test_all_six_strategies_encode_each_image_once_and_reuse_the_cache(tiny_model, dataset, tmp_path, caplog):
    cache_dir = tmp_path / "cache"
    with CountingEncoder(tiny_model) as counter, caplog.at_level(logging.INFO, logger="sam4med"):
        first = run(tiny_model, dataset, EmbeddingCache(cache_dir), tmp_path, "first")
        assert counter.calls == len(dataset)  # one encoding per image for all six strategies
        assert "3 reused from the cache, 0 computed" not in caplog.text
        second = run(tiny_model, dataset, EmbeddingCache(cache_dir), tmp_path, "second")
        assert counter.calls == len(dataset)  # nothing encoded the second time
    assert "0 reused from the cache, 3 computed" in caplog.text
    assert "3 reused from the cache, 0 computed" in caplog.text
    objects = sum(len(dataset[i].objects) for i in range(len(dataset)))
    assert len(first) == len(ALL_STRATEGIES) * objects
    assert {r.strategy for r in first} == set(ALL_STRATEGIES)
    assert first == second  # bit-identical metrics from cached embeddings
    frame = to_frame(first)
    assert not frame[["dice", "nsd", "iou", "hd", "hd95", "hd_px", "hd95_px"]].isna().any().any()
    assert frame["nsd"].between(0, 1).all()


def test_s1_image_without_masks_scores_zero_and_is_counted(tiny_model, dataset, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="sam4med"):
        rows = run(tiny_model, dataset, EmbeddingCache(None), tmp_path, "s1", strategies=["S1"])
    assert rows and all(r.candidates == 0 and r.dice == 0.0 and r.iou == 0.0 for r in rows)
    shape = dataset[0].image.shape[:2]
    assert all(math.isclose(r.hd_px, image_diagonal(shape)) for r in rows)
    assert s1_empty_images(rows) == (3, 3)
    assert "S1 generated no mask on 3 of 3 images" in caplog.text


def test_candidates_record_the_mask_selection(tiny_model, dataset, tmp_path):
    cache = EmbeddingCache(None)
    single = run(tiny_model, dataset, cache, tmp_path, "single", strategies=["S5"])
    oracle = run(tiny_model, dataset, cache, tmp_path, "oracle", strategies=["S5"], multimask="oracle")
    assert {r.candidates for r in single} == {1} and {r.candidates for r in oracle} == {3}


def test_resume_skips_scored_images_and_ignores_old_log_rows(tiny_model, dataset, tmp_path):
    cache = EmbeddingCache(None)
    rows = run(tiny_model, dataset, cache, tmp_path, "resume", strategies=["S2", "S5"])
    log = tmp_path / "resume" / "log.jsonl"
    with CountingEncoder(tiny_model) as counter:
        again = run(tiny_model, dataset, EmbeddingCache(None), tmp_path, "resume", strategies=["S2", "S5"])
    assert counter.calls == 0 and again == rows
    old = {k: v for k, v in json.loads(log.read_text().splitlines()[0]).items() if k != "candidates"}
    log.write_text(json.dumps(old) + "\n")  # a row written by an older version: recomputed
    with CountingEncoder(tiny_model) as counter:
        fresh = run(tiny_model, dataset, EmbeddingCache(None), tmp_path, "resume", strategies=["S2", "S5"])
    assert counter.calls == len(dataset) and fresh == rows


def test_unknown_strategy_and_mask_selection_are_refused_in_one_line():
    with pytest.raises(ConfigError, match="unknown strategies"):
        EvaluationSettings.build(strategies=["S7"], multimask="single", everything=SMALL_GRID, split="test")
    with pytest.raises(ConfigError, match="multimask must be one of single, oracle, confidence; got 'oracel'"):
        EvaluationSettings.build(strategies=["S5"], multimask="oracel", everything=SMALL_GRID, split="test")


def test_all_rows_have_the_objects_of_their_image(tiny_model, dataset, tmp_path):
    rows = run(tiny_model, dataset, EmbeddingCache(None), tmp_path, "keys", strategies=["S1", "S4"])
    for strategy in ("S1", "S4"):
        keys = [r.object_key for r in rows if r.strategy == strategy]
        expected = [o.key for i in range(len(dataset)) for o in dataset[i].objects]
        assert keys == expected
    assert np.isfinite([r.score for r in rows]).all()


def test_batched_encoding_scores_like_one_image_at_a_time(tiny_model, dataset, tmp_path):
    one = run(tiny_model, dataset, EmbeddingCache(tmp_path / "c1"), tmp_path, "one", strategies=["S2", "S5"])
    cache = EmbeddingCache(tmp_path / "c2", batch_size=2)
    two = run(tiny_model, dataset, cache, tmp_path, "two", strategies=["S2", "S5"])
    assert cache.misses == len(dataset)  # each image encoded once, in the batched prefill
    assert [(r.object_key, r.strategy) for r in two] == [(r.object_key, r.strategy) for r in one]
    np.testing.assert_allclose([r.dice for r in two], [r.dice for r in one], atol=1e-6)
