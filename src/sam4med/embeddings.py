"""On-disk cache of image embeddings, keyed by image content, encoder weights and preprocessing.

The key is SHA-256 over the image bytes and shape plus :meth:`SamModel.encoder_key` (a hash of the
encoder's weights and the preprocessing contract), so a changed image, encoder or preprocessing
never meets a stale entry. Entries are stored in ``dtype`` (float32 by default, float16 to halve the
disk use); a freshly computed embedding is rounded through the same dtype before use, so a first
(uncached) and a second (cached) run give bit-identical results.

An entry file ``<dir>/<key[:2]>/<key>.pt`` holds ``{"key", "sha256", "embedding", "encoder"}``: its own
key, a SHA-256 of the tensor's bytes and the :meth:`SamModel.encoder_key` of the model that made it
(entries of earlier versions have no ``encoder`` and stay valid). An entry that cannot be read, is of
another key, another type, shape or dtype, whose bytes do not match the checksum (a truncated file, a
flipped bit, two entries swapped), or that holds NaN or infinite values, is reported once in the log
(one warning naming the file and the problem), removed and recomputed. A model that reads an entry
checks its shape against the embedding its decoder takes (:func:`embedding_shape`: C x h x w of its
prompt encoder), so an entry of another shape is recomputed too instead of failing in the decoder.
The checks on read work on the one loaded tensor: its metadata, the checksum (hashed in place) and one
finiteness pass; an older sam4med reads an entry that names its encoder as foreign and recomputes it.

A non-finite embedding is never written: the encoder returning NaN or inf is a broken model or an
overflowing precision, and scores on it would be silently wrong, so :meth:`EmbeddingCache.store`
raises :class:`NonFiniteEmbedding` (one line at the entry points) naming the model and the image key,
whether the cache is on disk or in memory. Entries are written under a per-process temporary name and
renamed, so two processes writing one entry at once leave a valid entry.

Misses can be encoded ``batch_size`` images per encoder call (:meth:`EmbeddingCache.get_many`; a GPU
option). A batched encoder call gives the same embeddings up to float rounding, so entries made with
``batch_size`` > 1 carry it in their key: a run always meets the entries of its own batch size and its
numbers are reproducible; ``batch_size: 1`` (the default) keeps the keys of earlier versions.

Check a whole cache with ``python -m sam4med.embeddings verify <cache dir>``: besides what a read
checks, it reports an entry whose shape differs from the other entries of its encoder (only entries that
name their encoder can be compared: a cache folder is shared by all models).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from sam4med.command import user_errors_in_one_line
from sam4med.errors import DataError, Sam4MedError
from sam4med.files import save_tensors
from sam4med.models.sam_model import SamModel

DTYPES = {"float32": torch.float32, "float16": torch.float16}

log = logging.getLogger("sam4med")

ENTRY_FIELDS = {"key", "sha256", "embedding"}  # and, since entries name their model, "encoder"


class NonFiniteEmbedding(Sam4MedError):
    """The image encoder returned NaN or infinite values: nothing is cached and nothing is scored on it."""


def tensor_checksum(tensor: torch.Tensor) -> str:
    """SHA-256 of a CPU tensor's dtype, shape and bytes."""
    digest = hashlib.sha256()
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(tensor.detach().contiguous().view(torch.uint8).numpy())  # hashed in place, not copied
    return digest.hexdigest()


def non_finite(tensor: torch.Tensor) -> str | None:
    """What is not finite in ``tensor`` (``"3 NaN and 0 infinite values of 2048"``), or None if all is finite."""
    if bool(torch.isfinite(tensor).all()):
        return None
    nan = int(torch.isnan(tensor).sum())
    return f"{nan} NaN and {int(torch.isinf(tensor).sum())} infinite values of {tensor.numel()}"


