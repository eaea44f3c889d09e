"""Decoder-training samples: one per (image, object), image embeddings taken from the cache.

The encoder runs once per image, before training (``cached`` input mode); a training step only
reads the stored embedding and runs the prompt encoder and mask decoder.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate
from tqdm import tqdm

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.models.sam_model import SamModel
from sam4med.prompts.generate import tight_box


class DecoderSamples(Dataset):
    """Box-prompted samples for the mask decoder.

    Each sample is a dict:
        ``embedding``: C x h x w float32 image embedding.
        ``box``: 4 float32 XYXY box in model-input pixels (jittered when ``box_jitter`` > 0).
        ``mask``: S x S float32 ground truth in model-input space (resized and padded like the image).
        ``gt``: H x W bool ground truth in original pixels (validation scores against this).
        ``object_key``: the object's key.

    Args:
        dataset: images and objects.
        model: provides the preprocessing and, on a cache miss, the image encoder.
        cache: embedding cache (each image is encoded at most once).
        box_jitter: each box side moves by a uniform random integer in [-box_jitter, box_jitter]
            original pixels (clipped to the image); 0 for evaluation.
        progress: progress bar while the embeddings are prepared.
    """

    def __init__(
        self,
        dataset: CosmosDataset,
        model: SamModel,
        cache: EmbeddingCache,
        *,
        box_jitter: int = 0,
        progress: bool = True,
    ) -> None:
        self.dataset = dataset
        self.preprocessing = model.preprocessing
        self.cache = cache
        self.box_jitter = box_jitter
        self.items: list[tuple[str, int, np.ndarray, str]] = []  # (embedding key, object index, mask, key)
        for index in tqdm(range(len(dataset)), desc="embeddings", unit="img", disable=not progress):
            item = dataset[index]
            if not item.objects:
                continue
            key, _ = cache.get_with_key(model, item.image)
            for obj, mask in zip(item.objects, item.masks, strict=True):
                self.items.append((key, index, mask, obj.key))

    def __len__(self) -> int:
        return len(self.items)

    def _box(self, mask: np.ndarray) -> np.ndarray:
        box = np.asarray(tight_box(mask))
        if self.box_jitter > 0:
            shift = torch.randint(-self.box_jitter, self.box_jitter + 1, (4,)).numpy()
            h, w = mask.shape
            box = box + shift
            box = np.clip(box, 0, [w - 1, h - 1, w - 1, h - 1])
            box = np.concatenate([np.minimum(box[:2], box[2:]), np.maximum(box[:2], box[2:])])
        return self.preprocessing.boxes_to_model(box[None], mask.shape)[0]

    def __getitem__(self, index: int) -> dict[str, Any]:
        key, _, mask, object_key = self.items[index]
        embedding = self.cache.load(key)
        if embedding is None:
            raise RuntimeError(f"embedding {key} vanished from the cache during training")
        return {
            "embedding": embedding,
            "box": torch.as_tensor(self._box(mask), dtype=torch.float32),
            "mask": self.preprocessing.mask_to_model(mask),
            "gt": torch.from_numpy(mask),
            "object_key": object_key,
        }


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the fixed-size fields; keep ``gt`` (sizes differ between images) and keys as lists."""
    ragged = {k: [s[k] for s in samples] for k in ("gt", "object_key")}
    fixed = default_collate([{k: v for k, v in s.items() if k not in ragged} for s in samples])
    return {**fixed, **ragged}
