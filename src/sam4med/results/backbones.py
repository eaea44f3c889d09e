"""The backbones of a multirun side by side (``python evaluate.py -m model=litemedsam,medsam,vit_b``).

When every run of a sweep has its own backbone (``summary.json`` meta ``backbone``), :func:`write_backbone_tables`
writes ``backbones.csv``/``.md`` and ``figures/backbones.png``/``.svg`` into the sweep folder, like the
COSMOS study's ViT-B next to ViT-H (Tables 2-3, Fig. 6), with the paired statistics the paper lacks:

* **Identical prompts** (:func:`check_prompts`): backbones are compared only on the objects whose prompt is
  the same in every run's ``results/prompts.json`` (same strategy and object key: the same points, labels
  and box(es), drawn from the same object mask). An object whose prompt differs, or is missing in a run,
  is left out of every column, and the notes say how many and why (e.g. runs drawn with another
  ``evaluation.prompts.seed``). S1 has no stored prompt: its objects are compared when the runs' ``everything``
  settings are equal. The iterative clicks (``I@k``) are compared at their last click ``K``; only their
  start prompt is checked, as the later clicks follow each model's own errors.
* **The same objects in every column**: every backbone's mean and every difference of a row are over the
  same objects (those every run scored with identical prompts), so a difference is exactly the difference of
  the two means.
* **Statistics** (:mod:`sam4med.results.statistics`): each backbone's mean Dice with its 95 % bootstrap
  interval over units (:func:`~sam4med.results.statistics.mean_interval`), and each other backbone minus the
  reference (the first run, or ``reference``) paired by object (:func:`~sam4med.results.statistics.paired_delta`:
  interval, Wilcoxon and permutation p-values over units, the small-n rules); on the ``all targets`` row the
  sign test of "targets better" over the targets whose mean changed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sam4med.errors import ConfigError, DataError
from sam4med.evaluation.interactive import INTERACTIVE
from sam4med.files import write_text
from sam4med.prompts.store import StoredPrompt
from sam4med.results.clicks import final_click
from sam4med.results.comparison import ALL_TARGETS
from sam4med.results.figures import label, legend_below, phases, save_figure
from sam4med.results.statistics import (
    SMALL,
    SMALL_MARK,
    TOO_SMALL,
    StatisticsSettings,
    format_change,
    format_p,
    mean_interval,
    notes,
    paired_delta,
    sign_test,
    small_n,
)
from sam4med.results.sweep_page import run_bars
from sam4med.results.tables import check_complete, click_count, markdown_table, strategy_order
from sam4med.run_files import ResultsFolder, RunFolder

NAME = "backbones"  # backbones.csv, backbones.md, figures/backbones.png/.svg in the sweep folder
KEYS = ["phase", "strategy", "target", "image_id", "object_key"]
EVERYTHING = "S1"  # the strategy without a stored prompt: its grid is the run's ``everything`` settings
TITLE = "Backbones side by side: mean Dice on identical prompts, each backbone minus the reference"
FIGURE_TITLE = "Mean Dice per strategy and backbone on identical prompts (95 % bootstrap CI over units)"


def run_meta(run: Path) -> dict:
    """The ``meta`` of a run's ``summary.json`` ({} without one)."""
    path = RunFolder(run).results.summary
    return dict(json.loads(path.read_text()).get("meta", {})) if path.is_file() else {}


def by_backbone(runs: Mapping[Path, str]) -> bool:
    """Whether ``runs`` (run folder -> label, from :func:`~sam4med.results.sweep.run_labels`) are at least two
    runs labelled by their backbones, every run with its own.
    """
    backbones = {run: run_meta(run).get("backbone") for run in runs}
    return len(runs) > 1 and len(set(backbones.values())) == len(runs) and backbones == dict(runs)


def prompt_key(strategy: str, object_key: str) -> str | None:
    """The key of a row's prompt in ``prompts.json``: ``<strategy>|<object>``, the start prompt ``I|<object>``
    for the click rows ``I@k``, None for S1 (no stored prompt).
    """
    if strategy == EVERYTHING:
        return None
    return f"{INTERACTIVE if click_count(strategy) is not None else strategy}|{object_key}"


