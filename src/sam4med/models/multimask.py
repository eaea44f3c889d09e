"""Which of the decoder's mask outputs is scored (and trained): the ``multimask`` setting.

SAM's decoder has one single-mask output (token 0) and three multimask outputs (tokens 1-3). The
setting is parsed once where it enters (config, constructor) into :class:`Multimask`; :func:`choose`
is the one place that turns candidate masks into a choice, for evaluation and for validation alike.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from sam4med.errors import ConfigError
from sam4med.metrics import dice


class Multimask(StrEnum):
    """Mask selection.

    ``single``: SAM's single-mask output. ``oracle``: of the three multimask outputs, the one with the
    best Dice against the ground truth (the COSMOS study's choice). ``confidence``: of the three, the
    one with the highest predicted IoU.
    """

    SINGLE = "single"
    ORACLE = "oracle"
    CONFIDENCE = "confidence"

    @classmethod
    def parse(cls, value: str | Multimask) -> Multimask:
        """The member named ``value``; an unknown name is a :class:`ConfigError` listing the allowed ones."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise ConfigError(f"multimask must be one of {allowed}; got '{value}'") from None

    @property
    def multimask_output(self) -> bool:
        """Whether the decoder must return its three multimask outputs (else the single mask)."""
        return self is not Multimask.SINGLE


def choose(multimask: Multimask, masks: np.ndarray, scores: np.ndarray, gt: np.ndarray | None) -> np.ndarray:
    """Index of the chosen output per object.

    Args:
        multimask: the selection rule.
        masks: N x M x H x W bool candidate masks in original pixels (M = 1 for ``single``, else 3).
        scores: N x M predicted IoU of each candidate.
        gt: N x H x W bool ground truth; needed for ``oracle`` only.

    Returns:
        N int64 indices into the M candidates (the first on a tie).
    """
    if multimask is Multimask.ORACLE:
        if gt is None:
            raise ValueError("multimask 'oracle' needs the ground-truth masks")
        best = [int(np.argmax([dice(m, g) for m in ms])) for ms, g in zip(masks, gt, strict=True)]
        return np.array(best, dtype=np.int64)
    return np.asarray(scores).argmax(axis=1)
