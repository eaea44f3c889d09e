"""Scores the zero-shot model when fitting starts and the best fine-tuned decoder when it ends.

The scoring itself is :class:`~sam4med.evaluation.session.EvaluationSession`'s, the same flow as
``evaluate.py``. What this callback adds: when to score, the sharding over DDP ranks (image i goes to
rank i mod R; rank 0 gathers the rows and prompts, sorts the rows into one order and alone writes
files), logging the means, and the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback

from sam4med.callbacks.publish import publish_figure, publish_table
from sam4med.compute import Compute
from sam4med.data.datamodule import CosmosDataModule
from sam4med.data.dataset import CosmosDataset
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.figures import overlay, strategy_bars
from sam4med.evaluation.predict import predict
from sam4med.evaluation.report import print_comparison
from sam4med.evaluation.results import ObjectResult, comparison, improvement, overall, to_frame
from sam4med.evaluation.session import LOG_NAME, EvaluationSession, EvaluationSettings
from sam4med.models.finetuned import load_finetuned_decoder
from sam4med.models.multimask import Multimask
from sam4med.prompts.generate import check_sampling
from sam4med.prompts.store import PromptStore
from sam4med.training.module import DecoderFineTuner

PHASES = ("zero_shot", "finetuned")


class BeforeAfterEvaluation(Callback):
    """Evaluate ``strategies`` on ``split`` before and after fine-tuning, on the same saved prompts.

    Writes into ``output_dir`` what ``evaluate.py`` writes (``metrics.csv``, ``summary.json``, the
    tables, ``prompts.json``) for both phases, plus ``comparison.csv``/``.md`` and ``improvement.csv``,
    a per-strategy bar chart and ``overlays`` prediction figures. Logs the per-strategy means as
    ``<phase>/<strategy>/<metric>``, the comparison table and the figures to every logger of the trainer.

    Args:
        output_dir: results folder.
        strategies: strategies to score (S1–S6).
        split: the dataset split to score.
        multimask: mask selection, the same before and after.
        seed: prompt seed.
        sampling: prompt point sampling, ``random`` or ``strided``.
        overlays: number of objects drawn as prediction overlays (first images of the split).
        everything: S1 settings (grid size, filters; ``EverythingSettings()`` are SAM's defaults).
        compute: where the evaluation runs (``auto``: the trainer's device), decoder call size, bf16.
    """

    def __init__(
        self,
        *,
        output_dir: str | Path,
        strategies: Sequence[str] = ("S1", "S2", "S3", "S4", "S5", "S6"),
        split: str = "test",
        multimask: Multimask | str = Multimask.SINGLE,
        seed: int = 0,
        sampling: str = "random",
        overlays: int = 4,
        everything: EverythingSettings,
        compute: Compute | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.settings = EvaluationSettings.build(
            strategies=strategies, multimask=multimask, everything=everything, split=split, compute=compute
        )
        self.seed, self.sampling, self.overlays = seed, check_sampling(sampling), overlays
        self.results: list[ObjectResult] = []

    def _datamodule(self, trainer: pl.Trainer) -> CosmosDataModule:
        datamodule = trainer.datamodule
        if not isinstance(datamodule, CosmosDataModule) or datamodule.cache is None:
            raise RuntimeError("BeforeAfterEvaluation needs a CosmosDataModule with attach(model, cache) called")
        return datamodule

    def _session(self, datamodule: CosmosDataModule, rank: int) -> EvaluationSession:
        prompts_file = self.output_dir / "prompts.json"
        # every rank reads the saved prompts; only rank 0 writes (prompts are deterministic per object)
        prompts = PromptStore(
            seed=self.seed, sampling=self.sampling, read_from=prompts_file, write_to=prompts_file if rank == 0 else None
        )
        return EvaluationSession(self.output_dir, self.settings, prompts=prompts, cache=datamodule.cache)

    def _run(self, trainer: pl.Trainer, module: DecoderFineTuner, phase: str) -> None:
        datamodule = self._datamodule(trainer)
        rank, world = trainer.global_rank, trainer.world_size
        session = self._session(datamodule, rank)
        full = datamodule.dataset(self.settings.split)
        ids = [r.image_id for r in full.records]
        was_training, home = module.training, module.device
        self.settings.compute.place(module.model, follow=home)  # a no-op with device=auto
        rows = session.score(
            module.model,
            full.subset(ids[rank::world]),
            phase=phase,
            log_name=LOG_NAME if world == 1 else f"evaluation_log.rank{rank}.jsonl",
            progress=rank == 0,
        )
        module.model.to(home)
        module.train(was_training)
        if world > 1:
            gathered: list[tuple[list[ObjectResult], dict]] = [([], {}) for _ in range(world)]
            dist.all_gather_object(gathered, (rows, session.prompts.entries()))
            rows = [r for part, _ in gathered for r in part]
            for _, entries in gathered:
                session.prompts.add(entries)
        if rank != 0:
            return
        image_order = {image_id: k for k, image_id in enumerate(ids)}
        strategy_order = {s: k for k, s in enumerate(self.settings.strategies)}
        rows.sort(key=lambda r: (strategy_order[r.strategy], image_order[r.image_id], r.object_key))
        self.results = [r for r in self.results if r.phase != phase] + rows
        for row in overall(to_frame(rows)).itertuples(index=False):
            metrics = {f"{phase}/{row.strategy}/{m}": float(getattr(row, m)) for m in ("dice", "iou", "hd")}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        session.write(self.results, session.describe(module.model, self.results, title="Zero-shot vs fine-tuned"))

    def _figures(self, trainer: pl.Trainer, module: DecoderFineTuner, dataset: CosmosDataset) -> None:
        frame = to_frame(self.results)
        step = trainer.global_step
        comp = comparison(frame)
        publish_figure(trainer.loggers, "comparison/dice_per_strategy", strategy_bars(frame), step, self.output_dir)
        publish_table(trainer.loggers, "comparison/table", comp, step)
        publish_table(trainer.loggers, "comparison/improved_targets", improvement(comp), step)
        strategy = next((s for s in self.settings.strategies if s != "S1"), None)
        if strategy is None or self.overlays <= 0:
            return
        prompts = PromptStore(seed=self.seed, sampling=self.sampling, read_from=self.output_dir / "prompts.json")
        cache = self._datamodule(trainer).cache
        drawn = 0
        for index in range(len(dataset)):
            item = dataset[index]
            if not item.objects:
                continue
            batch = [prompts.get(m, strategy, o.key) for o, m in zip(item.objects, item.masks, strict=True)]
            embedding = cache.get(module.model, item.image)
            pred = predict(
                module.model,
                embedding,
                batch,
                item.image.shape[:2],
                multimask=self.settings.multimask,
                gt_masks=item.masks,
            )
            for k, obj in enumerate(item.objects[: self.overlays - drawn]):
                title = f"{obj.target} {obj.image_id} {strategy} finetuned"
                fig = overlay(item.image, item.masks[k], pred.masks[k], batch[k], title)
                publish_figure(trainer.loggers, f"overlays/{drawn:02d}", fig, step, self.output_dir / "overlays")
                drawn += 1
            if drawn >= self.overlays:
                return

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Zero-shot scores before any optimisation step (read back from the log when resuming)."""
        assert isinstance(pl_module, DecoderFineTuner)
        self._run(trainer, pl_module, "zero_shot")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Load the best checkpoint's decoder (by validation Dice), score it, compare, publish."""
        assert isinstance(pl_module, DecoderFineTuner)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        best = trainer.strategy.broadcast(best, src=0)
        if best:
            load_finetuned_decoder(pl_module.model, best)
        self._run(trainer, pl_module, "finetuned")
        if trainer.global_rank == 0:
            frame = to_frame(self.results)
            print_comparison(frame, title=f"{', '.join(self.settings.strategies)} on the {self.settings.split} split")
            print(improvement(comparison(frame)).to_string(index=False))
            self._figures(trainer, pl_module, self._datamodule(trainer).dataset(self.settings.split))
