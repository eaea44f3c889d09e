"""Re-scoring a fine-tuned decoder: never on an image it was fitted on, never silently under other data settings.

``train.py`` records in every checkpoint what the decoder was fitted on (:func:`training_data`: the
content hash of each training and validation image and the data settings of the run); ``evaluate.py
finetuned=CKPT`` compares that record with what it is about to score (:func:`check_rescoring`), before
the model is loaded:

* an image of the scored split whose content hash is among the checkpoint's training or validation
  images is refused (the ids named, with the likely cause: another split seed, fractions, block size,
  gap or fold puts training images into the test split);
* a data setting that differs from training's (:meth:`DataSettings.checked
  <sam4med.models.finetuned.DataSettings.checked>`: the split, ``clip_percentiles``, ``min_object_area``,
  the prompt seed, sampling and file) is refused, since the fine-tuned rows would be scored on other
  images, inputs, objects or prompts than the training run's zero-shot baseline. The prompt settings are
  not compared when the run scores a named prompts file (``evaluation.prompts.file``), which fixes the
  prompts;
* a checkpoint that records no training data (written before sam4med recorded it) is refused, since
  nothing says which images it saw.

Each refusal can be lifted by naming it in ``allow_mismatch=[...]`` (a setting's field name, or
``training_images`` for a leak or a checkpoint without the record); what was allowed is returned as
sentences that the run logs as warnings and writes into its results (``allowed_mismatch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sam4med.data.dataset import CosmosDataset
from sam4med.errors import ConfigError
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.models.finetuned import DataSettings, TrainingData

TRAINING_IMAGES = "training_images"
SPLIT_SETTINGS = ("split_seed", "fractions", "block_size", "gap", "folds", "fold")
PROMPT_SETTINGS = ("prompt_seed", "prompt_sampling", "prompts_file")
SHOWN_IDS = 10

if TYPE_CHECKING:
    from sam4med.data.datamodule import CosmosDataModule


def allowed_names() -> tuple[str, ...]:
    """What ``allow_mismatch`` may name: every compared data setting, and ``training_images``."""
    return (*DataSettings.checked(), TRAINING_IMAGES)


def check_allow(allow: Sequence[str] | str | None) -> tuple[str, ...]:
    """``allow_mismatch`` as a tuple of names (one name alone counts as a list of one); an unknown name is a
    :class:`ConfigError` listing the allowed ones.
    """
    names = (allow,) if isinstance(allow, str) else tuple(str(name) for name in allow or ())
    unknown = [name for name in names if name not in allowed_names()]
    if unknown:
        raise ConfigError(f"allow_mismatch names unknown settings {unknown}; allowed: {', '.join(allowed_names())}")
    return names


def data_settings(datamodule: CosmosDataModule, dataset: CosmosDataset, settings: EvaluationSettings) -> DataSettings:
    """The data settings of a run: the datamodule's split, input and object filter, the settings' prompts.

    ``folds`` and ``fold`` are read where the datamodule has them (None otherwise). ``dataset`` is one of
    its splits (for the dataset's name).
    """
    folds, fold = getattr(datamodule, "folds", None), getattr(datamodule, "fold", None)
    clip = datamodule.clip_percentiles
    return DataSettings(
        dataset=dataset.info.name,
        root=str(datamodule.root),
        split_seed=int(datamodule.split_seed),
        fractions=tuple(datamodule.fractions),
        block_size=int(datamodule.block_size),
        gap=int(datamodule.gap),
        folds=None if folds is None else int(folds),
        fold=None if fold is None else int(fold),
        clip_percentiles=None if clip is None else tuple(clip),
        min_object_area=int(datamodule.min_object_area),
        prompt_seed=int(settings.prompts.seed),
        prompt_sampling=settings.prompts.sampling,
        prompts_file=str(settings.prompts.file) if settings.prompts.file else None,
        multimask=settings.multimask.value,
    )


def training_data(datamodule: CosmosDataModule, settings: EvaluationSettings) -> TrainingData:
    """What a fit is about to train and validate on: the content hash of every image of the datamodule's
    ``train`` and ``val`` splits and the run's data settings. Computed once per fit by the train job and
    handed to the module, which writes it into every checkpoint.
    """
    train, val = datamodule.dataset("train"), datamodule.dataset("val")
    return TrainingData(
        images={"train": train.image_hashes(), "val": val.image_hashes()},
        settings=data_settings(datamodule, train, settings),
    )


def _cli(value: object) -> str:
    """A value as written on the command line: ``null``, ``[0.5,99.5]``, ``3``."""
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        return "[" + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value) + "]"
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Mismatch:
    """One data setting that differs between a checkpoint's training and the run now.

    Attributes:
        name: the :class:`DataSettings` field (what ``allow_mismatch`` names).
        trained: the checkpoint's value.
        now: the value the run asks for now.
    """

    name: str
    trained: object
    now: object

    @property
    def setting(self) -> str:
        """The override that sets it (``dataset.split_seed`` ...)."""
        return DataSettings.setting(self.name)

    def sentence(self) -> str:
        """``dataset.split_seed=1 (trained with 0)``: what is recorded where the mismatch is allowed."""
        return f"{self.setting}={_cli(self.now)} (trained with {_cli(self.trained)})"

    def refusal(self) -> str:
        """What differs and the two ways out: the training's value, or ``allow_mismatch``."""
        return (
            f"{self.setting} is {_cli(self.now)} now but was {_cli(self.trained)} in training: set "
            f"{self.setting}={_cli(self.trained)}, or allow_mismatch=[{self.name}] to score anyway (recorded)"
        )


def mismatches(trained: DataSettings, now: DataSettings) -> list[Mismatch]:
    """The compared settings that differ; the prompt settings are skipped when ``now`` scores a named prompts file."""
    names = [n for n in DataSettings.checked() if not (now.prompts_file and n in PROMPT_SETTINGS)]
    return [Mismatch(n, getattr(trained, n), getattr(now, n)) for n in names if getattr(trained, n) != getattr(now, n)]


def leaked(training: TrainingData, scored: CosmosDataset) -> list[str]:
    """The scored images whose content is among the checkpoint's training or validation images, as
    ``id (train)`` or ``id (val, trained as other_id)``, in the scored dataset's order.
    """
    seen = training.seen()
    found = []
    for image_id, digest in scored.image_hashes().items():
        if digest in seen:
            split, trained_id = seen[digest]
            found.append(
                f"{image_id} ({split})" if trained_id == image_id else f"{image_id} ({split}, as {trained_id})"
            )
    return found


def check_rescoring(
    checkpoint: str,
    training: TrainingData | None,
    scored: CosmosDataset,
    now: DataSettings,
    *,
    split: str,
    allow: Sequence[str] = (),
) -> list[str]:
    """Refuse to score a fine-tuned checkpoint on its own images or under other data settings (module docstring).

    Args:
        checkpoint: the checkpoint's path (for the messages).
        training: what it records (:attr:`FinetunedDecoder.training_data`), None if nothing.
        scored: the images about to be scored (one split).
        now: the run's data settings (:func:`data_settings`).
        split: the name of the scored split.
        allow: ``allow_mismatch`` (checked with :func:`check_allow`).

    Returns:
        One sentence per allowed mismatch (empty when nothing differs), for the log and the results.

    Raises:
        ConfigError: a leak, a mismatch or a missing record that ``allow`` does not name; the first of
            these in that order, each naming what differs and the override to use.
    """
    allow = check_allow(allow)
    if training is None:
        if TRAINING_IMAGES not in allow:
            raise ConfigError(
                f"{checkpoint}: records no training images or data settings (written before sam4med recorded them), "
                "so nothing shows it was not trained on the images scored now; train it again with this sam4med, "
                f"or pass allow_mismatch=[{TRAINING_IMAGES}] to score it anyway (recorded in the results)"
            )
        return [f"{TRAINING_IMAGES}: the checkpoint records none (not checked for leaks or settings)"]
    differ = mismatches(training.settings, now)
    images = leaked(training, scored)
    if images and TRAINING_IMAGES not in allow:
        split_changes = [m for m in differ if m.name in SPLIT_SETTINGS]
        if split_changes:
            cause = "the split differs from training's (" + "; ".join(m.sentence() for m in split_changes) + ")"
        else:
            cause = (
                f"split '{split}' holds images of the training or validation split (the same dataset split "
                "otherwise, or the same images under other ids)"
            )
        shown = ", ".join(images[:SHOWN_IDS]) + (
            f", ... ({len(images) - SHOWN_IDS} more)" if len(images) > SHOWN_IDS else ""
        )
        raise ConfigError(
            f"{checkpoint}: was trained or validated on {len(images)} of the {len(scored)} images of split '{split}' "
            f"(same image content): {shown}; likely cause: {cause}. Score it with its training's split settings, or "
            f"allow_mismatch=[{TRAINING_IMAGES}] to score them anyway (recorded in the results)"
        )
    refused = [m for m in differ if m.name not in allow]
    if refused:
        raise ConfigError(
            f"{checkpoint}: would be scored under other data settings than it was trained under, so its rows would not "
            "compare with its training run's zero-shot baseline: " + "; ".join(m.refusal() for m in refused)
        )
    allowed = [m.sentence() for m in differ]
    if images:
        allowed.append(
            f"{TRAINING_IMAGES}: {len(images)} of the {len(scored)} scored images were trained or validated on"
        )
    return allowed
