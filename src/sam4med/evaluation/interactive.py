"""Iterative clicks (strategy ``I``): each next click placed from the model's own errors (Mazurowski et al.,
Algorithm 1), scored after every click as rows ``I@1`` ... ``I@K``.

Per object, click 1 is the start prompt (:func:`start_prompt`: the mode-1 point, or S5's tight box) and
every further click goes to the point of the largest region of the current error (false positives and
false negatives of the chosen mask at original resolution, :func:`~sam4med.prompts.clicks.next_click`).
Click ``k`` decodes the start prompt with every click placed so far (and, with ``mask_input``, the chosen
low-resolution logits of click ``k - 1`` as SAM's mask prompt) and picks one of the outputs by the run's
mask selection (``single``, ``confidence``, ``oracle``) at every click, so an ``I@1`` row is scored like
the rows of S2-S6 of the same run. An object whose chosen mask equals its ground truth gets no further
click: its later rows repeat that mask.

One image embedding serves every click, and each click is one batched decoder call over the image's
objects still clicking (in calls of ``compute.prompts_per_call`` prompts where that is set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from sam4med.compute import Compute
from sam4med.errors import ConfigError
from sam4med.evaluation.decoding import decode_in_calls
from sam4med.evaluation.predict import prompts_to_tensors
from sam4med.models.multimask import Multimask, choose
from sam4med.models.sam_model import DecoderOutput, SamModel
from sam4med.prompts.clicks import Click, next_click
from sam4med.prompts.generate import make_prompt
from sam4med.prompts.prompt import Prompt

INTERACTIVE = "I"  # the strategy name in evaluation.strategies
STARTS = ("point", "box")


@dataclass(frozen=True)
class InteractiveSettings:
    """How strategy ``I`` clicks (``evaluation.interactive``).

    Attributes:
        clicks: clicks per object, the start prompt included: rows ``I@1`` ... ``I@<clicks>``.
        start: the first prompt: ``point`` (the foreground pixel of the largest region farthest from its
            boundary, Mazurowski's mode 1) or ``box`` (S5's tight box of the whole object).
        mask_input: give each click after the first the chosen low-resolution logits of the click before
            as SAM's mask prompt (Mazurowski's Algorithm 1 gives points only: false).
    """

    clicks: int = 9
    start: str = "point"
    mask_input: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.clicks, bool) or not isinstance(self.clicks, int) or self.clicks < 1:
            raise ConfigError(
                f"evaluation.interactive.clicks={self.clicks}: must be an integer >= 1 (clicks per object, the start "
                "prompt included)"
            )
        if self.start not in STARTS:
            raise ConfigError(f"evaluation.interactive.start={self.start}: must be one of {', '.join(STARTS)}")
        if not isinstance(self.mask_input, bool):
            raise ConfigError(f"evaluation.interactive.mask_input={self.mask_input}: must be true or false")

    def describe(self) -> str:
        """``clicks=9, start=point, mask_input=False``: the settings in one line (summary, report)."""
        return ", ".join(f"{k}={v}" for k, v in asdict(self).items())


def click_strategy(click: int) -> str:
    """The row strategy of click number ``click`` (1-based): ``I@1``, ``I@2`` ..."""
    return f"{INTERACTIVE}@{click}"


def row_strategies(strategy: str, clicks: int) -> tuple[str, ...]:
    """The strategies of the rows ``strategy`` writes: ``I@1`` ... ``I@<clicks>`` for ``I``, else itself."""
    if strategy == INTERACTIVE:
        return tuple(click_strategy(k) for k in range(1, clicks + 1))
    return (strategy,)


def start_prompt(mask: np.ndarray, *, start: str, seed: int, object_key: str) -> Prompt:
    """The start prompt (click 1) of the object whose ground truth is ``mask`` (H x W bool, not empty):
    mode M1's prompt (``point``) or S5's (``box``) for the same seed and object, as strategy ``I``.
    """
    made = make_prompt(mask, "M1" if start == "point" else "S5", seed=seed, object_key=object_key)
    return replace(made, strategy=INTERACTIVE)


def check_start(prompt: Prompt, start: str, object_key: str) -> Prompt:
    """``prompt`` if it is a start prompt of kind ``start`` (one positive point, or a box alone), else a
    :class:`ConfigError` (a prompts file of another ``interactive.start``).
    """
    is_box = prompt.box is not None and not prompt.point_coords
    is_point = prompt.box is None and prompt.point_labels == (1,)
    if (start == "box" and not is_box) or (start == "point" and not is_point):
        raise ConfigError(
            f"object {object_key}: the saved I prompt is not a start {start} (the prompts were saved with another "
            f"evaluation.interactive.start); use a new run folder, or evaluation.interactive.start="
            f"{'point' if start == 'box' else 'box'}"
        )
    return prompt


@dataclass(frozen=True)
class ClickRecord:
    """What one object was given in one phase: the start prompt, then the clicks placed from its errors.

    Attributes:
        object_key: the object.
        start: the start prompt (click 1), as saved in ``prompts.json`` under strategy ``I``.
        clicks: clicks 2, 3 ... in order (fewer than ``clicks - 1`` when a mask became exact).
    """

    object_key: str
    start: Prompt
    clicks: tuple[Click, ...]

    def to_dict(self) -> dict:
        """JSON-ready form; clicks as ``[x, y, label]``."""
        return {
            "object_key": self.object_key,
            "start": self.start.to_dict(),
            "clicks": [c.to_list() for c in self.clicks],
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClickRecord:
        """Inverse of :meth:`to_dict`."""
        return cls(
            object_key=str(data["object_key"]),
            start=Prompt.from_dict(data["start"]),
            clicks=tuple(Click.from_list(c) for c in data["clicks"]),
        )

    def prompt_at(self, click: int) -> Prompt:
        """The prompt decoded at click number ``click``: the start prompt plus clicks 2 ... ``click``."""
        return clicked_prompt(self.start, self.clicks[: click - 1], click)


def clicked_prompt(start: Prompt, clicks: Sequence[Click], click: int) -> Prompt:
    """The prompt of click number ``click``: the start prompt's box and points, then the ``clicks`` placed."""
    return Prompt(
        strategy=click_strategy(click),
        point_coords=start.point_coords + tuple((c.x, c.y) for c in clicks),
        point_labels=start.point_labels + tuple(c.label for c in clicks),
        box=start.box,
        seed=start.seed,
    )


