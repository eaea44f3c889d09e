"""The predicted masks of each scored image, kept on disk while a split is scored.

Saved masks (``outputs.masks``) and volume-level scores need every image's predicted masks after scoring,
when a volume's slices are stacked. Keeping them in memory would hold the whole split (and, with DDP,
one rank's share only); instead each (phase, strategy, image) is written as it is decoded to
``results/predictions/<phase>/<strategy>/<image_id>.npz`` (object keys, label maps, label values, predicted
scores and the N x H x W masks bit-packed and compressed: a few kB per image), before its rows are logged.
So a resumed run finds the masks of every logged row, the ranks of a DDP run write their own images, and
the masks and volume scores read one image (or one volume) at a time.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sam4med.data.dataset import ObjectRef
from sam4med.errors import DataError
from sam4med.files import write_bytes


@dataclass(frozen=True)
class ImagePrediction:
    """The chosen predicted masks of one image under one strategy.

    Attributes:
        object_keys: the objects' keys (``<image_id>/<label map>/<value>``), in scoring order.
        label_maps: each object's label map.
        values: each object's label value.
        scores: each object's predicted IoU (0 where nothing was predicted).
        masks: N x H x W bool.
    """

    object_keys: tuple[str, ...]
    label_maps: tuple[str, ...]
    values: tuple[int, ...]
    scores: np.ndarray
    masks: np.ndarray

    @classmethod
    def of(cls, objects: Sequence[ObjectRef], masks: np.ndarray, scores: np.ndarray) -> ImagePrediction:
        """From the scored objects and their N x H x W masks and N scores."""
        return cls(
            object_keys=tuple(o.key for o in objects),
            label_maps=tuple(o.label_map for o in objects),
            values=tuple(int(o.label_value) for o in objects),
            scores=np.asarray(scores, dtype=np.float32).reshape(len(objects)),
            masks=np.asarray(masks, dtype=bool).reshape(len(objects), *np.shape(masks)[1:]),
        )

    def mask_of(self, label_map: str, value: int) -> np.ndarray | None:
        """The H x W mask of the object (``label_map``, ``value``), or None where it was not scored."""
        for k, (m, v) in enumerate(zip(self.label_maps, self.values, strict=True)):
            if m == label_map and v == value:
                return self.masks[k]
        return None


class PredictionFiles:
    """``<folder>/<phase>/<strategy>/<image_id>.npz`` for every scored (phase, strategy, image)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, phase: str, strategy: str, image_id: str) -> Path:
        """The file of one image's predictions."""
        return self.folder / str(phase) / strategy / f"{image_id}.npz"

    def has(self, phase: str, strategy: str, image_id: str) -> bool:
        """Whether the predictions of (phase, strategy, image) were written."""
        return self.path(phase, strategy, image_id).is_file()

    def write(self, phase: str, strategy: str, image_id: str, prediction: ImagePrediction) -> None:
        """Write (atomically) one image's predictions."""
        write_prediction(self.path(phase, strategy, image_id), prediction)

    def read(self, phase: str, strategy: str, image_id: str) -> ImagePrediction:
        """One image's predictions; a missing or unreadable file is a :class:`DataError` naming it."""
        return read_prediction(self.path(phase, strategy, image_id), image_id)


def write_prediction(path: Path, prediction: ImagePrediction, *, unique_tmp: bool = False) -> None:
    """Write (atomically) one image's predictions to the ``.npz`` file ``path`` (``unique_tmp``: concurrent
    writers, as the jobs of a sweep sharing the zero-shot store).
    """
    n, h, w = prediction.masks.shape if prediction.masks.ndim == 3 else (0, 0, 0)
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        object_keys=np.array(prediction.object_keys, dtype=str),
        label_maps=np.array(prediction.label_maps, dtype=str),
        values=np.array(prediction.values, dtype=np.int64),
        scores=prediction.scores,
        shape=np.array([n, h, w], dtype=np.int64),
        packed=np.packbits(prediction.masks.reshape(n, -1), axis=1),
    )
    write_bytes(path, buffer.getvalue(), unique_tmp=unique_tmp)


def read_prediction(path: Path, image_id: str) -> ImagePrediction:
    """The predictions in ``path`` (image ``image_id``); a missing or unreadable file is a :class:`DataError`."""
    try:
        with np.load(path) as data:
            n, h, w = (int(x) for x in data["shape"])
            masks = np.unpackbits(data["packed"], axis=1, count=h * w).reshape(n, h, w).astype(bool)
            return ImagePrediction(
                object_keys=tuple(str(k) for k in data["object_keys"]),
                label_maps=tuple(str(m) for m in data["label_maps"]),
                values=tuple(int(v) for v in data["values"]),
                scores=np.asarray(data["scores"], dtype=np.float32),
                masks=masks,
            )
    except FileNotFoundError as exc:
        raise DataError(f"{path}: missing; the predicted masks of image '{image_id}' were not kept") from exc
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: cannot read predicted masks ({exc}); delete it and score again") from exc
