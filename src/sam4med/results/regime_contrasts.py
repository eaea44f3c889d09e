"""Within each training regime, one strategy against another on the same objects (``regimes_contrasts``).

The regimes table compares regimes strategy by strategy; some questions compare strategies within a regime:
do five negative points added to five positives help (S4 − S3)? Does a positive point added to the box
help (S6 − S5)? A contrast ``(strategy, baseline)`` answers one of them for every regime and phase:

* **Paired by object**: an object counts when both strategies scored it (an object without background has
  no S4 prompt and is left out of S4 − S3). Per object, each strategy's Dice is its mean over the seeds, as
  in the regimes table; the difference is the mean over these objects of strategy minus baseline.
* **Interval and tests over units**: :func:`~sam4med.results.statistics.paired_delta`, the same 95 %
  bootstrap interval (units resampled), Wilcoxon and permutation p-values as the regime differences.
* **Seeds**: ``seed_min``/``seed_max`` are the smallest and largest per-seed difference (objects of that
  seed), never folded into the interval.

Only the ``all targets`` rows: a contrast per target and regime would repeat the regimes table's per-target
sections without adding a question.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sam4med.results.backbones import mean_text
from sam4med.results.figures import label
from sam4med.results.statistics import StatisticsSettings, format_change, format_p, pair, paired_delta

CONTRASTS: tuple[tuple[str, str], ...] = (("S4", "S3"), ("S6", "S5"))  # (strategy, baseline)
CONTRAST_NAMES = {("S4", "S3"): "negatives added to five positives", ("S6", "S5"): "a point added to the box"}
COLUMNS = [
    "phase", "contrast", "strategy", "baseline", "regime", "seeds", "n", "unit", "n_units",
    "dice_strategy", "dice_baseline", "delta", "ci_low", "ci_high", "ci_method", "seed_min", "seed_max",
    "p_wilcoxon", "p_permutation",
]  # fmt: skip


def contrast_table(
    means: pd.DataFrame,
    per_seed: pd.DataFrame,
    regimes: Sequence[str],
    *,
    contrasts: Sequence[tuple[str, str]] = CONTRASTS,
    statistics: StatisticsSettings | None = None,
) -> pd.DataFrame:
    """Per phase x contrast x regime: both strategies' mean Dice and strategy − baseline paired by object.

    Args:
        means: per object, each regime's Dice (``dice_<regime>``) averaged over seeds
            (:func:`~sam4med.results.regimes.per_object`), one row per phase x strategy x target x object.
        per_seed: the same per seed (a ``seed`` column).
        regimes: the regimes, in job order.
        contrasts: (strategy, baseline) pairs; a pair whose strategies a phase did not score is skipped.
        statistics: unit, resamples and seed (None: the defaults).

    Returns:
        The :data:`COLUMNS`, one row per phase x contrast x regime (empty when no contrast applies).
    """
    statistics = statistics or StatisticsSettings()
    rows = []
    for phase in dict.fromkeys(means["phase"]):
        part, seeded = means[means["phase"] == phase], per_seed[per_seed["phase"] == phase]
        scored = set(part["strategy"])
        for strategy, baseline in contrasts:
            if strategy not in scored or baseline not in scored:
                continue
            for regime in regimes:
                column = f"dice_{regime}"
                pairs = pair(part, baseline, strategy, side="strategy", metric=column)
                stat = paired_delta(pairs, statistics)
                by_seed = pair(seeded, baseline, strategy, side="strategy", metric=column, by=("seed",))
                seed_deltas = (by_seed["after"] - by_seed["before"]).groupby(by_seed["seed"]).mean()
                rows.append(
                    {
                        "phase": phase,
                        "contrast": f"{strategy} − {baseline}",
                        "strategy": strategy,
                        "baseline": baseline,
                        "regime": regime,
                        "seeds": int(by_seed["seed"].nunique()),
                        "n": stat.objects,
                        "unit": stat.unit,
                        "n_units": stat.n_units,
                        "dice_strategy": float(pairs["after"].mean()) if len(pairs) else np.nan,
                        "dice_baseline": float(pairs["before"].mean()) if len(pairs) else np.nan,
                        "delta": stat.delta,
                        "ci_low": stat.ci_low,
                        "ci_high": stat.ci_high,
                        "ci_method": stat.ci_method,
                        "seed_min": float(seed_deltas.min()) if len(seed_deltas) else np.nan,
                        "seed_max": float(seed_deltas.max()) if len(seed_deltas) else np.nan,
                        "p_wilcoxon": stat.p_wilcoxon,
                        "p_permutation": stat.p_permutation,
                    }
                )
    return pd.DataFrame(rows, columns=COLUMNS)


def shown_contrasts(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` as ``regimes.md`` prints it: both means, the difference with its interval and the seed range."""
    out = []
    for row in table.to_dict(orient="records"):
        n_units = row["n_units"]
        change = format_change(row["delta"], row["ci_low"], row["ci_high"], n_units)
        if np.isfinite(row["delta"]) and row["seeds"] > 1:
            change += f"; seeds {row['seed_min']:+.3f}..{row['seed_max']:+.3f}"
        name = CONTRAST_NAMES.get((row["strategy"], row["baseline"]))
        out.append(
            {
                "phase": label(row["phase"]),
                "contrast": f"{row['contrast']} ({name})" if name else row["contrast"],
                "regime": row["regime"],
                "n": row["n"],
                "units": f"{n_units} {row['unit']}{'s' if n_units != 1 else ''}",
                "baseline Dice": mean_text(row["dice_baseline"], np.nan, np.nan, n_units),
                "strategy Dice": mean_text(row["dice_strategy"], np.nan, np.nan, n_units),
                "difference": change if np.isfinite(row["delta"]) else "",
                "p Wilcoxon": format_p(row["p_wilcoxon"], n_units),
            }
        )
    return pd.DataFrame(out)
