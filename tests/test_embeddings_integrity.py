"""Embedding-cache entries carry their key and a checksum: any damage is reported once and recomputed.

Values are checked too: a non-finite embedding is never stored, and an entry that holds NaN or inf, or
is not of the shape its model's decoder takes, is recomputed even when its checksum is valid.
"""

import logging
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest
import torch

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache, NonFiniteEmbedding, tensor_checksum, verify
from sam4med.errors import Sam4MedError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import score_dataset
from sam4med.models.builders import build_tiny
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S


@pytest.fixture
def images():
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8) for _ in range(2)]


@pytest.fixture
def filled(tiny_model, images, tmp_path):
    """A cache folder with the entries of two images, and their good embeddings."""
    cache = EmbeddingCache(tmp_path / "cache")
    good = [cache.get(tiny_model, image) for image in images]
    paths = [cache._path(cache.key(tiny_model, image)) for image in images]
    return tmp_path / "cache", paths, good


def reload(tiny_model, cache_dir, image, caplog):
    """Get ``image`` through a fresh cache; (embedding, cache, warnings logged)."""
    caplog.clear()
    cache = EmbeddingCache(cache_dir)
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        embedding = cache.get(tiny_model, image)
    return embedding, cache, [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda data: data[: len(data) // 2], "unreadable"),
        (lambda data: data[:-1], "unreadable"),
        (lambda data: b"", "unreadable"),
    ],
)
def test_truncated_entry_is_reported_once_and_recomputed(tiny_model, images, filled, caplog, damage, reason):
    cache_dir, paths, good = filled
    paths[0].write_bytes(damage(paths[0].read_bytes()))
    embedding, cache, warnings = reload(tiny_model, cache_dir, images[0], caplog)
    assert torch.equal(embedding, good[0]) and cache.misses == 1 and cache.damaged == 1
    assert len(warnings) == 1 and str(paths[0]) in warnings[0] and reason in warnings[0]
    _, again, warnings = reload(tiny_model, cache_dir, images[0], caplog)
    assert again.hits == 1 and not warnings  # the recomputed entry is sound


