"""Sending metrics, tables and figures to a run's loggers (CSV, TensorBoard, Weights & Biases).

Metric names are the same in every logger: ``<phase>/<strategy>/<metric>`` (``zero_shot/S5/dice``,
``zero_shot/S5/nsd``, ``finetuned/S5/hd_mm``, ``zero_shot/I@3/dice`` after 3 iterative clicks) and
``delta/<strategy>/dice`` (also ``/nsd`` and ``/iou``);
the distance carries its unit (``hd_mm`` when every object's pixel spacing is known, else ``hd_px``).
The iterative clicks add ``<phase>/I/noc85`` (the mean NoC@85 over all objects) and ``<phase>/I/failed85``
(its failure rate), and the same for 80 and 90.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure
from pytorch_lightning.loggers import Logger, TensorBoardLogger, WandbLogger

from sam4med.evaluation.rows import Phase
from sam4med.results.comparison import ALL_TARGETS
from sam4med.results.figures import distance
from sam4med.results.tables import markdown_table, strategy_order


def phase_metrics(frame: pd.DataFrame, phase: str) -> dict[str, float]:
    """Means over object instances of one phase: ``<phase>/<strategy>/{dice,nsd,iou,hd_mm|hd_px}`` (no ``nsd``
    for a frame without it, read back from an older ``metrics.csv``).
    """
    rows = frame[frame["phase"] == phase]
    if rows.empty:
        return {}
    column, hd_name = distance(frame)
    named = [(m, m) for m in ("dice", "nsd", "iou") if m in rows] + [(hd_name, column)]
    means = rows.groupby("strategy")[[c for _, c in named]].mean()
    return {f"{phase}/{s}/{name}": float(means.loc[s, c]) for s in strategy_order(rows) for name, c in named}


def delta_metrics(frame: pd.DataFrame, before: str = Phase.ZERO_SHOT, after: str = Phase.FINETUNED) -> dict[str, float]:
    """``delta/<strategy>/dice``, ``/nsd`` and ``/iou``: mean after minus mean before, per strategy."""
    first, second = phase_metrics(frame, before), phase_metrics(frame, after)
    out = {}
    for key, value in second.items():
        _, strategy, metric = key.split("/")
        if metric in ("dice", "nsd", "iou") and f"{before}/{strategy}/{metric}" in first:
            out[f"delta/{strategy}/{metric}"] = value - first[f"{before}/{strategy}/{metric}"]
    return out


def noc_metrics(summary: pd.DataFrame) -> dict[str, float]:
    """From ``noc_summary`` (its ``all targets`` rows): ``<phase>/I/noc<t>`` and ``<phase>/I/failed<t>``."""
    totals = summary[summary["target"] == ALL_TARGETS] if len(summary) else summary
    columns = [c for c in summary.columns if c.startswith(("noc", "failed"))]
    return {f"{row['phase']}/I/{c}": float(row[c]) for row in totals.to_dict(orient="records") for c in columns}


def log_metrics(loggers: Sequence[Logger], metrics: Mapping[str, float], step: int) -> None:
    """The same names and values to every logger (CSV, TensorBoard, W&B)."""
    for logger in loggers:
        logger.log_metrics(dict(metrics), step=step)


def publish_figure(loggers: Sequence[Logger], name: str, fig: Figure, png: Path, step: int) -> None:
    """Log a figure already saved as ``png``: TensorBoard image, W&B image."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(name, fig, global_step=step, close=False)
        elif isinstance(logger, WandbLogger):
            import wandb

            logger.experiment.log({name: wandb.Image(str(png))})


def publish_table(loggers: Sequence[Logger], name: str, table: pd.DataFrame, step: int) -> None:
    """Log a table: TensorBoard as Markdown text, W&B as a ``wandb.Table`` (CSV has the files already)."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_text(name, markdown_table(table), global_step=step)
        elif isinstance(logger, WandbLogger):
            logger.log_table(key=name, dataframe=table.reset_index(drop=True), step=step)


def publish_before_after_charts(loggers: Sequence[Logger], frame: pd.DataFrame) -> None:
    """One chart per strategy holding both phases.

    TensorBoard: a custom-scalars layout (tab "before vs after") whose chart ``S5 dice`` draws
    ``zero_shot/S5/dice`` and ``finetuned/S5/dice`` together. W&B: one line chart per metric, a line per
    strategy from its zero-shot to its fine-tuned value.
    """
    strategies = strategy_order(frame)
    _, hd_name = distance(frame)
    charted = ("dice", "nsd", hd_name) if "nsd" in frame else ("dice", hd_name)
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            layout = {
                f"{s} {m}": ["Multiline", [f"{Phase.ZERO_SHOT}/{s}/{m}", f"{Phase.FINETUNED}/{s}/{m}"]]
                for s in strategies
                for m in charted
            }
            logger.experiment.add_custom_scalars({"before vs after": layout})
        elif isinstance(logger, WandbLogger):
            import wandb

            before, after = phase_metrics(frame, Phase.ZERO_SHOT), phase_metrics(frame, Phase.FINETUNED)
            for metric in charted:
                ys = [
                    [before.get(f"{Phase.ZERO_SHOT}/{s}/{metric}"), after.get(f"{Phase.FINETUNED}/{s}/{metric}")]
                    for s in strategies
                ]
                chart = wandb.plot.line_series(
                    xs=[0, 1], ys=ys, keys=strategies, title=f"{metric}: zero-shot (0) -> fine-tuned (1)", xname="phase"
                )
                logger.experiment.log({f"before_after/{metric}": chart})


def publish_overlays(loggers: Sequence[Logger], overlays: Mapping[str, tuple[Figure, Path]], step: int) -> None:
    """Overlay figures by target: TensorBoard images ``overlays/<file name>``; W&B a table, one row per target."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            for fig, png in overlays.values():
                logger.experiment.add_figure(f"overlays/{png.stem}", fig, global_step=step, close=False)
        elif isinstance(logger, WandbLogger) and overlays:
            import wandb

            table = wandb.Table(columns=["target", "overlay"])
            for target, (_, png) in overlays.items():
                table.add_data(target, wandb.Image(str(png), caption=target))
            logger.experiment.log({"overlays": table})


def publish_final_metrics(loggers: Sequence[Logger], metrics: Mapping[str, float], step: int) -> None:
    """Fill TensorBoard's HParams tab and W&B's run summary with the final metrics."""
    for logger in loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(dict(logger.hparams), metrics=dict(metrics), step=step)
        elif isinstance(logger, WandbLogger):
            logger.experiment.summary.update(dict(metrics))