def embedding_shape(model: SamModel) -> tuple[int, int, int] | None:
    """C x h x w of the embeddings ``model``'s decoder takes: its prompt encoder's channels and grid
    (what its image encoder returns; 32 x 8 x 8 for ``tiny``, 256 x 64 x 64 for SAM-family backbones).

    None when the prompt encoder does not say (a model that is no segment_anything composition).
    """
    prompt_encoder = getattr(model, "prompt_encoder", None)
    channels = getattr(prompt_encoder, "embed_dim", None)
    grid = getattr(prompt_encoder, "image_embedding_size", None)
    if channels is None or grid is None:
        return None
    return (int(channels), *(int(side) for side in grid))


def encoder_label(encoder: str) -> str:
    """The model name and weight hash of an encoder key, for messages (the preprocessing part is long)."""
    return "-".join(encoder.split("-")[:2])


def _read_entry(
    path: Path, dtype: torch.dtype | None = None, shape: tuple[int, ...] | None = None
) -> tuple[str | None, torch.Tensor | None, str | None]:
    """(problem or None, embedding when sound, the encoder key the entry names or None)."""
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file fails in many ways; all mean "recompute"
        return f"unreadable ({type(exc).__name__})", None, None
    if not isinstance(entry, dict) or not ENTRY_FIELDS <= set(entry) <= ENTRY_FIELDS | {"encoder"}:
        return "not a sam4med cache entry (no key and checksum)", None, None
    embedding, encoder = entry["embedding"], entry.get("encoder")
    if entry["key"] != path.stem:
        return f"holds the entry of another key ({str(entry['key'])[:12]}...)", None, None
    if not isinstance(embedding, torch.Tensor) or embedding.ndim != 3:
        what = f"holds a {type(embedding).__name__} of shape {getattr(embedding, 'shape', '?')}, not C x h x w"
        return what, None, None
    if embedding.dtype not in DTYPES.values() or (dtype is not None and embedding.dtype != dtype):
        return f"stored as {embedding.dtype}, not {dtype}", None, None
    if shape is not None and tuple(embedding.shape) != tuple(shape):
        return f"has shape {tuple(embedding.shape)}, not {tuple(shape)}", None, None
    if tensor_checksum(embedding) != entry["sha256"]:
        return "checksum mismatch (damaged bytes)", None, None
    problem = non_finite(embedding)
    if problem is not None:
        return f"holds {problem}", None, None
    return None, embedding, encoder if isinstance(encoder, str) else None


def entry_problem(
    path: Path, dtype: torch.dtype | None = None, shape: tuple[int, ...] | None = None
) -> tuple[str | None, torch.Tensor | None]:
    """(what is wrong with the entry file at ``path`` or None, its embedding when it is sound).

    Args:
        path: the entry file.
        dtype: the storage dtype it must have (None: float32 or float16).
        shape: the C x h x w it must have (None: any C x h x w), see :func:`embedding_shape`.
    """
    problem, embedding, _ = _read_entry(path, dtype, shape)
    return problem, embedding


