"""Scores the zero-shot model when fitting starts and the best fine-tuned decoder when it ends.

The scoring itself is :class:`~sam4med.evaluation.session.EvaluationSession`'s, the same flow as
``evaluate.py``. What this callback adds: when to score, the sharding over DDP ranks (image i goes to
rank i mod R; rank 0 gathers the rows and prompts, sorts the rows into one order and alone writes
files), logging the means, and the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import pytorch_lightning as pl
import torch
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback

from sam4med.callbacks.publish import (
    delta_metrics,
    log_metrics,
    phase_metrics,
    publish_before_after_charts,
    publish_figure,
    publish_final_metrics,
    publish_overlays,
    publish_table,
)
from sam4med.compute import Compute
from sam4med.data.datamodule import CosmosDataModule
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.figures import run_figures, save_figure
from sam4med.evaluation.overlays import close_overlays, write_overlays
from sam4med.evaluation.results import ObjectResult, comparison, improvement, to_frame
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
    the figures (``figures/``, PNG and SVG) and the prediction overlays (``overlays/``: per target, the
    typical, good and bad object drawn zero-shot and fine-tuned on the same prompt). Logs the per-strategy
    means as ``<phase>/<strategy>/<metric>`` and ``delta/<strategy>/dice``, the comparison table, the
    figures and the overlays to every logger of the trainer.

    Args:
        output_dir: results folder.
        strategies: strategies to score (S1–S6).
        split: the dataset split to score.
        multimask: mask selection, the same before and after.
        seed: prompt seed.
        sampling: prompt point sampling, ``random`` or ``strided``.
        overlays: at most this many targets get an overlay figure (0: none).
        overlay_strategy: the strategy whose prompts the overlays draw (None: S6, else S4, S5, S3, S2).
        everything: S1 settings (grid size, filters; ``EverythingSettings()`` are SAM's defaults).
        compute: where the evaluation runs (``auto``: the trainer's device), decoder call size, bf16.
        zero_shot_dir: folder of zero-shot rows shared between runs, so the jobs of a sweep that score
            the same images with the same settings score the baseline once; None: each run its own.
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
        overlays: int = 16,
        overlay_strategy: str | None = None,
        everything: EverythingSettings,
        compute: Compute | None = None,
        zero_shot_dir: str | Path | None = None,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.zero_shot_dir = zero_shot_dir
        self.settings = EvaluationSettings.build(
            strategies=strategies, multimask=multimask, everything=everything, split=split, compute=compute
        )
        self.seed, self.sampling = seed, check_sampling(sampling)
        self.overlays, self.overlay_strategy = overlays, overlay_strategy
        self.results: list[ObjectResult] = []
        self.zero_shot_decoder: dict[str, torch.Tensor] | None = None

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
        return EvaluationSession(
            self.output_dir, self.settings, prompts=prompts, cache=datamodule.cache, zero_shot_dir=self.zero_shot_dir
        )

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
            progress=rank == 0 and trainer.progress_bar_callback is not None,
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
        log_metrics(trainer.loggers, phase_metrics(to_frame(rows), phase), trainer.global_step)
        session.write(self.results, session.describe(module.model, self.results, title="Zero-shot vs fine-tuned"))

    def _publish(self, trainer: pl.Trainer, module: DecoderFineTuner) -> None:
        """Figures, overlays, the comparison and the final metrics: into the results folder and every logger."""
        frame = to_frame(self.results)
        step, loggers = trainer.global_step, trainer.loggers
        comp = comparison(frame)
        final = {**phase_metrics(frame, "zero_shot"), **phase_metrics(frame, "finetuned"), **delta_metrics(frame)}
        log_metrics(loggers, delta_metrics(frame), step)
        publish_before_after_charts(loggers, frame)
        publish_table(loggers, "comparison/table", comp, step)
        publish_table(loggers, "comparison/improved_targets", improvement(comp), step)
        for name, fig in run_figures(frame, comp).items():
            publish_figure(loggers, f"figures/{name}", fig, save_figure(fig, self.output_dir / "figures", name), step)
            plt.close(fig)
        if self.overlays > 0:
            overlays = write_overlays(
                frame,
                self.output_dir / "overlays",
                model=module.model,
                dataset=self._datamodule(trainer).dataset(self.settings.split),
                decoders={"zero_shot": self.zero_shot_decoder, "finetuned": None},
                cache=self._datamodule(trainer).cache,
                prompts=PromptStore(seed=self.seed, sampling=self.sampling, read_from=self.output_dir / "prompts.json"),
                multimask=self.settings.multimask,
                strategy=self.overlay_strategy,
                max_targets=self.overlays,
            )
            publish_overlays(loggers, overlays, step)
            close_overlays(overlays)
        publish_final_metrics(loggers, final, step)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Keep the zero-shot decoder for the overlays (before a resumed checkpoint replaces it)."""
        if stage == "fit" and isinstance(pl_module, DecoderFineTuner):
            state = pl_module.model.mask_decoder.state_dict()
            self.zero_shot_decoder = {k: v.detach().clone() for k, v in state.items()}

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
            self._publish(trainer, pl_module)
