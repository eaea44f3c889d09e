"""Training regimes side by side over seeds (``python train.py -m experiment=regimes``).

A sweep whose runs differ by a setting (the ``regime`` group, or any override) and by ``seed`` holds, per
setting, one run per seed. :func:`write_regime_tables` writes ``regimes.csv``/``.md`` and
``figures/regimes.png``/``.svg`` into the sweep folder (and ``figures/regimes_clicks`` when the runs scored
iterative clicks):

* **Groups** (:func:`group_runs`): a run's regime is its overrides that differ between runs, ``seed=`` left
  out (``regime=mixed`` shows as ``mixed``). Only the seeds every regime ran are used; a run of another seed
  is named in the notes.
* **Identical prompts within a seed**: runs of one seed drew their prompts with the same
  ``evaluation.prompts.seed``; the prompt check of :func:`~sam4med.results.backbones.check_prompts` runs per
  seed, and an object left out in one seed is left out of every column, so every mean and difference of a
  row is over the same objects and seeds.
* **Averaged over seeds, then compared**: per object, each regime's Dice is its mean over the seeds; a
  regime's mean Dice and its 95 % bootstrap interval are over these per-object means, resampled by unit
  (:func:`~sam4med.results.statistics.mean_interval`), and each regime minus the reference is paired by object
  (:func:`~sam4med.results.statistics.paired_delta`: interval, Wilcoxon and permutation p-values over units).
  The interval speaks for other images of the same kind trained with these seeds; how much one seed moves a
  result is given beside it (``_seed_sd``: the sample sd over seeds of the per-seed means; ``delta_<r>_seed_min``
  and ``_max``: the smallest and largest per-seed difference), never folded into the interval.
* **Strategies within a regime** (``regimes_contrasts.csv`` and a section of ``regimes.md``): S4 − S3 and
  S6 − S5 per regime and phase, paired by object on the same seed means
  (:mod:`sam4med.results.regime_contrasts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from sam4med.errors import ConfigError
from sam4med.files import write_text
from sam4med.results.backbones import check_prompts, mean_columns, mean_text
from sam4med.results.clicks import final_click
from sam4med.results.comparison import ALL_TARGETS
from sam4med.results.figures import label, legend_below, save_figure
from sam4med.results.noc import click_rows
from sam4med.results.regime_contrasts import contrast_table, shown_contrasts
from sam4med.results.statistics import (
    StatisticsSettings,
    format_change,
    format_p,
    mean_interval,
    paired_delta,
)
from sam4med.results.sweep_page import RUN_COLOURS, run_bars
from sam4med.results.tables import check_complete, markdown_table, strategy_order
from sam4med.run_files import ResultsFolder

NAME = "regimes"  # regimes.csv, regimes.md, figures/regimes.png/.svg (+ figures/regimes_clicks) in the sweep folder
CONTRASTS_NAME = "regimes_contrasts"  # regimes_contrasts.csv in the sweep folder
REGIME = "regime="  # the override of the regime group, shown without its key
PHASES = ("finetuned", "zero_shot")
KEYS = ["phase", "strategy", "target", "image_id", "object_key"]
TITLE = "Training regimes side by side: mean Dice over seeds on identical prompts, each regime minus the reference"


@dataclass(frozen=True)
class RegimeRuns:
    """The runs of a sweep grouped by regime and seed.

    Attributes:
        regimes: the regime labels in job order.
        seeds: the seeds every regime ran, ascending.
        runs: run label (:func:`~sam4med.results.sweep.run_labels`) -> (regime, seed), for the runs used.
        left_out: run labels of the runs not used (a seed not every regime ran).
    """

    regimes: tuple[str, ...]
    seeds: tuple[int, ...]
    runs: Mapping[str, tuple[str, int]]
    left_out: tuple[str, ...] = ()


def _regime(overrides: Sequence[str], common: set[str]) -> str:
    """The regime label of a run: its overrides that differ between runs, ``seed=`` left out."""
    kept = [o for o in overrides if o not in common and not o.startswith("seed=")]
    return " ".join(o[len(REGIME) :] if o.startswith(REGIME) else o for o in kept)


def group_runs(
    labels: Mapping[Path, str], overrides: Mapping[Path, Sequence[str]], seeds: Mapping[Path, int | None]
) -> RegimeRuns | None:
    """Group a sweep's runs by regime and seed, or None when the sweep is not a comparison of regimes.

    Args:
        labels: run folder -> label, in job order.
        overrides: run folder -> its Hydra overrides (``.hydra/overrides.yaml``).
        seeds: run folder -> its ``seed`` (None where unknown).

    Returns:
        None unless there are at least two regimes, every run's seed is known, no regime ran a seed twice, and
        either the regimes are set by the ``regime`` group or there are at least two seeds.
    """
    runs = list(labels)
    if len(runs) < 2 or any(seeds[r] is None for r in runs):
        return None
    common = set.intersection(*(set(overrides[r]) for r in runs))
    regime_of = {r: _regime(overrides[r], common) for r in runs}
    regimes = tuple(dict.fromkeys(regime_of.values()))
    by_regime_seed = {(regime_of[r], seeds[r]) for r in runs}
    if len(regimes) < 2 or "" in regimes or len(by_regime_seed) != len(runs):
        return None
    all_seeds = {seeds[r] for r in runs}
    by_group = any(o.startswith(REGIME) for r in runs for o in overrides[r] if o not in common)
    if not by_group and len(all_seeds) < 2:
        return None
    shared = sorted(set.intersection(*({seeds[r] for r in runs if regime_of[r] == g} for g in regimes)))
    if not shared:
        return None
    used = {labels[r]: (regime_of[r], int(seeds[r])) for r in runs if seeds[r] in shared}
    left = tuple(labels[r] for r in runs if seeds[r] not in shared)
    return RegimeRuns(regimes, tuple(int(s) for s in shared), used, left)


def _dice(regime: str) -> str:
    return f"dice_{regime}"


def per_object(frame: pd.DataFrame, grouping: RegimeRuns, excluded: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per object, per object and seed): each regime's Dice, averaged over the seeds and per seed.

    Args:
        frame: the merged rows of the runs (``run`` = label), iterative clicks at every click.
        grouping: the runs by regime and seed.
        excluded: (strategy, object_key) pairs to leave out (the prompt check of every seed).

    Returns:
        One row per phase x strategy x object scored by every used run (keys, ``source`` and ``dice_<regime>``:
        the mean over seeds), and the same per seed (with a ``seed`` column), both without the excluded objects.
    """
    used = frame[frame["run"].isin(grouping.runs)]
    used = used.assign(
        regime=used["run"].map(lambda r: grouping.runs[r][0]),
        seed=used["run"].map(lambda r: grouping.runs[r][1]),
        source=used["source"].fillna("").astype(str) if "source" in used else "",
    )
    if len(excluded):
        drop = used.merge(excluded[["strategy", "object_key"]].drop_duplicates(), how="left", indicator=True)
        used = used[(drop["_merge"] == "left_only").to_numpy()]
    wide = used.pivot_table(index=[*KEYS, "seed"], columns="regime", values="dice", aggfunc="first")
    wide = wide.reindex(columns=list(grouping.regimes))
    wide.columns = [_dice(g) for g in grouping.regimes]
    complete = wide.dropna().reset_index()
    counts = complete.groupby(KEYS)["seed"].nunique()
    keep = counts[counts == len(grouping.seeds)].index
    per_seed = complete.set_index(KEYS).loc[lambda t: t.index.isin(keep)].reset_index()
    source = used.groupby(KEYS)["source"].agg(lambda s: next((v for v in s if v), ""))
    per_seed = per_seed.merge(source.reset_index(), on=KEYS, how="left")
    means = per_seed.groupby([*KEYS, "source"])[[_dice(g) for g in grouping.regimes]].mean().reset_index()
    return means, per_seed


