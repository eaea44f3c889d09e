"""What a run writes besides its scores: the ``outputs`` config node, :class:`OutputSettings`.

``outputs.masks``: ``none`` (default: nothing, for speed), ``png`` (per phase, strategy and image a label PNG of the
predicted objects) or ``nifti`` (the PNGs, and for datasets prepared from volumes one NIfTI per source volume,
phase and strategy on the source grid; see :mod:`sam4med.results.masks`). ``outputs.volume_metrics``: for
datasets prepared from volumes, score each source volume's structures in 3D (``volume_metrics.csv``, see
:mod:`sam4med.results.volumes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sam4med.errors import ConfigError


class MaskFormat(StrEnum):
    """The saved-mask files of ``outputs.masks``."""

    NONE = "none"
    PNG = "png"
    NIFTI = "nifti"


@dataclass(frozen=True)
class OutputSettings:
    """The ``outputs`` node: saved masks and volume-level scores.

    Attributes:
        masks: ``none``, ``png`` or ``nifti`` (:class:`MaskFormat`).
        volume_metrics: score datasets prepared from volumes per source volume and structure too.
    """

    masks: str = MaskFormat.NONE
    volume_metrics: bool = True

    def __post_init__(self) -> None:
        value = "none" if self.masks is None or self.masks is False else str(self.masks)  # YAML reads none as a string
        if value not in set(MaskFormat):
            raise ConfigError(f"outputs.masks={self.masks}: must be one of {', '.join(MaskFormat)}")
        object.__setattr__(self, "masks", MaskFormat(value))
        if not isinstance(self.volume_metrics, bool):
            raise ConfigError(f"outputs.volume_metrics={self.volume_metrics}: must be true or false")

    def keeps_predictions(self, volume_dataset: bool) -> bool:
        """Whether scoring must keep each image's predicted masks (saved masks, or volume scores of a volume
        dataset).
        """
        return self.masks != MaskFormat.NONE or (self.volume_metrics and volume_dataset)
