"""LightningModule that fine-tunes SAM's mask decoder with box prompts (or a mix of prompt kinds, with corrective
clicks); encoders stay frozen.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss

from sam4med.errors import CheckpointError, ConfigError
from sam4med.metrics import dice
from sam4med.models import lora as adapters
from sam4med.models.finetuned import DataSettings, Trained, TrainingData
from sam4med.models.lora import LoraSettings
from sam4med.models.multimask import Multimask, choose
from sam4med.models.sam_model import SamModel
from sam4med.prompts.training_mix import BOX_ONLY, PromptMix
from sam4med.training.iterations import ObjectPrompt, batch_prompts, boxes_only, chosen_outputs, corrective_clicks
from sam4med.training.losses import bce_loss, hard_iou, soft_dice_loss

LOSSES = ("dice_bce_iou", "dice_ce")


class TrainToken(StrEnum):
    """Which decoder outputs training optimises: ``scored`` (those ``multimask`` scores) or ``single``
    (always SAM's single-mask token 0, whatever is scored).
    """

    SCORED = "scored"
    SINGLE = "single"

    @classmethod
    def parse(cls, value: str | TrainToken) -> TrainToken:
        """The member named ``value``; an unknown name is a :class:`ConfigError` listing the allowed ones."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(t.value for t in cls)
            raise ConfigError(f"module.train_token must be one of {allowed}; got '{value}'") from None


class DecoderFineTuner(pl.LightningModule):
    """Trains ``model.mask_decoder`` only.

    Losses (``loss``):

    * ``dice_bce_iou`` (default): per object, Dice + BCE on the mask logits (upsampled to the model
      input size) plus ``iou_weight`` x MSE between the IoU head's prediction and the true IoU of the
      predicted mask.
    * ``dice_ce``: the COSMOS authors' MONAI ``DiceCELoss(sigmoid=True, squared_pred=True)`` on the
      mask logits resized to the object's original resolution (padding removed, as SAM's
      ``postprocess_masks``); the IoU head is not trained. Theirs averages over the objects of an
      image, then over images; here over the objects of a batch.

    Trained outputs (``train_token``): ``scored`` (default) trains the outputs that ``multimask``
    scores: SAM's single-mask token (output 0) for ``single``; the three multimask tokens for
    ``oracle`` and ``confidence``, where, as in SAM's own training, only the best of the three takes
    the mask loss. ``single`` always trains token 0, whatever is scored: the authors train token 0 and
    test with the oracle over the three multimask tokens (``experiment=cosmos``). Validation always
    scores what ``multimask`` scores. The settings (and the run config) are saved with
    ``save_hyperparameters`` into every checkpoint, as plain data.

    Args:
        model: the SAM-family model; its image and prompt encoders are frozen here.
        optimizer: partial optimizer (Hydra ``_partial_: true``) completed with the decoder's parameters.
        scheduler: partial LR scheduler or None.
        multimask: the mask selection the model will be scored with (see :class:`Multimask`).
        loss: ``dice_bce_iou`` or ``dice_ce`` (see above).
        train_token: ``scored`` or ``single`` (see above).
        dice_weight: weight of the Dice loss.
        bce_weight: weight of the BCE loss.
        iou_weight: weight of the IoU-prediction MSE.
        prompts: the prompt mix of training (``module.prompts``; :mod:`sam4med.prompts.training_mix`): a preset
            (``box``, the default: box only; ``mixed``) or a mapping kind -> probability. The samples draw
            the kinds (the train job hands the mix to the datamodule); kept here as plain data in every checkpoint.
        iterations: corrective clicks per training object after the first prediction (``module.iterations``,
            0: none). Each adds one click from the error of the object's current prediction
            (:mod:`sam4med.training.iterations`); the loss is the mean over the first prediction and every
            iteration.
        iteration_mask_input: give each iteration the chosen low-resolution logits of the one before
            (detached) as SAM's mask prompt, as SAM's own training does.
        train: which parts learn (``module.train``, :class:`~sam4med.models.finetuned.Trained`): ``decoder``
            (the default), ``decoder+prompt_encoder``, or ``lora`` (the decoder plus LoRA adapters on the
            image encoder's attention projections; needs ``dataset.input_mode=online``). Every other
            parameter is frozen (no gradient, not in the optimizer, not in checkpoints).
        lora: the adapters' settings (``module.lora``: rank, alpha, dropout, targets), used with ``lora``.
        run_config: the resolved config of the run (plain data), kept in checkpoints so that a
            checkpoint says how it was made (``sam4med.export`` rebuilds the base model from it).
        training_data: the content hashes of the training and validation images and the data settings
            (computed once per fit by the train job), written into every checkpoint's ``sam4med`` entry so
            that ``evaluate.py finetuned=`` can refuse to score the decoder on them; None records none.
    """

    def __init__(
        self,
        model: SamModel,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        *,
        multimask: Multimask | str = Multimask.SINGLE,
        loss: str = "dice_bce_iou",
        train_token: TrainToken | str = TrainToken.SCORED,
        dice_weight: float = 1.0,
        bce_weight: float = 1.0,
        iou_weight: float = 1.0,
        prompts: PromptMix | str | dict = BOX_ONLY,
        iterations: int = 0,
        iteration_mask_input: bool = True,
        train: Trained | str = Trained.DECODER,
        lora: LoraSettings | dict[str, Any] | None = None,
        run_config: dict[str, Any] | None = None,
        training_data: TrainingData | None = None,
    ) -> None:
        super().__init__()
        self.multimask = Multimask.parse(multimask)
        if loss not in LOSSES:
            raise ConfigError(f"module.loss must be one of {', '.join(LOSSES)}; got '{loss}'")
        self.loss_name, self.train_token = loss, TrainToken.parse(train_token)
        self.train_multimask = self.multimask.multimask_output and self.train_token is TrainToken.SCORED
        self.dice_ce = DiceCELoss(sigmoid=True, squared_pred=True, reduction="mean")
        self.prompts = PromptMix.parse(prompts)
        if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 0:
            raise ConfigError(
                f"module.iterations={iterations!r}: must be an integer >= 0 (corrective clicks per object after the "
                "first prediction; 0 trains on the first prediction only)"
            )
        if not isinstance(iteration_mask_input, bool):
            raise ConfigError(f"module.iteration_mask_input={iteration_mask_input!r}: must be true or false")
        self.iterations, self.iteration_mask_input = iterations, iteration_mask_input
        self.save_hyperparameters(
            {
                "multimask": self.multimask.value,
                "loss": loss,
                "train_token": self.train_token.value,
                "dice_weight": dice_weight,
                "bce_weight": bce_weight,
                "iou_weight": iou_weight,
                "prompts": self.prompts.to_config(),
                "iterations": iterations,
                "iteration_mask_input": iteration_mask_input,
                "run_config": dict(run_config or {}),
            },
            logger=False,  # the run config reaches the loggers once, from the train job
        )
        self.trained = Trained.parse(train)
        self.lora = LoraSettings.from_config(lora) if self.trained is Trained.LORA else None
        self.model = model
        self.model.freeze_encoders()
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.dice_weight, self.bce_weight, self.iou_weight = dice_weight, bce_weight, iou_weight
        self.training_data = training_data
        self.base_weights = {  # before any adapter is added: the hashes of the plain base parts
            "image_encoder": model.module_hash(model.image_encoder),
            "prompt_encoder": model.module_hash(model.prompt_encoder),
            "mask_decoder": model.module_hash(model.mask_decoder),
        }
        if self.trained is Trained.DECODER_PROMPT_ENCODER:
            self.model.prompt_encoder.requires_grad_(True)
        if self.lora is not None:
            adapters.inject(self.model.image_encoder, self.lora, self.model.name)
            self.model.encoder_changed()
            self.train(self.training)

    def train(self, mode: bool = True) -> DecoderFineTuner:
        """Train or eval mode; with LoRA the frozen image encoder stays in eval mode (BatchNorm statistics
        fixed) and only the adapters' dropout follows ``mode``.
        """
        super().train(mode)
        if getattr(self, "lora", None) is not None:
            adapters.set_train(self.model.image_encoder, mode)
        return self

    def setup(self, stage: str) -> None:
        """Refuse, before any work, LoRA on cached embeddings (the encoder changes every step) and a trained
        prompt encoder under DDP without ``find_unused_parameters``: a box prompt uses only the box-corner
        embeddings, so DDP would wait for gradients of the point and mask embeddings that never come.
        """
        datamodule = getattr(self._trainer, "datamodule", None)
        mode = getattr(datamodule, "input_mode", "online")
        if self.trained is Trained.LORA and mode != "online":
            raise ConfigError(
                f"module.train=lora trains the image encoder, so its embeddings change every step and cannot come "
                f"from the embedding cache, but dataset.input_mode is '{mode}': set dataset.input_mode=online"
            )
        strategy = getattr(self._trainer, "strategy", None)
        ddp_kwargs = getattr(strategy, "_ddp_kwargs", None)  # Lightning's DDPStrategy keeps its DDP arguments here
        unused = isinstance(ddp_kwargs, dict) and ddp_kwargs.get("find_unused_parameters", False)
        if self.trained is Trained.DECODER_PROMPT_ENCODER and isinstance(ddp_kwargs, dict) and not unused:
            raise ConfigError(
                "module.train=decoder+prompt_encoder under DDP needs trainer.strategy.find_unused_parameters=true: "
                "each prompt kind uses only some of the prompt encoder's embeddings"
            )

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """The parameters the optimizer updates (``train``): the decoder's (and the prompt encoder's or adapters')."""
        if self.trained is Trained.DECODER:
            return list(self.model.mask_decoder.parameters())
        return [p for p in self.model.parameters() if p.requires_grad]

    def forward(
        self,
        embeddings: torch.Tensor,
        prompts: torch.Tensor | Sequence[ObjectPrompt],
        multimask_output: bool | None = None,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits B x M x S x S (model-input space) and IoU predictions B x M for B prompts.

        Args:
            embeddings: B x C x h x w image embeddings, one per prompt.
            prompts: B x 4 XYXY boxes in model-input pixels (box prompts), or B :class:`ObjectPrompt`
                (:func:`~sam4med.training.iterations.batch_prompts`).
            multimask_output: the three multimask outputs (M = 3) or the single one (M = 1); None
                means the outputs that are trained.
            mask_input: B x 1 x 4h x 4w low-resolution logits given as SAM's mask prompt, or None.
        """
        logits, ious = self.decode_prompts(embeddings, prompts, multimask_output, mask_input)
        return self._upsample(logits), ious

    def decode_prompts(
        self,
        embeddings: torch.Tensor,
        prompts: torch.Tensor | Sequence[ObjectPrompt],
        multimask_output: bool | None = None,
        mask_input: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Low-resolution logits B x M x 4h x 4w and IoU predictions B x M (arguments as :meth:`forward`).

        Each object is decoded on its own with exactly its prompt's points and box (no padding point
        beyond the one SAM's prompt encoder adds to a prompt without a box), as the evaluation decodes it.
        """
        if multimask_output is None:
            multimask_output = self.train_multimask
        if isinstance(prompts, torch.Tensor):
            prompts = boxes_only(prompts)
        logits, ious = [], []
        for index, (embedding, prompt) in enumerate(zip(embeddings, prompts, strict=True)):
            has_points = len(prompt.labels) > 0
            out = self.model.decode(
                embedding,
                point_coords=prompt.points[None] if has_points else None,
                point_labels=prompt.labels[None] if has_points else None,
                boxes=prompt.box[None] if prompt.box is not None else None,
                multimask_output=multimask_output,
                mask_input=mask_input[index : index + 1] if mask_input is not None else None,
            )
            logits.append(out.low_res_logits[0])
            ious.append(out.iou_predictions[0])
        return torch.stack(logits), torch.stack(ious)

    def _upsample(self, logits: torch.Tensor) -> torch.Tensor:
        """B x M x h x w low-resolution logits -> B x M x S x S model-input logits (bilinear)."""
        size = self.model.preprocessing.img_size
        if logits.shape[-1] != size:
            logits = F.interpolate(logits, (size, size), mode="bilinear", align_corners=False)
        return logits

    def embeddings(self, batch: dict[str, Any]) -> torch.Tensor:
        """B x C x h x w embeddings: cached ones from the batch, or the encoder run now (online mode): frozen
        (no gradient), or with LoRA with gradients through the adapters while gradients are on (training).
        """
        if "embedding" in batch:
            if self.trained is Trained.LORA:
                raise ConfigError("module.train=lora cannot use cached embeddings: set dataset.input_mode=online")
            return batch["embedding"]
        if self.trained is Trained.LORA and torch.is_grad_enabled():
            return self.model.encode_with_grad(batch["image"])
        return self.model.encode(batch["image"])  # no_grad inside

    def _original(self, logits: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """M x S x S model-input logits -> M x H x W logits at the original size (padding removed)."""
        new_h, new_w = self.model.preprocessing.resized_shape(shape)
        return F.interpolate(logits[None, :, :new_h, :new_w], shape, mode="bilinear", align_corners=False)[0]

    def _loss(
        self, logits: torch.Tensor, iou_pred: torch.Tensor, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.loss_name == "dice_ce":
            return self._dice_ce_loss(logits, batch)
        target = batch["mask"][:, None].expand_as(logits)
        mask_loss = self.dice_weight * soft_dice_loss(logits, target) + self.bce_weight * bce_loss(logits, target)
        best = mask_loss.argmin(dim=1)  # with one output this is always 0
        rows = torch.arange(len(best), device=best.device)
        iou_mse = F.mse_loss(iou_pred, hard_iou(logits, target))
        loss = mask_loss[rows, best].mean() + self.iou_weight * iou_mse
        return loss, {"mask_loss": mask_loss[rows, best].mean(), "iou_mse": iou_mse}

    def _dice_ce_loss(
        self, logits: torch.Tensor, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """MONAI DiceCE per object at original resolution; with several outputs the best one counts."""
        per_object = []
        for logit, gt in zip(logits, batch["gt"], strict=True):
            full = self._original(logit, tuple(gt.shape))  # M x H x W
            target = gt.to(full.dtype)[None, None].expand(1, 1, *gt.shape)
            per_output = torch.stack([self.dice_ce(full[m][None, None], target) for m in range(len(full))])
            per_object.append(per_output.min())
        loss = torch.stack(per_object).mean()
        return loss, {"mask_loss": loss}

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        """Dice + BCE + IoU-MSE on one batch; with ``iterations``, the mean over the first prediction and
        each corrective click's.
        """
        loss, parts = self._iterated_loss(self.embeddings(batch), batch)
        bs = len(batch["box"])
        self.log("train/loss", loss, prog_bar=True, batch_size=bs)
        self.log_dict({f"train/{k}": v for k, v in parts.items()}, batch_size=bs)
        return loss

    def _iterated_loss(
        self, embeddings: torch.Tensor, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss of the batch's prompts, then of ``iterations`` corrective clicks (see the class docs).

        Clicks are placed without gradient from the output the evaluation would choose, at original
        resolution (:mod:`sam4med.training.iterations`); the mask prompt is that output's detached
        low-resolution logits. So gradients reach the trained parameters through each prediction's own
        decoding only, never through a click or an earlier prediction.
        """
        prompts = batch_prompts(batch)
        low_res, ious = self.decode_prompts(embeddings, prompts)
        loss, parts = self._loss(self._upsample(low_res), ious, batch)
        if not self.iterations:
            return loss, parts
        preprocessing = self.model.preprocessing
        seeds = batch["seed"].tolist() if "seed" in batch else [0] * len(prompts)
        for click in range(2, self.iterations + 2):
            chosen, predictions = chosen_outputs(low_res, ious, batch["gt"], preprocessing, self.multimask)
            prompts = corrective_clicks(
                prompts,
                predictions,
                batch["gt"],
                seeds=seeds,
                object_keys=batch["object_key"],
                click=click,
                preprocessing=preprocessing,
            )
            mask_input = chosen if self.iteration_mask_input else None
            low_res, ious = self.decode_prompts(embeddings, prompts, mask_input=mask_input)
            step_loss, step_parts = self._loss(self._upsample(low_res), ious, batch)
            loss = loss + step_loss
            parts = {k: v + step_parts[k] for k, v in parts.items()}
        count = self.iterations + 1
        return loss / count, {k: v / count for k, v in parts.items()}

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Loss, and Dice at original resolution under the evaluation protocol (no jitter, logit > 0), on the
        batch's prompts (boxes: validation samples are box-only) without corrective clicks.
        """
        embeddings = self.embeddings(batch)
        prompts = batch_prompts(batch)
        logits, iou_pred = self(embeddings, prompts)
        loss, _ = self._loss(logits, iou_pred, batch)
        if self.multimask.multimask_output != self.train_multimask:  # scored outputs differ from trained ones
            logits, iou_pred = self(embeddings, prompts, multimask_output=self.multimask.multimask_output)
        scores = []
        for logit, ious, gt in zip(logits, iou_pred, batch["gt"], strict=True):
            masks = (self._original(logit, tuple(gt.shape)) > 0)[None].cpu().numpy()  # 1 x M x H x W
            gt_np = gt.cpu().numpy()
            best = int(choose(self.multimask, masks, ious[None].detach().cpu().numpy(), gt_np[None])[0])
            scores.append(dice(masks[0, best], gt_np))
        bs = len(scores)
        self.log("val/loss", loss, batch_size=bs, sync_dist=True)
        self.log("val/dice", float(np.mean(scores)), prog_bar=True, batch_size=bs, sync_dist=True)

    def configure_optimizers(self) -> Any:
        """The partial optimizer (and scheduler) over the trained parameters (:meth:`trainable_parameters`)."""
        optimizer = self.optimizer_factory(params=self.trainable_parameters())
        if self.scheduler_factory is None:
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keep only what was trained (the decoder; the prompt encoder or the LoRA matrices where trained), plus
        which parts (``train``), the adapters' settings, hashes of the base weights and (as plain data) the
        training data record.
        """
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if self.trained.keeps(k)}
        checkpoint["sam4med"] = {
            "backbone": self.model.name,
            "base_weights": self.base_weights,
            "weights_source": self.model.weights_source,
            "train": self.trained.value,
        }
        if self.lora is not None:
            checkpoint["sam4med"]["lora"] = self.lora.to_dict()
        if self.training_data is not None:
            checkpoint["sam4med"]["training_data"] = self.training_data.to_dict()

    def _check_resumed_data(self, recorded: Any) -> None:
        """A run resumed from a checkpoint must fit on the images and under the data settings it recorded:
        otherwise its later checkpoints would record only this run's images, and ``evaluate.py`` could not see
        that the decoder was also fitted on the others. Nothing to compare where either side has no record.
        """
        if self.training_data is None or not isinstance(recorded, dict):
            return
        now = self.training_data.to_dict()
        settings = recorded.get("settings") if isinstance(recorded.get("settings"), dict) else {}
        differ = [n for n in DataSettings.checked() if settings.get(n) != now["settings"][n]]
        if recorded.get("images") != now["images"] or differ:
            what = f"the data settings {', '.join(differ)}" if differ else "the training or validation images"
            raise CheckpointError(
                f"the checkpoint to resume from was fitted under other data than this run's ({what} differ); resume "
                "with the settings it was trained under, or start a new run folder without ckpt_path"
            )

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refill the frozen weights from the current model, after checking they are the same base."""
        meta = checkpoint.get("sam4med") or {}
        recorded = meta.get("base_weights") or {}
        if not recorded.get("image_encoder"):
            raise CheckpointError(
                "the checkpoint to resume from records no hash of the image encoder it was trained on "
                "(sam4med.base_weights); it was not written by sam4med's train.py"
            )
        for part in ("image_encoder", "prompt_encoder"):
            expected = recorded.get(part)
            if expected and expected != self.base_weights[part]:
                raise CheckpointError(
                    f"the checkpoint to resume from was trained on backbone '{meta.get('backbone')}' with other "
                    f"{part.replace('_', ' ')} weights ({expected} vs {self.base_weights[part]})"
                )
        self._check_resumed_data(meta.get("training_data"))
        recorded_train = meta.get("train", Trained.DECODER.value)
        recorded_lora = meta.get("lora")
        if recorded_train != self.trained.value or (self.lora is not None and recorded_lora != self.lora.to_dict()):
            raise CheckpointError(
                f"the checkpoint to resume from trained module.train={recorded_train}"
                f"{f' with module.lora={recorded_lora}' if recorded_lora else ''}, this run "
                f"module.train={self.trained.value}{f' with module.lora={self.lora.to_dict()}' if self.lora else ''}; "
                "resume with the settings it was trained under, or start a new run folder without ckpt_path"
            )
        own = self.state_dict()
        checkpoint["state_dict"] = {
            **{k: v for k, v in own.items() if not self.trained.keeps(k)},
            **checkpoint["state_dict"],
        }
