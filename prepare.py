"""Prepare a dataset folder from its sources (see conf/prepare.yaml and docs/data.md)."""

import hydra
from omegaconf import DictConfig

from sam4med.command import quiet_libraries, user_errors_in_one_line


@hydra.main(version_base="1.3", config_path="conf", config_name="prepare")
@user_errors_in_one_line
def main(cfg: DictConfig) -> None:
    """Entry point: ``python prepare.py dataset=<name> [dataset.root=DIR] [overrides]``."""
    quiet_libraries()
    # the preparers' libraries load here, after Hydra has composed the config: --help answers at once
    from sam4med.jobs.prepare import prepare_dataset

    prepare_dataset(cfg)


if __name__ == "__main__":
    main()
