"""Scores the zero-shot model when fitting starts and the best fine-tuned decoder when it ends.

Under DDP every rank scores its share of the images (image i goes to rank i mod R); rank 0 gathers
the rows, sorts them into the order a single process would produce, and alone writes files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback

from sam4med.callbacks.publish import publish_figure, publish_table
from sam4med.data.datamodule import CosmosDataModule
from sam4med.data.dataset import CosmosDataset
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.figures import overlay, strategy_bars
from sam4med.evaluation.predict import predict
from sam4med.evaluation.report import print_comparison
from sam4med.evaluation.results import ObjectResult, comparison, overall, to_frame, write_results
from sam4med.evaluation.runner import evaluate
from sam4med.models.finetuned import load_finetuned_decoder
from sam4med.prompts.store import PromptStore
from sam4med.training.module import DecoderFineTuner

PHASES = ("zero_shot", "finetuned")


def improvement(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy: targets whose mean Dice rose after fine-tuning, out of all targets."""
    comp = comparison(frame)
    if "dice_delta" not in comp:
        return pd.DataFrame(columns=["strategy", "improved", "targets"])
    grouped = comp.groupby("strategy")["dice_delta"]
    return pd.DataFrame(
        {"improved": grouped.apply(lambda d: int((d > 0).sum())), "targets": grouped.size()}
    ).reset_index()


class BeforeAfterEvaluation(Callback):
    """Evaluate ``strategies`` on ``split`` before and after fine-tuning, on the same saved prompts.

    Writes into ``output_dir``: ``metrics.csv``, ``summary.json``, ``comparison.csv``, ``comparison.md``,
    ``prompts.json``, ``improvement.csv``, a per-strategy bar chart and ``overlays`` prediction figures.
    Logs the per-strategy means as ``<phase>/<strategy>/<metric>``, the comparison table and the figures
    to every logger of the trainer.

    Args:
        output_dir: results folder.
        strategies: strategies to score (S1–S6).
        split: the dataset split to score.
        multimask: mask selection, the same before and after.
        seed: prompt seed.
        overlays: number of objects drawn as prediction overlays (first images of the split).
        everything: S1 settings (grid size, filters); None takes SAM's defaults (32 x 32 grid).
    """

    def __init__(
        self,
        *,
        output_dir: str | Path,
        strategies: Sequence[str] = ("S1", "S2", "S3", "S4", "S5", "S6"),
        split: str = "test",
        multimask: str = "single",
        seed: int = 0,
        overlays: int = 4,
        everything: EverythingSettings | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.strategies = list(strategies)
        self.split, self.multimask, self.seed, self.overlays = split, multimask, seed, overlays
        self.everything = everything
        self.results: list[ObjectResult] = []

    def _datamodule(self, trainer: pl.Trainer) -> CosmosDataModule:
        datamodule = trainer.datamodule
        if not isinstance(datamodule, CosmosDataModule) or datamodule.cache is None:
            raise RuntimeError("BeforeAfterEvaluation needs a CosmosDataModule with attach(model, cache) called")
        return datamodule

    def _prompts(self, rank: int) -> PromptStore:
        store = PromptStore(self.output_dir / "prompts.json", seed=self.seed)
        if rank > 0:
            store.path = None  # only rank 0 writes; prompts are deterministic, so it can make every rank's
        return store

    def _run(self, trainer: pl.Trainer, module: DecoderFineTuner, phase: str) -> None:
        datamodule = self._datamodule(trainer)
        rank, world = trainer.global_rank, trainer.world_size
        full = datamodule.dataset(self.split)
        ids = [r.image_id for r in full.records]
        shard = CosmosDataset(datamodule.root, ids[rank::world], min_object_area=datamodule.min_object_area)
        was_training = module.training
        prompts = self._prompts(rank)
        log_name = "evaluation_log.jsonl" if world == 1 else f"evaluation_log.rank{rank}.jsonl"
        rows = evaluate(
            module.model,
            shard,
            strategies=self.strategies,
            phase=phase,
            cache=datamodule.cache,
            prompts=prompts,
            multimask=self.multimask,
            log_path=self.output_dir / log_name,
            progress=rank == 0,
            everything=self.everything,
        )
        module.train(was_training)
        if world > 1:
            gathered: list[list[ObjectResult]] = [[] for _ in range(world)]
            dist.all_gather_object(gathered, rows)
            rows = [r for part in gathered for r in part]
        if rank != 0:
            return
        order = {image_id: k for k, image_id in enumerate(ids)}
        strategy_order = {s: k for k, s in enumerate(self.strategies)}
        rows.sort(key=lambda r: (strategy_order[r.strategy], order[r.image_id], r.object_key))
        self.results = [r for r in self.results if r.phase != phase] + rows
        for row in overall(to_frame(rows)).itertuples(index=False):
            metrics = {f"{phase}/{row.strategy}/{m}": float(getattr(row, m)) for m in ("dice", "iou", "hd")}
            for logger in trainer.loggers:
                logger.log_metrics(metrics, step=trainer.global_step)
        self._write(module, full, prompts)

    def _write(self, module: DecoderFineTuner, dataset: CosmosDataset, prompts: PromptStore) -> None:
        frame = to_frame(self.results)
        for index in range(len(dataset)):  # prompts of the other ranks' images, identical by construction
            item = dataset[index]
            for strategy in self.strategies:
                if strategy != "S1":
                    for obj, mask in zip(item.objects, item.masks, strict=True):
                        prompts.get(mask, strategy, obj.key)
        prompts.save()
        meta = {
            "title": "Zero-shot vs fine-tuned",
            "backbone": module.model.name,
            "weights": module.model.weights_source,
            "split": self.split,
            "multimask": self.multimask,
            "prompt_seed": self.seed,
            "hd_unit": ", ".join(sorted(set(frame["hd_unit"]))) if len(frame) else "",
        }
        write_results(frame, self.output_dir, meta=meta)
        improvement(frame).to_csv(self.output_dir / "improvement.csv", index=False)

    def _figures(self, trainer: pl.Trainer, module: DecoderFineTuner, dataset: CosmosDataset) -> None:
        frame = to_frame(self.results)
        step = trainer.global_step
        publish_figure(trainer.loggers, "comparison/dice_per_strategy", strategy_bars(frame), step, self.output_dir)
        publish_table(trainer.loggers, "comparison/table", comparison(frame), step)
        publish_table(trainer.loggers, "comparison/improved_targets", improvement(frame), step)
        strategy = next((s for s in self.strategies if s != "S1"), None)
        if strategy is None or self.overlays <= 0:
            return
        prompts = PromptStore(self.output_dir / "prompts.json", seed=self.seed)
        drawn = 0
        for index in range(len(dataset)):
            item = dataset[index]
            if not item.objects:
                continue
            batch = [prompts.get(m, strategy, o.key) for o, m in zip(item.objects, item.masks, strict=True)]
            embedding = self._datamodule(trainer).cache.get(module.model, item.image)
            pred = predict(
                module.model, embedding, batch, item.image.shape[:2], multimask=self.multimask, gt_masks=item.masks
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
            print_comparison(frame, title=f"{', '.join(self.strategies)} on the {self.split} split")
            print(improvement(frame).to_string(index=False))
            self._figures(trainer, pl_module, self._datamodule(trainer).dataset(self.split))