class EmbeddingCache:
    """Compute-or-load image embeddings.

    Args:
        directory: where entries live (``<dir>/<key[:2]>/<key>.pt``); None keeps nothing on disk.
        dtype: ``float32`` or ``float16`` storage precision.
        batch_size: images per encoder call when :meth:`get_many` encodes misses (1: one at a time).
        workers: DataLoader worker processes that read and decode the images of the training set's
            embedding precomputation while the encoder runs (0: read in the main process). Embeddings
            do not depend on it.
    """

    def __init__(
        self, directory: str | Path | None, dtype: str = "float32", batch_size: int = 1, workers: int = 0
    ) -> None:
        if dtype not in DTYPES:
            raise ValueError(f"embedding cache dtype must be one of {sorted(DTYPES)}, got '{dtype}'")
        if int(batch_size) < 1:
            raise ValueError(f"embedding cache batch_size must be at least 1, got {batch_size}")
        if int(workers) < 0:
            raise ValueError(f"embedding cache workers must be 0 or more, got {workers}")
        self.directory = Path(directory) if directory else None
        self.dtype = DTYPES[dtype]
        self.batch_size = int(batch_size)
        self.workers = int(workers)
        self.hits = 0
        self.misses = 0
        self.damaged = 0
        self._encoder_keys: dict[tuple[int, bool, bool, int], str] = {}
        self._memory: dict[str, torch.Tensor] = {}

    def _encoder_key(self, model: SamModel) -> str:
        """``model.encoder_key()``, computed once per model object, precision, attention and encoder version."""
        which = (id(model), model.encoder_bf16, model.encoder_sdpa, model.encoder_version)
        encoder_key = self._encoder_keys.get(which)
        if encoder_key is None:  # hashing the weights is not free
            encoder_key = self._encoder_keys[which] = model.encoder_key()
        return encoder_key

    def key(self, model: SamModel, image: np.ndarray) -> str:
        """Cache key of ``image`` (H x W x 3 uint8) under ``model``'s encoder."""
        digest = hashlib.sha256()
        digest.update(self._encoder_key(model).encode())
        digest.update(str(self.dtype).encode())
        if self.batch_size > 1:  # batched encoding rounds differently: its entries are its own
            digest.update(f"batch{self.batch_size}".encode())
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.pt"

    def load(self, key: str, model: SamModel | None = None) -> torch.Tensor | None:
        """The stored embedding under ``key`` (C x h x w float32), or None if there is none or it is damaged.

        Damaged: unreadable, of another key, dtype or checksum, non-finite, or (when ``model`` is given)
        not of ``model``'s :func:`embedding_shape`; such an entry is removed with one warning naming its
        file and the problem.
        """
        if self.directory is None:
            stored = self._memory.get(key)
            return stored.float() if stored is not None else None
        path = self._path(key)
        if not path.is_file():
            return None
        shape = embedding_shape(model) if model is not None else None
        problem, embedding = entry_problem(path, self.dtype, shape)
        if problem is not None:
            self.damaged += 1
            if model is not None and problem.startswith("has shape"):
                problem += f" (the embedding model {model.name} takes)"
            log.warning("embedding cache: %s %s; recomputing it", path, problem)
            path.unlink(missing_ok=True)
            return None
        assert embedding is not None
        return embedding.float()

    def store(self, key: str, embedding: torch.Tensor, model: SamModel | None = None) -> None:
        """Write one entry (``embedding`` C x h x w in the cache dtype) with its key, checksum and the
        encoder key of ``model`` (the model that computed it; None writes no ``encoder``).

        Raises:
            NonFiniteEmbedding: ``embedding`` holds NaN or inf (nothing is written).
        """
        problem = non_finite(embedding)
        if problem is not None:
            source = f"the image encoder of model {model.name}" if model is not None else "the image encoder"
            hint = "a broken checkpoint, or an encoder precision (compute.bf16_encoder) that overflows"
            if embedding.dtype == torch.float16:
                hint += "; float16 storage turns values beyond +-65504 into inf: try embeddings.dtype=float32"
            raise NonFiniteEmbedding(
                f"{source} returned {problem} for the image of cache key {key}; nothing was cached or scored "
                f"(scores on it would be wrong): {hint}"
            )
        if self.directory is None:
            self._memory[key] = embedding
            return
        stored = embedding.detach().cpu().contiguous().clone()
        entry = {"key": key, "sha256": tensor_checksum(stored), "embedding": stored}
        if model is not None:
            entry["encoder"] = self._encoder_key(model)
        save_tensors(self._path(key), entry, unique_tmp=True)  # ranks may write one entry at once

    def get_with_key(self, model: SamModel, image: np.ndarray) -> tuple[str, torch.Tensor]:
        """(key, embedding) of ``image``, computing and storing the embedding on a miss."""
        key = self.key(model, image)
        found = self.load(key, model)
        if found is not None:
            self.hits += 1
            return key, found
        self.misses += 1
        stored = model.embed_image(image).cpu().to(self.dtype)
        self.store(key, stored, model)
        return key, stored.float()

    def get_many(self, model: SamModel, images: Sequence[np.ndarray]) -> list[tuple[str, torch.Tensor]]:
        """(key, embedding) of each of ``images`` (H x W x 3 uint8), the missing ones encoded ``batch_size``
        per encoder call.

        With ``batch_size`` 1 this is :meth:`get_with_key` image by image. Images of one call are
        preprocessed to the model's square input, so images of different sizes share a call.
        """
        if self.batch_size == 1:
            return [self.get_with_key(model, image) for image in images]
        found: list[tuple[str, torch.Tensor | None]] = []
        for image in images:
            key = self.key(model, image)
            found.append((key, self.load(key, model)))
        self.hits += sum(1 for _, embedding in found if embedding is not None)
        missing = [k for k, (_, embedding) in enumerate(found) if embedding is None]
        for start in range(0, len(missing), self.batch_size):
            part = missing[start : start + self.batch_size]
            batch = torch.stack([model.preprocessing.image_to_tensor(images[k]) for k in part])
            for k, embedding in zip(part, model.encode(batch).cpu().to(self.dtype), strict=True):
                self.store(found[k][0], embedding.clone(), model)
                self.misses += 1
                found[k] = (found[k][0], embedding.float())
        return found

    def get(self, model: SamModel, image: np.ndarray) -> torch.Tensor:
        """Embedding of ``image`` (H x W x 3 uint8): C x h x w float32 on the CPU."""
        return self.get_with_key(model, image)[1]

    def stats(self) -> str:
        """One line for the log: hits and misses so far."""
        damaged = f", {self.damaged} damaged entries recomputed" if self.damaged else ""
        where = self.directory or "memory only"
        return f"embedding cache: {self.hits} reused, {self.misses} computed{damaged} ({where})"


