"""Training checkpoints made by hand, laid out as ``DecoderFineTuner.on_save_checkpoint`` writes them."""

from pathlib import Path

import torch

from sam4med.models.finetuned import TRAINED_PREFIX
from sam4med.models.sam_model import SamModel

TINY_CONFIG = {"_target_": "sam4med.models.builders.build_tiny", "img_size": 64, "seed": 0}
PARTS = ("image_encoder", "prompt_encoder", "mask_decoder")


def trained_decoder(model: SamModel) -> dict[str, torch.Tensor]:
    """The model's decoder state with every value moved a little: a stand-in for a trained decoder."""
    return {k: v + 0.01 if v.is_floating_point() else v for k, v in model.mask_decoder.state_dict().items()}


def sam4med_entry(model: SamModel) -> dict:
    """The ``sam4med`` entry train.py writes for ``model``."""
    hashes = {part: model.module_hash(getattr(model, part)) for part in PARTS}
    return {"backbone": model.name, "base_weights": hashes, "weights_source": model.weights_source}


def write_checkpoint(
    path: Path,
    model: SamModel,
    model_config: dict | None = None,
    *,
    decoder: dict[str, torch.Tensor] | None = None,
    sam4med: dict | None | str = "as train.py",
) -> Path:
    """A training checkpoint for ``model`` whose run config records ``model_config`` (default: tiny's).

    ``sam4med="as train.py"`` writes the entry train.py writes; None leaves it out; a dict replaces it.
    """
    state = decoder if decoder is not None else trained_decoder(model)
    checkpoint = {
        "epoch": 1,
        "state_dict": {TRAINED_PREFIX + k: v for k, v in state.items()},
        "hyper_parameters": {"multimask": "single", "run_config": {"model": model_config or TINY_CONFIG, "seed": 0}},
    }
    if sam4med == "as train.py":
        checkpoint["sam4med"] = sam4med_entry(model)
    elif sam4med is not None:
        checkpoint["sam4med"] = sam4med
    torch.save(checkpoint, path)
    return path
