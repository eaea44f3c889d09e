"""Decoder-training samples: one per (image, object), with a prompt from the ground truth.

The prompt is the (jittered) tight box, or, with a prompt mix other than ``box``
(:mod:`sam4med.prompts.training_mix`), a kind drawn per sample: one point, five points, five points
and five negatives, or the box and one point. The kind, the points and the box are drawn from
(seed, epoch, index) only, after the augmentation and the jitter, so the box of a sample is the same
whatever the mix, and the ``box`` mix gives the samples of the box-only code tensor for tensor.

Two input modes:

* ``cached`` (default): the encoder runs once per image before training and a sample carries the
  stored embedding, so a step costs only the prompt encoder and decoder. No image augmentation.
* ``online``: a sample carries the preprocessed image; the module encodes it each step (no grad), so
  albumentations augmentation can change the image and mask together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, default_collate
from tqdm import tqdm

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError
from sam4med.models.sam_model import SamModel
from sam4med.prompts.generate import tight_box
from sam4med.prompts.training_mix import BOX_ONLY, PromptMix, kind_points, padded

INPUT_MODES = ("cached", "online")
# (image H x W x 3 uint8, masks N x H x W bool, rng) -> same, transformed together
Augment = Callable[[np.ndarray, np.ndarray, np.random.Generator], tuple[np.ndarray, np.ndarray]]


def jitter_box(box: np.ndarray, amount: int, shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Move each side of an XYXY box by a uniform integer in [-amount, amount] pixels, kept in the image."""
    if amount <= 0:
        return box
    h, w = shape
    moved = box + rng.integers(-amount, amount + 1, size=4)
    moved = np.clip(moved, 0, [w - 1, h - 1, w - 1, h - 1])
    return np.concatenate([np.minimum(moved[:2], moved[2:]), np.maximum(moved[:2], moved[2:])])


class _ImageReads(Dataset):
    """What the sample index needs of image i, read in a DataLoader worker: (i, object keys, image or None).

    The image comes along only where this rank encodes it (``encode``, the image has objects and
    i mod ``world`` is ``rank``).
    """

    def __init__(self, dataset: CosmosDataset, *, encode: bool, rank: int, world: int) -> None:
        self.dataset, self.encode, self.rank, self.world = dataset, encode, rank, world

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[int, list[str], np.ndarray | None]:
        item = self.dataset[index]
        keys = [obj.key for obj in item.objects]
        mine = self.encode and bool(keys) and index % self.world == self.rank
        return index, keys, item.image if mine else None


def _as_read(read: tuple[int, list[str], np.ndarray | None]) -> tuple[int, list[str], np.ndarray | None]:
    """The DataLoader's per-item conversion: none (the image stays a uint8 numpy array)."""
    return read


