"""The runs of a k-fold cross-validation over sources, merged into one table.

``python train.py -m dataset.folds=K dataset.fold=0,...,K-1`` runs one job per fold; fold ``k`` tests on
the sources of fold ``k`` (:mod:`sam4med.data.split`), so over the K jobs every source is tested exactly
once. After the multirun, :func:`write_fold_tables` (called by the sweep merge,
:func:`sam4med.results.sweep.write_sweep_tables`) checks from each job's ``config.yaml`` that the jobs are
the folds of one k-fold (same dataset folder, same ``dataset.folds``, same ``dataset.split_seed``, every
fold once) and writes into the sweep folder:

- ``folds.csv``: per fold x strategy the mean Dice zero-shot and fine-tuned over the fold's test objects,
  the change, and the images (and sources) tested; rows ``pooled`` give the same over all folds.
- ``folds_pooled.csv``: the comparison of :func:`sam4med.results.comparison.comparison` over all folds'
  test rows together (every source once), with its statistics.
- ``folds.md``: both tables.

Jobs that set ``dataset.folds`` but are not one complete k-fold are not merged as folds: a warning says why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml

from sam4med.evaluation.rows import Phase
from sam4med.files import write_text
from sam4med.results.comparison import comparison
from sam4med.results.frame import overall
from sam4med.results.tables import markdown_table, strategy_order
from sam4med.run_files import RunFolder

log = logging.getLogger("sam4med")

FOLDS_CSV = "folds.csv"
FOLDS_POOLED_CSV = "folds_pooled.csv"
FOLDS_MD = "folds.md"
POOLED = "pooled"


@dataclass(frozen=True)
class FoldRun:
    """What one job's resolved ``config.yaml`` says about its split (None: not set or no config)."""

    path: Path
    root: str | None
    folds: int | None
    fold: int | None
    split_seed: int | None


@dataclass(frozen=True)
class FoldTables:
    """The merged k-fold results.

    ``per_fold``: columns fold (``0``..``K-1``, then ``pooled``), strategy, dice_zero_shot,
    dice_finetuned, dice_delta (fine-tuned minus zero-shot mean Dice over the objects), n_images,
    n_objects and, when the rows carry their source, n_sources; a phase that was not scored is NaN.
    ``pooled``: :func:`~sam4med.results.comparison.comparison` of all folds' rows together.
    """

    per_fold: pd.DataFrame
    pooled: pd.DataFrame


def read_fold_run(run: str | Path) -> FoldRun:
    """The dataset folder, ``folds``, ``fold`` and ``split_seed`` of the job in folder ``run``."""
    folder = RunFolder(run)
    config = yaml.safe_load(folder.config.read_text()) if folder.config.is_file() else None
    dataset = (config or {}).get("dataset") or {}
    folds = dataset.get("folds")
    return FoldRun(
        path=folder.path,
        root=None if dataset.get("root") is None else str(dataset["root"]),
        folds=None if folds is None else int(folds),
        fold=None if folds is None or dataset.get("fold") is None else int(dataset["fold"]),
        split_seed=None if dataset.get("split_seed") is None else int(dataset["split_seed"]),
    )


def fold_problem(runs: Sequence[FoldRun]) -> str | None:
    """Why ``runs`` are not the folds of one k-fold (each fold 0..K-1 once, one K, one seed, one dataset
    folder), or None when they are.
    """
    if not runs:
        return "no runs"
    for name, values in (
        ("dataset.folds", {r.path.name: r.folds for r in runs}),
        ("dataset.split_seed", {r.path.name: r.split_seed for r in runs}),
        ("dataset.root", {r.path.name: r.root for r in runs}),
    ):
        if None in values.values() or len(set(values.values())) > 1:
            return f"the runs differ in {name} ({', '.join(f'{run}: {v}' for run, v in values.items())})"
    k = runs[0].folds
    assert k is not None
    seen = [r.fold for r in runs]
    twice = sorted({f for f in seen if seen.count(f) > 1})
    missing = [f for f in range(k) if f not in seen]
    outside = sorted({f for f in seen if not 0 <= f < k})
    if twice or missing or outside:
        parts = [f"fold(s) {', '.join(map(str, twice))} run more than once"] if twice else []
        parts += [f"fold(s) {', '.join(map(str, missing))} without results"] if missing else []
        parts += [f"fold(s) {', '.join(map(str, outside))} outside 0..{k - 1}"] if outside else []
        return f"dataset.folds={k} needs every fold 0..{k - 1} exactly once: " + "; ".join(parts)
    return None


