"""Synthetic COSMOS-style datasets generated in code, for tests, notebooks and quick trials.

Each image holds bright shapes on a textured background: a disc, a ring (its centre of mass lies
outside it), a two-part object, a thin bar, and in every third image a disc cut by the image border.
Objects are named by shape. Images are spread over ``sources`` volumes (slice order kept) and take the
``modalities`` in turn, as the sequences of a multi-parametric study would; the k-th modality looks
different: k = 0, 3, ... bright shapes on grey, k = 1, 4, ... inverted (dark shapes on a bright
background), k = 2, 5, ... colour (RGB).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sam4med.dataset_format import ImageRecord, LabelMap
from sam4med.prepare.labels import LabelSpec, remap
from sam4med.prepare.preparer import Preparer
from sam4med.prepare.rules import SliceRules
from sam4med.prepare.slices import clean_labels, emit
from sam4med.prepare.writer import DatasetWriter, Input, Part

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


def styled(image: np.ndarray, style: int) -> np.ndarray:
    """The grey H x W uint8 ``image`` in the look of modality number ``style`` (see the module docstring)."""
    if style % 3 == 1:
        return 255 - image
    if style % 3 == 2:
        tint = np.array([1.0, 0.55, 0.75])
        return np.clip(image[:, :, None] * tint + np.array([0, 30, 10]), 0, 255).astype(np.uint8)
    return image


class SyntheticShapes(Preparer):
    """Writes a synthetic dataset folder (deterministic for a given seed) unless it is complete.

    Args:
        n_images: number of images.
        size: (H, W) of every image.
        sources: number of source volumes the images are spread over (slice order kept).
        modalities: modality names, taken by the images in turn.
        seed: random seed.
    """

    name = "synthetic"
    unit = "set"

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

    def settings(self) -> dict:
        """Plain-data settings (recorded in dataset.yaml, compared when a run resumes)."""
        return {"kind": "synthetic", "n_images": self.n_images, "size": list(self.size), "sources": self.sources,
                "modalities": list(self.modalities), "seed": self.seed}  # fmt: skip

    def inputs(self) -> list[Input]:
        """One input: the whole generated set."""
        return [Input("synthetic", "generated")]

    def process(self, item: Input, writer: DatasetWriter) -> Part:
        """Generate and write every image."""
        spec = LabelSpec("shapes", objects=dict(SHAPES))
        rules = SliceRules(min_label_sum=0)
        rng = np.random.default_rng(self.seed)
        records = []
        for i in range(self.n_images):
            image, labels = synthetic_image(self.size, rng, i)
            source, k = i % self.sources, i % len(self.modalities)
            record = ImageRecord(f"syn{i:04d}", f"vol{source}", i // self.sources, self.modalities[k], (1.0, 1.0),
                                 source_file="generated")  # fmt: skip
            cleaned = clean_labels({"shapes": remap(labels.astype(np.int64), spec, record.image_id)}, rules)
            done, _ = emit(writer, record, styled(image, k), cleaned)
            records.append(done)
        return Part(tuple(records))

    def label_maps(self, records: Sequence[ImageRecord]) -> tuple[LabelMap, ...]:
        """The shape names."""
        return (LabelMap("shapes", dict(SHAPES)),)
