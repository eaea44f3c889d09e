"""Score SAM zero-shot (or with a fine-tuned decoder) on a dataset (see conf/evaluate.yaml)."""

import hydra
from omegaconf import DictConfig

from sam4med.command import quiet_libraries, user_errors_in_one_line


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@user_errors_in_one_line
def main(cfg: DictConfig) -> float:
    """Entry point: ``python evaluate.py [model=...] [dataset=...] [finetuned=PATH]``; returns S5 mean Dice."""
    quiet_libraries()
    # torch and pandas load here, after Hydra has composed the config: --help answers at once
    from sam4med.jobs.evaluate import evaluate_model
    from sam4med.results.terminal import conclude

    return conclude(evaluate_model(cfg))


if __name__ == "__main__":
    main()
