"""The one scoring flow: score a split into rows, and say what they were made with.

``evaluate.py`` scores one phase (zero-shot, or fine-tuned with a trained decoder); the before/after
callback scores both phases on the same prompts, each DDP rank on its share of the images. Sharding
and gathering are the callback's; this module knows nothing of ranks beyond which one writes the
prompts. What becomes of the rows (tables, figures, report) is :func:`sam4med.results.finish.finish`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError, DataError
from sam4med.evaluation.interactive import INTERACTIVE
from sam4med.evaluation.outputs import MaskFormat
from sam4med.evaluation.predictions import PredictionFiles
from sam4med.evaluation.rows import ObjectResult, Phase
from sam4med.evaluation.rules import RULES
from sam4med.evaluation.runner import s1_empty_images, score_dataset
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.evaluation.zero_shot_store import ZeroShotStore
from sam4med.models.sam_model import SamModel
from sam4med.run_files import ResultsFolder
from sam4med.volume_grid import from_volumes, has_grids, needs_grids_message


class EvaluationSession:
    """Scores phases of one run into one results folder, every phase on the same prompts.

    Args:
        results: the results folder (its evaluation log and ``prompts.json`` are written here).
        settings: the run's evaluation settings (strategies, mask selection, S1, split, compute, prompts).
        cache: embedding cache (each image is encoded once for all strategies and phases).
        rank: the DDP rank; only rank 0 writes the prompts file, every rank reads it.
    """

    def __init__(
        self, results: ResultsFolder, settings: EvaluationSettings, *, cache: EmbeddingCache, rank: int = 0
    ) -> None:
        self.results = results
        self.settings = settings
        self.cache = cache
        self.prompts = settings.prompts.store(results.prompts, write=rank == 0)
        shared = settings.shared_zero_shot_dir
        self.zero_shot_store = ZeroShotStore(shared) if shared else None

    def score(
        self,
        model: SamModel,
        dataset: CosmosDataset,
        *,
        phase: Phase,
        log: bool = True,
        log_rank: int | None = None,
        progress: bool = True,
    ) -> list[ObjectResult]:
        """Rows of every object of ``dataset`` under every strategy.

        Rows are appended to the results folder's evaluation log (one per rank where ``log_rank`` is
        given) as each image finishes, and a re-run resumes from it; ``log=False`` keeps them in memory
        only. A split of images without a single
        object to score (every label empty, or every object below ``min_object_area``) is a
        :class:`DataError`, never an empty result.
        """
        rows = score_dataset(
            model,
            dataset,
            strategies=self.settings.strategies,
            phase=phase,
            cache=self.cache,
            prompts=self.prompts,
            multimask=self.settings.multimask,
            everything=self.settings.everything,
            compute=self.settings.compute,
            log_path=self.results.evaluation_log(log_rank) if log else None,
            progress=progress,
            zero_shot_store=self.zero_shot_store,
            interactive=self.settings.interactive,
            metrics=self.settings.metrics,
            predictions=self.predictions(dataset),
        )
        if not rows and len(dataset):
            raise DataError(
                f"{dataset.root}: the {len(dataset)} images of split '{self.settings.split}' hold no object to score "
                f"(every label map is empty, or every object is smaller than min_object_area="
                f"{dataset.min_object_area})"
            )
        return rows

    def predictions(self, dataset: CosmosDataset) -> PredictionFiles | None:
        """Where scoring keeps each image's predicted masks (``results/predictions/``): when ``outputs.masks`` saves
        masks, or ``outputs.volume_metrics`` scores a dataset prepared from volumes; None otherwise. NIfTI masks
        of a dataset that was not prepared from volumes, or was prepared without volume grids, are refused.
        """
        outputs = self.settings.outputs
        grids = has_grids(dataset.root)
        if outputs.masks == MaskFormat.NIFTI and not grids:
            if from_volumes(dataset.records):
                raise DataError(needs_grids_message(dataset.root, "outputs.masks=nifti"))
            raise ConfigError(
                f"outputs.masks=nifti: {dataset.root} was not prepared from volumes (no volumes/ grids), so there is "
                "no source grid to write NIfTI masks on; use outputs.masks=png"
            )
        return PredictionFiles(self.results.predictions) if outputs.keeps_predictions(grids) else None

    def describe(
        self,
        model: SamModel,
        rows: Sequence[ObjectResult],
        *,
        title: str,
        finetuned: str = "",
        allowed_mismatches: Sequence[str] = (),
    ) -> dict:
        """What the results were made with, written into ``summary.json``, ``comparison.md`` and the report.

        ``allowed_mismatches``: how the scored data differs from a fine-tuned checkpoint's training data
        where the user allowed it (``evaluate.py allow_mismatch=[...]``, one sentence each); recorded as
        ``allowed_mismatch`` so no table is read without it.
        """
        settings = self.settings
        empty, s1_images = s1_empty_images(rows)
        units = sorted({r.hd_unit for r in rows})
        return {
            "title": title,
            "backbone": model.name,
            "weights": model.weights_source,
            "finetuned": finetuned,
            "split": settings.split,
            "strategies": ",".join(settings.strategies),
            "multimask": settings.multimask.value,
            "prompt_seed": self.prompts.seed,
            "prompt_sampling": self.prompts.sampling,
            "everything": ", ".join(f"{k}={v}" for k, v in asdict(settings.everything).items()),
            "s1_empty_images": f"{empty} of {s1_images}" if "S1" in settings.strategies else "",
            "interactive": settings.interactive.describe() if INTERACTIVE in settings.strategies else "",
            "embedding_cache": f"{self.cache.directory or 'memory'} ({str(self.cache.dtype).removeprefix('torch.')})",
            "hd_unit": ", ".join(units),
            "nsd": settings.metrics.describe(),
            "prompt_rules": RULES["prompt_rules"],
            "metric_rules": RULES["metric_rules"],
            **({"allowed_mismatch": "; ".join(allowed_mismatches)} if allowed_mismatches else {}),
        }
