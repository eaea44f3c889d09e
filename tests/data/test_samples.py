"""Decoder-training samples: cached embeddings prepared in batches give the samples of one-by-one encoding."""

import torch

from sam4med.data.dataset import CosmosDataset
from sam4med.data.samples import DecoderSamples
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
