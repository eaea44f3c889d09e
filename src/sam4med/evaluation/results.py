"""Result rows and the tables made from them."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from sam4med.evaluation.statistics import PairedDelta, pair, paired_delta, sign_test
from sam4med.evaluation.tables import markdown_table, s1_empty_table, strategy_order, write_tables
from sam4med.files import write_text

METRICS = ("dice", "iou", "hd", "hd95")


@dataclass(frozen=True)
class ObjectResult:
    """Scores of one object instance under one strategy in one phase (e.g. zero-shot).

    ``hd``/``hd95`` are in ``hd_unit`` (mm where the image's pixel spacing is known, else pixels);
    ``hd_px``/``hd95_px`` are always in pixels (the unit of the paper's Table 3). ``score`` is the
    predicted IoU of the chosen mask (0.0 when nothing was predicted). ``candidates`` is the number
    of masks the prediction was chosen from: 1 (``single``), 3 (``oracle``/``confidence``), or for S1
    the number of masks everything mode generated for the image (0: none survived its filters).
    ``empty``: the chosen prediction has no pixel (a miss); its HD is then the image diagonal.
    """

    phase: str
    strategy: str
    target: str
    modality: str
    object: str
    image_id: str
    object_key: str
    dice: float
    iou: float
    hd: float
    hd95: float
    hd_unit: str
    score: float
    hd_px: float = math.nan
    hd95_px: float = math.nan
    candidates: int = -1
    empty: bool = False


COLUMNS = tuple(f.name for f in fields(ObjectResult))


def to_frame(results: Iterable[ObjectResult]) -> pd.DataFrame:
    """Long table, one row per result; refuses NaN or inf in a metric that enters a mean (see :func:`check_finite`)."""
    frame = pd.DataFrame([asdict(r) for r in results], columns=list(COLUMNS))
    check_finite(frame)
    return frame


def check_finite(frame: pd.DataFrame, metrics: tuple[str, ...] = METRICS) -> None:
    """Raise ``ValueError`` naming the rows where a metric is NaN or infinite: a mean must not skip or explode."""
    for metric in metrics:
        values = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            rows = frame.loc[bad, ["phase", "strategy", "object_key", metric]].head(5).to_dict(orient="records")
            raise ValueError(f"metric '{metric}' is NaN or infinite in {int(bad.sum())} result rows, e.g. {rows}")


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """Means and instance counts per phase x strategy x target."""
    grouped = frame.groupby(["phase", "strategy", "target"], sort=True)
    summary = grouped[list(METRICS)].mean()
    summary["n"] = grouped.size()
    return summary.reset_index()


ALL_TARGETS = "all targets"


def comparison(frame: pd.DataFrame, before: str = "zero_shot", after: str = "finetuned") -> pd.DataFrame:
    """Per strategy x target: mean Dice/IoU/HD before and after, the Dice difference and its statistics.

    With both phases present every strategy also gets a row with target ``all targets`` (means over all
    its objects), and the columns ``dice_delta_ci_low``/``dice_delta_ci_high`` (95 % bootstrap CI,
    images resampled), ``p_wilcoxon`` (paired objects) and, on the ``all targets`` row, ``p_sign`` (the
    sign test of targets improved); see :mod:`sam4med.evaluation.statistics`.
    """
    summary = summarize(frame)
    pivot = summary.pivot_table(index=["strategy", "target"], columns="phase", values=["dice", "iou", "hd", "n"])
    out = pd.DataFrame(index=pivot.index)
    for metric in ("dice", "iou", "hd"):
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
            stat = paired_delta(strategy_pairs[strategy_pairs.target == target_row["target"]])
            rows.append({**target_row, **_stat_columns(stat), "p_sign": float("nan")})
        means = overall(frame[frame.strategy == strategy])
        total = {"strategy": strategy, "target": ALL_TARGETS}
        for metric in ("dice", "iou", "hd"):
            for phase in (before, after):
                if f"{metric}_{phase}" in out:
                    total[f"{metric}_{phase}"] = float(means.loc[means.phase == phase, metric].iloc[0])
        stat = paired_delta(strategy_pairs)
        total.update(n=stat.objects, dice_delta=stat.delta, **_stat_columns(stat))
        total["p_sign"] = sign_test(part["dice_delta"])
        rows.append(total)
    return pd.DataFrame(rows, columns=[*out.columns, "dice_delta_ci_low", "dice_delta_ci_high", "p_wilcoxon", "p_sign"])


def _stat_columns(stat: PairedDelta) -> dict[str, float]:
    return {"dice_delta_ci_low": stat.ci_low, "dice_delta_ci_high": stat.ci_high, "p_wilcoxon": stat.p_wilcoxon}


def improvement(comp: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: targets whose mean Dice rose after fine-tuning, out of all targets (from :func:`comparison`)."""
    if "dice_delta" not in comp:
        return pd.DataFrame(columns=["strategy", "improved", "targets"])
    comp = comp[comp.target != ALL_TARGETS]
    grouped = comp.groupby("strategy")["dice_delta"]
    return pd.DataFrame(
        {"improved": grouped.apply(lambda d: int((d > 0).sum())), "targets": grouped.size()}
    ).reset_index()


def overall(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over object instances per phase x strategy (every instance weighs the same).

    Besides the means of :data:`METRICS` (HD of a miss is the image diagonal): ``miss_rate``, the share
    of objects with an empty prediction, and ``hd_nonempty``/``hd95_nonempty``, the HD means over the
    objects with a non-empty prediction only (NaN when every prediction is empty).
    """
    grouped = frame.groupby(["phase", "strategy"], sort=True)
    table = grouped[list(METRICS)].mean()
    table["n"] = grouped.size()
    table["miss_rate"] = grouped["empty"].mean().astype(float)
    hits = frame[~frame["empty"].astype(bool)].groupby(["phase", "strategy"], sort=True)
    table["hd_nonempty"] = hits["hd"].mean()
    table["hd95_nonempty"] = hits["hd95"].mean()
    return table.reset_index()


def write_results(frame: pd.DataFrame, directory: Path, *, meta: dict) -> dict[str, Path]:
    """Write ``metrics.csv``, ``summary.json``, ``comparison.md``/``.csv`` and the paper's tables (atomically).

    The tables (see :mod:`sam4med.evaluation.tables`) are ``table_dice``, ``table_hd``, ``per_modality``,
    ``per_strategy`` and ``s1_empty`` as CSV, and all of them in ``tables.md``. With a zero-shot and a
    fine-tuned phase, ``improvement.csv`` counts the targets whose mean Dice rose, per strategy.
    """
    directory.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": directory / "metrics.csv",
        "summary": directory / "summary.json",
        "comparison_md": directory / "comparison.md",
        "comparison_csv": directory / "comparison.csv",
    }

    write_text(paths["metrics"], frame.to_csv(index=False))
    summary = summarize(frame) if len(frame) else pd.DataFrame()
    means = overall(frame) if len(frame) else pd.DataFrame()
    write_text(
        paths["summary"],
        json.dumps(
            {
                "meta": meta,
                "means": summary.to_dict(orient="records"),
                "overall": means.to_dict(orient="records"),
                "s1_empty_images": s1_empty_table(frame).to_dict(orient="records") if len(frame) else [],
            },
            indent=2,
        ),
    )
    comp = comparison(frame) if len(frame) else pd.DataFrame()
    write_text(paths["comparison_csv"], comp.to_csv(index=False))
    lines = [f"# {meta.get('title', 'Results')}", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items() if k != "title"]
    lines += [
        "",
        "## Mean per strategy (over object instances)",
        "",
        markdown_table(means) if len(frame) else "",
    ]
    lines += ["", "## Per target", "", markdown_table(comp) if len(comp) else "", ""]
    write_text(paths["comparison_md"], "\n".join(lines))
    if "dice_delta" in comp:
        paths["improvement"] = directory / "improvement.csv"
        write_text(paths["improvement"], improvement(comp).to_csv(index=False))
    if len(frame):
        paths.update(write_tables(frame, directory))
    return paths
