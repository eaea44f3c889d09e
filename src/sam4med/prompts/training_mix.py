"""The prompt kinds of decoder training and the mix they are drawn from (``module.prompts``).

Each training object gets one prompt kind, drawn with the probabilities of the mix. A kind is one of the
evaluation's strategies, with its :class:`~sam4med.prompts.generate.PromptRule`:

=================== ======================================== ==================
kind                prompt                                   as the evaluation's
=================== ======================================== ==================
``box``             the (jittered) tight box                 S5
``point``           one positive point                       S2
``points``          five positive points                     S3
``points_negative`` five positive and five negative points   S4
``box_point``       the box and one positive point           S6
=================== ======================================== ==================

Points follow the evaluation's random rule (:func:`~sam4med.prompts.generate.positive_points`: the
first positive at the centre of mass when it lies in the object, the others uniform over the object;
:func:`~sam4med.prompts.generate.negative_points`: uniform over the background of the tight box
enlarged two times), drawn with the training sample's generator, so they change with the epoch where
the evaluation's are fixed per object.

Presets (``module.prompts=<name>``):

* ``box`` (the default): box only, the training of the COSMOS design; its samples are those of the
  box-only code before mixes existed, tensor for tensor.
* ``mixed``: half of the objects with a box (``box`` 0.4, ``box_point`` 0.1), half with points only
  (``point`` 0.2, ``points`` 0.15, ``points_negative`` 0.15). The half/half split is SAM-Med2D's (box or
  points with probability 0.5 each), micro-sam's (one point and one box in alternate iterations) and
  MedSAM2's (point probability 0.5); within the points, one point gets the largest share because it is the
  weakest prompt after box-only training and the start of iterative clicking.
* ``mixed_negatives``: ``mixed`` with the share of five positive and five negative points doubled, taken
  from the box and one point (``box`` 0.3, ``box_point`` 0.1, ``point`` 0.15, ``points`` 0.15,
  ``points_negative`` 0.3).
  With ``mixed``, S4 (five + five) stayed below S3 (five positives) after fine-tuning: the decoder saw
  negatives in 15 % of the objects only (docs/training.md, "Regimes").
* ``interactive``: five positive and five negative points the largest share, one and five positive points
  a tenth each, the box share of ``mixed_negatives`` (``box`` 0.3, ``box_point`` 0.1, ``point`` 0.1,
  ``points`` 0.1, ``points_negative`` 0.4). The mix measured to serve clicks as well as boxes: with the
  prompt encoder learning (``regime=interactive``), S4 >= S3 in the three-seed mean with S5 kept
  (docs/training.md, "Regimes").

Or a mapping kind -> probability (``module.prompts={box: 0.5, point: 0.5}``): probabilities not negative,
summing to 1 within :data:`TOLERANCE`; kinds left out have probability 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sam4med.errors import ConfigError
from sam4med.prompts.generate import PromptRule, negative_points, positive_points

KINDS: dict[str, PromptRule] = {
    "box": PromptRule(positives=0, negatives=0, box=True),
    "point": PromptRule(positives=1, negatives=0, box=False),
    "points": PromptRule(positives=5, negatives=0, box=False),
    "points_negative": PromptRule(positives=5, negatives=5, box=False),
    "box_point": PromptRule(positives=1, negatives=0, box=True),
}
PRESETS: dict[str, dict[str, float]] = {
    "box": {"box": 1.0},
    "mixed": {"box": 0.4, "box_point": 0.1, "point": 0.2, "points": 0.15, "points_negative": 0.15},
    "mixed_negatives": {"box": 0.3, "box_point": 0.1, "point": 0.15, "points": 0.15, "points_negative": 0.3},
    "interactive": {"box": 0.3, "box_point": 0.1, "point": 0.1, "points": 0.1, "points_negative": 0.4},
}
MAX_POINTS = max(rule.positives + rule.negatives for rule in KINDS.values())  # points a sample is padded to
PAD_LABEL = -1  # SAM's label of a padding point (the prompt encoder's not-a-point embedding)
TOLERANCE = 1e-6
SETTING = "module.prompts"


@dataclass(frozen=True)
class PromptMix:
    """The probability of each prompt kind (see module docs).

    Attributes:
        probabilities: (kind, probability) in the order of :data:`KINDS`, every kind listed.
        name: the preset's name, or None for a mapping given in the config.
    """

    probabilities: tuple[tuple[str, float], ...]
    name: str | None = None

    @classmethod
    def parse(cls, value: Any, setting: str = SETTING) -> PromptMix:
        """A mix from a preset name, a mapping kind -> probability, or a mix; a :class:`ConfigError` naming
        ``setting`` for an unknown preset or kind, a negative or non-numeric probability, or a sum other than 1.
        """
        if isinstance(value, PromptMix):
            return value
        if isinstance(value, str):
            if value not in PRESETS:
                raise ConfigError(
                    f"{setting}={value}: unknown preset; use one of {', '.join(PRESETS)}, or a mapping kind -> "
                    f"probability over {', '.join(KINDS)}"
                )
            return cls._of(PRESETS[value], value, setting)
        if isinstance(value, Mapping):
            return cls._of({str(k): v for k, v in value.items()}, None, setting)
        raise ConfigError(
            f"{setting}={value!r}: must be a preset ({', '.join(PRESETS)}) or a mapping kind -> probability"
        )

    @classmethod
    def _of(cls, given: dict[str, Any], name: str | None, setting: str) -> PromptMix:
        unknown = sorted(set(given) - set(KINDS))
        if unknown:
            raise ConfigError(
                f"{setting}: unknown prompt kind(s) {', '.join(unknown)}; the kinds are {', '.join(KINDS)}"
            )
        values: dict[str, float] = {}
        for kind, p in given.items():
            if isinstance(p, bool) or not isinstance(p, int | float) or not np.isfinite(p) or p < 0:
                raise ConfigError(f"{setting}.{kind}={p!r}: a probability must be a number >= 0")
            values[kind] = float(p)
        total = sum(values.values())
        if abs(total - 1.0) > TOLERANCE:
            raise ConfigError(
                f"{setting}: the probabilities sum to {total:g}, not 1 "
                f"({', '.join(f'{k}={v:g}' for k, v in values.items())})"
            )
        return cls(tuple((kind, values.get(kind, 0.0)) for kind in KINDS), name)

    @property
    def box_only(self) -> bool:
        """Whether every object gets the box alone (no kind to draw, no points)."""
        return all(p == 0.0 for kind, p in self.probabilities if kind != "box")

    def draw(self, rng: np.random.Generator) -> str:
        """One kind, drawn with one uniform number of ``rng``."""
        kinds = [k for k, _ in self.probabilities]
        edges = np.cumsum([p for _, p in self.probabilities])
        index = int(np.searchsorted(edges, rng.random() * edges[-1], side="right"))
        return kinds[min(index, len(kinds) - 1)]

    def to_config(self) -> str | dict[str, float]:
        """Plain data for the checkpoint's hyperparameters: the preset's name, or the mapping."""
        return self.name if self.name is not None else {k: p for k, p in self.probabilities if p > 0}


BOX_ONLY = PromptMix.parse("box")


@dataclass(frozen=True)
class KindPoints:
    """The points of one object's prompt, in original pixels.

    Attributes:
        kind: the kind they were made for (a ``points_negative`` object without background falls back to
            ``points``; an empty mask to ``box``).
        points: P x 2 XY points (P = 0 for ``box``).
        labels: P labels, 1 positive and 0 negative.
    """

    kind: str
    points: np.ndarray
    labels: np.ndarray


def kind_points(mask: np.ndarray, kind: str, rng: np.random.Generator) -> KindPoints:
    """The points of ``kind`` for the object ``mask`` (H x W bool), drawn with ``rng`` by the evaluation's
    random rule (see module docs). An empty mask (augmentation moved the object out) gets the box alone;
    an object covering the whole image, which has no background, gets its positives without negatives.
    """
    rule = KINDS[kind]
    if not mask.any():
        return KindPoints("box", np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
    positives = positive_points(mask, rule.positives, rng)
    negatives = np.zeros((0, 2))
    if rule.negatives:
        try:
            negatives = negative_points(mask, rule.negatives, rng)
        except ValueError:  # no background anywhere
            kind = "points"
    labels = np.concatenate([np.ones(len(positives), dtype=np.int64), np.zeros(len(negatives), dtype=np.int64)])
    return KindPoints(kind, np.vstack([positives, negatives]), labels)


def padded(points: np.ndarray, labels: np.ndarray, count: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``points`` (P x 2) and ``labels`` (P) padded to ``count`` rows: zeros and :data:`PAD_LABEL`."""
    out_points = np.zeros((count, 2), dtype=np.float32)
    out_labels = np.full(count, PAD_LABEL, dtype=np.int64)
    out_points[: len(points)], out_labels[: len(labels)] = points, labels
    return out_points, out_labels
