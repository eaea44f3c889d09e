"""The paper's tables, made from the long per-object results (one row per object instance).

* :func:`target_table`: targets x strategies, mean of one metric (Tables 2 and 3 of the COSMOS study:
  Dice, and HD in pixels).
* :func:`modality_table`: mean and standard deviation per modality and strategy (Fig. 10).
* :func:`strategy_table`: mean and standard deviation per strategy over all object instances (Fig. 6).
* :func:`s1_empty_table`: how many images S1 left without any mask.

Every mean is over object instances and includes every failure: a metric that is NaN is an error,
never skipped. Dice, NSD and IoU are fractions in [0, 1] (the paper prints percent).
"""

from __future__ import annotations

import math

import pandas as pd

STRATEGY_ORDER = ("S1", "S2", "S3", "S4", "S5", "S6")
MODE_ORDER = ("M1", "M2", "M3", "M4", "M5")  # Mazurowski et al.'s five prompt modes
CLICK_PREFIX = "I@"  # iterative clicks: strategy ``I@k`` holds the rows scored after k clicks
REPORTED = ("dice", "nsd", "iou", "hd", "hd95", "hd_px", "hd95_px")


def markdown_table(frame: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub Markdown table (no optional dependency)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"

    def cell(v: object) -> str:
        if isinstance(v, float):
            return "" if math.isnan(v) else f"{v:.{digits}f}"
        return str(v)

    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def check_complete(frame: pd.DataFrame, metrics: tuple[str, ...] = REPORTED) -> None:
    """Raise if a metric is missing (NaN): means must never drop a failure silently."""
    for metric in metrics:
        if metric in frame and frame[metric].isna().any():
            bad = frame.loc[frame[metric].isna(), ["strategy", "object_key"]].head(3).to_dict(orient="records")
            raise ValueError(f"metric '{metric}' is missing for {int(frame[metric].isna().sum())} rows, e.g. {bad}")


def click_count(strategy: str) -> int | None:
    """The click count ``k`` of an iterative-click strategy ``I@k`` (``I@10`` -> 10); None for any other."""
    text = str(strategy)
    count = text.removeprefix(CLICK_PREFIX)
    return int(count) if text.startswith(CLICK_PREFIX) and count.isdigit() else None


def click_strategy(k: int) -> str:
    """The strategy name of the rows scored after ``k`` clicks: ``I@k``."""
    return f"{CLICK_PREFIX}{k}"


def strategy_order(frame: pd.DataFrame) -> list[str]:
    """The strategies present in ``frame``: S1 ... S6, then M1 ... M5, then any other (sorted), then the
    iterative clicks ``I@1`` ... ``I@K`` by click count (``I@10`` after ``I@9``).
    """
    present = set(frame["strategy"])
    fixed = [s for s in (*STRATEGY_ORDER, *MODE_ORDER) if s in present]
    clicks = sorted((s for s in present if click_count(s) is not None), key=click_count)
    return fixed + sorted(present - set(fixed) - set(clicks)) + clicks


def sort_by_strategy(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """``table`` sorted by ``keys`` (stable), its ``strategy`` column in :func:`strategy_order`."""
    order = {s: k for k, s in enumerate(strategy_order(table))}
    ordered = table.sort_values(keys, key=lambda c: c.map(order) if c.name == "strategy" else c, kind="stable")
    return ordered.reset_index(drop=True)


def target_table(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per phase x target, one column per strategy: the mean ``metric``; ``n`` = instances."""
    check_complete(frame, (metric,))
    table = frame.pivot_table(index=["phase", "target"], columns="strategy", values=metric, aggfunc="mean")
    table = table[strategy_order(frame)]
    table.columns.name = None
    counts = frame.groupby(["phase", "target", "strategy"]).size().groupby(["phase", "target"]).max()
    table.insert(0, "n", counts.astype(int))
    return table.reset_index()


def _mean_std(frame: pd.DataFrame, keys: list[str], metrics: tuple[str, ...]) -> pd.DataFrame:
    check_complete(frame, metrics)
    grouped = frame.groupby(keys, sort=False)
    out = grouped.size().rename("n").to_frame()
    for metric in metrics:
        out[f"{metric}_mean"] = grouped[metric].mean()
        out[f"{metric}_std"] = grouped[metric].std(ddof=0)
    return sort_by_strategy(out.reset_index(), keys)


def modality_table(frame: pd.DataFrame, metrics: tuple[str, ...] = ("dice", "hd_px")) -> pd.DataFrame:
    """Per phase x modality x strategy: instances, and mean and (population) standard deviation of ``metrics``."""
    return _mean_std(frame, ["phase", "modality", "strategy"], metrics)


def strategy_table(frame: pd.DataFrame, metrics: tuple[str, ...] = REPORTED) -> pd.DataFrame:
    """Per phase x strategy over all object instances: mean and (population) standard deviation."""
    return _mean_std(frame, ["phase", "strategy"], tuple(m for m in metrics if m in frame))


def s1_empty_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per phase: images scored under S1 and those where no generated mask survived SAM's filters."""
    s1 = frame[frame["strategy"] == "S1"]
    if s1.empty:
        return pd.DataFrame(columns=["phase", "images", "empty_images", "empty_fraction"])
    per_image = s1.groupby(["phase", "image_id"])["candidates"].first()
    table = per_image.groupby("phase").agg(images="size", empty_images=lambda c: int((c == 0).sum()))
    table["empty_fraction"] = table["empty_images"] / table["images"]
    return table.reset_index()
