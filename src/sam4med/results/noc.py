"""Number of clicks (NoC) of the iterative-click rows: per object, the clicks needed to reach an IoU.

The interactive strategy ``I`` scores every object after each click ``k = 1 ... K`` (rows ``I@1`` ...
``I@K`` of the results frame, ``K`` = ``evaluation.interactive.clicks``). For a threshold ``t`` the
object's NoC@t is the smallest ``k`` whose **IoU** is at least ``t`` (IoU, not Dice: the measure of the
interactive-segmentation literature, RITM, SimpleClick, FocalClick and Mazurowski et al.). It is the
standard definition: the first click that reaches ``t`` counts, even when a later click falls below it
again. An object that does not reach ``t`` within ``K`` clicks gets ``K + 1`` and is flagged ``failed``,
so the mean NoC stays a mean over every object and the failure rate is reported beside it (RITM's code
writes ``K`` for such an object instead, which hides the failures in the mean).

* :func:`noc`: one object's NoC from its IoU after each click (a pure function).
* :func:`noc_table`: per phase x object, NoC@80, @85 and @90 and their failure flags (``noc.csv``).
* :func:`noc_summary`: per phase x target and over all targets, the mean NoC and the failure rate
  (``noc_summary.csv``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from sam4med.errors import DataError
from sam4med.evaluation.rows import Phase
from sam4med.results.comparison import ALL_TARGETS
from sam4med.results.statistics import sources
from sam4med.results.tables import CLICK_PREFIX, click_count

THRESHOLDS = (80, 85, 90)  # percent IoU: NoC@80, NoC@85, NoC@90
OBJECT_KEYS = ["phase", "image_id", "source", "target", "object_key"]


@dataclass(frozen=True)
class NoC:
    """One object's number of clicks for one IoU threshold.

    Attributes:
        clicks: the first click count ``k`` (1-based) whose IoU reaches the threshold; ``K + 1`` when none
            of the ``K`` clicks does.
        failed: the threshold was not reached within ``K`` clicks (then ``clicks == K + 1``).
    """

    clicks: int
    failed: bool


def noc(ious: Sequence[float], threshold: float) -> NoC:
    """NoC of one object: ``ious[k - 1]`` is its IoU after ``k`` clicks, ``threshold`` a fraction (0.85).

    The first ``k`` with ``ious[k - 1] >= threshold``; ``len(ious) + 1`` and ``failed`` when there is none.
    """
    if len(ious) == 0:
        raise ValueError("NoC needs the IoU after at least one click")
    for k, iou in enumerate(ious, start=1):
        if iou >= threshold:
            return NoC(k, False)
    return NoC(len(ious) + 1, True)


def phase_order(phases: Iterable[str]) -> list[str]:
    """Zero-shot, then fine-tuned, then any other phase, sorted."""
    present = set(phases)
    return [p for p in Phase if p in present] + sorted(present - set(Phase))


def click_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` scored after ``k`` clicks (strategy ``I@k``), with ``k`` in a column ``click``."""
    counts = frame["strategy"].map(click_count)
    rows = frame[counts.notna()].copy()
    rows["click"] = counts[counts.notna()].astype(int)
    return rows


def max_clicks(frame: pd.DataFrame) -> int:
    """``K``: the largest click count of ``frame``'s ``I@k`` rows (0 without any)."""
    counts = frame["strategy"].map(click_count).dropna()
    return int(counts.max()) if len(counts) else 0


