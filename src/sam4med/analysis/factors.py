"""Object factors against Dice (COSMOS section 4.8, Table 6, Figs. 13-14): which properties of an object go with
a good or a bad segmentation.

Each ground-truth object of the scored split is measured once (:mod:`sam4med.metrics.object_factors`): its area,
the aspect ratio of its tight box, the absolute grey-value difference between it and the rest of its box
enlarged by ``box_enlargement`` on each side, its elliptic Fourier order (boundary complexity), and its
modality as a numeric code (the modalities sorted by name, coded 0, 1, ...). The Dice of each object is the
run's own scored Dice (nothing is decoded again). Per phase x strategy, each factor's Spearman partial
correlation with Dice, controlling for the other factors, comes from ``pingouin.partial_corr``.

Written beside the run's results:

* ``factors_objects.csv``: one row per object with its factors (the same in every phase);
* the table ``factors``: per phase x strategy x factor, the objects ``n``, ``r``, its p-value and 95 % CI,
  the covariates used, and why a correlation could not be computed;
* the figures ``factors_scatter`` (Dice against each factor under S5, else the first strategy; COSMOS Fig. 13)
  and ``factors_fourier_box`` (Fourier order per Dice range; Fig. 14).

A factor that takes one value over the objects (one modality in the split, every box square) correlates with
nothing: it is reported not computable, with the reason, and left out of the other factors' covariates. An
object without a Fourier order (every part below ``min_part_area`` pixels) or without an intensity
difference (its enlarged box holds nothing else) is left out of the correlations, and counted in the notes.
Iterative clicks enter at their last click ``I@K`` only, unless ``strategies`` names another ``I@k``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm import tqdm

from sam4med.analysis.suite import AnalysisInput, AnalysisOutput
from sam4med.data.dataset import CosmosDataset
from sam4med.errors import ConfigError
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.files import write_text
from sam4med.metrics.object_factors import (
    FourierRule,
    area,
    aspect_ratio,
    fourier_order,
    intensity_difference,
)
from sam4med.results.clicks import final_click
from sam4med.results.figures import colour, label, legend_below, phases
from sam4med.results.tables import click_count, sort_by_strategy, strategy_order

SETTING = "analysis.factors"
OBJECTS_TABLE = "factors_objects"  # written as factors_objects.csv (ResultsFolder.table)
FACTORS = ("area", "aspect_ratio", "intensity_difference", "fourier_order", "modality")
FACTOR_COLUMNS = {"modality": "modality_code"}  # the factor's numeric column in the objects table
OBJECT_COLUMNS = (
    "object_key",
    "image_id",
    "target",
    "modality",
    "source",
    "area",
    "aspect_ratio",
    "intensity_difference",
    "fourier_order",
    "fourier_order_raw",
    "fourier_dice",
    "fourier_parts",
    "modality_code",
)
TABLE_COLUMNS = ("phase", "strategy", "factor", "n", "r", "p", "ci_low", "ci_high", "covariates", "note")
FIGURE_STRATEGY = "S5"  # the strategy of COSMOS Fig. 13; the first one correlated when S5 is not scored
AXIS_LABELS = {
    "area": "area (px, log)",
    "aspect_ratio": "aspect ratio",
    "intensity_difference": "intensity difference (grey, 0-255)",
    "fourier_order": "Fourier order",
    "modality": "modality",
}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class FactorsSuite:
    """The object-factors suite (``conf/analysis/factors.yaml``).

    Attributes:
        dice_threshold: the Fourier-order search stops at the first order whose decoded contour has Dice above
            this with the object (COSMOS: 97 %).
        min_gain: ... or whose Dice gains less than this over the order before (COSMOS: 0.1 %).
        penalty: ``n`` of the final order ``F + n x 100 x (1 - Dice)`` (COSMOS: 2).
        max_order: ... or at this order (the paper sets none; a cap makes every search end).
        min_part_area: connected parts of an object with fewer pixels are not fitted (a 1-2 px speck has no
            contour worth fitting); an object with no larger part has no Fourier order.
        box_enlargement: the object's box grows by this share of its height and width on each side to hold
            the surround of the intensity difference (COSMOS: 0.1).
        strategies: the row strategies correlated (``S1`` ... ``S6``, ``M1`` ..., ``I@k``; ``I``: its last
            click), each scored by the run; None: every strategy scored, iterative clicks at their last click.
        dice_bins: the Dice range edges of the Fourier-order box plot, increasing from 0 to 1 (the last range
            is closed: Dice 1 falls in it).
    """

    name: ClassVar[str] = "factors"

    dice_threshold: float = 0.97
    min_gain: float = 0.001
    penalty: float = 2.0
    max_order: int = 50
    min_part_area: int = 10
    box_enlargement: float = 0.1
    strategies: Sequence[str] | None = None
    dice_bins: Sequence[float] = (0.0, 0.5, 0.7, 0.8, 0.9, 1.0)

    def __post_init__(self) -> None:
        if not _number(self.dice_threshold) or not 0 < self.dice_threshold <= 1:
            raise ConfigError(f"{SETTING}.dice_threshold={self.dice_threshold}: must be in (0, 1], e.g. 0.97")
        for field in ("min_gain", "penalty", "box_enlargement"):
            value = getattr(self, field)
            if not _number(value) or value < 0:
                raise ConfigError(f"{SETTING}.{field}={value}: must be a number >= 0 (defaults 0.001, 2, 0.1)")
        for field in ("max_order", "min_part_area"):
            value = getattr(self, field)
            if not _integer(value) or value < 1:
                raise ConfigError(f"{SETTING}.{field}={value}: must be an integer >= 1 (defaults 50, 10)")
        bins = [self.dice_bins] if isinstance(self.dice_bins, str) else list(self.dice_bins)
        if (
            len(bins) < 2
            or not all(_number(b) for b in bins)
            or bins[0] != 0
            or bins[-1] != 1
            or any(b >= c for b, c in zip(bins, bins[1:], strict=False))
        ):
            raise ConfigError(
                f"{SETTING}.dice_bins={self.dice_bins}: must be increasing Dice edges from 0 to 1, "
                "e.g. [0, 0.5, 0.7, 0.8, 0.9, 1]"
            )
        object.__setattr__(self, "dice_bins", tuple(float(b) for b in bins))
        if self.strategies is not None:
            named = [self.strategies] if isinstance(self.strategies, str) else list(self.strategies)
            if not named or not all(isinstance(s, str) and s for s in named):
                raise ConfigError(
                    f"{SETTING}.strategies={named}: give row strategies scored by the run (e.g. [S2, S5, I@9]), "
                    "or null for every one"
                )
            if len(set(named)) != len(named):
                raise ConfigError(f"{SETTING}.strategies={named}: a strategy is listed twice")
            object.__setattr__(self, "strategies", tuple(named))

    @property
    def rule(self) -> FourierRule:
        """The Fourier-order search of these settings."""
        return FourierRule(self.dice_threshold, self.min_gain, self.penalty, self.max_order, self.min_part_area)

    def chosen(self, frame: pd.DataFrame) -> list[str]:
        """The row strategies of ``frame`` to correlate, in report order (see :attr:`strategies`).

        A named strategy the run did not score is a :class:`ConfigError` listing those it did.
        """
        if self.strategies is None:
            return strategy_order(final_click(frame))
        present = strategy_order(frame)
        last = [s for s in present if click_count(s) is not None][-1:]
        named = [(last[0] if s == "I" and last else s) for s in self.strategies]
        missing = [s for s in named if s not in present]
        if missing:
            raise ConfigError(
                f"{SETTING}.strategies: {', '.join(missing)} not scored by this run; it scored "
                f"{', '.join(present)} (I: its last click); give some of those, or null for every one"
            )
        return [s for s in present if s in named]

    def check(self, settings: EvaluationSettings) -> None:
        """The strategies named are among the run's row strategies (:meth:`chosen`), checked before any work."""
        self.chosen(pd.DataFrame({"strategy": list(settings.row_strategies)}))

    def run(self, inputs: AnalysisInput) -> AnalysisOutput:
        """Measure every object once, write ``factors_objects.csv``, correlate per phase x strategy."""
        objects = object_factors(inputs.dataset, self.rule, self.box_enlargement)
        write_text(inputs.folder.table(OBJECTS_TABLE), objects.to_csv(index=False))
        notes = []
        missing = objects[["fourier_order", "intensity_difference"]].isna().any(axis=1)
        if missing.any():
            notes.append(
                f"factors: {int(missing.sum())} of {len(objects)} objects have no Fourier order (every part under "
                f"{self.min_part_area} px) or no intensity difference (nothing around them) and are left out of "
                "the correlations."
            )
        scored = []
        for phase in inputs.decoders:
            rows = inputs.frame[inputs.frame["phase"] == str(phase)]
            if rows.empty:
                notes.append(f"factors: no scored rows of phase {phase}; it is left out.")
                continue
            scored.append(rows)
        frame = pd.concat(scored) if scored else inputs.frame.iloc[:0]
        strategies = self.chosen(frame) if len(frame) else []
        joined = with_factors(frame[frame["strategy"].isin(strategies)], objects)
        table = factors_table(joined)
        notes.append(
            f"factors: Spearman partial correlations of {', '.join(FACTORS)} with Dice for {', '.join(strategies)}; "
            f"per-object factors in {OBJECTS_TABLE}.csv."
        )
        shown = FIGURE_STRATEGY if FIGURE_STRATEGY in strategies else (strategies[0] if strategies else None)
        shown_rows = joined[joined["strategy"] == shown]
        figures = {
            "factors_scatter": scatter_figure(shown_rows, str(shown), sorted(objects["modality"].unique())),
            "factors_fourier_box": fourier_box_figure(shown_rows, str(shown), self.dice_bins),
        }
        return AnalysisOutput(tables={"factors": table}, figures=figures, notes=notes)


