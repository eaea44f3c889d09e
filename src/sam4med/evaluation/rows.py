"""What scoring produces: one :class:`ObjectResult` per phase x strategy x object, and the typed :class:`Phase`.

This module is the whole contract between scoring (this package) and reporting (:mod:`sam4med.results`):
it imports nothing of either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum

from sam4med.errors import ConfigError

METRICS = ("dice", "iou", "hd", "hd95", "nsd")


class Phase(StrEnum):
    """Which decoder a row was scored with: SAM's own (``zero_shot``) or a trained one (``finetuned``).

    A :class:`~enum.StrEnum`, so a phase is written to CSV, JSON and logger keys as its plain value.
    """

    ZERO_SHOT = "zero_shot"
    FINETUNED = "finetuned"

    @classmethod
    def parse(cls, value: str | Phase) -> Phase:
        """The member named ``value``; an unknown name is a :class:`ConfigError` listing the allowed ones."""
        try:
            return cls(value)
        except ValueError:
            raise ConfigError(f"phase must be one of {', '.join(p.value for p in cls)}; got '{value}'") from None

    @property
    def label(self) -> str:
        """How the phase is written in legends, titles and table headers (``zero-shot``, ``fine-tuned``)."""
        return PHASE_LABELS[self]


PHASE_LABELS = {Phase.ZERO_SHOT: "zero-shot", Phase.FINETUNED: "fine-tuned"}


@dataclass(frozen=True)
class ObjectResult:
    """Scores of one object instance under one strategy in one phase.

    ``hd``/``hd95`` are in ``hd_unit`` (mm where the image's pixel spacing is known, else pixels);
    ``hd_px``/``hd95_px`` are always in pixels (the unit of the paper's Table 3). ``score`` is the
    predicted IoU of the chosen mask (0.0 when nothing was predicted). ``candidates`` is the number
    of masks the prediction was chosen from: 1 (``single``), 3 (``oracle``/``confidence``), or for S1
    the number of masks everything mode generated for the image (0: none survived its filters).
    ``source`` is the volume or patient of the image (the unit of the statistics).
    ``empty``: the chosen prediction has no pixel (a miss); its HD is then the image diagonal.
    ``nsd``: the normalised surface distance at ``metrics.nsd_tolerance`` (in ``hd_unit``), in [0, 1], after
    ``metrics.nsd_rule`` (:mod:`sam4med.metrics.surface`); a miss scores 0.
    NaN only in rows made before NSD was scored (they carry an older metric rule version).
    ``phase`` becomes a :class:`Phase` when the row is made (a log line with an unknown phase is a
    ``ValueError``).
    """

    phase: Phase
    strategy: str
    target: str
    modality: str
    object: str
    image_id: str
    object_key: str
    dice: float
    iou: float
    hd: float
    hd95: float
    hd_unit: str
    score: float
    nsd: float = math.nan
    hd_px: float = math.nan
    hd95_px: float = math.nan
    candidates: int = -1
    empty: bool = False
    source: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "phase", Phase(self.phase))


COLUMNS = tuple(f.name for f in fields(ObjectResult))
