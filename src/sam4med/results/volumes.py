"""Volume-level results of datasets prepared from volumes: 3D scores per source volume and structure.

For each phase, strategy, source volume (:class:`~sam4med.volume_grid.VolumeGrid`) and structure (a label value
of a named label map), the predicted masks of the volume's scored slices are put back at their slice positions
(:mod:`sam4med.volume_grid`: ``rot90`` undone, RAS), the ground truth of the same slices likewise, and the two
X x Y x Z volumes are scored with the voxel spacing (slice thickness included), in mm:

* ``dice``: 3D Dice (:func:`sam4med.metrics.dice` on the stacked arrays);
* ``hd``, ``hd95``, ``nsd``: Hausdorff distance, its 95th percentile and the normalised surface distance at
  ``metrics.nsd_tolerance`` mm under ``metrics.nsd_rule``, from one computation of the 3D boundary distances
  (:func:`sam4med.metrics.surface.boundary_scores`, MONAI).

Coverage is stated, never hidden: ``slices_in_extent`` counts the slices of the source volume that hold the
structure (recorded when the dataset was prepared, before any slice or object rule), ``slices_scored`` those
scored here (prepared, in the split, and the object not below ``min_object_area``), ``coverage`` their ratio and
``slices_not_scored`` lists the others (as index ranges). A slice not scored is left out of both volumes (0 in
prediction and ground truth), never counted as an empty prediction; near such a gap the surface distances see
the structure end in both. A structure with no scored slice in a volume of the split gets a row with
``slices_scored`` 0 and no scores. To score whole volumes, prepare with the volume preparer's
``whole_extent: true`` and score a split that holds whole volumes (splits by source keep a volume together).

The comparison (both phases) pairs each (volume, structure) zero-shot and fine-tuned on the same prompts; the
volume is the statistical unit (:mod:`sam4med.results.statistics`, ``unit=source`` with each volume its own
source): per strategy and target, and over all targets of a strategy (the structures of one volume resampled
together). With fewer than ``MIN_UNITS`` volumes there is no interval or p-value, and ``per_volume`` lists each
volume's paired difference of mean Dice.

The predicted masks are re-read from ``results/predictions/`` one volume at a time (and the ground truth of a
volume read once from the dataset folder), so memory holds one volume, not the split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from sam4med.data.dataset import CosmosDataset
from sam4med.evaluation.interactive import row_strategies
from sam4med.evaluation.outputs import MaskFormat
from sam4med.evaluation.predictions import PredictionFiles
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.metrics import dice
from sam4med.metrics.surface import apply_nsd_rule, boundary_scores
from sam4med.results.masks import write_label_pngs, write_volume_niftis
from sam4med.results.statistics import MIN_UNITS, STAT_COLUMNS, StatisticsSettings, Unit, paired_delta
from sam4med.run_files import ResultsFolder
from sam4med.volume_grid import VolumeGrid, from_volumes, needs_grids_message, read_grids

log = logging.getLogger("sam4med")

VOLUME_COLUMNS = (
    "phase",
    "strategy",
    "volume",
    "source",
    "target",
    "object",
    "modality",
    "label_map",
    "label_value",
    "slices_scored",
    "slices_in_extent",
    "coverage",
    "slices_not_scored",
    "dice",
    "hd95",
    "nsd",
    "hd",
    "unit",
    "nsd_tolerance",
)
ALL_TARGETS = "all targets"


def index_ranges(indices: Sequence[int]) -> str:
    """Slice indices as ranges: ``[3, 4, 5, 9]`` -> ``3-5,9`` ("" for none)."""
    parts: list[str] = []
    values = sorted(set(int(i) for i in indices))
    start = prev = None
    for i in [*values, None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ",".join(parts)


def score_volume(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    *,
    tolerance: float,
    rule: str = "standard",
) -> dict[str, float]:
    """Dice, HD95, NSD and HD of two X x Y x Z masks with voxel sizes ``spacing`` (X, Y, Z) in mm."""
    value = dice(pred, gt)
    # boundary_scores takes spacing X first for an array whose FIRST axis is Z; these arrays' axes are X, Y, Z
    scores = boundary_scores(pred, gt, tolerance=tolerance, spacing=tuple(spacing)[::-1])
    return {
        "dice": value,
        "hd95": scores.hd_percentile,
        "nsd": apply_nsd_rule(scores.nsd, value, rule),
        "hd": scores.hd,
    }


def _ground_truth(dataset: CosmosDataset, grid: VolumeGrid) -> dict[str, dict[tuple[str, int], np.ndarray]]:
    """Image id -> (label map, value) -> H x W ground truth, for the volume's images in ``dataset`` (as scored:
    objects below the dataset's ``min_object_area`` are absent).
    """
    index = {r.image_id: k for k, r in enumerate(dataset.records)}
    truth = {}
    for image_id in grid.images:
        if image_id in index:
            item = dataset[index[image_id]]
            truth[image_id] = {(o.label_map, o.label_value): m for o, m in zip(item.objects, item.masks, strict=True)}
    return truth


def volume_rows(
    dataset: CosmosDataset,
    grid: VolumeGrid,
    predictions: PredictionFiles,
    *,
    phases: Sequence[str],
    strategies: Sequence[str],
    tolerance: float,
    rule: str = "standard",
) -> list[dict]:
    """The rows of one volume (:data:`VOLUME_COLUMNS`); none where no slice of it is in ``dataset``."""
    truth = _ground_truth(dataset, grid)
    if not truth:
        return []
    modality = next(r.modality for r in dataset.records if r.image_id in truth)
    names = {m.name: m.objects for m in dataset.info.label_maps}
    rows = []
    for phase in phases:
        for strategy in strategies:
            kept = {i: predictions.read(phase, strategy, i) for i in truth if predictions.has(phase, strategy, i)}
            for label_map, values in grid.extent.items():
                for value, extent in sorted(values.items()):
                    scored = {
                        i: grid.images[i]
                        for i, prediction in kept.items()
                        if (label_map, value) in truth[i] and prediction.mask_of(label_map, value) is not None
                    }
                    name = names.get(label_map, {}).get(value, str(value))
                    row = {
                        "phase": str(phase),
                        "strategy": strategy,
                        "volume": grid.key,
                        "source": grid.source,
                        "target": f"{name}-{modality}",
                        "object": name,
                        "modality": modality,
                        "label_map": label_map,
                        "label_value": value,
                        "slices_scored": len(scored),
                        "slices_in_extent": len(extent),
                        "coverage": len(scored) / len(extent) if extent else float("nan"),
                        "slices_not_scored": index_ranges(set(extent) - set(scored.values())),
                        "unit": "mm",
                        "nsd_tolerance": tolerance,
                    }
                    if scored:
                        pred = grid.stack({s: kept[i].mask_of(label_map, value) for i, s in scored.items()})  # type: ignore[misc]
                        gt = grid.stack({s: truth[i][(label_map, value)] for i, s in scored.items()})
                        row.update(score_volume(pred, gt, grid.spacing, tolerance=tolerance, rule=rule))
                    else:
                        row.update(dict.fromkeys(("dice", "hd95", "nsd", "hd"), float("nan")))
                    rows.append(row)
    return rows


def volume_table(
    dataset: CosmosDataset,
    grids: Sequence[VolumeGrid],
    predictions: PredictionFiles,
    *,
    phases: Sequence[str],
    strategies: Sequence[str],
    tolerance: float,
    rule: str = "standard",
) -> pd.DataFrame:
    """``volume_metrics.csv``: one row per phase x strategy x volume x structure (:data:`VOLUME_COLUMNS`)."""
    rows = []
    for grid in grids:
        rows += volume_rows(
            dataset, grid, predictions, phases=phases, strategies=strategies, tolerance=tolerance, rule=rule
        )
    return pd.DataFrame(rows, columns=list(VOLUME_COLUMNS))


def _compare(pairs: pd.DataFrame, statistics: StatisticsSettings) -> dict:
    """One comparison row of (volume, structure) pairs with columns volume, target, before, after."""
    units = pd.DataFrame(
        {
            "image_id": pairs["volume"] + "/" + pairs["target"],
            "source": pairs["volume"],
            "before": pairs["before"],
            "after": pairs["after"],
        }
    )
    delta = paired_delta(units, statistics)
    per_volume = ""
    if delta.n_units < MIN_UNITS:  # too few volumes for an interval: each volume's own paired difference
        means = pairs.assign(diff=pairs["after"] - pairs["before"]).groupby("volume")["diff"].mean()
        per_volume = "; ".join(f"{v}: {d:+.3f}" for v, d in means.items())
    return {
        "volumes": int(pairs["volume"].nunique()),
        "pairs": len(pairs),
        f"dice_{Phase.ZERO_SHOT}": float(pairs["before"].mean()),
        f"dice_{Phase.FINETUNED}": float(pairs["after"].mean()),
        "dice_delta": delta.delta,
        **delta.columns(),
        "per_volume": per_volume,
    }


def volume_comparison(table: pd.DataFrame, statistics: StatisticsSettings | None = None) -> pd.DataFrame:
    """Zero-shot vs fine-tuned 3D Dice per strategy and target, and over all targets of a strategy, the volume as
    the unit (structures without a scored slice left out); empty unless both phases are in ``table``.
    """
    settings = statistics or StatisticsSettings()
    settings = StatisticsSettings(unit=Unit.SOURCE, resamples=settings.resamples, seed=settings.seed)
    keys = ["strategy", "volume", "target"]
    scored = table.dropna(subset=["dice"])
    before = scored[scored["phase"] == Phase.ZERO_SHOT][[*keys, "dice"]].rename(columns={"dice": "before"})
    after = scored[scored["phase"] == Phase.FINETUNED][[*keys, "dice"]].rename(columns={"dice": "after"})
    pairs = before.merge(after, on=keys, how="inner", validate="one_to_one")
    rows = []
    for strategy, by_strategy in pairs.groupby("strategy", sort=False):
        for target, by_target in by_strategy.groupby("target", sort=True):
            rows.append({"strategy": strategy, "target": target, **_compare(by_target, settings)})
        rows.append({"strategy": strategy, "target": ALL_TARGETS, **_compare(by_strategy, settings)})
    columns = ["strategy", "target", "volumes", "pairs", f"dice_{Phase.ZERO_SHOT}", f"dice_{Phase.FINETUNED}"]
    return pd.DataFrame(rows, columns=[*columns, "dice_delta", *STAT_COLUMNS, "per_volume"])


def kept_strategies(settings: EvaluationSettings) -> list[str]:
    """The row strategies whose masks are kept: each strategy, ``I`` as its last click ``I@<clicks>``."""
    return [row_strategies(s, settings.interactive.clicks)[-1] for s in settings.strategies]


def volume_outputs(
    folder: ResultsFolder,
    dataset: CosmosDataset,
    settings: EvaluationSettings,
    phases: Sequence[str],
    statistics: StatisticsSettings | None = None,
) -> dict[str, pd.DataFrame]:
    """After scoring: write the saved masks of ``outputs.masks`` and return the volume tables (``volume_metrics``,
    and with both phases ``volume_comparison``) for :func:`~sam4med.results.finish.finish`'s ``tables``, which
    writes them as CSV and Markdown, shows them in ``report.html`` and sends them to the loggers.
    """
    outputs = settings.outputs
    grids = read_grids(dataset.root)
    predictions = PredictionFiles(folder.predictions)
    strategies = kept_strategies(settings)
    if outputs.masks != MaskFormat.NONE:
        for phase in phases:
            for strategy in strategies:
                pngs = write_label_pngs(folder, dataset, predictions, phase=phase, strategy=strategy)
                niftis = 0
                if outputs.masks == MaskFormat.NIFTI:
                    niftis = write_volume_niftis(
                        folder, dataset, list(grids.values()), predictions, phase=phase, strategy=strategy
                    )
                log.info("%s %s: %d label PNGs, %d NIfTI volumes in %s", phase, strategy, pngs, niftis, folder.masks)
    if not outputs.volume_metrics:
        return {}
    if not grids:
        if from_volumes(dataset.records):
            log.warning(needs_grids_message(dataset.root, "volume_metrics.csv (outputs.volume_metrics)"))
        return {}
    table = volume_table(
        dataset,
        list(grids.values()),
        predictions,
        phases=phases,
        strategies=strategies,
        tolerance=settings.metrics.nsd_tolerance,
        rule=settings.metrics.nsd_rule,
    )
    if table.empty:
        return {}
    tables = {"volume_metrics": table}
    if {Phase.ZERO_SHOT, Phase.FINETUNED} <= {Phase(p) for p in phases}:
        tables["volume_comparison"] = volume_comparison(table, statistics)
    return tables
