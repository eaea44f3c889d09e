"""Segment images or NIfTI volumes from prompts, without labels (see conf/predict.yaml)."""

import hydra
from omegaconf import DictConfig

from sam4med.command import quiet_libraries, user_errors_in_one_line


@hydra.main(version_base="1.3", config_path="conf", config_name="predict")
@user_errors_in_one_line
def main(cfg: DictConfig) -> None:
    """Entry point: ``python predict.py inputs=PATH prompts=FILE | labels=PATH [finetuned=CKPT] [overrides]``."""
    quiet_libraries()
    # torch loads here, after Hydra has composed the config: --help answers at once
    from sam4med.jobs.predict import predict_masks

    predict_masks(cfg)


if __name__ == "__main__":
    main()
