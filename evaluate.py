"""Score SAM zero-shot (or with a fine-tuned decoder) on a dataset (see conf/evaluate.yaml)."""

import hydra
from omegaconf import DictConfig

from sam4med.evaluate import evaluate
from sam4med.run import quiet_libraries, user_errors_in_one_line


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
@user_errors_in_one_line
def main(cfg: DictConfig) -> None:
    """Entry point: ``python evaluate.py [model=...] [dataset=...] [finetuned=PATH]``."""
    quiet_libraries()
    evaluate(cfg)


if __name__ == "__main__":
    main()
