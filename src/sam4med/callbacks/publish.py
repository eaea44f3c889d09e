"""Sending tables and figures to whatever loggers a trainer has (CSV, TensorBoard, Weights & Biases)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger

from sam4med.evaluation.results import markdown_table


def publish_figure(loggers: list[Logger], name: str, fig: Figure, step: int, folder: Path) -> Path:
    """Save ``fig`` as ``<folder>/<name>.png`` and log it to TensorBoard and W&B loggers."""
    import matplotlib.pyplot as plt

    path = folder / f"{name.replace('/', '_')}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(name, fig, global_step=step, close=False)
        elif isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log({name: wandb.Image(str(path))})
    plt.close(fig)
    return path


def publish_table(loggers: list[Logger], name: str, table: pd.DataFrame, step: int) -> None:
    """Log a table: TensorBoard as Markdown text, W&B as a ``wandb.Table`` (CSV has the files already)."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(name, markdown_table(table), global_step=step)
        elif isinstance(logger, WandbLogger):
            logger.log_table(key=name, dataframe=table.reset_index(drop=True), step=step)