@dataclass(frozen=True)
class PromptFile:
    """One run's ``prompts.json``: the seed and sampling it was drawn with, its prompts by key (None: no file)."""

    seed: int | None
    sampling: str | None
    prompts: Mapping[str, StoredPrompt] | None

    @classmethod
    def read(cls, run: Path) -> PromptFile:
        """The prompts saved in ``<run>/results/prompts.json`` (``prompts`` None where there is no file)."""
        path = RunFolder(run).results.prompts
        if not path.is_file():
            return cls(None, None, None)
        try:
            raw = json.loads(path.read_text())
            prompts = {key: StoredPrompt.from_dict(value) for key, value in raw["prompts"].items()}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(
                f"{path}: not a prompts file written by sam4med ({exc!r}); the backbones of the sweep cannot be "
                "checked for identical prompts"
            ) from exc
        return cls(raw.get("seed"), raw.get("sampling"), prompts)


def same_prompt(a: StoredPrompt, b: StoredPrompt) -> bool:
    """Whether two stored prompts give the decoder the same input: points, labels and box(es) equal (the
    recorded ``seed`` is not compared: a box drawn under two seeds is the same box).
    """
    pa, pb = a.prompt, b.prompt
    return (pa.point_coords, pa.point_labels, pa.box, pa.boxes) == (pb.point_coords, pb.point_labels, pb.box, pb.boxes)


