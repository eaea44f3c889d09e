"""``analysis=timing``: seconds per image of each inference stage, COSMOS Table 4.

Stages:

- ``embedding``: :meth:`SamModel.embed_image <sam4med.models.sam_model.SamModel.embed_image>` of one image
  (preprocessing, the resize and normalisation, included; the embedding cache is not used), one image per
  encoder call. It does not depend on the decoder, so it is measured once (phase ``all``).
- each strategy of the run, per phase, on the cached embedding: S2-S6 and M1-M5 through
  :func:`~sam4med.evaluation.predict.predict_scored` (prompt encoding, decoding, upsampling and the mask
  selection of all objects of the image, as scoring decodes them); S1 through
  :class:`~sam4med.evaluation.everything.EverythingMode` (mask generation; the Eq. 1 matching to the ground
  truth, an evaluation step, is not counted); ``I`` through
  :class:`~sam4med.evaluation.interactive.ClickLoop`, every click of every object (the simulated user's
  click placement included).

Each stage runs ``warmup`` passes over the images first (not recorded), then ``repeats`` timed passes; a
pass's seconds per image is its time over its images, and the table gives the median over the passes with
their quartiles and range (every pass is in ``timing_repeats``). On CUDA the device is synchronised before
and after each timed call. Metric scoring (Dice, Hausdorff) is never timed.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from sam4med.analysis.suite import AnalysisInput, AnalysisOutput, phase_decoder
from sam4med.data.dataset import ImageItem
from sam4med.errors import ConfigError
from sam4med.evaluation.decoding import prompts_per_call
from sam4med.evaluation.everything import EverythingMode
from sam4med.evaluation.interactive import INTERACTIVE, ClickLoop, check_start, start_prompt
from sam4med.evaluation.predict import predict_scored
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.models.sam_model import SamModel
from sam4med.prompts.prompt import Prompt
from sam4med.results.figures import OTHER_COLOUR, colour, label, legend_below, phases

EMBEDDING = "embedding"
ALL_PHASES = "all"  # the phase of the embedding row: the image encoder is the same in every phase
TIMING_COLUMNS = (
    "phase",
    "stage",
    "seconds_per_image",
    "seconds_per_object",
    "seconds_q1",
    "seconds_q3",
    "seconds_min",
    "seconds_max",
    "images",
    "objects",
    "repeats",
    "warmup",
    "device",
    "backbone",
    "input_size",
    "images_per_encoder_call",
    "prompts_per_decoder_call",
    "threads",
)
REPEAT_COLUMNS = ("phase", "stage", "repeat", "seconds", "seconds_per_image", "seconds_per_object", "images", "objects")


@dataclass(frozen=True)
class TimingSuite:
    """Seconds per image of the image embedding and of each strategy (``conf/analysis/timing.yaml`` mirrors it).

    Attributes:
        repeats: timed passes over the images per stage (the table gives their median).
        warmup: passes run first and not recorded (allocations, kernel selection, caches).
        max_images: the first this many images of the split that hold an object, in split order.
    """

    name: ClassVar[str] = "timing"
    repeats: int = 5
    warmup: int = 1
    max_images: int = 4

    def __post_init__(self) -> None:
        for field, least in (("repeats", 1), ("warmup", 0), ("max_images", 1)):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"analysis.timing.{field}={value}: must be an integer >= {least}")

    def check(self, settings: EvaluationSettings) -> None:
        """Nothing to check against the run's settings: the suite runs on any strategies."""

    def run(self, inputs: AnalysisInput) -> AnalysisOutput:
        """The ``timing`` table (medians) and ``timing_repeats`` (every timed pass), and the ``timing`` figure."""
        model, settings = inputs.model, inputs.session.settings
        items = _first_items(inputs, self.max_images)
        if not items:
            return AnalysisOutput(notes=[f"timing: no image of split '{settings.split}' holds an object: not timed"])
        model.eval()
        device = model.device
        objects = sum(len(item.objects) for item in items)
        context = {
            "device": device_name(device),
            "backbone": model.name,
            "input_size": model.preprocessing.img_size,
            "images_per_encoder_call": 1,
            "threads": torch.get_num_threads(),
        }
        embeddings = [inputs.session.cache.get(model, item.image) for item in items]
        repeats = []
        timed = self._passes(lambda k: model.embed_image(items[k].image), len(items), device, EMBEDDING)
        repeats += _records(ALL_PHASES, EMBEDDING, timed, len(items), objects)
        per_call = {EMBEDDING: 0}  # no decoder call
        for phase, state in inputs.decoders.items():
            with phase_decoder(model, state):
                for strategy in settings.strategies:
                    stage = _stage(inputs, strategy, items, embeddings)
                    timed = self._passes(stage, len(items), device, f"{phase} {strategy}")
                    repeats += _records(str(phase), strategy, timed, len(items), objects)
                    per_call[strategy] = _per_call(model, strategy, settings, embeddings[0])
        raw = pd.DataFrame(repeats, columns=list(REPEAT_COLUMNS))
        table = timing_table(raw, context, per_call, warmup=self.warmup)
        notes = [
            f"timing: {len(items)} images of split '{settings.split}' on {context['device']}, median of {self.repeats} "
            f"passes after {self.warmup} warm-up passes; the embedding includes preprocessing, the strategies start "
            "from the cached embedding"
        ]
        return AnalysisOutput(
            tables={"timing": table, "timing_repeats": raw}, figures={"timing": timing_figure(table)}, notes=notes
        )

    def _passes(
        self,
        work: Callable[[int], object],
        images: int,
        device: torch.device,
        what: str,
    ) -> list[float]:
        """Seconds of each timed pass of ``work`` (called with each image's index) over the images; the
        warm-up passes are run first and not returned.
        """
        seconds = []
        bar = tqdm(total=(self.warmup + self.repeats) * images, desc=f"timing {what}", unit="img")
        for run in range(self.warmup + self.repeats):
            total = 0.0
            for k in range(images):
                start = clock(device)
                work(k)
                total += clock(device) - start
                bar.update(1)
            if run >= self.warmup:
                seconds.append(total)
        bar.close()
        return seconds


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def device_name(device: torch.device) -> str:
    """The GPU's name (``torch.cuda.get_device_name``), else the CPU's model (``/proc/cpuinfo``, else platform)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or device.type


def _first_items(inputs: AnalysisInput, count: int) -> list[ImageItem]:
    """The first ``count`` images of the split that hold an object (scoring skips the others)."""
    items = []
    for index in range(len(inputs.dataset)):
        item = inputs.dataset[index]
        if item.objects:
            items.append(item)
        if len(items) == count:
            break
    return items


def _stage(
    inputs: AnalysisInput, strategy: str, items: list[ImageItem], embeddings: list[torch.Tensor]
) -> Callable[[int], object]:
    """What image ``k`` costs under ``strategy`` from its cached embedding, decoded as scoring decodes it (the
    saved prompts are looked up before, outside the timed call).
    """
    model, settings, prompts = inputs.model, inputs.session.settings, inputs.session.prompts
    compute = settings.compute
    autocast = {"device_type": model.device.type, "dtype": torch.bfloat16, "enabled": compute.bf16}
    if strategy == "S1":
        mode = EverythingMode(model, settings.everything, per_call=compute.prompts_per_call)

        def everything(k: int) -> object:
            with torch.autocast(**autocast):
                return mode(embeddings[k], items[k].image.shape[:2])

        return everything
    if strategy == INTERACTIVE:
        interactive = settings.interactive

        def start(mask: np.ndarray, key: str) -> Prompt:
            def make() -> Prompt:
                return start_prompt(mask, start=interactive.start, seed=prompts.seed, object_key=key)

            return check_start(prompts.get(mask, INTERACTIVE, key, make=make), interactive.start, key)

        starts = [[start(m, o.key) for o, m in zip(it.objects, it.masks, strict=True)] for it in items]

        def clicks(k: int) -> object:
            item = items[k]
            loop = ClickLoop(
                model,
                embeddings[k],
                starts[k],
                item.masks,
                object_keys=[o.key for o in item.objects],
                seed=prompts.seed,
                settings=interactive,
                multimask=settings.multimask,
                compute=compute,
            )
            with torch.autocast(**autocast):
                return [loop.step() for _ in range(interactive.clicks)]

        return clicks
    batches = [[prompts.get(m, strategy, o.key) for o, m in zip(it.objects, it.masks, strict=True)] for it in items]

    def prompted(k: int) -> object:
        item = items[k]
        return predict_scored(
            model,
            embeddings[k],
            batches[k],
            item.image.shape[:2],
            multimask=settings.multimask,
            compute=compute,
            gt_masks=item.masks,
        )

    return prompted


def _per_call(model: SamModel, strategy: str, settings: EvaluationSettings, embedding: torch.Tensor) -> int:
    """Prompts (S1: grid points) per decoder call under ``strategy``, as scoring sizes the calls."""
    fixed = settings.compute.prompts_per_call
    if strategy == "S1":
        return int(fixed or settings.everything.points_per_batch)
    return prompts_per_call(model.device, embedding, fixed)


def _records(phase: str, stage: str, seconds: list[float], images: int, objects: int) -> list[dict]:
    return [
        {
            "phase": phase,
            "stage": stage,
            "repeat": k,
            "seconds": s,
            "seconds_per_image": s / images,
            "seconds_per_object": s / objects,
            "images": images,
            "objects": objects,
        }
        for k, s in enumerate(seconds, start=1)
    ]


def timing_table(raw: pd.DataFrame, context: dict, per_call: dict, *, warmup: int) -> pd.DataFrame:
    """One row per (phase, stage) of ``raw`` (``timing_repeats``): the median over the repeats of the seconds
    per image and per object, the quartiles and range of the seconds per image, and the ``context`` columns;
    ``per_call``: prompts (S1: grid points) per decoder call by stage (0 for the embedding: no decoder call).
    """
    rows = []
    for (phase, stage), group in raw.groupby(["phase", "stage"], sort=False):
        per_image = group["seconds_per_image"].to_numpy(dtype=np.float64)
        q1, q3 = np.percentile(per_image, [25, 75])
        rows.append(
            {
                "phase": phase,
                "stage": stage,
                "seconds_per_image": float(np.median(per_image)),
                "seconds_per_object": float(np.median(group["seconds_per_object"].to_numpy(dtype=np.float64))),
                "seconds_q1": float(q1),
                "seconds_q3": float(q3),
                "seconds_min": float(per_image.min()),
                "seconds_max": float(per_image.max()),
                "images": int(group["images"].iloc[0]),
                "objects": int(group["objects"].iloc[0]),
                "repeats": len(group),
                "warmup": warmup,
                **context,
                "prompts_per_decoder_call": per_call[stage],
            }
        )
    return pd.DataFrame(rows, columns=list(TIMING_COLUMNS))


def timing_figure(table: pd.DataFrame) -> Figure:
    """Median seconds per image per stage (bars; whiskers: the range over the repeats), the embedding first,
    then the strategies, one colour per phase.
    """
    stages = list(dict.fromkeys(table["stage"]))
    names = phases(table[table["phase"] != ALL_PHASES])
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(stages) + 2.0), 3.8))
    handles, labels = [], []
    groups = [(ALL_PHASES, OTHER_COLOUR, "embedding (all phases)")] + [(p, colour(p), label(p)) for p in names]
    for phase, tint, name in groups:
        rows = table[table["phase"] == phase].set_index("stage")
        if rows.empty:
            continue
        offset = 0.0 if phase == ALL_PHASES else (names.index(phase) - (len(names) - 1) / 2) * width
        x = np.array([stages.index(s) for s in rows.index], dtype=float) + offset
        y = rows["seconds_per_image"].to_numpy(dtype=float)
        err = np.vstack([y - rows["seconds_min"].to_numpy(float), rows["seconds_max"].to_numpy(float) - y])
        bars = ax.bar(x, y, width=width, color=tint)
        ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt="none", ecolor="black", capsize=2, linewidth=0.8)
        handles.append(bars)
        labels.append(name)
    ax.set_xticks(range(len(stages)), stages)
    ax.set_ylabel("seconds per image (median)")
    ax.grid(axis="y", alpha=0.3)
    context = table.iloc[0]
    fig.suptitle(
        f"Seconds per image per stage: {context['backbone']} on {context['device']} (whiskers: min-max over repeats)",
        fontsize=10,
        x=0.02,
        ha="left",
    )
    legend_below(fig, handles, labels)
    return fig