def test_a_flipped_byte_anywhere_never_reaches_the_results(tiny_model, images, filled, caplog):
    cache_dir, paths, good = filled
    original = paths[0].read_bytes()
    reported = 0
    for position in range(0, len(original), max(1, len(original) // 60)):
        flipped = bytearray(original)
        flipped[position] ^= 0x10
        paths[0].write_bytes(bytes(flipped))
        embedding, cache, warnings = reload(tiny_model, cache_dir, images[0], caplog)
        assert torch.equal(embedding, good[0]), position
        assert len(warnings) == cache.damaged <= 1
        reported += cache.damaged
    assert reported > 0


def test_a_flipped_bit_in_the_tensor_data_fails_the_checksum(tiny_model, images, filled, caplog):
    cache_dir, paths, good = filled
    entry = torch.load(paths[0], weights_only=True)
    entry["embedding"].view(-1)[7] += 1.0  # a valid file whose numbers changed
    torch.save(entry, paths[0])
    embedding, cache, warnings = reload(tiny_model, cache_dir, images[0], caplog)
    assert torch.equal(embedding, good[0]) and cache.damaged == 1 and "checksum mismatch" in warnings[0]


def test_two_swapped_entries_are_both_recomputed(tiny_model, images, filled, caplog):
    cache_dir, paths, good = filled
    first, second = paths[0].read_bytes(), paths[1].read_bytes()
    paths[0].write_bytes(second)
    paths[1].write_bytes(first)
    for image, expected in zip(images, good, strict=True):
        embedding, cache, warnings = reload(tiny_model, cache_dir, image, caplog)
        assert torch.equal(embedding, expected) and "another key" in warnings[0]


@pytest.mark.parametrize(
    "entry, reason",
    [
        # NaN under a wrong checksum (a NaN entry with a valid checksum: test_non_finite_entry_...)
        (lambda key, e: {"key": key, "sha256": "0", "embedding": torch.full_like(e, float("nan"))}, "checksum"),
        (lambda key, e: {"key": key, "sha256": "0", "embedding": e[0]}, "not C x h x w"),
        (lambda key, e: {"key": key, "sha256": "0", "embedding": [1, 2, 3]}, "not C x h x w"),
        (lambda key, e: {"key": key, "sha256": "0", "embedding": e.double()}, "stored as torch.float64"),
        (lambda key, e: e, "no key and checksum"),  # an entry of the old format: a bare tensor
        (lambda key, e: "text", "no key and checksum"),
    ],
)
def test_entries_of_the_wrong_type_shape_or_values_are_recomputed(tiny_model, images, filled, caplog, entry, reason):
    cache_dir, paths, good = filled
    torch.save(entry(paths[0].stem, good[0]), paths[0])
    embedding, cache, warnings = reload(tiny_model, cache_dir, images[0], caplog)
    assert torch.equal(embedding, good[0]) and len(warnings) == 1 and reason in warnings[0]


def _write_many(cache_dir, key, embedding, barrier, rounds):
    cache = EmbeddingCache(cache_dir)
    barrier.wait()
    for _ in range(rounds):
        cache.store(key, embedding)


def test_two_processes_writing_one_entry_at_once_leave_a_valid_entry(tiny_model, images, filled):
    cache_dir, paths, good = filled
    key = paths[0].stem
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    workers = [context.Process(target=_write_many, args=(cache_dir, key, good[0], barrier, 40)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=HANG_TIMEOUT_S)
    assert [w.exitcode for w in workers] == [0, 0]
    assert verify(cache_dir) == (2, [])
    assert torch.equal(EmbeddingCache(cache_dir).load(key), good[0])


def test_verify_command_names_each_damaged_entry(filled, tmp_path):
    cache_dir, paths, _ = filled
    command = [sys.executable, "-m", "sam4med.embeddings", "verify", str(cache_dir)]
    clean = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert clean.returncode == 0 and "2 sound entries, 0 damaged" in clean.stdout
    data = bytearray(paths[1].read_bytes())
    data[-300] ^= 0xFF
    paths[1].write_bytes(bytes(data))
    (paths[0].parent / f"{paths[0].name}.123.tmp").write_bytes(b"half")
    found = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert found.returncode == 1, found.stderr
    assert "1 sound entries, 2 damaged" in found.stdout
    assert f"{paths[1]}: " in found.stdout and "temporary file" in found.stdout
    missing = subprocess.run([*command[:-1], str(tmp_path / "nope")], capture_output=True, text=True, cwd=REPO)
    assert missing.returncode == 2 and missing.stderr.strip().endswith("nope: no such cache folder")


def write_entry(path, embedding, encoder=None):
    """Write a well-formed entry (its key, a valid checksum, and ``encoder`` when given) holding ``embedding``."""
    entry = {"key": path.stem, "sha256": tensor_checksum(embedding), "embedding": embedding}
    if encoder is not None:
        entry["encoder"] = encoder
    torch.save(entry, path)


def with_nan(e):
    bad = e.clone()
    bad[3, 2, 1] = float("nan")
    return bad


def with_inf(e):
    bad = e.clone()
    bad.view(-1)[-1] = float("inf")
    return bad


NON_FINITE = {
    "one NaN": (with_nan, "1 NaN and 0 infinite values of 2048"),
    "all NaN": (lambda e: torch.full_like(e, float("nan")), "2048 NaN and 0 infinite values of 2048"),
    "one inf": (with_inf, "0 NaN and 1 infinite values of 2048"),
}
WRONG_SHAPE = {  # the tiny model's embedding is 32 x 8 x 8
    "smaller grid": (lambda e: e[:, :4, :4].clone(), "has shape (32, 4, 4), not (32, 8, 8)"),
    "not square": (lambda e: e[:, :, :4].clone(), "has shape (32, 8, 4), not (32, 8, 8)"),
    "more channels": (lambda e: e.repeat(2, 1, 1), "has shape (64, 8, 8), not (32, 8, 8)"),
}


@pytest.mark.parametrize("name", list(NON_FINITE))
def test_non_finite_entry_with_a_valid_checksum_is_recomputed(tiny_model, images, filled, caplog, name):
    cache_dir, paths, good = filled
    damage, found = NON_FINITE[name]
    write_entry(paths[0], damage(good[0]), torch.load(paths[0], weights_only=True)["encoder"])
    embedding, cache, warnings = reload(tiny_model, cache_dir, images[0], caplog)
    assert torch.equal(embedding, good[0]) and (cache.damaged, cache.misses) == (1, 1)
    assert warnings == [f"embedding cache: {paths[0]} holds {found}; recomputing it"]
    _, again, warnings = reload(tiny_model, cache_dir, images[0], caplog)
    assert again.hits == 1 and not warnings  # the recomputed entry is sound


@pytest.mark.parametrize("name", list(WRONG_SHAPE))
def test_entry_of_the_wrong_shape_with_a_valid_checksum_is_recomputed(tiny_model, images, filled, caplog, name):
    cache_dir, paths, good = filled
    damage, found = WRONG_SHAPE[name]
    write_entry(paths[0], damage(good[0]))
    embedding, cache, warnings = reload(tiny_model, cache_dir, images[0], caplog)
    assert torch.equal(embedding, good[0]) and (cache.damaged, cache.misses) == (1, 1)
    assert warnings == [f"embedding cache: {paths[0]} {found} (the embedding model tiny takes); recomputing it"]
    _, again, warnings = reload(tiny_model, cache_dir, images[0], caplog)
    assert again.hits == 1 and not warnings


def score(model, dataset, cache, tmp_path, name):
    """S2 and S5 rows of ``dataset`` (the prompts of seed 0, made anew in ``tmp_path / name``)."""
    return score_dataset(
        model,
        dataset,
        strategies=["S2", "S5"],
        phase="zero_shot",
        cache=cache,
        prompts=PromptStore(seed=0, read_from=tmp_path / name / "p.json", write_to=tmp_path / name / "p.json"),
        multimask=Multimask("single"),
        everything=EverythingSettings(points_per_side=4),
        log_path=tmp_path / name / "log.jsonl",
        progress=False,
    )


@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("damage", [NON_FINITE["one NaN"][0], WRONG_SHAPE["smaller grid"][0]], ids=["NaN", "shape"])
def test_scores_over_a_nan_or_wrong_shape_entry_equal_a_clean_run(
    tiny_model, synthetic_root, tmp_path, caplog, batch_size, damage
):
    dataset = CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001", "syn0002"])
    cache_dir = tmp_path / "cache"
    cache = EmbeddingCache(cache_dir, batch_size=batch_size)
    clean = score(tiny_model, dataset, cache, tmp_path, "clean")
    # the last image: encoded alone in both runs also with batch_size 2, so equal to the bit (a batched
    # encoder call rounds differently from a single one)
    path = cache._path(cache.key(tiny_model, dataset[2].image))
    entry = torch.load(path, weights_only=True)
    write_entry(path, damage(entry["embedding"]), entry["encoder"])
    cache = EmbeddingCache(cache_dir, batch_size=batch_size)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        again = score(tiny_model, dataset, cache, tmp_path, "again")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and str(path) in warnings[0] and (cache.damaged, cache.misses) == (1, 1)
    assert again == clean and len(clean) > 0


def test_verify_names_non_finite_and_wrong_shape_entries(tiny_model, tmp_path):
    rng = np.random.default_rng(2)
    cache_dir = tmp_path / "cache"
    cache = EmbeddingCache(cache_dir)
    for _ in range(4):
        cache.get(tiny_model, rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8))
    paths = sorted(cache_dir.glob("*/*.pt"))
    entries = [torch.load(path, weights_only=True) for path in paths]
    assert verify(cache_dir) == (4, [])
    write_entry(paths[0], with_nan(entries[0]["embedding"]), entries[0]["encoder"])
    write_entry(paths[1], entries[1]["embedding"][:, :4, :4].clone(), entries[1]["encoder"])
    label = "-".join(entries[1]["encoder"].split("-")[:2])
    assert label.startswith("tiny-")
    assert verify(cache_dir) == (
        2,
        [
            (paths[0], "holds 1 NaN and 0 infinite values of 2048"),
            (paths[1], f"has shape (32, 4, 4), unlike the other entries of model {label} (2 of shape (32, 8, 8))"),
        ],
    )
    command = [sys.executable, "-m", "sam4med.embeddings", "verify", str(cache_dir)]
    found = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    assert found.returncode == 1, found.stderr
    assert f"{paths[0]}: holds 1 NaN" in found.stdout and f"{paths[1]}: has shape (32, 4, 4)" in found.stdout
    assert "2 sound entries, 2 damaged" in found.stdout


def test_verify_leaves_entries_of_other_models_and_unnamed_entries_uncompared(tiny_model, images, tmp_path):
    cache_dir = tmp_path / "cache"
    EmbeddingCache(cache_dir).get(tiny_model, images[0])
    EmbeddingCache(cache_dir).get(build_tiny(img_size=32), images[0])  # another model: 32 x 4 x 4 entries
    unnamed = cache_dir / "ab" / f"ab{'0' * 62}.pt"
    unnamed.parent.mkdir(parents=True, exist_ok=True)
    write_entry(unnamed, torch.zeros(8, 2, 2))  # an entry of an earlier version: no encoder to compare by
    assert verify(cache_dir) == (3, [])


@pytest.mark.parametrize("batch_size", [1, 2])
@pytest.mark.parametrize("directory", [True, False], ids=["disk", "memory"])
def test_storing_a_non_finite_embedding_fails_naming_model_and_key(
    tiny_model, images, tmp_path, monkeypatch, batch_size, directory
):
    encode = tiny_model.encode
    monkeypatch.setattr(
        tiny_model, "encode", lambda batch: with_nan(encode(batch)[0])[None].repeat(len(batch), 1, 1, 1)
    )
    cache = EmbeddingCache(tmp_path / "cache" if directory else None, batch_size=batch_size)
    key = cache.key(tiny_model, images[0])
    with pytest.raises(NonFiniteEmbedding) as raised:
        cache.get_many(tiny_model, images[:1])
    assert isinstance(raised.value, Sam4MedError)  # the entry points print it as one line
    found = "the image encoder of model tiny returned 1 NaN and 0 infinite values of 2048"
    assert str(raised.value).startswith(f"{found} for the image of cache key {key};")
    assert not list(tmp_path.rglob("*.pt")) and cache.load(key) is None  # nothing was stored


def test_float16_overflow_is_refused_with_a_hint(tiny_model, tmp_path):
    cache = EmbeddingCache(tmp_path, dtype="float16")
    with pytest.raises(NonFiniteEmbedding, match=r"cache key abc;.*try embeddings.dtype=float32"):
        cache.store("abc", torch.full((32, 8, 8), 1e5).to(torch.float16), tiny_model)
