"""How ``predict.py`` decodes: the ``prediction`` config node, built once into :class:`PredictSettings`."""

from __future__ import annotations

from dataclasses import dataclass, field

from sam4med.compute import Compute
from sam4med.errors import ConfigError
from sam4med.models.multimask import Multimask
from sam4med.prompts.generate import STRATEGIES, check_sampling
from sam4med.prompts.modes import MODES

LABEL_STRATEGIES = (*sorted(STRATEGIES), *MODES)  # what prompts drawn from labels= may follow


@dataclass(frozen=True)
class PredictSettings:
    """What ``predict.py`` decodes and how.

    Attributes:
        multimask: which decoder output is kept (``single`` or ``confidence``; ``oracle`` needs the ground
            truth of every object and is refused).
        compute: device, decoder call size, bf16, shared-work decoder (:class:`~sam4med.compute.Compute`).
        strategy: the evaluation's prompt rule for prompts drawn from ``labels=`` (``S2`` ... ``S6``, ``M1``
            ... ``M5``, :func:`sam4med.prompts.generate.make_prompt`).
        seed: the seed of those prompts (``evaluate.py``'s ``evaluation.prompts.seed``, ``${seed}``).
        sampling: their point sampling, ``random`` or ``strided``.
        label_map: the label-map name in their object keys (``<image id>/<label_map>/<value>``): with the
            name of a prepared dataset's label map, the points drawn are those ``evaluate.py`` draws.
        propagate: propagate a box through a volume (:mod:`sam4med.inference.propagate`).
        margin: pixels added to each side of a propagated box (LiteMedSAM adds 3 on its 256-pixel grid).
    """

    multimask: Multimask = Multimask.SINGLE
    compute: Compute = field(default_factory=Compute)
    strategy: str = "S5"
    seed: int = 42
    sampling: str = "random"
    label_map: str = "labels"
    propagate: bool = False
    margin: float = 3.0

    @classmethod
    def build(
        cls,
        *,
        multimask: Multimask | str = "single",
        compute: Compute | None = None,
        strategy: str = "S5",
        seed: int = 42,
        sampling: str = "random",
        label_map: str = "labels",
        propagate: bool = False,
        margin: float = 3.0,
    ) -> PredictSettings:
        """Settings from config values, checked."""
        chosen = Multimask.parse(multimask)
        if chosen is Multimask.ORACLE:
            raise ConfigError(
                "prediction.multimask=oracle picks the mask closest to the ground truth, which predict.py does not "
                "have; use single or confidence"
            )
        if strategy not in LABEL_STRATEGIES:
            raise ConfigError(f"prediction.strategy must be one of {', '.join(LABEL_STRATEGIES)}; got '{strategy}'")
        if float(margin) < 0:
            raise ConfigError(f"prediction.margin must be 0 or more pixels; got {margin}")
        if not str(label_map):
            raise ConfigError("prediction.label_map must be a name (the label map of the object keys)")
        return cls(
            multimask=chosen,
            compute=compute or Compute(),
            strategy=str(strategy),
            seed=int(seed),
            sampling=check_sampling(sampling),
            label_map=str(label_map),
            propagate=bool(propagate),
            margin=float(margin),
        )
