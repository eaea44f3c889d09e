"""LoRA adapters on the image encoder's attention projections (through ``peft``), and their merge into plain weights.

``train.py module.train=lora`` puts a rank-``r`` adapter beside each ``nn.Linear`` of the image encoder
whose name is one of ``module.lora.targets`` or ends in ``.<target>`` (``attn.qkv``: the query/key/value
projection of every block of segment_anything's ViT and of LiteMedSAM's TinyViT). The adapted layer
computes ``W x + b + (alpha / r) * B (A dropout(x))``; ``B`` starts at zero, so before the first step the
encoder's output is the base encoder's exactly.

Training keeps the adapters beside the frozen weights (peft's layers); a training checkpoint holds only
``A`` and ``B`` (keys ``...qkv.lora_A.default.weight``). Every reader merges them: :func:`merge_into`
adds ``(alpha / r) * B A`` to each target's weight (peft's ``merge``) and puts the plain ``nn.Linear``
back, so the scored model, ``evaluate.py finetuned=`` and ``python -m sam4med.export`` use the very same
plain weights (the export loads without this package and without peft).

``peft`` is imported only here and only when adapters are made (its import takes seconds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sam4med.errors import CheckpointError, ConfigError

ADAPTER = "default"  # peft's adapter name: the key segment after lora_A / lora_B
LORA_KEY = ".lora_"  # what every adapter key holds (lora_A, lora_B)
BASE_LAYER = ".base_layer."  # peft keeps the wrapped layer's weights under this name


@dataclass(frozen=True)
class LoraSettings:
    """``module.lora``: the adapters' rank, scale, dropout and target layers.

    Attributes:
        rank: r, the inner size of ``B A`` (1 or more).
        alpha: the scale numerator; the update is ``(alpha / rank) * B A`` (above 0).
        dropout: dropout on the adapter's input during training (0 to below 1).
        targets: names of the image encoder's ``nn.Linear`` layers to adapt: a layer is adapted where its
            name equals a target or ends in ``.<target>``.
    """

    rank: int = 4
    alpha: float = 8.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("attn.qkv",)

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ConfigError(f"module.lora.rank must be an integer of 1 or more; got {self.rank!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, int | float) or not self.alpha > 0:
            raise ConfigError(f"module.lora.alpha must be a number above 0; got {self.alpha!r}")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ConfigError(f"module.lora.dropout must be at least 0 and below 1; got {self.dropout!r}")
        if not self.targets or not all(isinstance(t, str) and t.strip(".") for t in self.targets):
            raise ConfigError(
                "module.lora.targets must be a non-empty list of layer names (e.g. [attn.qkv]); "
                f"got {list(self.targets)}"
            )

    @classmethod
    def from_config(cls, node: Mapping[str, Any] | LoraSettings | None) -> LoraSettings:
        """From the ``module.lora`` node (None: the defaults); an unknown key is a :class:`ConfigError`."""
        if node is None or isinstance(node, LoraSettings):
            return node or cls()
        values = dict(node)
        unknown = sorted(set(values) - {"rank", "alpha", "dropout", "targets"})
        if unknown:
            raise ConfigError(
                f"module.lora has no setting {', '.join(unknown)}; it takes rank, alpha, dropout, targets"
            )
        if "targets" in values:
            values["targets"] = tuple(values["targets"])
        return cls(**values)

    @property
    def scaling(self) -> float:
        """The factor of ``B A``: alpha / rank."""
        return self.alpha / self.rank

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as the checkpoint's ``sam4med.lora`` entry holds it."""
        return {"rank": self.rank, "alpha": self.alpha, "dropout": self.dropout, "targets": list(self.targets)}

    @classmethod
    def from_dict(cls, data: object, path: Path) -> LoraSettings:
        """Inverse of :meth:`to_dict`; anything else is a :class:`CheckpointError` naming the file."""
        try:
            if not isinstance(data, Mapping):
                raise ConfigError("not a mapping")
            return cls.from_config(data)
        except (ConfigError, TypeError) as error:
            raise CheckpointError(
                f"{path}: sam4med.lora is not valid LoRA settings ({error}); the file is damaged"
            ) from None


def _matches(name: str, targets: Sequence[str]) -> bool:
    return any(name == t or name.endswith(f".{t}") for t in targets)


def target_layers(encoder: nn.Module, targets: Sequence[str]) -> list[str]:
    """Names of the ``nn.Linear`` layers of ``encoder`` the targets select, in module order."""
    return [n for n, m in encoder.named_modules() if isinstance(m, nn.Linear) and _matches(n, targets)]


def has_adapters(encoder: nn.Module) -> bool:
    """Whether ``encoder`` holds LoRA layers (unmerged adapters)."""
    return any(_is_lora(m) for m in encoder.modules())