@dataclass(frozen=True)
class ClickStep:
    """The chosen masks of an image's N objects after one click.

    Attributes:
        click: the click number (1: the start prompt).
        masks: N x H x W bool chosen masks in original pixels.
        scores: N predicted IoU of the chosen masks.
    """

    click: int
    masks: np.ndarray
    scores: np.ndarray


def decode_prompts(
    model: SamModel,
    embedding: torch.Tensor,
    prompts: Sequence[Prompt],
    original_size: tuple[int, int],
    *,
    multimask_output: bool,
    mask_input: torch.Tensor | None = None,
    per_call: int | None = None,
    shared_work: bool = False,
) -> DecoderOutput:
    """Decoder outputs of ``prompts`` (all with the same number of points) in calls of ``per_call`` prompts.

    ``mask_input``: N x 1 x h x w low-resolution logits given as SAM's mask prompt, or None. The outputs
    are float32 (also under bf16 autocast): N x M x h x w logits and N x M predicted IoU.
    """
    coords, labels, boxes = prompts_to_tensors(prompts, model, original_size)
    return decode_in_calls(
        model,
        embedding,
        point_coords=coords,
        point_labels=labels,
        boxes=boxes,
        multimask_output=multimask_output,
        per_call=per_call,
        shared_work=shared_work,
        mask_input=mask_input,
    )


