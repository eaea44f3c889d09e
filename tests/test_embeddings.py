"""The on-disk embedding cache: keyed by image, encoder weights, preprocessing and storage dtype."""

import dataclasses

import numpy as np
import pytest
import torch

from sam4med.embeddings import EmbeddingCache
from sam4med.models.builders import build_tiny


@pytest.fixture
def image():
    return np.random.default_rng(0).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)


def test_second_get_reads_the_same_bits_from_disk(tiny_model, image, tmp_path):
    first = EmbeddingCache(tmp_path).get(tiny_model, image)
    cache = EmbeddingCache(tmp_path)
    second = cache.get(tiny_model, image)
    assert (cache.hits, cache.misses) == (1, 0) and torch.equal(first, second)
    assert "1 reused, 0 computed" in cache.stats()


def test_changed_image_model_preprocessing_or_dtype_never_reuse_an_entry(tiny_model, image, tmp_path):
    cache = EmbeddingCache(tmp_path)
    key = cache.key(tiny_model, image)
    changed = image.copy()
    changed[0, 0, 0] ^= 1
    assert cache.key(tiny_model, changed) != key
    assert cache.key(tiny_model, image[:, :-1]) != key
    assert EmbeddingCache(tmp_path).key(build_tiny(seed=1), image) != key  # other weights
    other = build_tiny()
    other.preprocessing = dataclasses.replace(other.preprocessing, interpolation="area")
    assert EmbeddingCache(tmp_path).key(other, image) != key
    assert EmbeddingCache(tmp_path, dtype="float16").key(tiny_model, image) != key


def test_float16_storage_gives_identical_first_and_second_results(tiny_model, image, tmp_path):
    first = EmbeddingCache(tmp_path, dtype="float16").get(tiny_model, image)
    second = EmbeddingCache(tmp_path, dtype="float16").get(tiny_model, image)
    assert first.dtype == torch.float32 and torch.equal(first, second)
    assert torch.equal(first, tiny_model.embed_image(image).half().float())


def test_damaged_entry_is_recomputed(tiny_model, image, tmp_path):
    cache = EmbeddingCache(tmp_path)
    good = cache.get(tiny_model, image)
    path = next(tmp_path.rglob("*.pt"))
    path.write_bytes(b"not a tensor")
    again = EmbeddingCache(tmp_path)
    assert torch.equal(again.get(tiny_model, image), good) and again.misses == 1


def test_batched_fill_encodes_misses_in_batches_with_keys_of_their_own(tiny_model, tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, size=(40 + 4 * k, 56, 3), dtype=np.uint8) for k in range(5)]
    single = EmbeddingCache(tmp_path / "one")
    single_keys = [key for key, _ in single.get_many(tiny_model, images)]
    calls = []
    encode = tiny_model.encode
    monkeypatch.setattr(tiny_model, "encode", lambda batch: calls.append(len(batch)) or encode(batch))
    batched = EmbeddingCache(tmp_path / "three", batch_size=3)
    batched.get(tiny_model, images[1])  # one entry already there: only four images left to encode
    calls.clear()
    keys = [key for key, _ in batched.get_many(tiny_model, images)]
    assert calls == [3, 1] and (batched.hits, batched.misses) == (1, 5)
    assert set(keys).isdisjoint(single_keys)  # batch size is part of the key
    for key, single_key in zip(keys, single_keys, strict=True):
        torch.testing.assert_close(batched.load(key), single.load(single_key), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        EmbeddingCache(tmp_path, batch_size=0)