def _is_lora(module: nn.Module) -> bool:
    return hasattr(module, "base_layer") and hasattr(module, "lora_A")


def inject(encoder: nn.Module, settings: LoraSettings, backbone: str) -> list[str]:
    """Put adapters (``B`` zero) on the target layers of ``encoder``, in place; returns the adapted layers' names.

    Only the adapters require gradients afterwards. An encoder without a matching ``nn.Linear`` is a
    :class:`ConfigError` naming the backbone, the targets and the linear layers it has.
    """
    names = target_layers(encoder, settings.targets)
    if not names:
        linear = sorted({".".join(n.split(".")[-2:]) for n, m in encoder.named_modules() if isinstance(m, nn.Linear)})
        has = f"its linear layers end in {', '.join(linear)}" if linear else "it has no nn.Linear layer at all"
        raise ConfigError(
            f"module.train=lora: the image encoder of backbone '{backbone}' has no nn.Linear named by "
            f"module.lora.targets={list(settings.targets)} ({has}); LoRA adapts linear projections only: "
            "name one of them in module.lora.targets or train another part (module.train=decoder)"
        )
    from peft import LoraConfig, inject_adapter_in_model  # seconds to import: only when adapters are made

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=names,
        bias="none",
    )
    inject_adapter_in_model(config, encoder, adapter_name=ADAPTER)
    for name, parameter in encoder.named_parameters():
        parameter.requires_grad_(LORA_KEY in f".{name}")
    return names


def adapter_state(encoder: nn.Module) -> dict[str, torch.Tensor]:
    """The adapters' ``A`` and ``B`` matrices of ``encoder`` (its state-dict keys holding ``.lora_``)."""
    return {k: v for k, v in encoder.state_dict().items() if LORA_KEY in f".{k}"}


def base_state(encoder: nn.Module, adapted_only: bool = False) -> dict[str, torch.Tensor]:
    """The frozen weights of ``encoder`` under the plain model's key names (adapters left out), cloned.

    Args:
        encoder: an image encoder with unmerged adapters (or none: then its own state).
        adapted_only: only the weights of the adapted layers (what a merge changes).
    """
    out = {}
    for key, value in encoder.state_dict().items():
        if LORA_KEY in f".{key}" or (adapted_only and BASE_LAYER not in f".{key}"):
            continue
        out[f".{key}".replace(BASE_LAYER, ".")[1:]] = value.detach().clone()
    return out


def set_train(encoder: nn.Module, mode: bool) -> None:
    """The frozen encoder in eval mode (BatchNorm statistics, dropout fixed); the adapters' dropout follows ``mode``."""
    encoder.eval()
    for name, module in encoder.named_modules():
        if name.endswith("lora_dropout"):
            module.train(mode)


def _forget_peft(encoder: nn.Module) -> None:
    """Remove the ``peft_config`` record peft leaves on a module it adapted (the adapters are gone)."""
    if "peft_config" in encoder.__dict__:
        del encoder.__dict__["peft_config"]


def _replace(encoder: nn.Module, name: str, layer: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(encoder.get_submodule(parent) if parent else encoder, child, layer)


def unload(encoder: nn.Module) -> None:
    """Drop the adapters of ``encoder`` without merging them: the plain base encoder again, in place."""
    for name, module in list(encoder.named_modules()):
        if _is_lora(module):
            _replace(encoder, name, module.get_base_layer())
    _forget_peft(encoder)


def merge(encoder: nn.Module) -> None:
    """Merge the adapters of ``encoder`` into their layers' weights (peft's ``merge``) and put the plain layers back."""
    for name, module in list(encoder.named_modules()):
        if _is_lora(module):
            module.merge(adapter_names=[ADAPTER])
            _replace(encoder, name, module.get_base_layer())
    _forget_peft(encoder)


def merge_into(
    encoder: nn.Module, settings: LoraSettings, state: Mapping[str, torch.Tensor], backbone: str, path: Path
) -> None:
    """Add trained adapters (``A``/``B`` by key, as a checkpoint holds them) to a plain ``encoder``'s weights, in place.

    A key the adapters do not have, or an adapter the state does not fill, is a :class:`CheckpointError`
    naming the file (trained on other targets or another backbone).
    """
    inject(encoder, settings, backbone)
    own = adapter_state(encoder)
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        unload(encoder)
        what = f"holds the adapter '{unexpected[0]}', which" if unexpected else f"lacks the adapter '{missing[0]}' that"
        raise CheckpointError(
            f"{path}: {what} backbone '{backbone}' with module.lora.targets={list(settings.targets)} "
            f"{'does not have' if unexpected else 'has'}; it was trained on another encoder or other targets"
        )
    with torch.no_grad():
        for key, value in encoder.state_dict(keep_vars=True).items():
            if key in state:
                value.copy_(state[key])
    merge(encoder)