def verify(directory: str | Path) -> tuple[int, list[tuple[Path, str]]]:
    """(sound entries, [(entry file, problem)]) of every entry of the cache at ``directory``.

    Besides what a read checks (key, type, C x h x w, dtype, checksum, finite values), an entry whose
    shape differs from that of most other entries of its encoder is reported (a tie reports both shapes'
    entries). Entries that name no encoder (written by earlier versions) are not compared: the folder
    holds the entries of every model.
    """
    directory = Path(directory)
    sound = 0
    problems: dict[Path, str] = {}  # entry file -> what is wrong
    shapes: dict[str, dict[Path, tuple[int, ...]]] = {}  # encoder key -> {sound entry: its shape}
    for path in sorted(directory.glob("*/*")):
        if path.name.endswith(".tmp"):
            problems[path] = "temporary file of an interrupted write (safe to delete)"
            continue
        if path.suffix != ".pt":
            continue
        problem, embedding, encoder = _read_entry(path)
        if problem is None and path.parent.name != path.stem[:2]:
            problem = f"in folder {path.parent.name}, not {path.stem[:2]}"
        if problem is not None:
            problems[path] = problem
            continue
        sound += 1
        if encoder is not None:
            assert embedding is not None
            shapes.setdefault(encoder, {})[path] = tuple(embedding.shape)
    for encoder, entries in shapes.items():
        counts = Counter(entries.values()).most_common()
        if len(counts) == 1:
            continue
        usual = counts[0][0] if counts[0][1] > counts[1][1] else None  # None: a tie, no shape is the usual one
        for path, shape in entries.items():
            if shape != usual:
                others = ", ".join(f"{n} of shape {s}" for s, n in counts if s != shape)
                problems[path] = (
                    f"has shape {shape}, unlike the other entries of model {encoder_label(encoder)} ({others})"
                )
                sound -= 1
    return sound, sorted(problems.items())


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m sam4med.embeddings verify CACHE_DIR`` (exit 1 when an entry is damaged)."""

    @user_errors_in_one_line
    def run() -> None:
        parser = argparse.ArgumentParser(prog="python -m sam4med.embeddings", description="Check an embedding cache.")
        parser.add_argument(
            "command", choices=["verify"], help="verify: check every entry's key, checksum, values and shape"
        )
        parser.add_argument("directory", help="the cache folder (embeddings.directory)")
        args = parser.parse_args(argv)
        if not Path(args.directory).is_dir():
            raise DataError(f"{args.directory}: no such cache folder")
        sound, problems = verify(args.directory)
        for path, problem in problems:
            print(f"{path}: {problem}")
        print(f"{args.directory}: {sound} sound entries, {len(problems)} damaged (recomputed when next used)")
        if problems:
            raise SystemExit(1)

    run()


if __name__ == "__main__":
    main()
