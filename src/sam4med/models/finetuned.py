"""Training checkpoints written by ``train.py``: read once, then put the fine-tuned parts into a model.

A training checkpoint is a Lightning checkpoint whose ``state_dict`` holds only the trained parts
(:class:`Trained`, the checkpoint's ``sam4med.train``; absent in checkpoints written before it was recorded,
which trained the decoder): the mask decoder (keys under ``model.mask_decoder.``), with
``decoder+prompt_encoder`` the prompt encoder (``model.prompt_encoder.``), with ``lora`` the image
encoder's LoRA matrices (``model.image_encoder.`` keys holding ``.lora_``, settings in ``sam4med.lora``,
merged into the encoder's weights when loaded: :mod:`sam4med.models.lora`), whose ``hyper_parameters``
hold the module's settings and the
resolved run config (``run_config``), and whose ``sam4med`` entry names the backbone, the hashes of
the frozen base weights and where those weights came from, and (``training_data``, :class:`TrainingData`)
the content hashes of every image it was trained and validated on and the data settings it was trained
under, so that ``evaluate.py`` can refuse to score it on its own training images or under other settings
(:mod:`sam4med.evaluation.rescoring`). Checkpoints written before ``training_data`` was recorded read
with ``training_data=None``.

A checkpoint is input from elsewhere, so :func:`read_finetuned` refuses, with the reason and before any
model is built or image scored, one without a ``sam4med`` entry (not written by train.py), one that
records no hash of its base image encoder (it could not be checked against the model), and one whose
decoder holds a NaN or infinite value (a diverged training scores Dice 0 everywhere, silently).
:meth:`FinetunedDecoder.load_into` then checks the recorded hashes of the frozen parts (image and prompt
encoder, where not trained) against the model's.

:class:`PartStates` and :func:`use_state` swap a phase's weights in and out of a model (the zero-shot
phase after training): a plain mapping is a mask-decoder state, as before the other parts could be trained.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import torch

from sam4med.errors import CheckpointError, ConfigError
from sam4med.models import lora
from sam4med.models.checkpoints import load_file, load_strict
from sam4med.models.lora import LoraSettings
from sam4med.models.multimask import Multimask
from sam4med.models.sam_model import SamModel

TRAINED_PREFIX = "model.mask_decoder."  # the decoder's keys: trained in every mode
PART_PREFIX = "model.{}."


class Trained(StrEnum):
    """``module.train``: which parts of the model learn (the rest stays frozen, its hash recorded).

    ``decoder`` (the default): the mask decoder. ``decoder+prompt_encoder``: the prompt encoder too.
    ``lora``: the mask decoder plus LoRA adapters on the image encoder's attention projections
    (:mod:`sam4med.models.lora`).
    """

    DECODER = "decoder"
    DECODER_PROMPT_ENCODER = "decoder+prompt_encoder"
    LORA = "lora"

    @classmethod
    def parse(cls, value: str | Trained) -> Trained:
        """The member named ``value``; an unknown name is a :class:`ConfigError` listing the allowed ones."""
        try:
            return cls(value)
        except ValueError:
            allowed = " | ".join(t.value for t in cls)
            raise ConfigError(f"module.train must be one of {allowed}; got '{value}'") from None

    @property
    def parts(self) -> tuple[str, ...]:
        """The model's submodules holding trained weights (the image encoder: its adapters only)."""
        return {
            Trained.DECODER: ("mask_decoder",),
            Trained.DECODER_PROMPT_ENCODER: ("prompt_encoder", "mask_decoder"),
            Trained.LORA: ("image_encoder", "mask_decoder"),
        }[self]

    @property
    def frozen(self) -> tuple[str, ...]:
        """The parts whose base weights stay as loaded (their hashes are checked when a checkpoint is loaded)."""
        return tuple(p for p in ("image_encoder", "prompt_encoder") if p not in self.parts or p == "image_encoder")

    def keeps(self, key: str) -> bool:
        """Whether the module's state-dict ``key`` (``model.<part>....``) is a trained weight, saved in checkpoints."""
        part = next((p for p in self.parts if key.startswith(PART_PREFIX.format(p))), None)
        return part is not None and (part != "image_encoder" or lora.LORA_KEY in key)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _numbers(value: object) -> bool:
    return isinstance(value, list | tuple) and all(_number(v) for v in value)


