"""Scores the zero-shot model when fitting starts and the best fine-tuned decoder when it ends.

The scoring is :class:`~sam4med.evaluation.session.EvaluationSession`'s and the results flow
:func:`~sam4med.results.finish.finish`'s, the same as ``evaluate.py``'s. What this callback adds: when
to score, the sharding over DDP ranks (image i goes to rank i mod R; rank 0 gathers the rows and
prompts, sorts the rows into one order and alone writes files), and logging each phase's means as it
ends.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch.distributed as dist
from pytorch_lightning.callbacks import Callback

from sam4med.analysis.registry import resolve
from sam4med.analysis.suite import Analysis, AnalysisInput, run_analyses
from sam4med.data.datamodule import CosmosDataModule
from sam4med.evaluation.rows import ObjectResult, Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.models import lora
from sam4med.models.finetuned import PartStates, PhaseState, Trained, load_finetuned_decoder
from sam4med.results.finish import OverlaySource, finish
from sam4med.results.frame import to_frame
from sam4med.results.loggers import log_metrics, phase_metrics
from sam4med.results.statistics import StatisticsSettings
from sam4med.results.volumes import volume_outputs
from sam4med.results.write import write_results
from sam4med.run_files import RunFolder
from sam4med.training.module import DecoderFineTuner


class BeforeAfterEvaluation(Callback):
    """Evaluate the settings' strategies on their split before and after fine-tuning, on the same saved prompts.

    Writes into the run's results folder what ``evaluate.py`` writes, for both phases, plus the
    comparison (``comparison.csv``/``.md``, ``improvement.csv``), the before/after figures and the
    prediction overlays (per target, the typical, good and bad object drawn zero-shot and fine-tuned on
    the same prompt), and sends them to every logger of the trainer (see :mod:`sam4med.results.finish`).
    After the zero-shot phase the results folder already holds its tables, so a run stopped during
    training keeps them. The analysis suites named in ``analyses`` (:mod:`sam4med.analysis`) run after the
    fine-tuned phase, on rank 0, over both phases (the zero-shot decoder kept at setup, the best one), and
    their tables and figures join the run's.

    Args:
        settings: the run's evaluation settings (``conf/evaluation``, built once by the train job).
        run_dir: the run folder; results go to its ``results/`` (:class:`~sam4med.run_files.RunFolder`).
        statistics: the comparison's statistics settings (``conf/statistics``; None: its defaults).
        analyses: names of suites to run with their defaults (``robustness``, ``grid``, ``timing``,
            ``factors``).
        configured_analyses: suites built from the run's ``analysis`` group (``train.py analysis=robustness
            analysis.robustness.repeats=5``), run with their settings; given by the train job.
    """

    def __init__(
        self,
        *,
        settings: EvaluationSettings,
        run_dir: str | Path,
        statistics: StatisticsSettings | None = None,
        analyses: Sequence[str] = (),
        configured_analyses: Mapping[str, Analysis] | None = None,
    ) -> None:
        self.settings = settings
        self.statistics = statistics
        self.analyses = resolve(analyses, configured_analyses)  # an unknown name fails before training
        for suite in self.analyses:
            suite.check(settings)
        self.results_folder = RunFolder(run_dir).results
        self.results: list[ObjectResult] = []
        # the zero-shot weights of the trained parts: the decoder's state dict, or (prompt encoder or LoRA
        # trained too) a PartStates with the prompt encoder's or the adapted encoder layers' base weights
        self.zero_shot_decoder: PhaseState | None = None

    def _datamodule(self, trainer: pl.Trainer) -> CosmosDataModule:
        datamodule = trainer.datamodule
        if not isinstance(datamodule, CosmosDataModule) or datamodule.cache is None:
            raise RuntimeError("BeforeAfterEvaluation needs a CosmosDataModule with attach(model, cache) called")
        return datamodule

    def _run(self, trainer: pl.Trainer, module: DecoderFineTuner, phase: Phase) -> EvaluationSession:
        """Score ``phase`` (this rank's share of the images), gather the rows on rank 0, log their means."""
        datamodule = self._datamodule(trainer)
        rank, world = trainer.global_rank, trainer.world_size
        session = EvaluationSession(self.results_folder, self.settings, cache=datamodule.cache, rank=rank)
        full = datamodule.dataset(self.settings.split)
        ids = [r.image_id for r in full.records]
        was_training, home = module.training, module.device
        self.settings.compute.place(module.model, follow=home)  # a no-op with device=auto
        rows = session.score(
            module.model,
            full.subset(ids[rank::world]),
            phase=phase,
            log_rank=None if world == 1 else rank,
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
        if rank == 0:
            image_order = {image_id: k for k, image_id in enumerate(ids)}
            strategy_order = {s: k for k, s in enumerate(self.settings.row_strategies)}
            rows.sort(key=lambda r: (strategy_order[r.strategy], image_order[r.image_id], r.object_key))
            self.results = [r for r in self.results if r.phase != phase] + rows
            log_metrics(trainer.loggers, phase_metrics(to_frame(rows), phase), trainer.global_step)
            session.prompts.save()
        return session

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Keep the zero-shot weights of the trained parts for the overlays and analyses (before a resumed
        checkpoint replaces them): the decoder's, plus the prompt encoder's or the base weights of the layers
        LoRA adapts (what loading the fine-tuned checkpoint changes).
        """
        if stage == "fit" and isinstance(pl_module, DecoderFineTuner):
            if pl_module.trained is Trained.DECODER:
                state = pl_module.model.mask_decoder.state_dict()
                self.zero_shot_decoder = {k: v.detach().clone() for k, v in state.items()}
            else:
                self.zero_shot_decoder = PartStates.of(pl_module.model, pl_module.trained.parts)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Zero-shot scores before any optimisation step (read back from the log when resuming)."""
        assert isinstance(pl_module, DecoderFineTuner)
        session = self._run(trainer, pl_module, Phase.ZERO_SHOT)
        if trainer.global_rank == 0:
            meta = session.describe(pl_module.model, self.results, title="Zero-shot vs fine-tuned")
            write_results(to_frame(self.results), self.results_folder, meta=meta)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Load the best checkpoint's decoder (by validation Dice), score it, then the results flow."""
        assert isinstance(pl_module, DecoderFineTuner)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        best = trainer.strategy.broadcast(best, src=0)
        if best:
            load_finetuned_decoder(pl_module.model, best)  # LoRA: merged into the encoder, as evaluate.py loads it
        elif lora.has_adapters(pl_module.model.image_encoder):  # no checkpoint: the last weights, merged likewise
            lora.merge(pl_module.model.image_encoder)
            pl_module.model.encoder_changed()
        session = self._run(trainer, pl_module, Phase.FINETUNED)
        if trainer.global_rank != 0:
            return
        model = pl_module.model
        frame = to_frame(self.results)
        dataset = self._datamodule(trainer).dataset(self.settings.split)
        decoders = {Phase.ZERO_SHOT: self.zero_shot_decoder, Phase.FINETUNED: None}
        extra = run_analyses(self.analyses, AnalysisInput(model, dataset, session, decoders, frame, self.statistics))
        volumes = volume_outputs(self.results_folder, dataset, self.settings, list(Phase), self.statistics)
        finish(
            self.results_folder,
            frame,
            session.describe(model, self.results, title="Zero-shot vs fine-tuned"),
            title=f"{', '.join(self.settings.strategies)} on the {self.settings.split} split",
            loggers=trainer.loggers,
            step=trainer.global_step,
            overlays=OverlaySource(model, dataset, session, decoders),
            log_phases=False,
            statistics=self.statistics,
            tables={**extra.tables, **volumes},
            figures=extra.figures,
        )