def _columns(regimes: Sequence[str], reference: str) -> list[str]:
    means = [f"dice_{g}{suffix}" for g in regimes for suffix in ("", "_ci_low", "_ci_high", "_ci_method", "_seed_sd")]
    deltas = [
        f"delta_{o}{suffix}"
        for o in regimes
        if o != reference
        for suffix in ("", "_ci_low", "_ci_high", "_ci_method", "_seed_min", "_seed_max")
    ] + [f"p_{test}_{o}" for o in regimes if o != reference for test in ("wilcoxon", "permutation")]
    head = ["phase", "strategy", "target", "reference", "seeds", "n", "unit", "n_units", "small_n"]
    return [*head, *means, *deltas]


def _row(
    rows: pd.DataFrame, seeded: pd.DataFrame, regimes: Sequence[str], reference: str, statistics: StatisticsSettings
) -> dict:
    """The statistics of one row over ``rows`` (per object, seed means) and ``seeded`` (per object and seed)."""
    out: dict[str, object] = {"reference": reference, "seeds": int(seeded["seed"].nunique()), "n": len(rows)}
    seed_means = seeded.groupby("seed")[[_dice(g) for g in regimes]].mean()
    for g in regimes:
        out.update(mean_columns(rows, g, statistics))
        out[f"dice_{g}_seed_sd"] = float(seed_means[_dice(g)].std(ddof=1)) if len(seed_means) > 1 else np.nan
    for o in regimes:
        if o == reference:
            continue
        stat = paired_delta(rows.assign(before=rows[_dice(reference)], after=rows[_dice(o)]), statistics)
        by_seed = seed_means[_dice(o)] - seed_means[_dice(reference)]
        out.update(
            {
                f"delta_{o}": stat.delta,
                f"delta_{o}_ci_low": stat.ci_low,
                f"delta_{o}_ci_high": stat.ci_high,
                f"delta_{o}_ci_method": stat.ci_method,
                f"delta_{o}_seed_min": float(by_seed.min()) if len(by_seed) else np.nan,
                f"delta_{o}_seed_max": float(by_seed.max()) if len(by_seed) else np.nan,
                f"p_wilcoxon_{o}": stat.p_wilcoxon,
                f"p_permutation_{o}": stat.p_permutation,
            }
        )
    return out


