"""Paired statistics of a before/after comparison (zero-shot vs fine-tuned, or one run vs another).

Both sides score the same objects on the same prompts, so every test is paired by object:

* **Difference in mean Dice** with a 95 % bootstrap confidence interval (``scipy.stats.bootstrap``,
  percentile method, 9,999 resamples, seeded). The resampled unit is the image: the objects of one
  image move together, since they share an embedding and their errors are not independent. The
  statistic is the mean over the objects of the resampled images (each object weighs the same, as
  in every mean of the tables).
* **Wilcoxon signed-rank test** over the paired object Dice values (``scipy.stats.wilcoxon``,
  two-sided, zero differences dropped). When every difference is zero there is nothing to rank and
  the p-value is 1.
* **Sign test of "targets improved"** (``scipy.stats.binomtest``, two-sided, p = 0.5): of the
  targets whose mean Dice changed, how many rose. Targets whose mean did not change are left out.

With one image the interval is the point itself; with one object the Wilcoxon p-value is 1 unless
the difference is non-zero, where it is what scipy gives for one pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 9999


@dataclass(frozen=True)
class PairedDelta:
    """The paired change of one metric between two sides over a set of objects.

    Attributes:
        delta: mean(after) - mean(before) over the paired objects.
        ci_low: lower end of the 95 % bootstrap confidence interval of ``delta`` (images resampled).
        ci_high: upper end.
        p_wilcoxon: two-sided Wilcoxon signed-rank p-value over the paired objects.
        objects: number of paired objects.
        images: number of images they lie in.
    """

    delta: float
    ci_low: float
    ci_high: float
    p_wilcoxon: float
    objects: int
    images: int


def pair(frame: pd.DataFrame, before: str, after: str, *, side: str = "phase", metric: str = "dice") -> pd.DataFrame:
    """The objects scored on both sides: columns strategy, target, image_id, object_key, before, after.

    Args:
        frame: long results (one row per object x strategy x side).
        before: value of ``side`` for the reference (e.g. ``zero_shot``).
        after: value of ``side`` for the other (e.g. ``finetuned``).
        side: the column that tells the sides apart (``phase``, or ``run`` in a sweep).
        metric: the metric compared.
    """
    keys = ["strategy", "target", "image_id", "object_key"]
    a = frame.loc[frame[side] == before, [*keys, metric]].rename(columns={metric: "before"})
    b = frame.loc[frame[side] == after, [*keys, metric]].rename(columns={metric: "after"})
    return a.merge(b, on=keys, how="inner", validate="one_to_one")


def paired_delta(pairs: pd.DataFrame, *, seed: int = 0) -> PairedDelta:
    """Difference, bootstrap CI and Wilcoxon p-value over ``pairs`` (from :func:`pair`, one strategy)."""
    diff = (pairs["after"] - pairs["before"]).to_numpy(dtype=np.float64)
    if len(diff) == 0:
        nan = float("nan")
        return PairedDelta(nan, nan, nan, nan, 0, 0)
    per_image = pd.DataFrame({"image": pairs["image_id"].to_numpy(), "diff": diff}).groupby("image")["diff"]
    sums, counts = per_image.sum().to_numpy(), per_image.size().to_numpy().astype(np.float64)
    delta = float(diff.mean())
    if len(sums) > 1 and np.ptp(sums / counts) > 0:
        result = stats.bootstrap(
            (sums, counts),
            lambda s, c, axis: s.sum(axis=axis) / c.sum(axis=axis),
            paired=True,
            vectorized=True,
            n_resamples=RESAMPLES,
            confidence_level=CONFIDENCE,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    else:  # one image, or every image changes by the same mean: nothing to resample
        low = high = delta
    p = float(stats.wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
    return PairedDelta(delta, low, high, p, len(diff), len(sums))


def sign_test(target_deltas: pd.Series) -> float:
    """Two-sided sign-test p-value of "targets improved" from per-target mean differences (ties left out)."""
    changed = target_deltas[target_deltas != 0]
    if len(changed) == 0:
        return 1.0
    return float(stats.binomtest(int((changed > 0).sum()), len(changed), 0.5).pvalue)