def _text(value: object) -> bool:
    return isinstance(value, str)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _setting(setting: str, valid: Any, *, checked: bool = True, optional: bool = False) -> Any:
    """A :class:`DataSettings` field: the override that sets it, its type check, and whether evaluate.py compares it."""
    return field(metadata={"setting": setting, "valid": valid, "checked": checked, "optional": optional})


@dataclass(frozen=True)
class DataSettings:
    """The data settings a decoder was trained under (or that a run scores with now), as plain values.

    Each field's metadata names the override that sets it (``setting``) and whether ``evaluate.py
    finetuned=`` compares it with the run's (``checked``); a checked field's name is what
    ``allow_mismatch=[...]`` names. ``dataset`` and ``root`` are recorded for the reader only (the same
    images elsewhere are recognised by their content hashes); ``multimask`` has its own refusal.
    ``folds``/``fold`` are None where the datamodule has no k-fold split; ``prompts_file`` is the
    ``evaluation.prompts.file`` the run scored with (None: prompts drawn with ``prompt_seed`` and
    ``prompt_sampling``).
    """

    dataset: str = _setting("dataset (the name in dataset.yaml)", _text, checked=False)
    root: str = _setting("dataset.root", _text, checked=False)
    split_seed: int = _setting("dataset.split_seed", _integer)
    fractions: tuple[float, ...] = _setting("dataset.fractions", _numbers)
    block_size: int = _setting("dataset.block_size", _integer)
    gap: int = _setting("dataset.gap", _integer)
    folds: int | None = _setting("dataset.folds", _integer, optional=True)
    fold: int | None = _setting("dataset.fold", _integer, optional=True)
    clip_percentiles: tuple[float, ...] | None = _setting("dataset.clip_percentiles", _numbers, optional=True)
    min_object_area: int = _setting("dataset.min_object_area", _integer)
    prompt_seed: int = _setting("evaluation.prompts.seed", _integer)
    prompt_sampling: str = _setting("evaluation.prompts.sampling", _text)
    prompts_file: str | None = _setting("evaluation.prompts.file", _text, optional=True)
    multimask: str = _setting("evaluation.multimask", _text, checked=False)

    def __post_init__(self) -> None:
        for name in ("fractions", "clip_percentiles"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, tuple(float(v) for v in value))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists for tuples), as the checkpoint stores it."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v for f in fields(self)}

    @classmethod
    def from_dict(cls, data: object, path: Path) -> DataSettings:
        """Inverse of :meth:`to_dict`; a missing or mistyped value is a :class:`CheckpointError` naming it."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{path}: sam4med.training_data.settings is not a mapping; the file is damaged")
        values = {}
        for f in fields(cls):
            value = data.get(f.name)
            if not ((value is None and f.metadata["optional"]) or f.metadata["valid"](value)):
                raise CheckpointError(
                    f"{path}: sam4med.training_data.settings.{f.name} is {value!r}, not a valid "
                    f"{f.metadata['setting']}; the file is damaged or was edited"
                )
            values[f.name] = value
        return cls(**values)

    @classmethod
    def checked(cls) -> tuple[str, ...]:
        """The names of the fields ``evaluate.py`` compares (what ``allow_mismatch`` may name)."""
        return tuple(f.name for f in fields(cls) if f.metadata["checked"])

    @classmethod
    def setting(cls, name: str) -> str:
        """The override that sets field ``name`` (``dataset.split_seed`` ...)."""
        return next(f.metadata["setting"] for f in fields(cls) if f.name == name)


FIT_SPLITS = ("train", "val")


@dataclass(frozen=True)
class TrainingData:
    """What a decoder was fitted on: the images of its training and validation splits, and the data settings.

    Attributes:
        images: for ``train`` and ``val``, image id -> SHA-256 prefix of the image file's bytes
            (``CosmosDataset.image_hashes``): the same image is recognised under another id or split.
        settings: the data settings of the training run (:class:`DataSettings`).
    """

    images: Mapping[str, Mapping[str, str]]
    settings: DataSettings

    def seen(self) -> dict[str, tuple[str, str]]:
        """Image content hash -> (split, image id) of every image the decoder was trained or validated on."""
        return {digest: (split, image_id) for split in FIT_SPLITS for image_id, digest in self.images[split].items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain data, as ``DecoderFineTuner.on_save_checkpoint`` writes it into the ``sam4med`` entry."""
        return {"images": {k: dict(v) for k, v in self.images.items()}, "settings": self.settings.to_dict()}

    @classmethod
    def from_dict(cls, data: object, path: Path) -> TrainingData:
        """Inverse of :meth:`to_dict`; anything but text hashes by text ids per split is a :class:`CheckpointError`."""
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{path}: sam4med.training_data is not a mapping; the file is damaged")
        images = data.get("images")
        if not isinstance(images, Mapping) or set(images) != set(FIT_SPLITS):
            raise CheckpointError(
                f"{path}: sam4med.training_data.images must hold the splits {', '.join(FIT_SPLITS)}; "
                "the file is damaged"
            )
        for split in FIT_SPLITS:
            part = images[split]
            if not isinstance(part, Mapping) or not all(isinstance(k, str) and _text(v) for k, v in part.items()):
                raise CheckpointError(
                    f"{path}: sam4med.training_data.images.{split} is not image ids with text hashes; "
                    "the file is damaged"
                )
        return cls(
            images={split: dict(images[split]) for split in FIT_SPLITS},
            settings=DataSettings.from_dict(data.get("settings"), path),
        )