def regime_table(
    means: pd.DataFrame,
    per_seed: pd.DataFrame,
    regimes: Sequence[str],
    *,
    reference: str,
    statistics: StatisticsSettings | None = None,
) -> pd.DataFrame:
    """Per phase (fine-tuned, then zero-shot) x strategy x target, then each strategy's ``all targets``: every
    regime's mean Dice over seeds with its interval and seed sd, and every other regime minus ``reference``.

    Args:
        means: per object, each regime's Dice averaged over seeds (:func:`per_object`).
        per_seed: per object and seed, each regime's Dice (:func:`per_object`).
        regimes: the regimes, in job order.
        reference: the regime the others are compared with.
        statistics: unit, resamples and seed (None: the defaults).

    Returns:
        The columns of :func:`_columns`: phase, strategy, target, reference, seeds, n (objects), unit, n_units,
        small_n; per regime ``dice_<r>`` with ``_ci_low``/``_ci_high``/``_ci_method``/``_seed_sd``; per other
        regime ``delta_<r>`` with its interval, ``_seed_min``/``_seed_max`` and ``p_wilcoxon_<r>``,
        ``p_permutation_<r>``.
    """
    statistics = statistics or StatisticsSettings()
    rows = []
    for phase in [p for p in PHASES if p in set(means["phase"])]:
        part, seeded = means[means.phase == phase], per_seed[per_seed.phase == phase]
        for strategy in strategy_order(part):
            sp, ss = part[part.strategy == strategy], seeded[seeded.strategy == strategy]
            for target in [*sorted(set(sp["target"])), ALL_TARGETS]:
                rt = sp if target == ALL_TARGETS else sp[sp.target == target]
                st = ss if target == ALL_TARGETS else ss[ss.target == target]
                stats = _row(rt, st, regimes, reference, statistics)
                rows.append({"phase": phase, "strategy": strategy, "target": target, **stats})
    return pd.DataFrame(rows, columns=_columns(regimes, reference))


def _with_sd(text: str, sd: float) -> str:
    return f"{text} ± {sd:.3f}" if text and np.isfinite(sd) else text


def shown_table(table: pd.DataFrame, regimes: Sequence[str], *, strategy_column: bool = False) -> pd.DataFrame:
    """``table`` as ``regimes.md`` prints it: each mean with its interval and ``± sd over seeds``, each difference
    with its interval and ``seeds a..b`` (the range of the per-seed differences), p-values with two digits.
    """
    out = []
    for row in table.to_dict(orient="records"):
        reference, n_units = row["reference"], row["n_units"]
        shown = {"phase": label(row["phase"])}
        shown.update({"strategy": row["strategy"]} if strategy_column else {"target": row["target"]})
        shown.update(
            {"n": row["n"], "seeds": row["seeds"], "units": f"{n_units} {row['unit']}{'s' if n_units != 1 else ''}"}
        )
        for g in regimes:
            name = f"{g} (reference)" if g == reference else g
            text = mean_text(row[f"dice_{g}"], row[f"dice_{g}_ci_low"], row[f"dice_{g}_ci_high"], n_units)
            shown[name] = _with_sd(text, row[f"dice_{g}_seed_sd"])
        for o in regimes:
            if o == reference:
                continue
            delta = row[f"delta_{o}"]
            text = format_change(delta, row[f"delta_{o}_ci_low"], row[f"delta_{o}_ci_high"], n_units)
            low, high = row[f"delta_{o}_seed_min"], row[f"delta_{o}_seed_max"]
            if np.isfinite(delta) and row["seeds"] > 1:
                text += f"; seeds {low:+.3f}..{high:+.3f}"
            shown[f"{o} − {reference}"] = text if np.isfinite(delta) else ""
            shown[f"p Wilcoxon {o}"] = format_p(row[f"p_wilcoxon_{o}"], n_units)
        out.append(shown)
    return pd.DataFrame(out)


