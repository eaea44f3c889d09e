"""Composing the real Hydra configs in tests, shrunk to run in seconds."""

from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

CONF = Path(__file__).resolve().parents[1] / "conf"


def compose_config(name: str, tmp_path: Path, overrides: list[str] = ()) -> DictConfig:
    """The config ``name`` with outputs, data, embedding cache and shared zero-shot rows under ``tmp_path``."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=list(overrides))
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
        cfg.paths.data_dir = str(tmp_path / "data")
        cfg.paths.cache_dir = str(tmp_path / "cache")
        cfg.paths.zero_shot_dir = str(tmp_path / "zero_shot")
    return cfg


def two_layer_parts(seed: int) -> tuple[MaskDecoder, PromptEncoder]:
    """A random decoder of two blocks (the tiny model has one), so both code paths of the blocks run,
    and a 64 x 64-input prompt encoder for it (8 x 8 x 32 embeddings)."""
    torch.manual_seed(seed)
    decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=32, mlp_dim=64, num_heads=4),
        transformer_dim=32,
        iou_head_depth=2,
        iou_head_hidden_dim=32,
    ).eval()
    encoder = PromptEncoder(embed_dim=32, image_embedding_size=(8, 8), input_image_size=(64, 64), mask_in_chans=4)
    return decoder, encoder


# The time limit of every subprocess, worker join and notebook cell in tests/. A limit only catches a
# hang: it must be at least 10 x the command's run time on an idle machine, so that a loaded machine
# (make test beside other work, two busy cores) never fails a test that would pass. 1800 s covers the
# commands of up to 3 minutes; the longer ones (the soak's children, a sweep of two training jobs) get
# a multiple.
HANG_TIMEOUT_S = 1800