@dataclass(frozen=True)
class FinetunedDecoder:
    """What a training checkpoint holds.

    Attributes:
        path: the file.
        decoder_state: the mask decoder's state dict (segment_anything's key names, no prefix).
        trained: which parts were trained (``sam4med.train``; ``decoder`` where unrecorded).
        prompt_encoder_state: the prompt encoder's state dict (``decoder+prompt_encoder``), else None.
        lora_state: the image encoder's adapter matrices by key (``lora``), else None.
        lora: the adapters' settings (``lora``), else None.
        backbone: the backbone it was trained on (``vit_b``, ``litemedsam``...).
        base_weights: hashes of the frozen base modules (``image_encoder``, ``prompt_encoder``...), as
            :meth:`SamModel.module_hash`; :func:`read_finetuned` requires the image encoder's.
        multimask: the mask selection it was trained for, or None if unrecorded.
        run_config: the resolved config of the training run (plain data; empty if unrecorded).
        training_data: the images and data settings it was fitted on, or None where the checkpoint
            records none (written before sam4med recorded them).
    """

    path: Path
    decoder_state: dict[str, torch.Tensor]
    backbone: str | None
    base_weights: dict[str, str] = field(default_factory=dict)
    multimask: Multimask | None = None
    run_config: dict[str, Any] = field(default_factory=dict)
    training_data: TrainingData | None = None
    trained: Trained = Trained.DECODER
    prompt_encoder_state: dict[str, torch.Tensor] | None = None
    lora_state: dict[str, torch.Tensor] | None = None
    lora: LoraSettings | None = None

    def load_into(self, model: SamModel) -> None:
        """Put the trained parts into ``model`` (in place) after checking it is the same backbone and base weights.

        The image encoder's hash must be recorded and equal the model's (adapters the model holds, as the
        training module's model does, are dropped first: the hash is the base encoder's); the prompt
        encoder's is compared too where recorded and not trained. LoRA adapters are merged into the image
        encoder's weights, which leaves a plain model (the one ``sam4med.export`` writes).
        """
        if self.backbone not in (None, model.name):
            raise CheckpointError(f"{self.path}: trained on backbone '{self.backbone}', not '{model.name}'")
        if not self.base_weights.get("image_encoder"):
            raise CheckpointError(f"{self.path}: {NO_ENCODER_HASH}")
        if lora.has_adapters(model.image_encoder):
            lora.unload(model.image_encoder)
            model.encoder_changed()
        for part in self.trained.frozen:
            expected = self.base_weights.get(part)
            actual = model.module_hash(getattr(model, part)) if expected else None
            if expected and expected != actual:
                raise CheckpointError(
                    f"{self.path}: trained on other '{model.name}' {part.replace('_', '-')} weights than the ones "
                    f"loaded now (sam4med.base_weights.{part} is {expected}, the model's {actual})"
                )
        load_strict(model.mask_decoder, self.decoder_state, self.path, model.name)
        if self.prompt_encoder_state is not None:
            load_strict(model.prompt_encoder, self.prompt_encoder_state, self.path, model.name)
        if self.lora_state is not None and self.lora is not None:
            lora.merge_into(model.image_encoder, self.lora, self.lora_state, model.name, self.path)
            model.encoder_changed()


