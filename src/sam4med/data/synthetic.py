"""Synthetic COSMOS-style datasets generated in code, for tests, notebooks and quick trials.

Each image holds bright shapes on a textured background: a disc, a ring (its centre of mass lies
outside it), a two-part object, a thin bar, and in every third image a disc cut by the image border.
Objects are named by shape; images are spread over ``sources`` volumes and ``modalities``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sam4med.data.format import (
    DatasetInfo,
    ImageRecord,
    LabelMap,
    image_path,
    label_path,
    save_png,
    write_info,
    write_manifest,
)

SHAPES = {1: "Disc", 2: "Ring", 3: "TwoPart", 4: "Bar", 5: "BorderDisc"}


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def synthetic_image(size: tuple[int, int], rng: np.random.Generator, index: int) -> tuple[np.ndarray, np.ndarray]:
    """One (image H x W uint8, label map H x W uint8) pair."""
    h, w = size
    labels = np.zeros((h, w), dtype=np.uint8)
    s = min(h, w)
    jitter = rng.uniform(-0.04, 0.04, size=8) * s
    labels[_disc(h, w, 0.28 * h + jitter[0], 0.28 * w + jitter[1], 0.12 * s)] = 1
    ring = _disc(h, w, 0.3 * h + jitter[2], 0.72 * w + jitter[3], 0.14 * s)
    ring &= ~_disc(h, w, 0.3 * h + jitter[2], 0.72 * w + jitter[3], 0.08 * s)
    labels[ring] = 2
    labels[_disc(h, w, 0.72 * h, 0.18 * w + jitter[4], 0.06 * s) | _disc(h, w, 0.72 * h, 0.42 * w, 0.06 * s)] = 3
    y0 = int(0.62 * h + jitter[5])
    labels[y0 : y0 + max(2, s // 32), int(0.6 * w) : int(0.92 * w)] = 4
    if index % 3 == 0:
        labels[_disc(h, w, h - 1, 0.5 * w + jitter[6], 0.1 * s) & (labels == 0)] = 5
    background = rng.normal(60, 12, size=(h, w))
    image = background + np.where(labels > 0, 110 + 10 * labels, 0) + rng.normal(0, 8, size=(h, w))
    return np.clip(image, 0, 255).astype(np.uint8), labels


class SyntheticShapes:
    """Writes a synthetic dataset folder (deterministic for a given seed) unless it is complete.

    Args:
        n_images: number of images.
        size: (H, W) of every image.
        sources: number of source volumes the images are spread over (slice order kept).
        modalities: modality names, assigned per source in turn.
        seed: random seed.
    """

    def __init__(
        self,
        *,
        n_images: int = 12,
        size: Sequence[int] = (48, 64),
        sources: int = 1,
        modalities: Sequence[str] = ("Synthetic",),
        seed: int = 0,
    ) -> None:
        self.n_images, self.size, self.sources = n_images, (int(size[0]), int(size[1])), sources
        self.modalities, self.seed = tuple(modalities), seed

    def __call__(self, root: str | Path) -> Path:
        """Prepare into ``root`` unless complete; returns ``root``."""
        root = Path(root)
        if (root / ".complete").is_file():
            return root
        rng = np.random.default_rng(self.seed)
        records = []
        for i in range(self.n_images):
            image, labels = synthetic_image(self.size, rng, i)
            source = i % self.sources
            image_id = f"syn{i:04d}"
            save_png(label_path(root, "shapes", image_id), labels)
            save_png(image_path(root, image_id), image)
            records.append(
                ImageRecord(image_id, f"vol{source}", i // self.sources,
                            self.modalities[source % len(self.modalities)], (1.0, 1.0))
            )
        write_info(root, DatasetInfo(name="synthetic", label_maps=(LabelMap("shapes", dict(SHAPES)),)))
        write_manifest(root, records)
        (root / ".complete").write_text(f"{len(records)} images\n")
        return root