def regime_means(table: pd.DataFrame, regimes: Sequence[str]) -> Figure:
    """Mean Dice over all targets per strategy after fine-tuning, one bar per regime (95 % interval over
    units), the reference's zero-shot mean as the first bar of each strategy.
    """
    overall = table[table["target"] == ALL_TARGETS]
    tuned = overall[overall["phase"] == "finetuned"].set_index("strategy")
    order = [s for s in strategy_order(overall) if s in tuned.index]
    tuned = tuned.reindex(order)
    zero = overall[overall["phase"] == "zero_shot"].set_index("strategy").reindex(order)
    reference = str(overall["reference"].iloc[0])
    bars = []
    if len(zero.dropna(how="all")):
        bars.append(_bar(f"zero-shot ({reference})", zero, reference))
    bars += [_bar(g, tuned, g) for g in regimes]
    fig, ax = plt.subplots(figsize=(1.8 + (0.9 + 0.25 * len(bars)) * len(order), 3.8))
    run_bars(ax, order, bars, title=label("finetuned"))
    ax.set_ylabel("mean Dice")
    seeds = int(overall["seeds"].max())
    fig.suptitle(
        f"Mean Dice per strategy and training regime, {seeds} seed{'s' if seeds != 1 else ''} averaged per object\n"
        "(95 % bootstrap CI over units; identical prompts within a seed)",
        fontsize=10,
        x=0.02,
        ha="left",
    )
    handles, names = ax.get_legend_handles_labels()
    legend_below(fig, handles, names, fontsize=8)
    return fig


def _bar(name: str, rows: pd.DataFrame, regime: str) -> tuple[str, np.ndarray, np.ndarray]:
    mean = rows[f"dice_{regime}"].to_numpy(dtype=float)
    low, high = (
        rows[f"dice_{regime}_ci_low"].to_numpy(dtype=float),
        rows[f"dice_{regime}_ci_high"].to_numpy(dtype=float),
    )
    return name, mean, np.nan_to_num(np.vstack([mean - low, high - mean]).clip(min=0))


def click_curves(means: pd.DataFrame, regimes: Sequence[str], statistics: StatisticsSettings) -> Figure | None:
    """Mean Dice against the number of clicks (``I@k`` rows) after fine-tuning, one line per regime with its
    95 % band, the reference's zero-shot curve dashed; None without iterative clicks.
    """
    clicks = click_rows(means)
    if clicks.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    lines = [("finetuned", g, g, "-", RUN_COLOURS[k % len(RUN_COLOURS)]) for k, g in enumerate(regimes)]
    if (clicks["phase"] == "zero_shot").any():
        lines.insert(0, ("zero_shot", regimes[0], f"zero-shot ({regimes[0]})", "--", "#1f77b4"))
    for phase, regime, name, style, colour in lines:
        part = clicks[clicks["phase"] == phase]
        ks = sorted(set(part["click"]))
        stats = [mean_interval(part[part["click"] == k], _dice(regime), statistics) for k in ks]
        ax.plot(ks, [s.mean for s in stats], style, color=colour, marker="o", markersize=3, label=name)
        ax.fill_between(ks, [s.ci_low for s in stats], [s.ci_high for s in stats], color=colour, alpha=0.15)
    ax.set_xlabel("clicks")
    ax.set_ylabel("mean Dice")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    fig.suptitle("Mean Dice per click and training regime (95 % bootstrap band over units)", fontsize=10)
    handles, names = ax.get_legend_handles_labels()
    legend_below(fig, handles, names, fontsize=8)
    return fig


@dataclass(frozen=True)
class RegimeReport:
    """What :func:`write_regime_tables` wrote and what the sweep's ``report.html`` shows of it.

    Attributes:
        paths: ``regimes_csv``, ``regimes_md``, ``regimes_figure`` (and ``regimes_contrasts_csv``,
            ``regimes_clicks_figure``).
        tables: the tables as printed, by heading.
        notes: the lines under the first table.
        figures: (caption, PNG) of each figure.
    """

    paths: Mapping[str, Path]
    tables: Mapping[str, pd.DataFrame]
    notes: tuple[str, ...]
    figures: tuple[tuple[str, Path], ...]


