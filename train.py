"""Fine-tune SAM's mask decoder and compare zero-shot with fine-tuned (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from sam4med.cli import quiet_libraries, user_errors_in_one_line
from sam4med.jobs.train import fine_tune


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors_in_one_line
def main(cfg: DictConfig) -> None:
    """Entry point: ``python train.py [overrides]``."""
    quiet_libraries()
    fine_tune(cfg)


if __name__ == "__main__":
    main()
