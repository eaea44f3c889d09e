"""The name of every file and folder a run writes, in one place.

A run folder (Hydra's run dir) holds the resolved ``config.yaml``, the ``split.csv``, ``checkpoints/``
(training) and ``results/``; the results folder holds what is scored and reported. Every module that
reads or writes one of these files takes its path from :class:`RunFolder` / :class:`ResultsFolder`,
so a name is spelled here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sam4med.errors import ConfigError

METRICS_CSV = "metrics.csv"


@dataclass(frozen=True)
class ResultsFolder:
    """``<run>/results/``: scored rows, tables, figures, overlays and ``report.html``."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def metrics(self) -> Path:
        """One row per phase x strategy x object (the results frame)."""
        return self.path / METRICS_CSV

    @property
    def summary(self) -> Path:
        """Means, overall means, S1's empty images and the run's description (``meta``)."""
        return self.path / "summary.json"

    @property
    def comparison_csv(self) -> Path:
        """Zero-shot vs fine-tuned per strategy x target, with the statistics."""
        return self.path / "comparison.csv"

    @property
    def comparison_md(self) -> Path:
        """The comparison and the means per strategy as Markdown, with the run's description."""
        return self.path / "comparison.md"

    @property
    def improvement(self) -> Path:
        """Per strategy: targets whose mean Dice rose, out of all."""
        return self.path / "improvement.csv"

    @property
    def tables_md(self) -> Path:
        """Every table of the paper's layout as Markdown."""
        return self.path / "tables.md"

    def table(self, name: str) -> Path:
        """A table of the paper's layout as CSV (``table_dice``, ``per_strategy`` ...)."""
        return self.path / f"{name}.csv"

    @property
    def prompts(self) -> Path:
        """Every prompt used, so any later model is scored on identical prompts."""
        return self.path / "prompts.json"

    @property
    def robustness_prompts(self) -> Path:
        """The robustness suite's shifted prompts (``sam4med.analysis.robustness``), so its rows can be reproduced."""
        return self.path / "robustness_prompts.json"

    def evaluation_log(self, rank: int | None = None) -> Path:
        """Rows as they are scored (a resumed run reads them back); one per DDP rank when ``rank`` is given."""
        return self.path / ("evaluation_log.jsonl" if rank is None else f"evaluation_log.rank{rank}.jsonl")

    @property
    def figures(self) -> Path:
        """PNG and SVG of each figure."""
        return self.path / "figures"

    @property
    def overlays(self) -> Path:
        """PNG and SVG of each target's prediction overlays."""
        return self.path / "overlays"

    @property
    def predictions(self) -> Path:
        """Each scored image's predicted masks per phase and strategy (``<phase>/<strategy>/<image_id>.npz``), kept
        for the saved masks and the volume scores (``sam4med.evaluation.predictions``).
        """
        return self.path / "predictions"

    @property
    def masks(self) -> Path:
        """Saved masks (``outputs.masks``): ``<phase>/<strategy>/<label map>/<image_id>.png`` and, for volumes,
        ``<phase>/<strategy>/<label map>/<volume>.nii.gz``.
        """
        return self.path / "masks"

    @property
    def volume_metrics(self) -> Path:
        """Per source volume x structure x phase x strategy: 3D Dice, HD95, NSD and the slice coverage."""
        return self.table("volume_metrics")

    @property
    def report(self) -> Path:
        """The self-contained HTML page of the run."""
        return self.path / "report.html"

    @property
    def run(self) -> RunFolder:
        """The run folder around this results folder."""
        return RunFolder(self.path.parent)

    def exists(self) -> bool:
        """Whether scored rows were written here."""
        return self.metrics.is_file()

    @classmethod
    def find(cls, path: str | Path) -> ResultsFolder:
        """The results folder named by ``path``: a results folder, or the run folder holding ``results/``."""
        path = Path(path).expanduser()
        for candidate in (cls(path), RunFolder(path).results):
            if candidate.exists():
                return cls(candidate.path.resolve())
        raise ConfigError(f"{path}: no {METRICS_CSV} there or in {path / 'results'}; give a run's results folder")


@dataclass(frozen=True)
class RunFolder:
    """One run's folder (``outputs/<date>/<time>/``, a sweep job's folder, or ``hydra.run.dir``)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config(self) -> Path:
        """The resolved config of the run."""
        return self.path / "config.yaml"

    @property
    def split(self) -> Path:
        """The image ids of each split."""
        return self.path / "split.csv"

    @property
    def checkpoints(self) -> Path:
        """Lightning's checkpoints (decoder weights and optimiser state)."""
        return self.path / "checkpoints"

    @property
    def last_checkpoint(self) -> Path:
        """The checkpoint ``ckpt_path=last`` resumes from."""
        return self.checkpoints / "last.ckpt"

    @property
    def overrides(self) -> Path:
        """Hydra's record of the command-line overrides (sweep jobs)."""
        return self.path / ".hydra" / "overrides.yaml"

    @property
    def hydra_config(self) -> Path:
        """The config Hydra composed (before the job resolved it)."""
        return self.path / ".hydra" / "config.yaml"

    @property
    def lock(self) -> Path:
        """Held by the one run writing into the folder (``sam4med.run_lock``); gone when it ends."""
        return self.path / "run.lock"

    @property
    def results(self) -> ResultsFolder:
        """The run's results folder."""
        return ResultsFolder(self.path / "results")
