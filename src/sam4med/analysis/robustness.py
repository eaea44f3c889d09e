"""Robustness to prompt noise (COSMOS section 4.10, Table 8): the run's saved prompts shifted, scored again.

For each phase, strategy, shift level and repeat, every object's saved prompt (``prompts.json``) is shifted
by :func:`sam4med.prompts.perturb.shift_prompt` (points moved by a distance of the level in a random
direction, each box edge moved by a distance of the level outward or inward, clipped to the image; the
draw is seeded by the run's prompt seed, level, repeat, strategy and object), decoded through
:func:`~sam4med.evaluation.predict.predict_scored` with the run's mask selection and compute (oracle
selection against the object's ground truth, as in scoring) on the run's cached embedding, and scored
with :func:`~sam4med.metrics.dice` and :func:`~sam4med.metrics.iou`.

Written beside the run's results:

* ``robustness_prompts.json``: every shifted prompt with its shift seed, so every number can be reproduced;
* ``robustness_objects.csv``: one row per phase x strategy x level x repeat x object (Dice, IoU, and the
  object's unshifted Dice from the run's own rows);
* the table ``robustness`` (per phase x strategy x level: Dice of each repeat, their mean, the unshifted
  Dice, the drop with its 95 % bootstrap interval and p-values over units, the relative drop) and the
  figure ``robustness`` (mean Dice against shift distance, one line per strategy, one panel per phase).

S1 (everything mode) and the iterative clicks ``I`` have no saved prompt to shift and are left out.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm import tqdm

from sam4med.analysis.suite import AnalysisInput, AnalysisOutput, phase_decoder
from sam4med.errors import ConfigError, DataError
from sam4med.evaluation.predict import predict_scored
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.files import write_text
from sam4med.metrics import dice, iou
from sam4med.prompts.generate import STRATEGIES
from sam4med.prompts.modes import MODES
from sam4med.prompts.perturb import ShiftLevel, shift_prompt
from sam4med.prompts.version import PROMPT_RULES
from sam4med.results.figures import label, legend_below, phases
from sam4med.results.statistics import StatisticsSettings, mean_interval, pair, paired_delta
from sam4med.results.tables import sort_by_strategy

SHIFTABLE = (*sorted(STRATEGIES), *MODES)  # S2-S6, M1-M5: the strategies with a saved prompt to shift
OBJECTS_TABLE = "robustness_objects"  # written as robustness_objects.csv (ResultsFolder.table)
OBJECT_COLUMNS = (
    "phase",
    "strategy",
    "level",
    "level_low",
    "level_high",
    "repeat",
    "image_id",
    "object_key",
    "target",
    "source",
    "shift_seed",
    "dice",
    "iou",
    "dice_unshifted",
)
SETTING = "analysis.robustness"


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RobustnessSuite:
    """The robustness suite (``conf/analysis/robustness.yaml``).

    Attributes:
        levels: shift levels, each ``[low, high]`` pixels: distances are drawn uniformly in ``[low, high)``
            (``[d, d]``: exactly ``d``; ``[0, 0]``: no shift).
        repeats: draws per level (COSMOS: 3, "Random 1-3"), each with its own seed.
        strategies: strategies to shift, among S2-S6 and M1-M5, each scored by the run; None: every one of
            those the run scored (S1 and I have no prompt to shift).
    """

    name: ClassVar[str] = "robustness"

    levels: Sequence[Sequence[float]] = ((0, 10), (10, 20), (20, 30))
    repeats: int = 3
    strategies: Sequence[str] | None = None

    def __post_init__(self) -> None:
        levels = list(self.levels) if isinstance(self.levels, Sequence) and not isinstance(self.levels, str) else None
        if not levels:
            raise ConfigError(
                f"{SETTING}.levels={self.levels}: must be a non-empty list of [low, high] pixel distances, "
                "e.g. [[0, 10], [10, 20], [20, 30]]"
            )
        pairs = []
        for level in levels:
            bad = isinstance(level, str) or not isinstance(level, Sequence) or len(level) != 2
            if bad or not all(_number(v) for v in level) or not 0 <= level[0] <= level[1]:
                raise ConfigError(
                    f"{SETTING}.levels: {level!r} is not a [low, high] pair of pixel distances with 0 <= low <= high "
                    "(distances are drawn in [low, high)); e.g. [[0, 10], [10, 20], [20, 30]]"
                )
            pairs.append((float(level[0]), float(level[1])))
        if len(set(pairs)) != len(pairs):
            raise ConfigError(f"{SETTING}.levels={pairs}: a level is listed twice; list each [low, high] once")
        object.__setattr__(self, "levels", tuple(pairs))
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigError(f"{SETTING}.repeats={self.repeats}: must be an integer >= 1, e.g. 3")
        if self.strategies is not None:
            named = [self.strategies] if isinstance(self.strategies, str) else list(self.strategies)
            unknown = [s for s in named if s not in SHIFTABLE]
            if not named or unknown:
                why = (
                    f"{', '.join(map(str, unknown))} cannot be shifted (S1 and I have no saved prompt to shift)"
                    if unknown
                    else "the list is empty"
                )
                raise ConfigError(
                    f"{SETTING}.strategies={named}: {why}; give some of {', '.join(SHIFTABLE)}, or null for every "
                    "one of those the run scores"
                )
            if len(set(named)) != len(named):
                raise ConfigError(f"{SETTING}.strategies={named}: a strategy is listed twice")
            object.__setattr__(self, "strategies", tuple(named))

    @property
    def shift_levels(self) -> tuple[ShiftLevel, ...]:
        """The levels as :class:`~sam4med.prompts.perturb.ShiftLevel` values, in the order given."""
        return tuple(ShiftLevel(low, high) for low, high in self.levels)

    def chosen(self, scored: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
        """The strategies to shift, given the run's ``scored`` ones, and the notes on those left out.

        A strategy named in :attr:`strategies` that the run did not score is a :class:`ConfigError` (its
        unshifted Dice, the reference of every drop, is missing); so is a run without any shiftable strategy.
        """
        if self.strategies is not None:
            missing = [s for s in self.strategies if s not in scored]
            if missing:
                raise ConfigError(
                    f"{SETTING}.strategies: {', '.join(missing)} not scored by this run (evaluation.strategies="
                    f"[{','.join(scored)}]); add them to evaluation.strategies or leave them out"
                )
            return tuple(self.strategies), []
        chosen = tuple(s for s in scored if s in SHIFTABLE)
        if not chosen:
            raise ConfigError(
                f"{SETTING}: the run scores none of {', '.join(SHIFTABLE)} (evaluation.strategies="
                f"[{','.join(scored)}]); only their saved prompts can be shifted"
            )
        left = [s for s in scored if s not in SHIFTABLE]
        notes = [f"robustness: {', '.join(left)} left out (no saved prompt to shift)."] if left else []
        return chosen, notes

    def check(self, settings: EvaluationSettings) -> None:
        """The strategies to shift are scored by the run (:meth:`chosen`), checked before any work."""
        self.chosen(settings.strategies)

    def run(self, inputs: AnalysisInput) -> AnalysisOutput:
        """Score every shifted prompt; write the shifted prompts and the per-object rows; return the table and
        figure ``robustness``.
        """
        strategies, notes = self.chosen(inputs.session.settings.strategies)
        records: dict[tuple, dict] = {}
        rows: list[dict] = []
        for phase, state in inputs.decoders.items():
            with phase_decoder(inputs.model, state):
                rows += self._score_phase(inputs, Phase(phase), strategies, records)
        objects = pd.DataFrame(rows, columns=[c for c in OBJECT_COLUMNS if c != "dice_unshifted"])
        objects = with_unshifted(objects, inputs.frame)
        folder = inputs.folder
        write_text(folder.table(OBJECTS_TABLE), objects.to_csv(index=False))
        write_text(folder.robustness_prompts, self._prompts_json(inputs, records))
        table = robustness_table(objects, self.shift_levels, self.repeats, inputs.statistics)
        notes.append(
            f"robustness: {len(self.levels)} shift levels x {self.repeats} repeats of {', '.join(strategies)}; "
            f"shifted prompts in {folder.robustness_prompts.name}, per-object rows in {OBJECTS_TABLE}.csv."
        )
        return AnalysisOutput(
            tables={"robustness": table}, figures={"robustness": robustness_figure(table)}, notes=notes
        )

    def _score_phase(
        self, inputs: AnalysisInput, phase: Phase, strategies: Sequence[str], records: dict[tuple, dict]
    ) -> list[dict]:
        """The per-object rows of one phase (the model already predicts with its decoder)."""
        model, dataset, session = inputs.model, inputs.dataset, inputs.session
        settings, prompts = session.settings, session.prompts
        model.eval()
        rows = []
        for index in tqdm(range(len(dataset)), desc=f"robustness {phase}", unit="img"):
            item = dataset[index]
            if not item.objects:
                continue
            size = item.image.shape[:2]
            embedding = session.cache.get(model, item.image)
            for strategy in strategies:
                saved = [prompts.get(m, strategy, o.key) for o, m in zip(item.objects, item.masks, strict=True)]
                for level in self.shift_levels:
                    for repeat in range(1, self.repeats + 1):
                        shifted = [
                            shift_prompt(p, level, seed=prompts.seed, repeat=repeat, object_key=o.key, size=size)
                            for p, o in zip(saved, item.objects, strict=True)
                        ]
                        pred = predict_scored(
                            model,
                            embedding,
                            [s.prompt for s in shifted],
                            size,
                            multimask=settings.multimask,
                            compute=settings.compute,
                            gt_masks=item.masks,
                        )
                        for obj, gt, mask, moved in zip(item.objects, item.masks, pred.masks, shifted, strict=True):
                            records[(strategy, level.low, level.high, repeat, obj.key)] = {
                                "strategy": strategy,
                                "level": [level.low, level.high],
                                "repeat": repeat,
                                "object_key": obj.key,
                                "shift_seed": moved.shift.seed,
                                "prompt": moved.prompt.to_dict(),
                            }
                            rows.append(
                                {
                                    "phase": phase.value,
                                    "strategy": strategy,
                                    "level": level.label,
                                    "level_low": level.low,
                                    "level_high": level.high,
                                    "repeat": repeat,
                                    "image_id": obj.image_id,
                                    "object_key": obj.key,
                                    "target": obj.target,
                                    "source": obj.source,
                                    "shift_seed": str(moved.shift.seed),
                                    "dice": dice(mask, gt),
                                    "iou": iou(mask, gt),
                                }
                            )
        return rows

    def _prompts_json(self, inputs: AnalysisInput, records: dict[tuple, dict]) -> str:
        """``robustness_prompts.json``: the rule, the run's prompt seed and every shifted prompt."""
        return json.dumps(
            {
                "rule": "sam4med.prompts.perturb",
                "prompt_rules": PROMPT_RULES,
                "prompt_seed": inputs.session.prompts.seed,
                "levels": [list(level) for level in self.levels],
                "repeats": self.repeats,
                "shifts": list(records.values()),
            },
            indent=0,
        )


