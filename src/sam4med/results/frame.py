"""The results frame: the long table of scored rows (one per phase x strategy x object) and its means."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict

import numpy as np
import pandas as pd

from sam4med.evaluation.rows import COLUMNS, METRICS, ObjectResult
from sam4med.results.tables import sort_by_strategy


def to_frame(results: Iterable[ObjectResult]) -> pd.DataFrame:
    """Long table, one row per result; refuses NaN or inf in a metric that enters a mean (see :func:`check_finite`)."""
    frame = pd.DataFrame([asdict(r) for r in results], columns=list(COLUMNS))
    frame["phase"] = frame["phase"].astype(str)  # plain values, as in a frame read back from metrics.csv
    check_finite(frame)
    return frame


def metrics_in(frame: pd.DataFrame) -> list[str]:
    """The :data:`METRICS` columns ``frame`` has: a ``metrics.csv`` written before NSD was scored has no ``nsd``."""
    return [m for m in METRICS if m in frame]


def check_finite(frame: pd.DataFrame, metrics: tuple[str, ...] = METRICS) -> None:
    """Raise ``ValueError`` naming the rows where a metric is NaN or infinite: a mean must not skip or explode."""
    for metric in metrics:
        values = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            rows = frame.loc[bad, ["phase", "strategy", "object_key", metric]].head(5).to_dict(orient="records")
            raise ValueError(f"metric '{metric}' is NaN or infinite in {int(bad.sum())} result rows, e.g. {rows}")


def means_per_target(frame: pd.DataFrame) -> pd.DataFrame:
    """Means and instance counts per phase x strategy x target (strategies in ``strategy_order``)."""
    grouped = frame.groupby(["phase", "strategy", "target"], sort=True)
    summary = grouped[metrics_in(frame)].mean()
    summary["n"] = grouped.size()
    return sort_by_strategy(summary.reset_index(), ["phase", "strategy", "target"])


def overall(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over object instances per phase x strategy (every instance weighs the same).

    Besides the means of :data:`METRICS` (HD of a miss is the image diagonal, its NSD 0): ``miss_rate``, the share
    of objects with an empty prediction, and ``hd_nonempty``/``hd95_nonempty``, the HD means over the
    objects with a non-empty prediction only (NaN when every prediction is empty).
    """
    grouped = frame.groupby(["phase", "strategy"], sort=True)
    table = grouped[metrics_in(frame)].mean()
    table["n"] = grouped.size()
    table["miss_rate"] = grouped["empty"].mean().astype(float)
    hits = frame[~frame["empty"].astype(bool)].groupby(["phase", "strategy"], sort=True)
    table["hd_nonempty"] = hits["hd"].mean()
    table["hd95_nonempty"] = hits["hd95"].mean()
    return sort_by_strategy(table.reset_index(), ["phase", "strategy"])
