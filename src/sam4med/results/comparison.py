"""Zero-shot vs fine-tuned: per strategy x target and over all targets, the Dice change and its statistics."""

from __future__ import annotations

import pandas as pd

from sam4med.evaluation.rows import Phase
from sam4med.results.frame import means_per_target, overall
from sam4med.results.statistics import STAT_COLUMNS, StatisticsSettings, pair, paired_delta, sign_test
from sam4med.results.tables import sort_by_strategy, strategy_order

ALL_TARGETS = "all targets"
COMPARED = ("dice", "nsd", "iou", "hd")  # the means shown before and after, NSD beside Dice


def comparison(
    frame: pd.DataFrame,
    before: str = Phase.ZERO_SHOT,
    after: str = Phase.FINETUNED,
    *,
    statistics: StatisticsSettings | None = None,
) -> pd.DataFrame:
    """Per strategy x target: mean Dice/NSD/IoU/HD before and after, the Dice difference and its statistics.

    NSD is left out for a frame without an ``nsd`` column (a ``metrics.csv`` written before NSD was scored).

    With both phases present every strategy also gets a row with target ``all targets`` (means over all
    its objects), and every row the columns of :data:`~sam4med.results.statistics.STAT_COLUMNS`: the
    ``unit`` resampled and tested (``source`` or ``image``, chosen per row under ``statistics.unit=auto``)
    and ``n_units``, the bootstrap interval ``dice_delta_ci_low``/``_high`` with its ``ci_method``, the
    unit-level ``p_wilcoxon`` and ``p_permutation``, the ``small_n`` flag, and on the ``all targets``
    row ``p_sign`` (the sign test of targets improved); see :mod:`sam4med.results.statistics`.

    Args:
        frame: the results frame (one row per phase x strategy x object).
        before: the reference phase.
        after: the phase compared with it.
        statistics: unit, resamples and seed (None: the defaults of ``conf/statistics``).
    """
    statistics = statistics or StatisticsSettings()
    summary = means_per_target(frame)
    metrics = [m for m in COMPARED if m in summary]
    pivot = summary.pivot_table(index=["strategy", "target"], columns="phase", values=[*metrics, "n"])
    out = pd.DataFrame(index=pivot.index)
    for metric in metrics:
        for phase in (before, after):
            if (metric, phase) in pivot.columns:
                out[f"{metric}_{phase}"] = pivot[(metric, phase)]
    out["n"] = pivot["n"].max(axis=1).astype(int)
    out = out.reset_index()
    if f"dice_{before}" not in out or f"dice_{after}" not in out:
        return out
    out["dice_delta"] = out[f"dice_{after}"] - out[f"dice_{before}"]
    pairs = pair(frame, before, after)
    rows = []
    for strategy in strategy_order(out):
        part = out[out.strategy == strategy]
        strategy_pairs = pairs[pairs.strategy == strategy]
        for target_row in part.to_dict(orient="records"):
            stat = paired_delta(strategy_pairs[strategy_pairs.target == target_row["target"]], statistics)
            rows.append({**target_row, **stat.columns(), "p_sign": float("nan")})
        means = overall(frame[frame.strategy == strategy])
        total = {"strategy": strategy, "target": ALL_TARGETS}
        for metric in metrics:
            for phase in (before, after):
                if f"{metric}_{phase}" in out:
                    total[f"{metric}_{phase}"] = float(means.loc[means.phase == phase, metric].iloc[0])
        stat = paired_delta(strategy_pairs, statistics)
        total.update(n=stat.objects, dice_delta=stat.delta, **stat.columns())
        total["p_sign"] = sign_test(part["dice_delta"])
        rows.append(total)
    return pd.DataFrame(rows, columns=[*out.columns, *STAT_COLUMNS, "p_sign"])


def improvement(comp: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: targets whose mean Dice rose after fine-tuning, out of all targets (from :func:`comparison`)."""
    if "dice_delta" not in comp:
        return pd.DataFrame(columns=["strategy", "improved", "targets"])
    comp = comp[comp.target != ALL_TARGETS]
    grouped = comp.groupby("strategy")["dice_delta"]
    counts = pd.DataFrame({"improved": grouped.apply(lambda d: int((d > 0).sum())), "targets": grouped.size()})
    return sort_by_strategy(counts.reset_index(), ["strategy"])
