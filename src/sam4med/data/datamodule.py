"""LightningDataModule over a COSMOS-style dataset folder, with a neighbour-safe split."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from sam4med.data.dataset import CosmosDataset
from sam4med.data.epoch_sampler import BATCH_UNITS, EpochSampler, ImageBatchSampler
from sam4med.data.intensity_clip import check_percentiles
from sam4med.data.split import Split, SplitSettings, empty_split_message, make_split, split_sizes
from sam4med.data.training_samples import DecoderSamples, collate
from sam4med.dataset_format import ImageRecord, read_manifest
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError
from sam4med.models.sam_model import SamModel
from sam4med.prompts.training_mix import BOX_ONLY, PromptMix

log = logging.getLogger("sam4med")

MIN_VAL_IMAGES = 3  # a validation split with fewer images picks the best checkpoint on noise (a warning)


class CosmosDataModule(pl.LightningDataModule):
    """Splits, datasets and decoder-training loaders of one dataset folder.

    Args:
        root: the dataset folder.
        preparer: callable that builds ``root`` when it is not complete (e.g. :class:`Colin27AAL`), or None
            for a folder that already exists.
        fractions: train/val/test fractions.
        block_size: slices per block when a dataset has fewer than three sources (see :mod:`sam4med.data.split`).
        gap: slices dropped at a border between two splits.
        split_seed: seed of the split.
        folds: None, or K for a k-fold over sources: the sources are dealt into K folds and fold ``fold`` is the
            test split (see :mod:`sam4med.data.split`).
        fold: the test fold, 0..K-1 (with ``folds``).
        min_object_area: objects smaller than this (pixels) in an image are not used (the COSMOS
            authors drop objects of 50 pixels or fewer: 51).
        clip_percentiles: per-image percentile clipping of the model input (see :mod:`sam4med.data.intensity_clip`).
        batch_size: training batch size (per rank), in units of ``batch_unit``.
        batch_unit: ``object`` (default: a batch is ``batch_size`` objects, whichever images they come
            from) or ``image`` (a batch is ``batch_size`` images, each with all of its objects, so the
            number of objects varies; the COSMOS authors' batches). Validation batches are objects.
        num_workers: DataLoader workers.
        box_jitter: training-time box jitter in original pixels per side (0 at validation).
        input_mode: ``cached`` (embeddings from the cache; default) or ``online`` (encoder every step).
        augment: ``online`` mode only: callable transforming (image, masks, rng) together.
        seed: seed of the training order, box jitter and augmentation (per epoch and sample).
    """

    def __init__(
        self,
        *,
        root: str | Path,
        preparer: Callable[[Path], Path] | None = None,
        fractions: Sequence[float] = (0.7, 0.15, 0.15),
        block_size: int = 4,
        gap: int = 1,
        split_seed: int = 0,
        folds: int | None = None,
        fold: int = 0,
        min_object_area: int = 10,
        clip_percentiles: Sequence[float] | None = None,
        batch_size: int = 2,
        batch_unit: str = "object",
        num_workers: int = 0,
        box_jitter: int = 5,
        input_mode: str = "cached",
        augment: Callable | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.root = Path(root)
        self.preparer = preparer
        self.fractions = tuple(fractions)
        self.block_size, self.gap, self.split_seed = block_size, gap, split_seed
        self.folds, self.fold = folds, fold
        self.min_object_area = min_object_area
        self.clip_percentiles = check_percentiles(clip_percentiles)
        self.batch_size, self.num_workers, self.box_jitter = batch_size, num_workers, box_jitter
        if batch_unit not in BATCH_UNITS:
            raise ConfigError(
                f"dataset.batch_unit must be one of {', '.join(BATCH_UNITS)}; got '{batch_unit}' (object: a batch "
                "is dataset.batch_size objects; image: dataset.batch_size images with all their objects)"
            )
        self.batch_unit = batch_unit
        self.input_mode, self.augment, self.seed = input_mode, augment, seed
        self.split: Split | None = None
        self.records: list[ImageRecord] = []
        self.model: SamModel | None = None
        self.cache: EmbeddingCache | None = None
        self.prompts: PromptMix = BOX_ONLY

    def prepare_data(self) -> None:
        """Build the dataset folder if a preparer is given and the folder is not complete."""
        if self.preparer is not None:
            self.preparer(self.root)

    def setup(self, stage: str | None = None) -> None:
        """Read the manifest and compute the split (deterministic, so every rank agrees)."""
        if self.split is None:
            self.records = read_manifest(self.root)
            try:
                self.split = make_split(self.records, **asdict(self.split_settings))
            except ConfigError as error:
                raise ConfigError(f"{self.root}: {error}") from error

    @property
    def split_settings(self) -> SplitSettings:
        """The settings of the split (fractions, block size, gap, seed, folds, fold)."""
        return SplitSettings(
            fractions=self.fractions,
            block_size=self.block_size,
            gap=self.gap,
            seed=self.split_seed,
            folds=self.folds,
            fold=self.fold,
        )

    def attach(self, model: SamModel, cache: EmbeddingCache, prompts: PromptMix | str | dict = BOX_ONLY) -> None:
        """Give the module the model (preprocessing, encoder) and the embedding cache the loaders use, and the
        prompt mix of the training samples (``module.prompts``; validation samples stay box-only).
        """
        self.model, self.cache, self.prompts = model, cache, PromptMix.parse(prompts)

    def dataset(self, split: str) -> CosmosDataset:
        """The images of ``split`` (train, val or test)."""
        self.setup()
        assert self.split is not None
        ids = self.split.of(split)
        if not ids:
            given = [name for name, f in zip(("train", "val", "test"), self.fractions, strict=True) if f > 0]
            self._refuse_empty(split, given)
        return CosmosDataset(
            self.root, ids, min_object_area=self.min_object_area, clip_percentiles=self.clip_percentiles
        )

    def check_splits(self, needed: Iterable[str]) -> None:
        """Before training: every split in ``needed`` holds an image (else a :class:`ConfigError` with the split
        sizes and settings that would work), and a warning when ``val``, which picks the best checkpoint, has
        fewer than :data:`MIN_VAL_IMAGES` images.
        """
        self.setup()
        assert self.split is not None
        needed = list(dict.fromkeys(needed))
        for name in needed:
            if not self.split.of(name):
                self._refuse_empty(name, needed)
        for name in needed:
            self.dataset(name)
        val = len(self.split.val)
        if "val" in needed and val < MIN_VAL_IMAGES:
            sizes = ", ".join(f"{s.name} {s.sources}/{s.images}" for s in split_sizes(self.split, self.records))
            log.warning(
                "%s: the validation split has %d image(s) (fewer than %d); the best checkpoint is chosen on it, so "
                "that choice rests on %d image(s). Splits (sources/images): %s. Give val more data "
                "(dataset.fractions, more sources) or run a k-fold (dataset.folds, docs/data.md)",
                self.root,
                val,
                MIN_VAL_IMAGES,
                val,
                sizes,
            )

    def _refuse_empty(self, name: str, needed: Iterable[str]) -> None:
        assert self.split is not None
        raise ConfigError(empty_split_message(self.root, self.records, self.split, name, self.split_settings, needed))

    def save_split(self, path: Path) -> None:
        """Write the split as ``image_id,split`` rows (saved with every run)."""
        self.setup()
        assert self.split is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["image_id", "split"])
            writer.writeheader()
            writer.writerows(self.split.rows())

    def _loader(self, split: str, train: bool) -> DataLoader:
        if self.model is None:
            raise RuntimeError("call attach(model, cache) before asking for data loaders")
        trains = self.model.encoder_trains
        samples = DecoderSamples(
            self.dataset(split),
            self.model,
            self.cache,
            # an encoder that trains (LoRA) makes new embeddings every step: validation encodes online too
            mode=self.input_mode if train else "cached" if self.cache is not None and not trains else "online",
            box_jitter=self.box_jitter if train else 0,
            augment=self.augment if train else None,
            seed=self.seed,
            prompts=self.prompts if train else BOX_ONLY,
            # the embedding bar follows the trainer's progress setting (trainer.enable_progress_bar)
            progress=self.trainer is None or self.trainer.progress_bar_callback is not None,
        )
        if train and self.batch_unit == "image":
            batches = ImageBatchSampler(samples.image_samples, self.batch_size, seed=self.seed)
            return DataLoader(samples, batch_sampler=batches, num_workers=self.num_workers, collate_fn=collate)
        return DataLoader(
            samples,
            batch_size=self.batch_size,
            sampler=EpochSampler(len(samples), shuffle=train, seed=self.seed, shard=train),
            num_workers=self.num_workers,
            collate_fn=collate,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled box-prompt samples with jitter (and augmentation in online mode), sharded over ranks.

        A batch is ``batch_size`` objects, or ``batch_size`` images with all their objects (``batch_unit``).
        """
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        """Validation samples with tight boxes, in order; every rank sees all of them.

        A batch is ``batch_size`` objects, whatever ``batch_unit`` says.
        """
        return self._loader("val", train=False)
