"""Scores the zero-shot model when fitting starts and the best fine-tuned decoder when it ends."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from sam4med.data.datamodule import CosmosDataModule
from sam4med.evaluation.report import print_comparison
from sam4med.evaluation.results import ObjectResult, overall, to_frame, write_results
from sam4med.evaluation.runner import evaluate
from sam4med.models.finetuned import load_finetuned_decoder
from sam4med.prompts.store import PromptStore
from sam4med.training.module import DecoderFineTuner


class BeforeAfterEvaluation(Callback):
    """Evaluate ``strategies`` on ``split`` before and after fine-tuning, on the same saved prompts.

    Writes ``<output_dir>/metrics.csv``, ``summary.json``, ``comparison.csv``, ``comparison.md`` and
    ``prompts.json``; logs the per-strategy means to the trainer's loggers as ``<phase>/<strategy>/<metric>``.

    Args:
        output_dir: results folder.
        strategies: prompt strategies to score.
        split: the dataset split to score (``test`` by default).
        multimask: mask selection (the same before and after).
        seed: prompt seed.
    """

    def __init__(
        self,
        *,
        output_dir: str | Path,
        strategies: Sequence[str] = ("S5",),
        split: str = "test",
        multimask: str = "single",
        seed: int = 0,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.strategies = list(strategies)
        self.split = split
        self.multimask = multimask
        self.seed = seed
        self.results: list[ObjectResult] = []

    def _run(self, trainer: pl.Trainer, module: DecoderFineTuner, phase: str) -> None:
        datamodule = trainer.datamodule
        if not isinstance(datamodule, CosmosDataModule) or datamodule.cache is None:
            raise RuntimeError("BeforeAfterEvaluation needs a CosmosDataModule with attach(model, cache) called")
        was_training = module.training
        rows = evaluate(
            module.model,
            datamodule.dataset(self.split),
            strategies=self.strategies,
            phase=phase,
            cache=datamodule.cache,
            prompts=PromptStore(self.output_dir / "prompts.json", seed=self.seed),
            multimask=self.multimask,
            log_path=self.output_dir / "evaluation_log.jsonl",
        )
        module.train(was_training)
        self.results = [r for r in self.results if r.phase != phase] + rows
        means = overall(to_frame(rows))
        for row in means.itertuples(index=False):
            for metric in ("dice", "iou", "hd"):
                for logger in trainer.loggers:
                    logger.log_metrics(
                        {f"{phase}/{row.strategy}/{metric}": float(getattr(row, metric))}, step=trainer.global_step
                    )
        self._write(module)

    def _write(self, module: DecoderFineTuner) -> pd.DataFrame:
        frame = to_frame(self.results)
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
        return frame

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Zero-shot scores, before any optimisation step (read back from the log when resuming)."""
        if trainer.is_global_zero:
            assert isinstance(pl_module, DecoderFineTuner)
            self._run(trainer, pl_module, "zero_shot")

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Load the best checkpoint's decoder (by validation Dice) and score it."""
        if not trainer.is_global_zero:
            return
        assert isinstance(pl_module, DecoderFineTuner)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            load_finetuned_decoder(pl_module.model, best)
        self._run(trainer, pl_module, "finetuned")
        print_comparison(to_frame(self.results), title=f"S-strategies on the {self.split} split")
