"""Composing the real Hydra configs in tests, shrunk to run in seconds."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

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