def click_sequences(frame: pd.DataFrame, metric: str = "iou") -> pd.DataFrame:
    """Per phase x object (index :data:`OBJECT_KEYS`), ``metric`` after click 1 ... K (columns 1 ... K).

    Raises:
        DataError: an object has a click count twice, or lacks one of ``1 ... K`` (rows of runs with
            different ``evaluation.interactive.clicks`` mixed, or an interrupted row log).
    """
    rows = click_rows(frame).assign(source=lambda f: sources(f))
    clicks = max_clicks(frame)
    twice = rows.duplicated([*OBJECT_KEYS, "click"], keep=False)
    if twice.any():
        first = rows[twice].iloc[0]
        raise DataError(
            f"metrics: object {first['object_key']} ({first['phase']}) has {int(twice.sum())} rows for "
            f"{CLICK_PREFIX}{first['click']} and its other click counts; each click count needs exactly one row"
        )
    table = rows.pivot(index=OBJECT_KEYS, columns="click", values=metric).reindex(columns=range(1, clicks + 1))
    missing = table.isna().any(axis=1)
    if missing.any():
        keys = table.index[missing][0]
        lacking = [f"{CLICK_PREFIX}{k}" for k in table.columns[table.loc[keys].isna().to_numpy()]]
        raise DataError(
            f"metrics: object {keys[4]} ({keys[0]}) lacks rows {', '.join(lacking)} ({int(missing.sum())} objects "
            f"lack some); NoC needs every click count {CLICK_PREFIX}1 ... {CLICK_PREFIX}{clicks} of each object. Rows "
            "of runs with different evaluation.interactive.clicks cannot be mixed: score them again with one setting"
        )
    return table


def noc_table(frame: pd.DataFrame, thresholds: Sequence[int] = THRESHOLDS) -> pd.DataFrame:
    """``noc.csv``: one row per phase x object of the ``I@k`` rows of ``frame``.

    Columns phase, image_id, source, target, object_key, ``clicks`` (``K``), then per threshold ``t`` (in
    percent IoU) ``noc<t>`` (:func:`noc`: ``K + 1`` when not reached) and ``failed<t>``. Empty without
    ``I@k`` rows.
    """
    columns = [*OBJECT_KEYS, "clicks", *(f"noc{t}" for t in thresholds), *(f"failed{t}" for t in thresholds)]
    if max_clicks(frame) == 0:
        return pd.DataFrame(columns=columns)
    sequences = click_sequences(frame)
    out = sequences.index.to_frame(index=False)
    rank = {p: k for k, p in enumerate(phase_order(out["phase"]))}
    order = out.assign(_p=out["phase"].map(rank)).sort_values(["_p", "target", "image_id", "object_key"]).index
    out, sequences = out.loc[order].reset_index(drop=True), sequences.iloc[order]
    out["clicks"] = sequences.shape[1]
    values = sequences.to_numpy(dtype=float)
    for t in thresholds:
        result = [noc(row, t / 100) for row in values]
        out[f"noc{t}"] = np.array([r.clicks for r in result], dtype=int)
        out[f"failed{t}"] = np.array([r.failed for r in result], dtype=bool)
    return out[columns]


def noc_summary(table: pd.DataFrame, thresholds: Sequence[int] = THRESHOLDS) -> pd.DataFrame:
    """``noc_summary.csv``: per phase x target, then per phase over ``all targets``: objects ``n``, the mean
    ``noc<t>`` (lower is better; a failure counts ``K + 1``) and the failure rate ``failed<t>`` (a fraction).
    """
    metrics = [*(f"noc{t}" for t in thresholds), *(f"failed{t}" for t in thresholds)]
    if table.empty:
        return pd.DataFrame(columns=["phase", "target", "n", "clicks", *metrics])
    numbers = table.astype({f"failed{t}": float for t in thresholds})
    per_target = numbers.groupby(["phase", "target"], sort=False)
    parts = [per_target[metrics].mean().assign(n=per_target.size(), clicks=per_target["clicks"].max())]
    overall = numbers.groupby("phase", sort=False)
    totals = overall[metrics].mean().assign(n=overall.size(), clicks=overall["clicks"].max(), target=ALL_TARGETS)
    parts.append(totals.set_index("target", append=True))
    out = pd.concat(parts).reset_index()
    phase_rank = {p: k for k, p in enumerate(dict.fromkeys(table["phase"]))}
    out["_p"] = out["phase"].map(phase_rank)
    out["_t"] = out["target"].eq(ALL_TARGETS)
    out = out.sort_values(["_p", "_t", "target"], kind="stable").drop(columns=["_p", "_t"])
    return out[["phase", "target", "n", "clicks", *metrics]].reset_index(drop=True)
