"""Embedding-cache entries carry their key and a checksum: any damage is reported once and recomputed."""

import logging
import multiprocessing
import subprocess
import sys

import numpy as np
import pytest
import torch

from sam4med.embeddings import EmbeddingCache, verify
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
