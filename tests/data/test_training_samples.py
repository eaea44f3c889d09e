"""Decoder-training samples: cached embeddings prepared in batches give the samples of one-by-one encoding."""

import pytest
import torch

from sam4med.data.dataset import CosmosDataset
from sam4med.data.training_samples import DecoderSamples
from sam4med.embeddings import EmbeddingCache


def test_batched_embedding_preparation_gives_the_same_samples(tiny_model, synthetic_root, tmp_path):
    dataset = CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001", "syn0002"])
    one = DecoderSamples(dataset, tiny_model, EmbeddingCache(tmp_path / "one"), progress=False)
    cache = EmbeddingCache(tmp_path / "two", batch_size=2)
    two = DecoderSamples(dataset, tiny_model, cache, progress=False)
    assert cache.misses == len(dataset) and len(two) == len(one) > 0
    assert sorted(two.keys) == sorted(one.keys) == [0, 1, 2]
    for position in range(len(one)):
        a, b = one[position], two[position]
        assert a["object_key"] == b["object_key"] and torch.equal(a["box"], b["box"])
        torch.testing.assert_close(a["embedding"], b["embedding"], atol=1e-5, rtol=0)


def test_images_read_in_worker_processes_give_the_same_samples(tiny_model, synthetic_root, tmp_path):
    dataset = CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001", "syn0002", "syn0003"])
    main = DecoderSamples(dataset, tiny_model, EmbeddingCache(tmp_path / "main"), progress=False)
    cache = EmbeddingCache(tmp_path / "workers", batch_size=3, workers=2)  # a partial last batch as well
    read = DecoderSamples(dataset, tiny_model, cache, progress=False)
    assert cache.misses == len(dataset) and read.items == main.items and len(main) > 0
    assert sorted(read.keys) == sorted(main.keys) == [0, 1, 2, 3]
    for position in range(len(main)):
        a, b = main[position], read[position]
        assert a["object_key"] == b["object_key"] and torch.equal(a["box"], b["box"])
        torch.testing.assert_close(a["embedding"], b["embedding"], atol=1e-5, rtol=0)
    again = DecoderSamples(dataset, tiny_model, cache, progress=False)  # every embedding now from the cache
    assert cache.hits == len(dataset) and again.keys == read.keys


def test_negative_workers_are_refused():
    with pytest.raises(ValueError, match="workers must be 0 or more, got -1"):
        EmbeddingCache(None, workers=-1)
