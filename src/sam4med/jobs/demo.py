"""A run in seconds for the notebooks: the tiny random model on synthetic shapes (scores mean nothing).

``demo_run("evaluate", folder)`` scores S2-S6 zero-shot; ``demo_run("train", folder)`` is
``python train.py experiment=quick`` for one epoch on S2, S4, S5 and S6; both draw overlays for three
targets. They compose the repository's real configs (``conf/``, next to ``src/``, so this needs the
source checkout installed with ``pip install -e .``) and write everything (data, embedding cache, run
folder) under ``folder``.
"""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import open_dict

from sam4med.command import quiet_libraries
from sam4med.jobs.evaluate import evaluate_model
from sam4med.jobs.train import fine_tune

CONF = Path(__file__).resolve().parents[3] / "conf"
OVERRIDES = {
    "evaluate": ["model=tiny", "dataset=synthetic", "evaluation.strategies=[S2,S3,S4,S5,S6]", "evaluation.overlays=3"],
    "train": [
        "experiment=quick",
        "evaluation.strategies=[S2,S4,S5,S6]",
        "evaluation.overlays=3",
        "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false",
        "logger=none",
    ],
}


def demo_run(kind: str, folder: str | Path) -> Path:
    """Run ``kind`` (``evaluate`` or ``train``) on the tiny model under ``folder``; returns the results folder."""
    folder = Path(folder)
    quiet_libraries()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=kind, overrides=OVERRIDES[kind])
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder / "run")
        cfg.paths.data_dir = str(folder / "data")
        cfg.paths.cache_dir = str(folder / "cache")
        cfg.paths.zero_shot_dir = str(folder / "zero_shot")
    if kind == "evaluate":
        return evaluate_model(cfg)
    return fine_tune(cfg).results_dir