def object_factors(dataset: CosmosDataset, rule: FourierRule, box_enlargement: float) -> pd.DataFrame:
    """One row per object of ``dataset`` (:data:`OBJECT_COLUMNS`): its factors, measured on its ground truth."""
    rows = []
    for index in tqdm(range(len(dataset)), desc="factors", unit="img"):
        item = dataset[index]
        for obj, mask in zip(item.objects, item.masks, strict=True):
            fourier = fourier_order(mask, rule)
            rows.append(
                {
                    "object_key": obj.key,
                    "image_id": obj.image_id,
                    "target": obj.target,
                    "modality": obj.modality,
                    "source": obj.source,
                    "area": area(mask),
                    "aspect_ratio": aspect_ratio(mask),
                    "intensity_difference": intensity_difference(item.image, mask, box_enlargement),
                    "fourier_order": fourier.order,
                    "fourier_order_raw": fourier.raw,
                    "fourier_dice": fourier.dice,
                    "fourier_parts": fourier.parts,
                }
            )
    objects = pd.DataFrame(rows, columns=list(OBJECT_COLUMNS[:-1]))
    codes = {m: k for k, m in enumerate(sorted(objects["modality"].unique()))}
    objects["modality_code"] = objects["modality"].map(codes).astype(int)
    return objects