def fold_tables(frames: Mapping[int, pd.DataFrame]) -> FoldTables:
    """Merge the results frames of the folds of one k-fold (fold index -> that fold's ``metrics.csv`` rows).

    Each fold's rows are its test split's, so together they score every source once: the pooled rows
    are the folds' rows concatenated (an object key must not occur in two folds).
    """
    folds = sorted(frames)
    pooled_frame = pd.concat([frames[k].assign(fold=k) for k in folds], ignore_index=True)
    per_fold = [_fold_rows(str(k), frames[k]) for k in folds] + [_fold_rows(POOLED, pooled_frame)]
    return FoldTables(per_fold=pd.concat(per_fold, ignore_index=True), pooled=comparison(pooled_frame))


def _fold_rows(label: str, frame: pd.DataFrame) -> pd.DataFrame:
    means = overall(frame).pivot_table(index="strategy", columns="phase", values="dice")
    grouped = frame.groupby("strategy")
    rows = []
    for strategy in strategy_order(frame):
        zero_shot, finetuned = (
            float(means.loc[strategy, phase]) if phase in means.columns else float("nan")
            for phase in (Phase.ZERO_SHOT, Phase.FINETUNED)
        )
        part = grouped.get_group(strategy)
        row = {
            "fold": label,
            "strategy": strategy,
            "dice_zero_shot": zero_shot,
            "dice_finetuned": finetuned,
            "dice_delta": finetuned - zero_shot,
            "n_images": int(part["image_id"].nunique()),
            "n_objects": int(part.groupby("phase")["object_key"].nunique().max()),
        }
        if "source" in part and part["source"].fillna("").astype(str).ne("").all():
            row["n_sources"] = int(part["source"].nunique())
        rows.append(row)
    return pd.DataFrame(rows)


def write_fold_tables(sweep_dir: str | Path, runs: Sequence[Path]) -> dict[str, Path]:
    """If the jobs ``runs`` of the sweep in ``sweep_dir`` set ``dataset.folds``: check they are the folds of
    one k-fold and write ``folds.csv``, ``folds_pooled.csv`` and ``folds.md`` into ``sweep_dir``.

    Returns the written paths (keys ``folds_csv``, ``folds_pooled_csv``, ``folds_md``); nothing when no
    job sets ``dataset.folds``, and nothing but a logged warning when the jobs are not one complete k-fold.
    """
    sweep_dir = Path(sweep_dir)
    fold_runs = [read_fold_run(run) for run in runs]
    if all(r.folds is None for r in fold_runs):
        return {}
    problem = fold_problem(fold_runs)
    if problem:
        log.warning("%s: not merged as the folds of one k-fold: %s", sweep_dir, problem)
        return {}
    frames = {r.fold: pd.read_csv(RunFolder(r.path).results.metrics) for r in fold_runs}
    tables = fold_tables(frames)
    first = fold_runs[0]
    jobs = ", ".join(f"fold {r.fold}: {r.path.name}" for r in sorted(fold_runs, key=lambda r: r.fold))
    paths = {
        "folds_csv": sweep_dir / FOLDS_CSV,
        "folds_pooled_csv": sweep_dir / FOLDS_POOLED_CSV,
        "folds_md": sweep_dir / FOLDS_MD,
    }
    write_text(paths["folds_csv"], tables.per_fold.to_csv(index=False))
    write_text(paths["folds_pooled_csv"], tables.pooled.to_csv(index=False))
    write_text(
        paths["folds_md"],
        f"# {first.folds}-fold cross-validation over sources\n\n"
        f"Dataset {first.root}, dataset.folds={first.folds}, dataset.split_seed={first.split_seed}; jobs: {jobs}.\n"
        "Each fold is scored on its test sources; pooled: all folds together, every source tested once.\n\n"
        f"## Mean Dice per fold\n\n{markdown_table(tables.per_fold)}\n\n"
        f"## Pooled comparison (all folds' test objects)\n\n{markdown_table(tables.pooled)}\n",
    )
    return paths