@dataclass(frozen=True)
class PromptCheck:
    """Which objects every run scored on identical prompts.

    Attributes:
        excluded: one row per (strategy, object_key) left out: columns strategy, object_key, reason.
        notes: the lines that say how many were left out, why, and how to score on identical prompts.
    """

    excluded: pd.DataFrame
    notes: tuple[str, ...] = field(default=())

    def keep(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The rows of ``frame`` whose (strategy, object_key) is not excluded."""
        if self.excluded.empty:
            return frame
        out = frame.merge(self.excluded[["strategy", "object_key"]], how="left", indicator=True)
        return frame[(out["_merge"] == "left_only").to_numpy()]


def _differing(values: Mapping[str, object], name: str) -> str:
    return f"{name} " + ", ".join(f"{v} ({label})" for label, v in values.items())


def check_prompts(frame: pd.DataFrame, runs: Mapping[str, Path]) -> PromptCheck:
    """Check that every object of ``frame`` (merged rows, ``run`` = label) has the same prompt in every run.

    Args:
        frame: the rows of every run, with a ``run`` column holding the labels of ``runs``.
        runs: label -> run folder, in job order.

    Returns:
        The objects to leave out and why: ``prompt differs`` (other points, labels or box), ``mask differs``
        (the stored prompt was drawn from another object mask: the data were prepared differently), ``no
        prompt in <run>`` (its ``prompts.json`` holds none), ``no prompts.json in <run>``, ``everything
        settings differ`` (S1), ``not scored by every run``.
    """
    files = {label: PromptFile.read(run) for label, run in runs.items()}
    everything = {label: run_meta(run).get("everything") for label, run in runs.items()}
    labels = list(runs)
    scored = frame.groupby(["strategy", "object_key"])["run"].agg(lambda r: set(r))
    excluded = []
    for (strategy, object_key), scored_by in scored.items():
        reason = None
        key = prompt_key(strategy, object_key)
        if set(labels) - scored_by:
            reason = "not scored by every run"
        elif key is None:
            reason = "everything settings differ" if len(set(map(str, everything.values()))) > 1 else None
        else:
            stored = {label: (files[label].prompts or {}).get(key) for label in labels}
            missing = [label for label, p in stored.items() if p is None]
            if missing:
                what = "prompt" if files[missing[0]].prompts is not None else "prompts.json"
                reason = f"no {what} in {missing[0]}"
            elif len({p.mask_sha256 for p in stored.values()}) > 1:
                reason = "mask differs"
            elif not all(same_prompt(stored[labels[0]], p) for p in stored.values()):
                reason = "prompt differs"
        if reason:
            excluded.append({"strategy": strategy, "object_key": object_key, "reason": reason})
    table = pd.DataFrame(excluded, columns=["strategy", "object_key", "reason"])
    return PromptCheck(table, tuple(_prompt_notes(table, len(scored), files, everything, runs)))


def _prompt_notes(
    excluded: pd.DataFrame,
    objects: int,
    files: Mapping[str, PromptFile],
    everything: Mapping[str, object],
    runs: Mapping[str, Path],
) -> list[str]:
    """The lines under the tables on the prompt check: all identical, or how many objects were left out and why."""
    checked = "each run's results/prompts.json"
    if excluded.empty:
        return [
            f"Prompts: identical in every run for all {objects} (strategy, object) pairs compared ({checked}; "
            "S1: the same everything settings; iterative clicks: the same start prompt)."
        ]
    reasons = Counter(excluded["reason"])
    by_reason = ", ".join(f"{reason} {n}" for reason, n in reasons.items())
    by_strategy = ", ".join(f"{s} {n}" for s, n in Counter(excluded["strategy"]).items())
    lines = [
        f"Prompts: {len(excluded)} of {objects} (strategy, object) pairs are left out of every column, as they were "
        f"not scored on identical prompts in every run. By reason: {by_reason}. By strategy: {by_strategy}."
    ]
    seeds = {label: f.seed for label, f in files.items() if f.prompts is not None}
    samplings = {label: f.sampling for label, f in files.items() if f.prompts is not None}
    why = []
    if len(set(seeds.values())) > 1:
        why.append(_differing(seeds, "the runs drew their prompts with evaluation.prompts.seed"))
    if len(set(samplings.values())) > 1:
        why.append(_differing(samplings, "with evaluation.prompts.sampling"))
    absent = [label for label, f in files.items() if f.prompts is None]
    if absent:
        why.append(f"no prompts.json in {', '.join(absent)}")
    if "mask differs" in reasons:
        why.append("some object masks differ between runs (the dataset was prepared differently)")
    if "everything settings differ" in reasons:
        why.append(_differing(everything, "S1 ran with everything settings"))
    if why:
        lines.append("Why: " + "; ".join(why) + ".")
    first = next(iter(runs.items()))
    lines.append(
        "To compare every object, score every backbone on one run's prompts: "
        f"evaluation.prompts.file={RunFolder(first[1]).results.prompts} (the prompts of {first[0]})."
    )
    return lines


def _dice(label_: str) -> str:
    return f"dice_{label_}"


def _common(frame: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """One row per phase x strategy x object scored by every run: its keys, ``source`` and the Dice of each run
    (column ``dice_<label>``).
    """
    frame = frame.assign(source=frame["source"].fillna("").astype(str) if "source" in frame else "")
    wide = frame.pivot_table(index=KEYS, columns="run", values="dice", aggfunc="first")
    wide = wide.reindex(columns=labels).dropna()
    wide.columns = [_dice(b) for b in labels]
    wide = wide.reset_index()
    source = frame.groupby(KEYS)["source"].agg(lambda s: next((v for v in s if v), ""))
    return wide.merge(source.reset_index(), on=KEYS, how="left")


def _columns(labels: list[str], reference: str) -> list[str]:
    means = [f"dice_{b}{suffix}" for b in labels for suffix in ("", "_ci_low", "_ci_high", "_ci_method")]
    deltas = [
        c
        for o in labels
        if o != reference
        for c in (
            f"delta_{o}",
            f"delta_{o}_ci_low",
            f"delta_{o}_ci_high",
            f"delta_{o}_ci_method",
            f"p_wilcoxon_{o}",
            f"p_permutation_{o}",
            f"p_sign_{o}",
        )
    ]
    head = ["phase", "strategy", "target", "reference", "n", "excluded", "unit", "n_units", "small_n"]
    return [*head, *means, *deltas]


def mean_columns(rows: pd.DataFrame, label_: str, statistics: StatisticsSettings) -> dict[str, object]:
    """``dice_<label>`` (the mean of column ``dice_<label>`` over ``rows``, one per object) with its interval
    columns, and the row's ``unit``, ``n_units`` and ``small_n``.
    """
    mean = mean_interval(rows, _dice(label_), statistics)
    return {
        "unit": mean.unit,
        "n_units": mean.n_units,
        "small_n": small_n(mean.n_units),
        f"dice_{label_}": mean.mean,
        f"dice_{label_}_ci_low": mean.ci_low,
        f"dice_{label_}_ci_high": mean.ci_high,
        f"dice_{label_}_ci_method": mean.ci_method,
    }


def _row(
    rows: pd.DataFrame, labels: list[str], reference: str, statistics: StatisticsSettings, targets: pd.DataFrame | None
) -> dict:
    """The statistics of one table row over ``rows`` (one per object, a Dice column per label)."""
    out: dict[str, object] = {"reference": reference, "n": len(rows)}
    for b in labels:
        out.update(mean_columns(rows, b, statistics))
    for o in labels:
        if o == reference:
            continue
        stat = paired_delta(rows.assign(before=rows[_dice(reference)], after=rows[_dice(o)]), statistics)
        p_sign = float("nan")
        if targets is not None and len(targets):  # the all-targets row: sign test over the targets' mean differences
            diff = targets[_dice(o)] - targets[_dice(reference)]
            p_sign = sign_test(diff.groupby(targets["target"]).mean())
        out.update(
            {
                f"delta_{o}": stat.delta,
                f"delta_{o}_ci_low": stat.ci_low,
                f"delta_{o}_ci_high": stat.ci_high,
                f"delta_{o}_ci_method": stat.ci_method,
                f"p_wilcoxon_{o}": stat.p_wilcoxon,
                f"p_permutation_{o}": stat.p_permutation,
                f"p_sign_{o}": p_sign,
            }
        )
    return out


def backbone_table(
    frame: pd.DataFrame,
    labels: list[str],
    *,
    reference: str | None = None,
    statistics: StatisticsSettings | None = None,
    excluded: PromptCheck | None = None,
) -> pd.DataFrame:
    """Per phase x strategy x target, then each strategy's ``all targets``: every backbone's mean Dice with its
    95 % interval and every other backbone minus the reference, paired by object.

    Args:
        frame: merged rows of the runs (``run`` = backbone label; iterative clicks are taken at their last click).
        labels: the backbones in job order.
        reference: the backbone the others are compared with (None: the first).
        statistics: unit, resamples and seed (None: the defaults).
        excluded: the prompt check; its objects are left out (None: none).

    Returns:
        Columns phase, strategy, target, reference, n (objects compared: scored by every run on identical
        prompts), excluded (objects of the row left out), unit, n_units, small_n, then per backbone ``b``
        ``dice_<b>`` with ``_ci_low``/``_ci_high``/``_ci_method``, then per other backbone ``o``
        ``delta_<o>`` (mean Dice of ``o`` minus the reference's) with ``_ci_low``/``_ci_high``/``_ci_method``,
        ``p_wilcoxon_<o>``, ``p_permutation_<o>`` and, on the ``all targets`` rows, ``p_sign_<o>``.
    """
    statistics = statistics or StatisticsSettings()
    reference = reference or labels[0]
    check_complete(frame, ("dice",))
    frame = final_click(frame)
    objects = frame.groupby(["phase", "strategy", "target"])["object_key"].nunique()
    kept = (excluded.keep(frame) if excluded is not None else frame)[lambda f: f["run"].isin(labels)]
    common = _common(kept, labels) if len(kept) else pd.DataFrame(columns=[*KEYS, "source", *map(_dice, labels)])
    rows = []
    for phase in phases(frame):
        for strategy in strategy_order(frame[frame.phase == phase]):
            part = common[(common.phase == phase) & (common.strategy == strategy)]
            targets = sorted(objects.loc[(phase, strategy)].index)
            for target in [*targets, ALL_TARGETS]:
                rows_t = part if target == ALL_TARGETS else part[part.target == target]
                total = int(
                    objects.loc[(phase, strategy)].sum()
                    if target == ALL_TARGETS
                    else objects[(phase, strategy, target)]
                )
                stats = _row(rows_t, labels, reference, statistics, part if target == ALL_TARGETS else None)
                rows.append(
                    {
                        "phase": str(phase),
                        "strategy": strategy,
                        "target": target,
                        **stats,
                        "excluded": total - len(rows_t),
                    }
                )
    return pd.DataFrame(rows, columns=_columns(labels, reference))


def mean_text(mean: float, low: float, high: float, n_units: float) -> str:
    """A mean with its interval as printed: ``0.612 [0.580, 0.640]``, ``†`` with few units, none below 5."""
    if not np.isfinite(mean):
        return ""
    flag = small_n(n_units)
    if flag == TOO_SMALL:
        return f"{mean:.3f} ({TOO_SMALL})"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.3f}"
    return f"{mean:.3f} [{low:.3f}, {high:.3f}]" + (f" {SMALL_MARK}" if flag == SMALL else "")


def shown_table(table: pd.DataFrame, labels: list[str], *, strategy_column: bool = False) -> pd.DataFrame:
    """``table`` (from :func:`backbone_table`) as ``backbones.md`` and ``report.html`` print it: each mean and
    difference with its interval as text, p-values with two digits, ``n too small`` and ``†`` as in every
    comparison. ``strategy_column``: keep the strategy (the table over all targets), else the target.
    """
    out = []
    for row in table.to_dict(orient="records"):
        reference, n_units = row["reference"], row["n_units"]
        shown = {"phase": label(row["phase"])}
        shown.update({"strategy": row["strategy"]} if strategy_column else {"target": row["target"]})
        units = f"{row['n_units']} {row['unit']}{'s' if row['n_units'] != 1 else ''}"
        shown.update({"n": row["n"], "left out": row["excluded"], "units": units})
        for b in labels:
            name = f"{b} (reference)" if b == reference else b
            shown[name] = mean_text(row[f"dice_{b}"], row[f"dice_{b}_ci_low"], row[f"dice_{b}_ci_high"], n_units)
        for o in labels:
            if o == reference:
                continue
            delta = row[f"delta_{o}"]
            shown[f"{o} − {reference}"] = (
                format_change(delta, row[f"delta_{o}_ci_low"], row[f"delta_{o}_ci_high"], n_units)
                if np.isfinite(delta)
                else ""
            )
            shown[f"p Wilcoxon {o}"] = format_p(row[f"p_wilcoxon_{o}"], n_units)
            shown[f"p perm. {o}"] = format_p(row[f"p_permutation_{o}"], n_units)
            p_sign = row[f"p_sign_{o}"]
            shown[f"p sign {o}"] = "" if pd.isna(p_sign) else f"{p_sign:.2g}"
        out.append(shown)
    return pd.DataFrame(out)


def backbone_means(table: pd.DataFrame, labels: list[str]) -> Figure:
    """Mean Dice over all targets per strategy, one bar per backbone with its 95 % interval (none where there are
    fewer than 5 units), one panel per phase (zero-shot, then fine-tuned).
    """
    overall = table[table["target"] == ALL_TARGETS]
    names = phases(overall)
    order = strategy_order(overall)
    fig, axes = plt.subplots(
        1, len(names), figsize=(1.5 + (0.9 + 0.25 * len(labels)) * len(order) * len(names), 3.8), squeeze=False
    )
    for ax, phase in zip(axes[0], names, strict=True):
        rows = overall[overall["phase"] == phase].set_index("strategy").reindex(order)
        bars = []
        for b in labels:
            mean = rows[f"dice_{b}"].to_numpy(dtype=float)
            low, high = rows[f"dice_{b}_ci_low"].to_numpy(dtype=float), rows[f"dice_{b}_ci_high"].to_numpy(dtype=float)
            bars.append((b, mean, np.nan_to_num(np.vstack([mean - low, high - mean]).clip(min=0))))
        run_bars(ax, order, bars, title=label(phase))
    axes[0, 0].set_ylabel("mean Dice")
    methods = "/".join(sorted({m for b in labels for m in overall[f"dice_{b}_ci_method"].dropna().astype(str)} - {""}))
    units = " or ".join(f"{u}s" for u in sorted(set(overall["unit"].astype(str))))
    bars = f"95 % {methods} bootstrap CI, {units} resampled" if methods else f"no error bars: {TOO_SMALL}"
    fig.suptitle(f"Mean Dice per strategy and backbone, identical prompts\n({bars})", fontsize=10, x=0.02, ha="left")
    handles, names_ = axes[0, 0].get_legend_handles_labels()
    legend_below(fig, handles, names_, fontsize=8)
    return fig


@dataclass(frozen=True)
class BackboneReport:
    """What :func:`write_backbone_tables` wrote and what the sweep's ``report.html`` shows of it.

    Attributes:
        paths: ``backbones_csv``, ``backbones_md`` and ``backbones_figure`` (the PNG; an SVG lies beside it).
        tables: the tables as printed, by heading (the means over all targets, then one per strategy).
        notes: the lines under the first table (reference, prompt check, unit and small-n notes).
        figure: (caption, PNG) of the figure.
    """

    paths: Mapping[str, Path]
    tables: Mapping[str, pd.DataFrame]
    notes: tuple[str, ...]
    figure: tuple[str, Path]


def write_backbone_tables(
    sweep_dir: str | Path,
    frame: pd.DataFrame,
    runs: Mapping[Path, str],
    *,
    statistics: StatisticsSettings | None = None,
    reference: str | None = None,
) -> BackboneReport | None:
    """Write ``backbones.csv``/``.md`` and ``figures/backbones`` into ``sweep_dir`` when the runs differ by backbone.

    Args:
        sweep_dir: the sweep folder.
        frame: the merged rows of the runs (``run`` = label, see :func:`~sam4med.results.sweep.merge_runs`).
        runs: run folder -> label, in job order (:func:`~sam4med.results.sweep.run_labels`).
        statistics: the sweep's statistics settings (None: the defaults).
        reference: the backbone the others are compared with (None: the first run's).

    Returns:
        None (and nothing written) unless there are at least two runs, each labelled by its own backbone.
    """
    if not by_backbone(runs):
        return None
    sweep_dir = Path(sweep_dir)
    labels = list(runs.values())
    if reference is not None and reference not in labels:
        raise ConfigError(
            f"backbone reference {reference!r} is not a backbone of the sweep {sweep_dir}; use one of "
            f"{', '.join(labels)}"
        )
    reference = reference or labels[0]
    check = check_prompts(final_click(frame), {lab: run for run, lab in runs.items()})
    table = backbone_table(frame, labels, reference=reference, statistics=statistics, excluded=check)
    overall = table[table["target"] == ALL_TARGETS].reset_index(drop=True)
    lines = [
        f"Reference: {reference}; each difference is the other backbone's mean Dice minus the reference's over the "
        "same objects (scored by every run on identical prompts), paired by object.",
        *check.notes,
        *notes(frame, table),
    ]
    headings = {f"Mean Dice over all targets per strategy, backbones side by side (reference {reference})": overall}
    for strategy in strategy_order(table):
        headings[f"{strategy}: mean Dice per target, backbones side by side"] = table[table.strategy == strategy]
    shown = {
        heading: shown_table(part, labels, strategy_column=k == 0) for k, (heading, part) in enumerate(headings.items())
    }
    paths = {"backbones_csv": sweep_dir / f"{NAME}.csv", "backbones_md": sweep_dir / f"{NAME}.md"}
    write_text(paths["backbones_csv"], table.to_csv(index=False))
    runs_line = ", ".join(f"{lab} ({run.name})" for run, lab in runs.items())
    md = [f"# {TITLE}", "", f"Runs: {runs_line}", ""]
    for heading, part in shown.items():
        md += [f"## {heading}", "", markdown_table(part), ""]
    md += [f"{line}\n" for line in lines]
    write_text(paths["backbones_md"], "\n".join(md))
    fig = backbone_means(table, labels)
    paths["backbones_figure"] = save_figure(fig, ResultsFolder(sweep_dir).figures, NAME)
    plt.close(fig)
    return BackboneReport(paths, shown, tuple(lines), (FIGURE_TITLE, paths["backbones_figure"]))
