"""The iterative-click tables: Dice and IoU per click, NoC per object and per target, zero-shot vs fine-tuned.

Made from the ``I@1`` ... ``I@K`` rows of the results frame alone (see :mod:`sam4med.results.noc`):

* :func:`click_means` (``clicks.csv``): per phase x click, the mean Dice and IoU over the objects with a
  95 % bootstrap interval over units (:func:`~sam4med.results.statistics.mean_interval`: the units and
  small-n rules of every comparison);
* :func:`click_comparison` (``noc_comparison.csv``): zero-shot vs fine-tuned, paired by object, of
  NoC@80/@85/@90 and of the Dice after 1, 3, 5 and 9 clicks (those up to ``K``), per target and over all
  targets, with the statistics of :mod:`~sam4med.results.statistics`. A lower NoC is better, a higher Dice;
  ``delta`` is always fine-tuned minus zero-shot, so a negative NoC change is an improvement;
* :class:`ClickTables`: all of them, with the per-object NoC (``noc.csv``) and the NoC means and failure
  rates per target (``noc_summary.csv``), computed once per run by :func:`click_tables`.

:func:`final_click` is what the figures and the console show of the click rows: only the last click
``I@K`` (the per-click detail is in ``clicks.csv`` and the ``dice_vs_clicks`` figure).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from sam4med.evaluation.rows import Phase
from sam4med.results.comparison import ALL_TARGETS
from sam4med.results.noc import THRESHOLDS, click_rows, max_clicks, noc_summary, noc_table, phase_order
from sam4med.results.statistics import StatisticsSettings, mean_interval, pair, paired_delta, sign_test, small_n
from sam4med.results.tables import click_count, click_strategy
from sam4med.run_files import ResultsFolder

COMPARED_CLICKS = (1, 3, 5, 9)  # Dice compared at these click counts (those up to K)
DELTA_COLUMNS = (
    "unit",
    "n_units",
    "delta_ci_low",
    "delta_ci_high",
    "ci_method",
    "p_wilcoxon",
    "p_permutation",
    "small_n",
    "p_sign",
)
CLICK_COLUMNS = (
    "phase",
    "click",
    "n",
    "dice",
    "dice_ci_low",
    "dice_ci_high",
    "iou",
    "iou_ci_low",
    "iou_ci_high",
    "unit",
    "n_units",
    "ci_method",
    "small_n",
)
COMPARISON_COLUMNS = (
    "measure",
    "better",
    "target",
    "n",
    "zero_shot",
    "finetuned",
    "delta",
    "failed_zero_shot",
    "failed_finetuned",
    *DELTA_COLUMNS,
)


def final_click(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the ``I@k`` rows of ``k < K``: every strategy, iterative clicks at their last click."""
    counts = frame["strategy"].map(click_count)
    return frame[counts.isna() | (counts == max_clicks(frame))]


def compared_clicks(clicks: int) -> list[int]:
    """The click counts whose Dice is compared: those of :data:`COMPARED_CLICKS` up to ``clicks`` (``K``)."""
    return [k for k in COMPARED_CLICKS if k <= clicks]


def click_means(frame: pd.DataFrame, statistics: StatisticsSettings | None = None) -> pd.DataFrame:
    """``clicks.csv``: per phase x click ``k`` of the ``I@k`` rows, the objects ``n`` and the mean Dice and IoU
    with their 95 % bootstrap intervals over units (``unit``, ``n_units``, ``ci_method``; no interval below 5
    units, ``small_n`` as in every comparison). Empty without ``I@k`` rows.
    """
    rows = click_rows(frame)
    out = []
    for phase in phase_order(rows["phase"].unique()):
        for k in range(1, max_clicks(frame) + 1):
            part = rows[(rows["phase"] == phase) & (rows["click"] == k)]
            if part.empty:
                continue
            dice, iou = mean_interval(part, "dice", statistics), mean_interval(part, "iou", statistics)
            out.append(
                {
                    "phase": phase,
                    "click": k,
                    "n": dice.objects,
                    "dice": dice.mean,
                    "dice_ci_low": dice.ci_low,
                    "dice_ci_high": dice.ci_high,
                    "iou": iou.mean,
                    "iou_ci_low": iou.ci_low,
                    "iou_ci_high": iou.ci_high,
                    "unit": dice.unit,
                    "n_units": dice.n_units,
                    "ci_method": dice.ci_method,
                    "small_n": small_n(dice.n_units),
                }
            )
    return pd.DataFrame(out, columns=list(CLICK_COLUMNS))