class ClickLoop:
    """The clicks of the N objects of one image, one :meth:`step` per click.

    Args:
        model: the model (its decoder zero-shot or fine-tuned).
        embedding: C x h x w embedding of the image (computed once, used by every click).
        starts: the N start prompts (see :func:`start_prompt`), all of one kind.
        gt_masks: N x H x W bool ground truth, in the order of ``starts``.
        object_keys: the N object keys (they seed the tie-breaks of the clicks).
        seed: the run's prompt seed.
        settings: clicks, start and mask input.
        multimask: the run's mask selection, applied at every click.
        compute: decoder call size and shared-work decoder (the bf16 autocast is the caller's).
    """

    def __init__(
        self,
        model: SamModel,
        embedding: torch.Tensor,
        starts: Sequence[Prompt],
        gt_masks: np.ndarray,
        *,
        object_keys: Sequence[str],
        seed: int,
        settings: InteractiveSettings,
        multimask: Multimask,
        compute: Compute,
    ) -> None:
        self.model, self.embedding, self.gt = model, embedding, np.asarray(gt_masks, dtype=bool)
        self.starts, self.keys, self.seed = tuple(starts), tuple(object_keys), seed
        self.settings, self.multimask, self.compute = settings, multimask, compute
        self.size = self.gt.shape[1:]
        n = len(self.starts)
        self.clicks: list[list[Click]] = [[] for _ in range(n)]
        self.active = np.ones(n, dtype=bool)  # objects still clicking
        self.masks = np.zeros_like(self.gt)
        self.scores = np.zeros(n, dtype=np.float64)
        self.low_res: torch.Tensor | None = None  # N x 1 x h x w chosen logits of the last click
        self.click = 0

    def records(self) -> list[ClickRecord]:
        """The start prompt and clicks of every object so far."""
        return [ClickRecord(k, s, tuple(c)) for k, s, c in zip(self.keys, self.starts, self.clicks, strict=True)]

    @torch.no_grad()
    def step(self) -> ClickStep:
        """Place the next click of every object still clicking (none at click 1), decode, choose."""
        self.click += 1
        if self.click > self.settings.clicks:
            raise RuntimeError(f"all {self.settings.clicks} clicks are done")
        if self.click > 1:
            for i in np.flatnonzero(self.active):
                placed = next_click(
                    self.masks[i], self.gt[i], seed=self.seed, object_key=self.keys[i], click=self.click
                )
                if placed is None:  # the mask is the ground truth: nothing left to correct
                    self.active[i] = False
                else:
                    self.clicks[i].append(placed)
        index = np.flatnonzero(self.active)
        if len(index):
            prompts = [clicked_prompt(self.starts[i], self.clicks[i], self.click) for i in index]
            mask_input = None
            if self.settings.mask_input and self.low_res is not None:
                mask_input = self.low_res[torch.as_tensor(index)]
            out = decode_prompts(
                self.model,
                self.embedding,
                prompts,
                self.size,
                multimask_output=self.multimask.multimask_output,
                mask_input=mask_input,
                per_call=self.compute.prompts_per_call,
                shared_work=self.compute.shared_decoder,
            )
            logits = self.model.preprocessing.logits_to_original(out.low_res_logits, self.size)
            candidates = (logits > 0).cpu().numpy()  # n x M x H x W
            scores = out.iou_predictions.cpu().numpy()
            choice = choose(self.multimask, candidates, scores, self.gt[index])
            rows = np.arange(len(index))
            self.masks[index] = candidates[rows, choice]
            self.scores[index] = scores[rows, choice]
            if self.settings.mask_input:
                chosen = out.low_res_logits[torch.as_tensor(rows), torch.as_tensor(choice)][:, None]
                if self.low_res is None:
                    self.low_res = torch.zeros((len(self.keys), *chosen.shape[1:]), dtype=chosen.dtype)
                self.low_res[torch.as_tensor(index)] = chosen.cpu()
        return ClickStep(click=self.click, masks=self.masks.copy(), scores=self.scores.copy())
