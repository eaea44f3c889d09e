"""The one results flow: scored rows -> the results folder, figures, overlays, ``report.html``, loggers, terminal.

Every run ends in :func:`finish`: ``evaluate.py`` with its one phase, the before/after callback of
``train.py`` with both, and :func:`~sam4med.results.redraw.redraw` (``python -m sam4med.results.redraw
RUN``) from what a results folder already holds. What it does, in order:

1. the tables (``metrics.csv``, ``summary.json``, the comparison, the paper's tables; see
   :func:`~sam4med.results.write.write_results`), the comparison computed once for all that follows, with
   the run's statistics settings (``conf/statistics``: the unit resampled and tested, see
   :mod:`sam4med.results.statistics`); with iterative-click rows (``I@k``) the click tables too (NoC,
   Dice per click, their comparison; :mod:`sam4med.results.clicks`), also computed once;
2. the figures (:data:`sam4med.results.figures` ``run_figures``) and any an analysis adds, as PNG + SVG;
3. the prediction overlays, decoded through the scoring session (only when an :class:`OverlaySource` is
   given: a redraw keeps those on disk);
4. the loggers: phase means (``<phase>/<strategy>/<metric>``), ``delta/<strategy>/dice``, the NoC means
   (``<phase>/I/noc85`` ...), the comparison table, the click tables (``clicks/<name>``) and every figure,
   the before/after charts, the final metrics (TensorBoard HParams, W&B summary);
5. ``report.html``;
6. one summary table on the terminal.

An analysis adds its own tables and figures by passing them (``tables``, ``figures``): they are written
(CSV + Markdown, PNG + SVG), shown in the report and sent to the loggers with the run's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import torch
from matplotlib.figure import Figure
from pytorch_lightning.loggers import Logger

from sam4med.data.dataset import CosmosDataset
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.files import write_text
from sam4med.models.sam_model import SamModel
from sam4med.results.clicks import ClickTables, click_tables, final_click
from sam4med.results.comparison import comparison, improvement
from sam4med.results.figures import phases, run_figures, save_figure
from sam4med.results.loggers import (
    delta_metrics,
    log_metrics,
    noc_metrics,
    phase_metrics,
    publish_before_after_charts,
    publish_figure,
    publish_final_metrics,
    publish_overlays,
    publish_table,
)
from sam4med.results.overlays import close_overlays, write_overlays
from sam4med.results.page import write_report
from sam4med.results.statistics import StatisticsSettings
from sam4med.results.tables import markdown_table
from sam4med.results.terminal import print_summary
from sam4med.results.write import write_results
from sam4med.run_files import ResultsFolder


@dataclass(frozen=True)
class OverlaySource:
    """What drawing prediction overlays needs.

    Attributes:
        model: the model that was scored (its current decoder is the last phase's).
        dataset: the split that was scored.
        session: the scoring session (its prompts, embedding cache and decoding options).
        decoders: per phase, the mask-decoder state it predicts with (None: the model's current decoder).
    """

    model: SamModel
    dataset: CosmosDataset
    session: EvaluationSession
    decoders: Mapping[Phase, dict[str, torch.Tensor] | None]


def finish(
    folder: ResultsFolder,
    frame: pd.DataFrame,
    meta: Mapping[str, object],
    *,
    title: str,
    loggers: Sequence[Logger] = (),
    step: int = 0,
    overlays: OverlaySource | None = None,
    comp: pd.DataFrame | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    figures: Mapping[str, Figure] | None = None,
    write_tables: bool = True,
    log_phases: bool = True,
    show: bool = True,
    statistics: StatisticsSettings | None = None,
    clicks: ClickTables | None = None,
) -> pd.DataFrame:
    """Turn a run's results frame and description into everything a run leaves; returns the comparison.

    Args:
        folder: the results folder.
        frame: the results frame (one row per phase x strategy x object, see
            :func:`~sam4med.results.frame.to_frame`).
        meta: what the rows were made with (``EvaluationSession.describe``).
        title: the summary table's title.
        loggers: Lightning loggers to send metrics, tables and figures to.
        step: the step the loggers record.
        overlays: how to decode the overlay examples; None keeps the overlays already on disk.
        comp: the comparison when already at hand (a redraw reads ``comparison.csv``); None computes it.
        tables: an analysis's further tables, by file name (``robustness`` ...).
        figures: an analysis's further figures, by file name; closed here.
        write_tables: write the tables of step 1 (a redraw leaves them as they are).
        log_phases: send the phase means to the loggers (the callback sends each as its phase ends).
        show: print the summary table.
        statistics: the comparison's unit, resamples and seed (``conf/statistics``; None: its
            defaults). Unused for the comparison when ``comp`` is given, for the click tables when ``clicks``.
        clicks: the iterative-click tables when already at hand (a redraw reads them); None computes them
            (None again when ``frame`` has no ``I@k`` rows).
    """
    if comp is None:
        comp = comparison(frame, statistics=statistics) if len(frame) else pd.DataFrame()
    if clicks is None:
        clicks = click_tables(frame, statistics)
    if write_tables:
        write_results(frame, folder, meta=dict(meta), comp=comp, clicks=clicks)
    extra_tables = dict(tables or {})
    for name, table in extra_tables.items():
        write_text(folder.table(name), table.to_csv(index=False))
        write_text(folder.table(name).with_suffix(".md"), markdown_table(table) + "\n")
    if frame.empty:
        return comp
    drawn = {**run_figures(frame, comp, clicks=clicks.clicks if clicks else None), **(figures or {})}
    for name, fig in drawn.items():
        publish_figure(loggers, f"figures/{name}", fig, save_figure(fig, folder.figures, name), step)
        plt.close(fig)
    if overlays is not None:
        shown = write_overlays(
            frame,
            folder.overlays,
            model=overlays.model,
            dataset=overlays.dataset,
            decoders=overlays.decoders,
            session=overlays.session,
        )
        publish_overlays(loggers, shown, step)
        close_overlays(shown)
    _publish(loggers, frame, comp, extra_tables, step, log_phases=log_phases, clicks=clicks)
    write_report(folder, comp=comp, tables=extra_tables)
    if show:
        print_summary(frame, title=title, comp=comp)
    return comp


def _publish(
    loggers: Sequence[Logger],
    frame: pd.DataFrame,
    comp: pd.DataFrame,
    tables: Mapping[str, pd.DataFrame],
    step: int,
    *,
    log_phases: bool,
    clicks: ClickTables | None = None,
) -> None:
    """Metrics, tables and charts to the loggers (figures and overlays went as they were drawn)."""
    if not loggers:
        return
    means = {k: v for phase in phases(frame) for k, v in phase_metrics(frame, phase).items()}
    if log_phases:
        log_metrics(loggers, means, step)
    delta = delta_metrics(frame)
    log_metrics(loggers, delta, step)
    noc = noc_metrics(clicks.noc_summary) if clicks is not None else {}
    if noc:
        log_metrics(loggers, noc, step)
    if set(Phase) <= set(frame["phase"]):
        publish_before_after_charts(loggers, final_click(frame))
    publish_table(loggers, "comparison/table", comp, step)
    if "dice_delta" in comp:
        publish_table(loggers, "comparison/improved_targets", improvement(comp), step)
    for name, table in (clicks.named if clicks is not None else {}).items():
        publish_table(loggers, f"clicks/{name}", table, step)
    for name, table in tables.items():
        publish_table(loggers, f"tables/{name}", table, step)
    publish_final_metrics(loggers, {**means, **delta, **noc}, step)