def with_factors(frame: pd.DataFrame, objects: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` (phase, strategy, object_key, dice) with their object's factors.

    One column per factor of :data:`FACTORS`, the modality as its code.
    """
    columns = [FACTOR_COLUMNS.get(f, f) for f in FACTORS]
    factors = objects[["object_key", *columns]].rename(columns={v: k for k, v in FACTOR_COLUMNS.items()})
    return frame[["phase", "strategy", "object_key", "dice"]].merge(factors, on="object_key", how="inner")


def partial_correlations(rows: pd.DataFrame, factors: Sequence[str] = FACTORS, outcome: str = "dice") -> pd.DataFrame:
    """Each factor's Spearman partial correlation with ``outcome``, controlling for the other factors.

    ``rows``: one row per object, a column per factor and ``outcome``; rows with a missing value are left out
    (complete cases). A factor (or the outcome) with one value over those rows is not computable and is no
    covariate of the others; so is every factor when there are fewer rows than covariates + 3. Returns one row
    per factor: ``factor``, ``n``, ``r``, ``p``, ``ci_low``, ``ci_high`` (95 %, from ``pingouin``),
    ``covariates`` (comma-separated) and ``note`` (why ``r`` is missing or unreliable; empty otherwise).
    """
    import pingouin  # slow to import (statsmodels): only where a correlation is computed

    data = rows[[*factors, outcome]].astype(float).dropna()
    n = len(data)
    constant = {c for c in data if data[c].nunique() <= 1}
    out = []
    for factor in factors:
        covariates = [f for f in factors if f != factor and f not in constant]
        result = {"factor": factor, "n": n, "r": math.nan, "p": math.nan, "ci_low": math.nan, "ci_high": math.nan}
        result.update(covariates=",".join(covariates), note="")
        if outcome in constant:
            result["note"] = f"{outcome} is the same for all {n} objects" if n else "no objects"
        elif factor in constant:
            result["note"] = f"{factor} is the same ({data[factor].iloc[0]:g}) for all {n} objects"
        elif n < len(covariates) + 3:
            result["note"] = f"too few objects ({n}) for {len(covariates)} covariates (at least {len(covariates) + 3})"
        else:
            result.update(_pingouin(pingouin, data, factor, outcome, covariates))
        out.append(result)
    return pd.DataFrame(out, columns=list(TABLE_COLUMNS[2:]))


def _pingouin(pingouin: ModuleType, data: pd.DataFrame, factor: str, outcome: str, covariates: list[str]) -> dict:
    """``r``, ``p``, the 95 % CI and a note from ``pingouin.partial_corr`` (Spearman); its refusals become notes."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # covar=[] (never None): pingouin gives a semi-partial correlation without covar
            stats = pingouin.partial_corr(data, x=factor, y=outcome, covar=list(covariates), method="spearman")
        except ValueError as exc:  # a covariate identical to the factor or to the outcome
            return {"note": f"not defined: {exc}"}
    r, p, ci = float(stats["r"].iloc[0]), float(stats["p_val"].iloc[0]), stats["CI95"].iloc[0]
    if not math.isfinite(r):
        return {"note": "not defined over these objects (pingouin gives no value)"}
    deficient = any("rank-deficient" in str(w.message) for w in caught)
    note = "the factors' ranks are collinear: r may be unreliable" if deficient else ""
    return {"r": r, "p": p, "ci_low": float(ci[0]), "ci_high": float(ci[1]), "note": note}


def factors_table(joined: pd.DataFrame) -> pd.DataFrame:
    """The table ``factors`` (:data:`TABLE_COLUMNS`): :func:`partial_correlations` per phase x strategy."""
    parts = []
    for (phase, strategy), rows in joined.groupby(["phase", "strategy"], sort=False):
        table = partial_correlations(rows)
        table.insert(0, "strategy", strategy)
        table.insert(0, "phase", phase)
        parts.append(table)
    if not parts:
        return pd.DataFrame(columns=list(TABLE_COLUMNS))
    table = pd.concat(parts, ignore_index=True)
    table["phase_order"] = table["phase"].map({p: k for k, p in enumerate(phases(table))})  # zero-shot first
    table["factor_order"] = table["factor"].map({f: k for k, f in enumerate(FACTORS)})
    table = sort_by_strategy(table, ["phase_order", "strategy", "factor_order"])
    return table.drop(columns=["phase_order", "factor_order"]).reset_index(drop=True)


def scatter_figure(rows: pd.DataFrame, strategy: str, modalities: Sequence[str] = ()) -> Figure:
    """COSMOS Fig. 13: Dice against each factor under ``strategy``, one panel per factor, one colour per phase.

    ``modalities``: the modality names in code order (code ``k`` is ``modalities[k]``), the ticks of its panel.
    """
    fig, axes = plt.subplots(1, len(FACTORS), figsize=(3.0 * len(FACTORS), 3.0), sharey=True, squeeze=False)
    names = phases(rows) if len(rows) else []
    for ax, factor in zip(axes[0], FACTORS, strict=True):
        for phase in names:
            own = rows[rows["phase"] == phase]
            ax.scatter(own[factor], own["dice"], s=8, alpha=0.5, color=colour(phase), linewidths=0)
        if factor == "area" and len(rows) and (rows["area"] > 0).all():
            ax.set_xscale("log")
        if factor == "modality" and modalities:
            ax.set_xticks(range(len(modalities)), modalities, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel(AXIS_LABELS[factor])
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("Dice")
    fig.suptitle(f"Dice against object factors under {strategy}", fontsize=10, x=0.01, ha="left")
    if names:
        handles = [plt.Line2D([], [], marker="o", linestyle="", color=colour(p)) for p in names]
        legend_below(fig, handles, [label(p) for p in names])
    return fig


def dice_range_labels(bins: Sequence[float]) -> list[str]:
    """``[0, 0.5)``, ..., the last range closed (``[0.9, 1]``)."""
    edges = list(bins)
    return [
        f"[{a:g}, {b:g}{']' if k == len(edges) - 2 else ')'}"
        for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]


def fourier_box_figure(rows: pd.DataFrame, strategy: str, bins: Sequence[float]) -> Figure:
    """COSMOS Fig. 14: the Fourier order of the objects per Dice range under ``strategy``, one box per phase."""
    names = phases(rows) if len(rows) else []
    ranges = dice_range_labels(bins)
    data = rows.dropna(subset=["fourier_order"])
    binned = pd.cut(data["dice"], list(bins), right=False, labels=False)
    binned = binned.where(data["dice"] < bins[-1], len(ranges) - 1)  # Dice 1 into the last, closed range
    fig, ax = plt.subplots(figsize=(1.2 * len(ranges) * max(1, len(names)) + 2, 3.4))
    width = 0.8 / max(1, len(names))
    for k, phase in enumerate(names):
        own = data["phase"] == phase
        values = [data.loc[own & (binned == b), "fourier_order"].to_numpy() for b in range(len(ranges))]
        keep = [b for b, v in enumerate(values) if len(v)]
        if not keep:
            continue
        positions = np.arange(len(ranges)) + (k - (len(names) - 1) / 2) * width
        boxes = ax.boxplot(
            [values[b] for b in keep], positions=positions[keep], widths=width * 0.9, patch_artist=True, showfliers=True
        )
        for patch in boxes["boxes"]:
            patch.set_facecolor(colour(phase))
    counts = [int((binned == b).sum()) for b in range(len(ranges))]  # rows of every phase
    ax.set_xticks(np.arange(len(ranges)), [f"{r}\nn={c}" for r, c in zip(ranges, counts, strict=True)])
    ax.set_xlim(-0.6, len(ranges) - 0.4)
    ax.set_xlabel("Dice range")
    ax.set_ylabel("Fourier order")
    ax.set_title(f"Fourier order per Dice range under {strategy}", fontsize=10, loc="left")
    if names:
        legend_below(fig, [plt.Rectangle((0, 0), 1, 1, color=colour(p)) for p in names], [label(p) for p in names])
    return fig