NO_ENCODER_HASH = (
    "records no hash of the image encoder it was trained on (sam4med.base_weights.image_encoder), "
    "so it cannot be checked against the model; refusing it"
)


def read_finetuned(path: str | Path) -> FinetunedDecoder:
    """Read a training checkpoint (safely: tensors and plain data only) and check what it records.

    Refused with a :class:`CheckpointError` naming the file and the reason: no ``sam4med`` entry, no
    backbone or image-encoder hash in it, no decoder weights, a decoder tensor that is not finite
    (the first one is named), or a ``training_data`` entry that is not what train.py writes (an absent
    one reads as None).
    """
    path = Path(path).expanduser()
    checkpoint = load_file(path, "a sam4med training checkpoint")
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise CheckpointError(f"{path}: no 'state_dict' inside; expected a checkpoint written by train.py")
    meta = checkpoint.get("sam4med")
    if not isinstance(meta, dict) or not meta:
        raise CheckpointError(
            f"{path}: has no 'sam4med' entry, so it was not written by sam4med's train.py "
            "(no backbone or base-weight hashes to check it against); refusing it"
        )
    backbone = meta.get("backbone")
    if not isinstance(backbone, str) or not backbone:
        raise CheckpointError(f"{path}: records no backbone (sam4med.backbone); refusing it")
    base_weights = meta.get("base_weights")
    if not isinstance(base_weights, dict) or not isinstance(base_weights.get("image_encoder"), str):
        raise CheckpointError(f"{path}: {NO_ENCODER_HASH}")
    hparams = checkpoint.get("hyper_parameters")
    hparams = hparams if isinstance(hparams, dict) else {}
    try:
        trained = Trained.parse(meta.get("train", Trained.DECODER.value))
    except ConfigError:
        raise CheckpointError(
            f"{path}: sam4med.train is {meta.get('train')!r}, not one of {' | '.join(Trained)}; the file is damaged"
        ) from None
    states = {part: _part_state(checkpoint["state_dict"], part) for part in trained.parts}
    state = states["mask_decoder"]
    for part, what in (
        ("mask_decoder", "mask-decoder weights"),
        ("prompt_encoder", "prompt-encoder weights"),
        ("image_encoder", "LoRA adapter matrices of the image encoder"),
    ):
        if part in states and not states[part]:
            raise CheckpointError(f"{path}: holds no {what} (sam4med.train is '{trained}')")
        check_finite(path, states.get(part, {}), PART_PREFIX.format(part))
    settings = LoraSettings.from_dict(meta.get("lora"), path) if trained is Trained.LORA else None
    multimask = hparams.get("multimask")
    return FinetunedDecoder(
        path=path,
        decoder_state=state,
        backbone=backbone,
        base_weights={str(k): str(v) for k, v in base_weights.items()},
        multimask=Multimask.parse(multimask) if multimask is not None else None,
        run_config=dict(run_config) if isinstance(run_config := hparams.get("run_config"), dict) else {},
        training_data=TrainingData.from_dict(meta["training_data"], path) if "training_data" in meta else None,
        trained=trained,
        prompt_encoder_state=states.get("prompt_encoder"),
        lora_state=states.get("image_encoder"),
        lora=settings,
    )


