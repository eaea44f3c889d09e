"""Fine-tune SAM's mask decoder and compare zero-shot with fine-tuned (see conf/train.yaml)."""

import hydra
from omegaconf import DictConfig

from sam4med.command import quiet_libraries, user_errors_in_one_line


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
@user_errors_in_one_line
def main(cfg: DictConfig) -> float:
    """Entry point: ``python train.py [overrides]``; returns the headline metric (fine-tuned S5 mean Dice)."""
    quiet_libraries()
    # torch, Lightning and pandas load here, after Hydra has composed the config: --help answers at once
    from sam4med.jobs.train import fine_tune
    from sam4med.results.terminal import conclude

    return conclude(fine_tune(cfg).results_dir)


if __name__ == "__main__":
    main()