def _compare(
    pairs: pd.DataFrame, measure: str, better: str, statistics: StatisticsSettings, failed: pd.DataFrame | None
) -> list[dict]:
    """Rows of one measure: per target, then ``all targets`` (with the sign test over the targets' changes)."""
    rows, deltas = [], []
    for target in [*sorted(pairs["target"].unique()), ALL_TARGETS]:
        part = pairs if target == ALL_TARGETS else pairs[pairs["target"] == target]
        stat = paired_delta(part, statistics)
        row = {
            "measure": measure,
            "better": better,
            "target": target,
            "n": stat.objects,
            "zero_shot": float(part["before"].mean()),
            "finetuned": float(part["after"].mean()),
            "delta": stat.delta,
            "unit": stat.unit,
            "n_units": stat.n_units,
            "delta_ci_low": stat.ci_low,
            "delta_ci_high": stat.ci_high,
            "ci_method": stat.ci_method,
            "p_wilcoxon": stat.p_wilcoxon,
            "p_permutation": stat.p_permutation,
            "small_n": stat.small_n,
            "p_sign": sign_test(pd.Series(deltas)) if target == ALL_TARGETS else float("nan"),
        }
        if failed is not None:
            rates = failed if target == ALL_TARGETS else failed[failed["target"] == target]
            row["failed_zero_shot"] = float(rates["before"].mean())
            row["failed_finetuned"] = float(rates["after"].mean())
        deltas.append(stat.delta)
        rows.append(row)
    return rows


def click_comparison(
    frame: pd.DataFrame,
    noc: pd.DataFrame,
    statistics: StatisticsSettings | None = None,
    *,
    before: str = Phase.ZERO_SHOT,
    after: str = Phase.FINETUNED,
) -> pd.DataFrame:
    """``noc_comparison.csv``: ``after`` vs ``before``, paired by object, of NoC and of Dice at some clicks.

    Rows ``measure`` = ``NoC@80``, ``NoC@85``, ``NoC@90`` (``better`` = ``lower``; with the failure rates
    ``failed_zero_shot``/``failed_finetuned``), then ``Dice@k`` for ``k`` in :func:`compared_clicks`
    (``better`` = ``higher``), each per target and over ``all targets``: the objects ``n``, the means of both
    phases, ``delta`` (``after`` minus ``before``), and the columns of every comparison (units, 95 % bootstrap
    interval ``delta_ci_low``/``_high``, Wilcoxon and permutation p over units, ``small_n``; ``p_sign`` on
    the ``all targets`` row). Empty unless both phases have ``I@k`` rows.

    Args:
        frame: the results frame.
        noc: :func:`~sam4med.results.noc.noc_table` of ``frame``.
        statistics: unit, resamples and seed (None: the defaults of ``conf/statistics``).
        before: the reference phase.
        after: the phase compared with it.
    """
    statistics = statistics or StatisticsSettings()
    if noc.empty or not {before, after} <= set(noc["phase"]):
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    rows = []
    objects = noc.assign(strategy="I")
    for t in THRESHOLDS:
        pairs = pair(objects, before, after, metric=f"noc{t}")
        failed = pair(objects.astype({f"failed{t}": float}), before, after, metric=f"failed{t}")
        rows += _compare(pairs, f"NoC@{t}", "lower", statistics, failed)
    for k in compared_clicks(max_clicks(frame)):
        pairs = pair(frame[frame["strategy"] == click_strategy(k)], before, after, metric="dice")
        rows += _compare(pairs, f"Dice@{k}", "higher", statistics, None)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


@dataclass(frozen=True, eq=False)
class ClickTables:
    """The iterative-click tables of one run (see the module's docstring), by file name in :attr:`named`.

    Attributes:
        noc: per phase x object (``noc.csv``).
        noc_summary: per phase x target and ``all targets`` (``noc_summary.csv``).
        clicks: per phase x click (``clicks.csv``).
        comparison: zero-shot vs fine-tuned (``noc_comparison.csv``; empty with one phase).
    """

    noc: pd.DataFrame
    noc_summary: pd.DataFrame
    clicks: pd.DataFrame
    comparison: pd.DataFrame

    @property
    def named(self) -> dict[str, pd.DataFrame]:
        """The tables by file name (without ``.csv``); the comparison only when there is one."""
        tables = {"noc": self.noc, "noc_summary": self.noc_summary, "clicks": self.clicks}
        if not self.comparison.empty:
            tables["noc_comparison"] = self.comparison
        return tables


NAMES = ("noc", "noc_summary", "clicks", "noc_comparison")


def click_tables(frame: pd.DataFrame, statistics: StatisticsSettings | None = None) -> ClickTables | None:
    """Every iterative-click table of ``frame``; None when it has no ``I@k`` rows."""
    if frame.empty or max_clicks(frame) == 0:
        return None
    noc = noc_table(frame)
    return ClickTables(noc, noc_summary(noc), click_means(frame, statistics), click_comparison(frame, noc, statistics))


def read_click_tables(folder: ResultsFolder) -> ClickTables | None:
    """The click tables a results folder holds (None without ``clicks.csv``): what a redraw shows again."""
    paths = {name: folder.table(name) for name in NAMES}
    if not paths["clicks"].is_file():
        return None

    def read(name: str) -> pd.DataFrame:
        path = paths[name]
        return pd.read_csv(path, dtype={"source": str}) if path.is_file() and path.stat().st_size else pd.DataFrame()

    return ClickTables(read("noc"), read("noc_summary"), read("clicks"), read("noc_comparison"))