def write_regime_tables(
    sweep_dir: str | Path,
    frame: pd.DataFrame,
    runs: Mapping[Path, str],
    grouping: RegimeRuns | None,
    *,
    statistics: StatisticsSettings | None = None,
    reference: str | None = None,
) -> RegimeReport | None:
    """Write ``regimes.csv``/``.md`` and ``figures/regimes`` into ``sweep_dir`` when the runs compare regimes.

    Args:
        sweep_dir: the sweep folder.
        frame: the merged rows of the runs (``run`` = label).
        runs: run folder -> label, in job order.
        grouping: the runs by regime and seed (:func:`group_runs`); None writes nothing.
        statistics: the sweep's statistics settings (None: the defaults).
        reference: the regime the others are compared with (None: the first run's).
    """
    if grouping is None:
        return None
    statistics = statistics or StatisticsSettings()
    regimes = list(grouping.regimes)
    if reference is not None and reference not in regimes:
        raise ConfigError(
            f"regime reference {reference!r} is not a regime of the sweep {sweep_dir}; use one of {regimes}"
        )
    reference = reference or regimes[0]
    sweep_dir = Path(sweep_dir)
    check_complete(frame, ("dice",))
    folders = {lab: run for run, lab in runs.items()}
    excluded, prompt_notes = [], []
    for seed in grouping.seeds:
        of_seed = {lab: folders[lab] for lab, (_, s) in grouping.runs.items() if s == seed}
        check = check_prompts(final_click(frame[frame["run"].isin(of_seed)]), of_seed)
        excluded.append(check.excluded)
        prompt_notes += [f"Seed {seed}: {line}" for line in check.notes[:1]]
    means, per_seed = per_object(frame, grouping, pd.concat(excluded, ignore_index=True))
    last_means, last_per_seed = final_click(means), final_click(per_seed)
    table = regime_table(last_means, last_per_seed, regimes, reference=reference, statistics=statistics)
    contrasts = contrast_table(last_means, last_per_seed, regimes, statistics=statistics)
    lines = [
        f"Reference: {reference}. Seeds {', '.join(map(str, grouping.seeds))}: each object's Dice is averaged over the "
        "seeds, then the means and intervals are over objects (95 % bootstrap CI, units resampled) and each difference "
        "is paired by object; ± is the sample sd over seeds of the per-seed means, 'seeds a..b' the range of the "
        "per-seed differences.",
        *prompt_notes,
    ]
    if grouping.left_out:
        lines.append(f"Left out (their seed was not run by every regime): {', '.join(grouping.left_out)}.")
    overall = table[table["target"] == ALL_TARGETS].reset_index(drop=True)
    headings = {f"Mean Dice over all targets per strategy, regimes side by side (reference {reference})": overall}
    for strategy in strategy_order(table):
        headings[f"{strategy}: mean Dice per target, regimes side by side"] = table[table.strategy == strategy]
    shown = {h: shown_table(part, regimes, strategy_column=k == 0) for k, (h, part) in enumerate(headings.items())}
    paths = {"regimes_csv": sweep_dir / f"{NAME}.csv", "regimes_md": sweep_dir / f"{NAME}.md"}
    write_text(paths["regimes_csv"], table.to_csv(index=False))
    if len(contrasts):  # second, after the overall table
        heading = "Within each regime: a strategy minus its baseline, paired by object (seeds averaged per object)"
        first, *rest = shown.items()
        shown = dict([first, (heading, shown_contrasts(contrasts)), *rest])
        paths["regimes_contrasts_csv"] = sweep_dir / f"{CONTRASTS_NAME}.csv"
        write_text(paths["regimes_contrasts_csv"], contrasts.to_csv(index=False))
    runs_line = ", ".join(f"{g} seed {s} ({lab})" for lab, (g, s) in grouping.runs.items())
    md = [f"# {TITLE}", "", f"Runs: {runs_line}", ""]
    for heading, part in shown.items():
        md += [f"## {heading}", "", markdown_table(part), ""]
    md += [f"{line}\n" for line in lines]
    write_text(paths["regimes_md"], "\n".join(md))
    figures_dir = ResultsFolder(sweep_dir).figures
    fig = regime_means(table, regimes)
    paths["regimes_figure"] = save_figure(fig, figures_dir, NAME)
    plt.close(fig)
    figures = [("Mean Dice per strategy and training regime", paths["regimes_figure"])]
    curves = click_curves(means, regimes, statistics)
    if curves is not None:
        paths["regimes_clicks_figure"] = save_figure(curves, figures_dir, f"{NAME}_clicks")
        plt.close(curves)
        figures.append(("Mean Dice per click and training regime", paths["regimes_clicks_figure"]))
    return RegimeReport(paths, shown, tuple(lines), tuple(figures))