def _part_state(state_dict: Mapping[Any, Any], part: str) -> dict[str, Any]:
    """The entries of one part (prefix ``model.<part>.`` removed); of the image encoder only the adapters'."""
    prefix = PART_PREFIX.format(part)
    out = {k[len(prefix) :]: v for k, v in state_dict.items() if isinstance(k, str) and k.startswith(prefix)}
    return {k: v for k, v in out.items() if part != "image_encoder" or lora.LORA_KEY in f".{k}"}


def check_finite(path: Path, state: dict[str, Any], prefix: str = TRAINED_PREFIX) -> None:
    """Refuse a trained state with a value that is no tensor or a tensor holding NaN or infinity (the first one)."""
    what = "decoder" if prefix == TRAINED_PREFIX else "trained"
    for key, value in state.items():
        name = prefix + key
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: {what} entry '{name}' is a {type(value).__name__}, not a tensor")
        if not (value.is_floating_point() or value.is_complex()):
            continue
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            nan = int(torch.isnan(value).sum())
            bad = int((~finite).sum())
            raise CheckpointError(
                f"{path}: {what} tensor '{name}' holds {nan} NaN and {bad - nan} infinite values "
                f"(of {value.numel()}): the training diverged or the file is damaged; refusing it before any scoring"
            )


def load_finetuned_decoder(model: SamModel, path: str | Path) -> FinetunedDecoder:
    """Read the training checkpoint at ``path`` and put its trained parts into ``model``; returns what was read."""
    finetuned = read_finetuned(path)
    finetuned.load_into(model)
    return finetuned


@dataclass(frozen=True)
class PartStates:
    """Weights of some of a model's parts, by part name (``mask_decoder``, ``prompt_encoder``, ``image_encoder``).

    The weights a phase predicts with where more than the decoder was trained. A part's state is its
    whole state dict, except the image encoder's: only the weights a LoRA merge changes (the adapted
    layers', under the plain model's key names).
    """

    parts: Mapping[str, Mapping[str, torch.Tensor]]

    @classmethod
    def of(cls, model: SamModel, parts: Sequence[str]) -> PartStates:
        """A copy of ``model``'s current weights of ``parts`` (the image encoder's: adapted layers' base weights)."""
        out: dict[str, dict[str, torch.Tensor]] = {}
        for part in parts:
            module = getattr(model, part)
            if part == "image_encoder":
                out[part] = lora.base_state(module, adapted_only=True)
            else:
                out[part] = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return cls(out)

    def current(self, model: SamModel) -> PartStates:
        """A copy of ``model``'s weights under the same keys as this one's (what :func:`use_state` restores)."""
        own = {}
        for part, state in self.parts.items():
            mine = getattr(model, part).state_dict()
            own[part] = {k: mine[k].detach().clone() for k in state}
        return PartStates(own)

    def load_into(self, model: SamModel) -> None:
        """Put these weights into ``model`` (the image encoder's by key, the others' whole)."""
        for part, state in self.parts.items():
            module = getattr(model, part)
            if part == "image_encoder":
                missing = sorted(set(state) - set(module.state_dict()))
                if missing:
                    raise RuntimeError(f"the image encoder has no weight '{missing[0]}' (adapters not merged?)")
                module.load_state_dict(state, strict=False)
                model.encoder_changed()
            else:
                module.load_state_dict(state)


PhaseState = Mapping[str, torch.Tensor] | PartStates
"""What a phase predicts with: a mask-decoder state dict, or the states of several parts."""


@contextmanager
def use_state(model: SamModel, state: PhaseState | None) -> Iterator[None]:
    """Predict with ``state`` inside the block (None: the model's current weights), then restore the model's own."""
    if state is None:
        yield
        return
    states = state if isinstance(state, PartStates) else PartStates({"mask_decoder": state})
    own = states.current(model)
    states.load_into(model)
    try:
        yield
    finally:
        own.load_into(model)
