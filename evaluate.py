"""Score SAM zero-shot (or with a fine-tuned decoder) on a dataset (see conf/evaluate.yaml)."""

import hydra
from omegaconf import DictConfig

from sam4med.cli import quiet_libraries, user_errors_in_one_line
from sam4med.evaluation.report import conclude
from sam4med.jobs.evaluate import evaluate_model


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@user_errors_in_one_line
def main(cfg: DictConfig) -> float:
    """Entry point: ``python evaluate.py [model=...] [dataset=...] [finetuned=PATH]``; returns S5 mean Dice."""
    quiet_libraries()
    return conclude(evaluate_model(cfg))


if __name__ == "__main__":
    main()