class DecoderSamples(Dataset):
    """Prompted samples for the mask decoder.

    Indexed by an int or by ``(epoch, index)`` (see :class:`sam4med.data.epoch_sampler.EpochSampler`);
    the jitter and augmentation of a sample are drawn from (seed, epoch, index) only. A sample is a dict:

        ``embedding``: C x h x w float32 image embedding (``cached`` mode), or
        ``image``: 3 x S x S float32 preprocessed image (``online`` mode);
        ``box``: 4 float32 XYXY box in model-input pixels (jittered when ``box_jitter`` > 0);
        ``kind``: the prompt kind (``box``, ``point``, ``points``, ``points_negative``, ``box_point``);
        ``use_box``: bool tensor, whether the prompt holds ``box``;
        ``points``: P x 2 float32 XY points in model-input pixels, P = ``MAX_POINTS`` (10), the prompt's
            first, the rest zeros;
        ``labels``: P int64 point labels, 1 positive, 0 negative, -1 padding (none but padding for ``box``);
        ``seed``: int64 tensor, the seed of the tie-breaks of this sample's corrective clicks
            (``module.iterations``), drawn from (seed, epoch, index) after the prompt;
        ``mask``: S x S float32 ground truth in model-input space (resized and padded like the image);
        ``gt``: H x W bool ground truth in original pixels (validation scores against it);
        ``object_key``: the object's key.

    Args:
        dataset: images and objects.
        model: provides the preprocessing and, in ``cached`` mode, the encoder for cache misses.
        cache: embedding cache (``cached`` mode; each image is encoded at most once).
        mode: ``cached`` or ``online``.
        box_jitter: max shift of each box side in original pixels (0 for evaluation).
        augment: ``online`` mode only: transforms an image and its masks together.
        seed: base seed of jitter, augmentation and prompt.
        prompts: the prompt mix (a :class:`PromptMix`, a preset name or a mapping kind -> probability); ``box``
            (the default) gives every sample its box alone.
        progress: progress bar while embeddings are prepared.
    """

    def __init__(
        self,
        dataset: CosmosDataset,
        model: SamModel,
        cache: EmbeddingCache | None,
        *,
        mode: str = "cached",
        box_jitter: int = 0,
        augment: Augment | None = None,
        seed: int = 0,
        progress: bool = True,
        prompts: PromptMix | str | dict = BOX_ONLY,
    ) -> None:
        if mode not in INPUT_MODES:
            raise ConfigError(f"input mode must be one of {INPUT_MODES}, got '{mode}'")
        if augment is not None and mode == "cached":
            raise ConfigError("augmentation needs input mode 'online': cached embeddings cannot be augmented")
        if mode == "cached" and cache is None:
            raise ConfigError("input mode 'cached' needs an embedding cache")
        self.dataset, self.model, self.cache = dataset, model, cache
        self.preprocessing = model.preprocessing
        self.mode, self.box_jitter, self.augment, self.seed = mode, box_jitter, augment, seed
        self.prompts = PromptMix.parse(prompts)
        self.keys: dict[int, str] = {}  # image index -> embedding key
        self.items: list[tuple[int, int, str]] = []  # (image index, object index, object key)
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
        shared = cache is not None and cache.directory is not None
        reads = _ImageReads(dataset, encode=mode == "cached", rank=rank if shared else 0, world=world if shared else 1)
        workers = cache.workers if cache is not None else 0
        loader = DataLoader(reads, batch_size=None, num_workers=workers, collate_fn=_as_read)  # in index order
        bar = tqdm(loader, desc=f"{mode} samples", unit="img", disable=not progress or rank > 0)
        pending: list[tuple[int, np.ndarray]] = []  # images to encode, cache.batch_size per encoder call
        for index, object_keys, image in bar:
            self.items += [(index, k, key) for k, key in enumerate(object_keys)]
            if image is not None:  # this rank encodes it (ranks share the work through the on-disk cache)
                pending.append((index, image))
            if pending and (len(pending) == cache.batch_size or index == len(dataset) - 1):
                found = cache.get_many(model, [image for _, image in pending])
                self.keys.update({i: key for (i, _), (key, _) in zip(pending, found, strict=True)})
                pending = []
        if mode == "cached" and shared and world > 1:
            dist.barrier()
            for index in range(len(dataset)):
                if index not in self.keys and self.dataset[index].objects:
                    self.keys[index] = cache.key(model, self.dataset[index].image)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def image_samples(self) -> tuple[tuple[int, ...], ...]:
        """Per image of the dataset, in its order, the indices of its samples (one per object).

        Empty for an image without objects. The unit of ``dataset.batch_unit=image``
        (:class:`sam4med.data.epoch_sampler.ImageBatchSampler`).
        """
        groups: list[list[int]] = [[] for _ in range(len(self.dataset))]
        for index, (image_index, _, _) in enumerate(self.items):
            groups[image_index].append(index)
        return tuple(tuple(group) for group in groups)

    def __getitem__(self, position: int | tuple[int, int]) -> dict[str, Any]:
        epoch, index = position if isinstance(position, tuple) else (0, position)
        image_index, object_index, object_key = self.items[index]
        rng = np.random.default_rng([self.seed, epoch, index])
        item = self.dataset[image_index]
        image, mask = item.image, item.masks[object_index]
        if self.augment is not None:
            image, masks = self.augment(image, mask[None], rng)
            mask = masks[0]
        sample: dict[str, Any] = {}
        if self.mode == "cached":
            embedding = self.cache.load(self.keys[image_index])
            if embedding is None:
                raise RuntimeError(f"embedding of image {item.record.image_id} vanished from the cache")
            sample["embedding"] = embedding
        else:
            sample["image"] = self.preprocessing.image_to_tensor(image)
        if mask.any():
            box = jitter_box(np.asarray(tight_box(mask)), self.box_jitter, mask.shape, rng)
        else:  # augmentation moved the object out of the image: an empty target with a whole-image box
            box = np.array([0.0, 0.0, mask.shape[1] - 1, mask.shape[0] - 1])
        sample["box"] = torch.as_tensor(
            self.preprocessing.boxes_to_model(box[None], mask.shape)[0], dtype=torch.float32
        )
        kind = "box" if self.prompts.box_only else self.prompts.draw(rng)
        drawn = kind_points(mask, kind, rng)
        points, labels = padded(self.preprocessing.coords_to_model(drawn.points, mask.shape), drawn.labels)
        sample["kind"] = drawn.kind
        sample["use_box"] = torch.tensor(drawn.kind in ("box", "box_point"))
        sample["points"], sample["labels"] = torch.from_numpy(points), torch.from_numpy(labels)
        sample["seed"] = torch.tensor(int(rng.integers(2**62)), dtype=torch.int64)
        sample["mask"] = self.preprocessing.mask_to_model(mask)
        sample["gt"] = torch.from_numpy(np.ascontiguousarray(mask))
        sample["object_key"] = object_key
        return sample


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack the fixed-size fields; keep ``gt`` (sizes differ between images), keys and kinds as lists."""
    ragged = {k: [s[k] for s in samples] for k in ("gt", "object_key", "kind") if k in samples[0]}
    fixed = default_collate([{k: v for k, v in s.items() if k not in ragged} for s in samples])
    return {**fixed, **ragged}
