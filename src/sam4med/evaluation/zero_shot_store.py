"""Zero-shot rows shared between runs, so every job of a sweep scores the same baseline once.

A zero-shot row depends on the base model and the scoring settings (together the settings hash of
:func:`sam4med.evaluation.runner.settings_hash`: weights, preprocessing, mask selection, S1 settings,
prompt seed and sampling, input clipping, minimum object area, the NSD tolerance and rule of ``metrics``,
and for the iterative clicks ``I`` the ``evaluation.interactive`` settings) and on the image with its
objects: rows scored with another ``metrics.nsd_tolerance`` or ``metrics.nsd_rule`` are never reused. So
the rows of one image under one strategy are stored under both:

    <directory>/<settings hash>/<fingerprint[:2]>/<fingerprint>-<strategy>.json

where the fingerprint is a SHA-256 of the image id, the image's pixels, its pixel spacing, its objects
(label map, value, name, modality) and their ground-truth masks. A job that trains with another
learning rate, loss or number of epochs, but scores the same images with the same settings, reads the
rows its predecessor wrote instead of decoding again; a job with another prompt seed, backbone or
split finds nothing and scores as usual. Each file holds the rows and a SHA-256 of them, and is written
atomically under a name unique to the writing process, so jobs running at once leave a valid file; one
that cannot be read as rows (cut, damaged, edited after it was written so its checksum no longer
matches, of another format or of another image) is logged once and scored again. Each file also records
the prompt and metric rule versions its rows were made under (:mod:`sam4med.evaluation.rules`): a file of
other versions, or of none (written before versions were recorded), is never reused but scored again and
rewritten; :attr:`ZeroShotStore.outdated` counts them, and the runner logs the count once per phase.
A file of strategy ``I`` holds the rows ``I@1`` ... ``I@<clicks>`` of every object and, under the same
checksum, the clicks placed (``clicks``: one :class:`~sam4med.evaluation.interactive.ClickRecord` per
object), so a run that reads them still logs the clicks its rows were made with.

Where the writing run kept predicted masks (saved masks, volume scores: :mod:`sam4med.evaluation.predictions`),
``<fingerprint>-<strategy>.npz`` beside the rows holds them (under ``I`` those of the last click), written
before the rows; a run that needs masks reads rows and masks from the store, and decodes the image only
where the store has rows without masks.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from sam4med.data.dataset import ImageItem
from sam4med.errors import DataError
from sam4med.evaluation.predictions import ImagePrediction, read_prediction, write_prediction
from sam4med.evaluation.rows import COLUMNS, ObjectResult, Phase
from sam4med.evaluation.rules import RULES, current
from sam4med.files import write_text

log = logging.getLogger("sam4med")


def fingerprint(item: ImageItem) -> str:
    """SHA-256 of everything of an image that its rows depend on (id, pixels, spacing, objects, masks)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([item.record.image_id, item.record.spacing]).encode())
    digest.update(f"{item.image.dtype}{item.image.shape}".encode())
    digest.update(item.image.tobytes())
    digest.update(json.dumps([[o.label_map, o.label_value, o.object_name, o.modality] for o in item.objects]).encode())
    digest.update(f"{item.masks.shape}".encode())
    digest.update(item.masks.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredRows:
    """What a store file holds: the rows (relabelled with the asking phase) and, for ``I``, the clicks.

    Attributes:
        rows: the rows of every object of the image under the strategy.
        clicks: the click records (``ClickRecord.to_dict``) of strategy ``I``, one per object; None for others.
    """

    rows: list[ObjectResult]
    clicks: list[dict] | None = None


class ZeroShotStore:
    """Rows of (settings, image, strategy) in files under ``directory`` (see the module docstring).

    Args:
        directory: the shared folder (``paths.zero_shot_dir``, under the root shared by every run).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.hits = 0
        self.misses = 0
        self.outdated = 0  # files of other rule versions, scored again (also counted in misses)
        self._last: tuple[ImageItem, str] | None = None  # the image asked about last and its fingerprint

    def _path(self, settings: str, item: ImageItem, strategy: str) -> Path:
        if self._last is None or self._last[0] is not item:  # one hash per image, not per strategy and call
            self._last = (item, fingerprint(item))
        key = self._last[1]
        return self.directory / settings / key[:2] / f"{key}-{strategy}.json"

    def has(self, settings: str, item: ImageItem, strategy: str) -> bool:
        """Whether rows of (settings, image, strategy) are stored (not whether they are usable)."""
        return self._path(settings, item, strategy).is_file()

    def has_prediction(self, settings: str, item: ImageItem, strategy: str) -> bool:
        """Whether the predicted masks of (settings, image, strategy) are stored beside its rows."""
        return self._path(settings, item, strategy).with_suffix(".npz").is_file()

    def prediction(self, settings: str, item: ImageItem, strategy: str) -> ImagePrediction | None:
        """The stored predicted masks of (settings, image, strategy); None where absent or unreadable (logged)."""
        path = self._path(settings, item, strategy).with_suffix(".npz")
        try:
            found = read_prediction(path, item.record.image_id)
        except DataError as error:
            log.warning("%s; decoding the image again for its masks", error)
            return None
        if sorted(found.object_keys) != sorted(o.key for o in item.objects):
            log.warning("%s: stored masks of other objects; decoding the image again for its masks", path)
            return None
        return found

    def get(self, settings: str, item: ImageItem, strategy: str, phase: Phase) -> list[ObjectResult] | None:
        """The stored rows, relabelled ``phase``; None when there are none (or they cannot be used)."""
        stored = self.load(settings, item, strategy, phase)
        return None if stored is None else stored.rows

    def load(
        self,
        settings: str,
        item: ImageItem,
        strategy: str,
        phase: Phase,
        *,
        rows: Sequence[str] | None = None,
        clicks: bool = False,
    ) -> StoredRows | None:
        """The stored rows (relabelled ``phase``) and clicks; None when there are none (or they cannot be used).

        ``rows``: the strategies the rows must carry, each once per object (None: ``strategy`` itself; ``I``:
        ``I@1`` ... ``I@<clicks>``); ``clicks``: the file must hold one click record per object.
        """
        expected_strategies = sorted(rows or (strategy,))
        path = self._path(settings, item, strategy)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            stored = json.loads(path.read_text())
            if isinstance(stored, dict) and {"rows", "sha256"} <= set(stored) and not current(stored):
                log.debug("%s: stored zero-shot rows of other rule versions; scoring again", path)
                self.outdated += 1
                self.misses += 1
                return None
            if not isinstance(stored, dict) or set(stored) - {"clicks"} != {"rows", "sha256", *RULES}:
                raise ValueError("not a checksummed list of result rows (an older format?)")
            data, records = stored["rows"], stored.get("clicks")
            if not isinstance(data, list) or any(not isinstance(row, dict) or set(row) != set(COLUMNS) for row in data):
                raise ValueError("not a list of result rows")
            if _checksum(data, records) != stored["sha256"]:
                raise ValueError("checksum mismatch: the rows were changed after they were written")
            found = [ObjectResult(**{**row, "phase": phase}) for row in data]
            expected = sorted(o.key for o in item.objects)
            keys = sorted(r.object_key for r in found)
            if keys != sorted(expected * len(expected_strategies)) or sorted({r.strategy for r in found}) != (
                expected_strategies
            ):
                raise ValueError("rows of other objects or another strategy")
            if clicks and (
                not isinstance(records, list)
                or sorted(r.get("object_key") if isinstance(r, dict) else None for r in records) != expected
            ):
                raise ValueError("no click record for every object")
        except (OSError, ValueError, TypeError, AttributeError) as error:
            log.warning("%s: stored zero-shot rows unusable (%s); scoring again", path, error)
            self.misses += 1
            return None
        self.hits += 1
        return StoredRows(found, records if clicks else None)

    def put(
        self,
        settings: str,
        item: ImageItem,
        strategy: str,
        rows: Sequence[ObjectResult],
        *,
        clicks: list[dict] | None = None,
        prediction: ImagePrediction | None = None,
    ) -> None:
        """Store the rows of one image under one strategy (and, for ``I``, the click records of its objects;
        ``prediction``: its predicted masks, written first).
        """
        path = self._path(settings, item, strategy)
        if prediction is not None:
            write_prediction(path.with_suffix(".npz"), prediction, unique_tmp=True)
        data = [asdict(r) for r in rows]
        extra = {} if clicks is None else {"clicks": clicks}
        write_text(
            path, json.dumps({**RULES, "rows": data, **extra, "sha256": _checksum(data, clicks)}), unique_tmp=True
        )


def _checksum(rows: list[dict], clicks: list[dict] | None = None) -> str:
    """SHA-256 of rows (and click records, where given) in a canonical JSON form (what
    :meth:`ZeroShotStore.put` records beside them).
    """
    content = rows if clicks is None else {"rows": rows, "clicks": clicks}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()
