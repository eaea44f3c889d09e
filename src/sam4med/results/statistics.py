"""Paired statistics of a before/after comparison (zero-shot vs fine-tuned, or one run vs another).

Both sides score the same objects on the same prompts, so every comparison is paired by object. The
objects of one slice are not independent (they share an embedding, an intensity range and a
prompt-generation seed), nor are the slices of one volume or patient; so the statistics run over
**units**, never over objects:

* **Unit** (:class:`StatisticsSettings` ``unit``, ``conf/statistics``): ``source`` (the volume or patient
  of the image, the manifest's ``source`` column) or ``image``. ``auto`` chooses per comparison
  (:func:`resolve_unit`): ``source`` when every compared object has a source, there are at least 2
  sources and some source holds more than one image; ``image`` otherwise (one volume, such as the
  default Colin27 brain, or one image per patient, where both units are the same).
* **Change**: mean(after) - mean(before) over the paired objects (each object weighs the same, as in
  every mean of the tables).
* **Interval**: a 95 % bootstrap confidence interval of the change (``scipy.stats.bootstrap``, paired over
  units; the statistic is the mean over the objects of the resampled units, i.e. the sum of the units'
  differences over the sum of their object counts), BCa where it can be computed, else percentile
  (:data:`BCA` / :data:`PERCENTILE` in ``ci_method``). BCa fails when the bootstrap distribution is
  degenerate, e.g. when every unit changes by the same mean; the percentile interval is then that point.
* **Tests** on the per-unit mean differences (each unit weighs the same): the Wilcoxon signed-rank test
  (``scipy.stats.wilcoxon``, two-sided, zero differences dropped) and a sign-flip permutation test of
  their mean (``scipy.stats.permutation_test``, ``permutation_type="samples"``, two-sided, seeded; exact
  when 2^n does not exceed ``resamples``). When every unit's difference is zero both p-values are 1.
* **Small n**: with fewer than :data:`MIN_UNITS` units there is no interval and no p-value (NaN, printed
  "n too small"); with :data:`MIN_UNITS` to ``FEW_UNITS - 1`` they are given and flagged (:func:`small_n`).
* **One side's mean** (:func:`mean_interval`, e.g. the mean Dice after ``k`` clicks): the same units,
  bootstrap and small-n rule, on the objects' values instead of their differences.
* **Sign test of "targets improved"** (``scipy.stats.binomtest``, two-sided, p = 0.5): of the targets
  whose mean Dice changed, how many rose. Targets whose mean did not change are left out.

No statistic is computed by hand: :data:`SCIPY_API` lists the scipy calls this module makes with the
first scipy release that has every keyword passed (``tests/results/test_scipy_floor.py`` checks it
against the installed scipy and the floor in ``pyproject.toml``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd
from scipy import stats

from sam4med.errors import ConfigError

MIN_UNITS = 5  # fewer units: no interval, no p-value
FEW_UNITS = 10  # fewer units (and at least MIN_UNITS): interval and p-values flagged
TOO_SMALL = "n too small"
SMALL = "small n"
SMALL_MARK = "†"
BCA, PERCENTILE = "BCa", "percentile"
CONFIDENCE = 0.95  # every table and figure says "95 %"


@dataclass(frozen=True)
class ScipyApi:
    """One scipy function this module calls, the keywords it passes, and the first release that has them all."""

    name: str
    keywords: tuple[str, ...]
    since: str


# The first release with every keyword: bootstrap's and permutation_test's ``rng`` are new in 1.15.0
# (1.14.1 still names it ``random_state``); binomtest is new in 1.7.0; wilcoxon is called with the data only.
SCIPY_API = (
    ScipyApi("bootstrap", ("paired", "vectorized", "n_resamples", "confidence_level", "method", "rng"), since="1.15.0"),
    ScipyApi(
        "permutation_test",
        ("permutation_type", "vectorized", "n_resamples", "alternative", "rng"),
        since="1.15.0",
    ),
    ScipyApi("wilcoxon", (), since="1.7.0"),
    ScipyApi("binomtest", (), since="1.7.0"),
)


class Unit(StrEnum):
    """What the statistics resample and test: ``auto`` resolves to ``source`` or ``image`` per comparison."""

    AUTO = "auto"
    SOURCE = "source"
    IMAGE = "image"


UNIT_COLUMNS = {Unit.SOURCE: "source", Unit.IMAGE: "image_id"}


@dataclass(frozen=True)
class StatisticsSettings:
    """How a comparison's statistics are computed (``conf/statistics/default.yaml``).

    Attributes:
        unit: ``auto``, ``source`` or ``image`` (see :func:`resolve_unit`).
        resamples: bootstrap resamples, and the permutation test's resamples (exact when 2^units is not
            more than this).
        seed: seed of both random generators; every comparison starts from it, so a table is reproducible.
    """

    unit: str = Unit.AUTO
    resamples: int = 9999
    seed: int = 0

    def __post_init__(self) -> None:
        if self.unit not in set(Unit):
            raise ConfigError(f"statistics.unit={self.unit}: must be one of {', '.join(Unit)}")
        object.__setattr__(self, "unit", Unit(self.unit))
        if isinstance(self.resamples, bool) or not isinstance(self.resamples, int) or self.resamples < 1:
            raise ConfigError(f"statistics.resamples={self.resamples}: must be an integer >= 1, e.g. 9999")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"statistics.seed={self.seed}: must be an integer")


@dataclass(frozen=True)
class PairedDelta:
    """The paired change of one metric between two sides over a set of objects.

    Attributes:
        delta: mean(after) - mean(before) over the paired objects.
        ci_low: lower end of the bootstrap confidence interval of ``delta`` (units resampled); NaN with
            fewer than :data:`MIN_UNITS` units.
        ci_high: upper end.
        ci_method: :data:`BCA` or :data:`PERCENTILE` ("" without an interval).
        p_wilcoxon: two-sided Wilcoxon signed-rank p-value over the per-unit mean differences (or NaN).
        p_permutation: two-sided sign-flip permutation p-value of their mean (or NaN).
        objects: number of paired objects.
        images: number of images they lie in.
        unit: the resolved unit, ``source`` or ``image``.
        n_units: number of units (the n of the interval and the tests).
    """

    delta: float
    ci_low: float
    ci_high: float
    ci_method: str
    p_wilcoxon: float
    p_permutation: float
    objects: int
    images: int
    unit: str
    n_units: int

    @property
    def small_n(self) -> str:
        """The small-sample flag of :func:`small_n`."""
        return small_n(self.n_units)

    def columns(self) -> dict[str, object]:
        """The statistics columns of a comparison row (``unit`` ... ``small_n``)."""
        return {
            "unit": self.unit,
            "n_units": self.n_units,
            "dice_delta_ci_low": self.ci_low,
            "dice_delta_ci_high": self.ci_high,
            "ci_method": self.ci_method,
            "p_wilcoxon": self.p_wilcoxon,
            "p_permutation": self.p_permutation,
            "small_n": self.small_n,
        }


STAT_COLUMNS = (
    "unit",
    "n_units",
    "dice_delta_ci_low",
    "dice_delta_ci_high",
    "ci_method",
    "p_wilcoxon",
    "p_permutation",
    "small_n",
)


def small_n(n_units: float) -> str:
    """:data:`TOO_SMALL` below :data:`MIN_UNITS` units, :data:`SMALL` below :data:`FEW_UNITS`, else ""."""
    if not math.isfinite(n_units) or n_units < MIN_UNITS:
        return TOO_SMALL
    return SMALL if n_units < FEW_UNITS else ""


def format_change(delta: float, low: float, high: float, n_units: float) -> str:
    """A change with its interval as printed: ``+0.100 [+0.050, +0.150]``, a ``†`` with few units, or
    ``+0.100 (n too small)`` without an interval.
    """
    flag = small_n(n_units)
    if flag == TOO_SMALL or not (math.isfinite(low) and math.isfinite(high)):
        return f"{delta:+.3f} ({TOO_SMALL})" if flag == TOO_SMALL else f"{delta:+.3f}"
    return f"{delta:+.3f} [{low:+.3f}, {high:+.3f}]" + (f" {SMALL_MARK}" if flag == SMALL else "")


def format_p(p: float, n_units: float) -> str:
    """A p-value as printed: two significant digits, a ``†`` with few units, ``n too small`` without one."""
    flag = small_n(n_units)
    if flag == TOO_SMALL:
        return TOO_SMALL
    if not math.isfinite(p):
        return ""
    return f"{p:.2g}" + (f" {SMALL_MARK}" if flag == SMALL else "")


def sources(frame: pd.DataFrame) -> pd.Series:
    """The ``source`` of every row as text ("" where unknown: a results folder of an older version)."""
    if "source" not in frame:
        return pd.Series("", index=frame.index, dtype=object)
    return frame["source"].fillna("").astype(str)


def pair(
    frame: pd.DataFrame,
    before: str,
    after: str,
    *,
    side: str = "phase",
    metric: str = "dice",
    by: tuple[str, ...] = (),
) -> pd.DataFrame:
    """The objects scored on both sides: columns strategy, target, image_id, object_key (less ``side``), the
    ``by`` columns, source, before, after.

    Args:
        frame: long results (one row per object x strategy x side, and per ``by`` value).
        before: value of ``side`` for the reference (e.g. ``zero_shot``).
        after: value of ``side`` for the other (e.g. ``finetuned``).
        side: the column that tells the sides apart (``phase``, ``run`` in a sweep, or ``strategy`` for two
            strategies of one run).
        metric: the metric compared.
        by: further columns an object is matched on (e.g. ``seed``).

    ``source`` is the reference's, else the other side's (a run of an older version has none).
    """
    keys = [k for k in ("strategy", "target", "image_id", "object_key") if k != side] + list(by)
    frame = frame.assign(source=sources(frame))
    a = frame.loc[frame[side] == before, [*keys, "source", metric]].rename(columns={metric: "before"})
    b = frame.loc[frame[side] == after, [*keys, "source", metric]].rename(columns={metric: "after"})
    out = a.merge(b, on=keys, how="inner", validate="one_to_one", suffixes=("", "_after"))
    out["source"] = out["source"].where(out["source"] != "", out.pop("source_after"))
    return out[[*keys, "source", "before", "after"]]


def resolve_unit(pairs: pd.DataFrame, unit: str = Unit.AUTO) -> Unit:
    """The unit of one comparison's pairs (from :func:`pair`; or any rows with ``image_id`` and ``source``,
    one per object): ``unit`` itself, or what ``auto`` means here.

    ``auto`` is ``source`` when every object has a source, there are at least 2 sources and one holds
    more than one image; otherwise ``image``. ``source`` on pairs without a source is a ``ConfigError``.
    """
    unit = Unit(unit)
    named = sources(pairs)
    if unit == Unit.IMAGE:
        return unit
    if unit == Unit.SOURCE:
        missing = int((named == "").sum())
        if missing:
            raise ConfigError(
                f"statistics.unit=source: {missing} of {len(pairs)} compared objects have no source (metrics.csv "
                "column 'source' empty or absent: a dataset manifest without sources, or results of an older "
                "version); use statistics.unit=image or statistics.unit=auto"
            )
        return unit
    if len(pairs) == 0 or (named == "").any() or named.nunique() < 2:
        return Unit.IMAGE
    images_per_source = pairs.assign(source=named).groupby("source")["image_id"].nunique()
    return Unit.SOURCE if images_per_source.max() > 1 else Unit.IMAGE


def _ratio(sums: np.ndarray, counts: np.ndarray, axis: int) -> np.ndarray:
    return sums.sum(axis=axis) / counts.sum(axis=axis)


def _interval(sums: np.ndarray, counts: np.ndarray, settings: StatisticsSettings) -> tuple[float, float, str]:
    """Bootstrap interval over units: BCa, or percentile where BCa gives no finite interval."""
    for method in (BCA, PERCENTILE):
        with warnings.catch_warnings():
            # a degenerate distribution makes BCa warn and return NaN: the percentile interval follows
            warnings.simplefilter("ignore", stats.DegenerateDataWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.bootstrap(
                (sums, counts),
                _ratio,
                paired=True,
                vectorized=True,
                n_resamples=settings.resamples,
                confidence_level=CONFIDENCE,
                method=method,
                rng=np.random.default_rng(settings.seed),
            )
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if math.isfinite(low) and math.isfinite(high):
            return low, high, method
    nan = float("nan")
    return nan, nan, ""


def _mean(x: np.ndarray, axis: int) -> np.ndarray:
    return np.mean(x, axis=axis)


def unit_tests(unit_deltas: np.ndarray, settings: StatisticsSettings) -> tuple[float, float]:
    """Two-sided p-values of the Wilcoxon signed-rank test and the sign-flip permutation test of the mean."""
    if not np.any(unit_deltas != 0):
        return 1.0, 1.0
    p_wilcoxon = float(stats.wilcoxon(unit_deltas).pvalue)
    p_permutation = stats.permutation_test(
        (unit_deltas,),
        _mean,
        permutation_type="samples",
        vectorized=True,
        n_resamples=settings.resamples,
        alternative="two-sided",
        rng=np.random.default_rng(settings.seed),
    ).pvalue
    return p_wilcoxon, float(p_permutation)


def _unit_sums(rows: pd.DataFrame, values: np.ndarray, unit: Unit) -> tuple[np.ndarray, np.ndarray]:
    """Per unit of ``rows`` (its source or image): the sum of ``values`` and the number of objects."""
    labels = sources(rows) if unit == Unit.SOURCE else rows["image_id"].astype(str)
    per_unit = pd.DataFrame({"unit": labels.to_numpy(), "value": values}).groupby("unit")["value"]
    return per_unit.sum().to_numpy(), per_unit.size().to_numpy().astype(np.float64)


def paired_delta(pairs: pd.DataFrame, settings: StatisticsSettings | None = None) -> PairedDelta:
    """Change, bootstrap interval and unit-level p-values over ``pairs`` (from :func:`pair`, one strategy)."""
    settings = settings or StatisticsSettings()
    nan = float("nan")
    diff = (pairs["after"] - pairs["before"]).to_numpy(dtype=np.float64)
    unit = resolve_unit(pairs, settings.unit)
    if len(diff) == 0:
        return PairedDelta(nan, nan, nan, "", nan, nan, 0, 0, str(unit), 0)
    sums, counts = _unit_sums(pairs, diff, unit)
    n_units, images = len(sums), int(pairs["image_id"].nunique())
    delta = float(diff.mean())
    if n_units < MIN_UNITS:
        return PairedDelta(delta, nan, nan, "", nan, nan, len(diff), images, str(unit), n_units)
    low, high, method = _interval(sums, counts, settings)
    p_wilcoxon, p_permutation = unit_tests(sums / counts, settings)
    return PairedDelta(delta, low, high, method, p_wilcoxon, p_permutation, len(diff), images, str(unit), n_units)


@dataclass(frozen=True)
class MeanInterval:
    """The mean of one metric over a set of objects (one side, not a change) and its bootstrap interval.

    Attributes:
        mean: the mean over the objects (each object weighs the same).
        ci_low: lower end of the 95 % bootstrap interval of ``mean`` (units resampled); NaN with fewer than
            :data:`MIN_UNITS` units.
        ci_high: upper end.
        ci_method: :data:`BCA` or :data:`PERCENTILE` ("" without an interval).
        objects: number of objects.
        unit: the resolved unit, ``source`` or ``image``.
        n_units: number of units.
    """

    mean: float
    ci_low: float
    ci_high: float
    ci_method: str
    objects: int
    unit: str
    n_units: int


def mean_interval(rows: pd.DataFrame, metric: str, settings: StatisticsSettings | None = None) -> MeanInterval:
    """Mean of ``metric`` over ``rows`` (one row per object, with ``image_id`` and ``source``) and its 95 %
    bootstrap interval over units: the unit, the resampling (the statistic is the sum over the drawn units
    over their object count), BCa-else-percentile and the small-n rule of :func:`paired_delta`.
    """
    settings = settings or StatisticsSettings()
    nan = float("nan")
    values = rows[metric].to_numpy(dtype=np.float64)
    unit = resolve_unit(rows, settings.unit)
    if len(values) == 0:
        return MeanInterval(nan, nan, nan, "", 0, str(unit), 0)
    sums, counts = _unit_sums(rows, values, unit)
    mean = float(values.mean())
    if len(sums) < MIN_UNITS:
        return MeanInterval(mean, nan, nan, "", len(values), str(unit), len(sums))
    low, high, method = _interval(sums, counts, settings)
    return MeanInterval(mean, low, high, method, len(values), str(unit), len(sums))


def sign_test(target_deltas: pd.Series) -> float:
    """Two-sided sign-test p-value of "targets improved" from per-target mean differences (ties left out)."""
    changed = target_deltas[target_deltas != 0]
    if len(changed) == 0:
        return 1.0
    return float(stats.binomtest(int((changed > 0).sum()), len(changed), 0.5).pvalue)


def notes(frame: pd.DataFrame, comp: pd.DataFrame) -> list[str]:
    """The lines that go under a table of ``comp`` (a comparison with :data:`STAT_COLUMNS`) of ``frame``.

    What the unit means when every image comes from one source (the interval speaks for slices of that
    source, not for new patients) or when the rows carry no source, and the legend of the small-n marks.
    """
    if "n_units" not in comp or comp.empty:
        return []
    lines = []
    units = set(comp["unit"].dropna().astype(str))
    named = sources(frame)
    if Unit.IMAGE in units and (named != "").all() and named.nunique() == 1:
        lines.append(
            f"Unit image: every image comes from one source ({named.iloc[0]}); the intervals and p-values speak "
            "for other slices of this source, not for new patients or volumes."
        )
    elif Unit.IMAGE in units and (named == "").all():
        lines.append("Unit image: the rows carry no source, so every image counts as an independent unit.")
    flags = comp["n_units"].map(small_n)
    if (flags == TOO_SMALL).any():
        lines.append(f"{TOO_SMALL}: fewer than {MIN_UNITS} units; no interval or p-value is given.")
    if (flags == SMALL).any():
        lines.append(
            f"{SMALL_MARK} {SMALL}: {MIN_UNITS} to {FEW_UNITS - 1} units; the interval and p-values rest on few "
            "units and are rough."
        )
    return lines
