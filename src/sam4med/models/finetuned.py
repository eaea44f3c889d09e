"""Training checkpoints written by ``train.py``: read once, then put the fine-tuned decoder into a model.

A training checkpoint is a Lightning checkpoint whose ``state_dict`` holds only the mask decoder
(keys under ``model.mask_decoder.``), whose ``hyper_parameters`` hold the module's settings and the
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
:meth:`FinetunedDecoder.load_into` then checks the recorded hashes of the image and prompt encoders
against the model's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from sam4med.errors import CheckpointError
from sam4med.models.checkpoints import load_file, load_strict
from sam4med.models.multimask import Multimask
from sam4med.models.sam_model import SamModel

TRAINED_PREFIX = "model.mask_decoder."


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

    def load_into(self, model: SamModel) -> None:
        """Put the decoder into ``model`` (in place) after checking it is the same backbone and base weights.

        The image encoder's hash must be recorded and equal the model's; the prompt encoder's is
        compared too where recorded.
        """
        if self.backbone not in (None, model.name):
            raise CheckpointError(f"{self.path}: trained on backbone '{self.backbone}', not '{model.name}'")
        if not self.base_weights.get("image_encoder"):
            raise CheckpointError(f"{self.path}: {NO_ENCODER_HASH}")
        for part, module in (("image_encoder", model.image_encoder), ("prompt_encoder", model.prompt_encoder)):
            expected = self.base_weights.get(part)
            actual = model.module_hash(module) if expected else None
            if expected and expected != actual:
                raise CheckpointError(
                    f"{self.path}: trained on other '{model.name}' {part.replace('_', '-')} weights than the ones "
                    f"loaded now (sam4med.base_weights.{part} is {expected}, the model's {actual})"
                )
        load_strict(model.mask_decoder, self.decoder_state, self.path, model.name)


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
    state = {
        k[len(TRAINED_PREFIX) :]: v
        for k, v in checkpoint["state_dict"].items()
        if isinstance(k, str) and k.startswith(TRAINED_PREFIX)
    }
    if not state:
        raise CheckpointError(f"{path}: holds no mask-decoder weights")
    check_finite(path, state)
    multimask = hparams.get("multimask")
    return FinetunedDecoder(
        path=path,
        decoder_state=state,
        backbone=backbone,
        base_weights={str(k): str(v) for k, v in base_weights.items()},
        multimask=Multimask.parse(multimask) if multimask is not None else None,
        run_config=dict(run_config) if isinstance(run_config := hparams.get("run_config"), dict) else {},
        training_data=TrainingData.from_dict(meta["training_data"], path) if "training_data" in meta else None,
    )


def check_finite(path: Path, state: dict[str, Any]) -> None:
    """Refuse a decoder state with a value that is no tensor or a tensor holding NaN or infinity (the first one)."""
    for key, value in state.items():
        name = TRAINED_PREFIX + key
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: decoder entry '{name}' is a {type(value).__name__}, not a tensor")
        if not (value.is_floating_point() or value.is_complex()):
            continue
        finite = torch.isfinite(value)
        if not bool(finite.all()):
            nan = int(torch.isnan(value).sum())
            bad = int((~finite).sum())
            raise CheckpointError(
                f"{path}: decoder tensor '{name}' holds {nan} NaN and {bad - nan} infinite values "
                f"(of {value.numel()}): the training diverged or the file is damaged; refusing it before any scoring"
            )


def load_finetuned_decoder(model: SamModel, path: str | Path) -> FinetunedDecoder:
    """Read the training checkpoint at ``path`` and put its decoder into ``model``; returns what was read."""
    finetuned = read_finetuned(path)
    finetuned.load_into(model)
    return finetuned