def with_unshifted(objects: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``objects`` with ``dice_unshifted``: each object's Dice in the run's own rows (``frame``) of its phase and
    strategy. An object without such a row is a :class:`DataError` (the drop needs its reference).
    """
    keys = ["phase", "strategy", "object_key"]
    own = frame.assign(phase=frame["phase"].astype(str))[[*keys, "dice"]].rename(columns={"dice": "dice_unshifted"})
    merged = objects.merge(own, on=keys, how="left", validate="many_to_one")
    missing = merged[merged["dice_unshifted"].isna()]
    if len(missing):
        first = missing.iloc[0]
        raise DataError(
            f"robustness: {missing['object_key'].nunique()} objects have no scored row of their own in the run's "
            f"results (e.g. {first['phase']} {first['strategy']} {first['object_key']}); the suite compares "
            "shifted prompts with the run's own rows, so it runs on the phases and strategies the run scored"
        )
    return merged[list(OBJECT_COLUMNS)]


def robustness_table(
    objects: pd.DataFrame,
    levels: Sequence[ShiftLevel],
    repeats: int,
    statistics: StatisticsSettings | None = None,
) -> pd.DataFrame:
    """One row per phase x strategy x level from the per-object rows (:data:`OBJECT_COLUMNS`).

    Columns: ``objects``; ``dice_r1`` ... ``dice_r<repeats>`` (mean Dice of each repeat); ``dice_mean`` (their
    mean, equal to the mean over objects of each object's mean over repeats) with its 95 % bootstrap interval
    over units (``dice_mean_ci_low``/``_high``); ``iou_mean``; ``dice_unshifted`` (the run's own mean Dice of
    the same objects) with its interval; ``dice_drop`` = ``dice_unshifted`` - ``dice_mean``, its interval
    (``dice_drop_ci_low``/``_high``: the paired bootstrap of :func:`~sam4med.results.statistics.paired_delta`,
    sign turned), ``ci_method``, ``p_wilcoxon``, ``p_permutation``, ``unit``, ``n_units``, ``small_n``; and
    ``dice_drop_pct`` = 100 x ``dice_drop`` / ``dice_unshifted``.
    """
    out = []
    order = {level.label: k for k, level in enumerate(levels)}
    for (phase, strategy, name), rows in objects.groupby(["phase", "strategy", "level"], sort=False):
        per_object = rows.groupby("object_key", sort=True).agg(
            image_id=("image_id", "first"),
            source=("source", "first"),
            target=("target", "first"),
            dice=("dice", "mean"),
            iou=("iou", "mean"),
            unshifted=("dice_unshifted", "first"),
        )
        per_object = per_object.reset_index().assign(strategy=strategy)
        long = pd.concat(
            [
                per_object.assign(side="unshifted", value=per_object["unshifted"]),
                per_object.assign(side="shifted", value=per_object["dice"]),
            ]
        )
        change = paired_delta(pair(long, "unshifted", "shifted", side="side", metric="value"), statistics)
        shifted = mean_interval(per_object, "dice", statistics)
        unshifted = mean_interval(per_object, "unshifted", statistics)
        by_repeat = rows.groupby("repeat")["dice"].mean()
        drop = 0.0 - change.delta  # 0.0 - x: no "-0.0" where nothing changed
        base = float(per_object["unshifted"].mean())
        out.append(
            {
                "phase": phase,
                "strategy": strategy,
                "level": name,
                "level_low": float(rows["level_low"].iloc[0]),
                "level_high": float(rows["level_high"].iloc[0]),
                "objects": len(per_object),
                **{f"dice_r{r}": float(by_repeat.get(r, np.nan)) for r in range(1, repeats + 1)},
                "dice_mean": shifted.mean,
                "dice_mean_ci_low": shifted.ci_low,
                "dice_mean_ci_high": shifted.ci_high,
                "iou_mean": float(per_object["iou"].mean()),
                "dice_unshifted": base,
                "dice_unshifted_ci_low": unshifted.ci_low,
                "dice_unshifted_ci_high": unshifted.ci_high,
                "dice_drop": drop,
                "dice_drop_ci_low": 0.0 - change.ci_high,
                "dice_drop_ci_high": 0.0 - change.ci_low,
                "ci_method": change.ci_method,
                "p_wilcoxon": change.p_wilcoxon,
                "p_permutation": change.p_permutation,
                "unit": change.unit,
                "n_units": change.n_units,
                "small_n": change.small_n,
                "dice_drop_pct": 100 * drop / base if base > 0 else float("nan"),
                "_order": order.get(name, len(order)),
            }
        )
    table = pd.DataFrame(out)
    if table.empty:
        return table
    phase_order = {p: k for k, p in enumerate(phases(table))}
    table["_phase"] = table["phase"].map(phase_order)
    table = sort_by_strategy(table, ["_phase", "strategy", "_order"])
    return table.drop(columns=["_phase", "_order"])


def robustness_figure(table: pd.DataFrame) -> Figure:
    """Mean Dice against shift distance (0: the unshifted prompts, then each level's midpoint), one line per
    strategy (drawn a little apart along x so their bars do not hide each other), one panel per phase, with
    the 95 % bootstrap intervals over units as error bars (none where there are fewer than 5 units).
    """
    names = phases(table)
    strategies = list(dict.fromkeys(table["strategy"]))
    cmap = plt.get_cmap("tab10")
    colours = {s: cmap(k % 10) for k, s in enumerate(strategies)}
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False, sharey=True)
    dodge = 0.04 * max(1.0, float(table["level_high"].max())) / max(1, len(strategies) - 1)  # 4 % of x in all
    for ax, phase in zip(axes[0], names, strict=True):
        for k, strategy in enumerate(strategies):
            rows = table[(table["phase"] == phase) & (table["strategy"] == strategy)]
            if rows.empty:
                continue
            first = rows.iloc[0]
            x = np.concatenate([[0.0], ((rows["level_low"] + rows["level_high"]) / 2).to_numpy(dtype=float)])
            x = x + (k - (len(strategies) - 1) / 2) * dodge  # the strategies' bars side by side, not on each other
            y = np.concatenate([[first["dice_unshifted"]], rows["dice_mean"].to_numpy(dtype=float)])
            low = np.concatenate([[first["dice_unshifted_ci_low"]], rows["dice_mean_ci_low"].to_numpy(dtype=float)])
            high = np.concatenate([[first["dice_unshifted_ci_high"]], rows["dice_mean_ci_high"].to_numpy(dtype=float)])
            ax.plot(x, y, marker="o", markersize=4, color=colours[strategy])
            shown = np.isfinite(low) & np.isfinite(high)
            if shown.any():
                err = np.vstack([y[shown] - low[shown], high[shown] - y[shown]])
                ax.errorbar(x[shown], y[shown], yerr=err, fmt="none", ecolor=colours[strategy], capsize=2, lw=0.8)
        ax.set_title(label(phase), fontsize=9)
        ax.set_xlabel("shift (px): 0 unshifted, else level midpoint")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean Dice")
    any_ci = np.isfinite(table["dice_mean_ci_low"].to_numpy(dtype=float)).any()
    units = " or ".join(f"{u}s" for u in sorted(set(table["unit"].astype(str))))
    marks = f"error bars: 95 % bootstrap CI, {units} resampled" if any_ci else "no error bars: fewer than 5 units"
    fig.suptitle(f"Mean Dice under shifted prompts\n({marks})", fontsize=10, x=0.02, ha="left")
    handles = [plt.Line2D([], [], color=colours[s], marker="o") for s in strategies]
    legend_below(fig, handles, strategies)
    return fig
