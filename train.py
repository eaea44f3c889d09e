"""Fine-tune SAM's mask decoder and compare zero-shot with fine-tuned (see conf/train.yaml)."""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from sam4med.cli import quiet_libraries, user_errors_in_one_line
from sam4med.evaluation.report import conclude
from sam4med.jobs.train import fine_tune


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors_in_one_line
def main(cfg: DictConfig) -> float:
    """Entry point: ``python train.py [overrides]``; returns the headline metric (fine-tuned S5 mean Dice)."""
    quiet_libraries()
    fine_tune(cfg)
    return conclude(Path(cfg.paths.output_dir) / "results")


if __name__ == "__main__":
    main()
