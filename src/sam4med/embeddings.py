"""On-disk cache of image embeddings, keyed by image content, encoder weights and preprocessing.

The key is SHA-256 over the image bytes and shape plus :meth:`SamModel.encoder_key` (a hash of the
encoder's weights and the preprocessing contract), so a changed image, encoder or preprocessing
never meets a stale entry. Entries are stored in ``dtype`` (float32 by default, float16 to halve the
disk use); a freshly computed embedding is rounded through the same dtype before use, so a first
(uncached) and a second (cached) run give bit-identical results.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch

from sam4med.files import save_tensors
from sam4med.models.sam_model import SamModel

DTYPES = {"float32": torch.float32, "float16": torch.float16}


class EmbeddingCache:
    """Compute-or-load image embeddings.

    Args:
        directory: where entries live (``<dir>/<key[:2]>/<key>.pt``); None keeps nothing on disk.
        dtype: ``float32`` or ``float16`` storage precision.
    """

    def __init__(self, directory: str | Path | None, dtype: str = "float32") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"embedding cache dtype must be one of {sorted(DTYPES)}, got '{dtype}'")
        self.directory = Path(directory) if directory else None
        self.dtype = DTYPES[dtype]
        self.hits = 0
        self.misses = 0
        self._encoder_keys: dict[int, str] = {}
        self._memory: dict[str, torch.Tensor] = {}

    def key(self, model: SamModel, image: np.ndarray) -> str:
        """Cache key of ``image`` (H x W x 3 uint8) under ``model``'s encoder."""
        encoder_key = self._encoder_keys.get(id(model))
        if encoder_key is None:  # hashing the weights is not free: once per model object
            encoder_key = self._encoder_keys[id(model)] = model.encoder_key()
        digest = hashlib.sha256()
        digest.update(encoder_key.encode())
        digest.update(str(self.dtype).encode())
        digest.update(str(image.shape).encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / key[:2] / f"{key}.pt"

    def load(self, key: str) -> torch.Tensor | None:
        """The stored embedding under ``key`` (C x h x w float32), or None if there is none."""
        if self.directory is None:
            stored = self._memory.get(key)
            return stored.float() if stored is not None else None
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return torch.load(path, map_location="cpu", weights_only=True).float()
        except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError):
            path.unlink(missing_ok=True)  # a damaged entry is recomputed
            return None

    def get_with_key(self, model: SamModel, image: np.ndarray) -> tuple[str, torch.Tensor]:
        """(key, embedding) of ``image``, computing and storing the embedding on a miss."""
        key = self.key(model, image)
        found = self.load(key)
        if found is not None:
            self.hits += 1
            return key, found
        self.misses += 1
        stored = model.embed_image(image).cpu().to(self.dtype)
        if self.directory is None:
            self._memory[key] = stored
        else:
            save_tensors(self._path(key), stored.clone(), unique_tmp=True)  # ranks may write one entry at once
        return key, stored.float()

    def get(self, model: SamModel, image: np.ndarray) -> torch.Tensor:
        """Embedding of ``image`` (H x W x 3 uint8): C x h x w float32 on the CPU."""
        return self.get_with_key(model, image)[1]

    def stats(self) -> str:
        """One line for the log: hits and misses so far."""
        return f"embedding cache: {self.hits} reused, {self.misses} computed ({self.directory or 'memory only'})"
