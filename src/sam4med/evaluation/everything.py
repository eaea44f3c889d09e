"""S1, SAM's automatic "everything" mode, run on a cached image embedding, and the mask matching of Eq. 1.

The masks are those ``segment_anything.SamAutomaticMaskGenerator`` makes (no crops), computed with
less work and in the same order. The generator decodes a grid of point prompts (three masks each),
upsamples every mask's logits to the original image, drops masks whose predicted IoU is not above
``pred_iou_thresh``, then those whose stability score is below ``stability_score_thresh``, boxes and
RLE-encodes the rest, runs box NMS, and decodes the RLEs back into masks. Here:

- the predicted-IoU filter comes first: it reads only the decoder's IoU head, so a mask that fails it
  is never upsampled (at SAM's thresholds most of them fail);
- before that, a prefilter: the IoU head of every grid point is computed with
  :func:`sam4med.models.shared_decoder.predict_iou` (the decoder's transformer with the work shared by
  all prompts of the image done once, and without the mask upscaling), and only the points with a mask
  whose predicted IoU lies above ``pred_iou_thresh - PREFILTER_MARGIN`` are decoded again by
  segment_anything's own decoder, whose outputs alone decide every filter. The prefilter's IoU equals
  the decoder's to about 1e-7 (tested to 1e-5), far inside the margin of 0.01 (0.05 under bfloat16
  autocast), so it never drops a point that SAM's generator would keep; it only saves decoding the
  points it would drop. Its IoU heads cost about a quarter of segment_anything's decoder per point, so
  it looks at every 8th grid point first and, where more than 3/4 of those pass (lenient filters, a
  model confident everywhere), sends every point to SAM's decoder without looking further;
- the stability score, thresholding and boxes are computed for the survivors only, with
  segment_anything's own functions, on the same upsampled logits (``Sam.postprocess_masks``, here
  :meth:`~sam4med.models.preprocessing.Preprocessing.logits_to_original`);
- masks are kept as arrays (the RLE round trip is lossless, so it is skipped), and NMS is
  torchvision's ``batched_nms`` with the generator's arguments;
- the decoder is called as the generator calls it: ``points_per_batch`` points per call (unless
  ``compute.prompts_per_call`` is set), float64 point coordinates, labels 1.

Several filter pairs on one decoding (:meth:`EverythingMode.generate`, the ``analysis=grid`` suite): the
grid is decoded once, with the prefilter and the predicted-IoU filter at the loosest ``pred_iou_thresh``
of the pairs, and every pair's filters, boxes and NMS are applied to those same outputs. A mask's
predicted IoU, upsampled logits and stability score do not depend on which other masks are decoded or
upsampled with it (up to the last float bits of the decoder's IoU, as with the call size), so each
pair gets the masks a run with that pair alone gives (``tests/analysis/test_grid.py``).

Only the image encoder is not run: the embedding comes from the embedding cache, so backbones whose
encoder is not SAM's ViT (LiteMedSAM's TinyViT, 256 x 256 input) work too. The reference, SAM's
generator on the same embedding, is :class:`~sam4med.evaluation.sam_generator.SamGenerator`;
``tests/evaluation/test_everything.py`` and ``benchmarks/everything_mode.py`` check the masks equal.

Matching (COSMOS Eq. 1): each ground-truth object takes, among all masks generated for its image,
the one with the highest Dice (ties: the first in the generator's order). An image where no mask
survives the filters gets an empty prediction for every object (Dice 0, IoU 0, HD = image diagonal).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from segment_anything import SamAutomaticMaskGenerator
from segment_anything.utils.amg import (
    MaskData,
    batched_mask_to_box,
    build_point_grid,
    calculate_stability_score,
    is_box_near_crop_edge,
    mask_to_rle_pytorch,
    rle_to_mask,
)
from torchvision.ops.boxes import batched_nms

from sam4med.models import shared_decoder
from sam4med.models.sam_model import SamModel

# a grid point is decoded by SAM's decoder when one of its masks' prefilter IoU exceeds pred_iou_thresh minus
# this; the prefilter runs in float32, and under bfloat16 autocast (compute.bf16) the decoder's own IoU
# moves by up to about 1e-2, so the margin widens there
PREFILTER_MARGIN = 0.01
PREFILTER_MARGIN_BF16 = 0.05
# The prefilter's IoU heads cost about a quarter of segment_anything's decoder per point (LiteMedSAM on a
# 2-core CPU: about 29 against 120-145 ms), so it saves time only while fewer than about 3/4 of the points pass it.
# It first looks at every PREFILTER_SAMPLE-th point of the grid; where more than PREFILTER_GIVE_UP of those
# pass, every point goes to SAM's decoder without the prefilter.
PREFILTER_SAMPLE = 8
PREFILTER_GIVE_UP = 0.75


@dataclass(frozen=True)
class EverythingSettings:
    """Settings of the automatic mask generator; the defaults are ``SamAutomaticMaskGenerator``'s.

    Attributes:
        points_per_side: the grid has ``points_per_side`` x ``points_per_side`` point prompts.
        points_per_batch: point prompts decoded per decoder call.
        pred_iou_thresh: masks whose predicted IoU is not above this are dropped.
        stability_score_thresh: masks whose stability score is below this are dropped.
        stability_score_offset: logit offset of the stability score.
        box_nms_thresh: box IoU above which the lower-scored of two masks is dropped.
        min_mask_region_area: if > 0, holes and islands smaller than this are removed (SAM: 0).
    """

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0


@dataclass(frozen=True)
class MaskFilter:
    """One (predicted-IoU, stability) filter pair of S1, as :class:`EverythingSettings` has them.

    Attributes:
        pred_iou_thresh: masks whose predicted IoU is not above this are dropped (0: no such filter).
        stability_score_thresh: masks whose stability score is below this are dropped (0: no such filter).
    """

    pred_iou_thresh: float
    stability_score_thresh: float

    @classmethod
    def of(cls, settings: EverythingSettings) -> MaskFilter:
        """The filter pair of ``settings``."""
        return cls(settings.pred_iou_thresh, settings.stability_score_thresh)


@dataclass(frozen=True)
class GeneratedMasks:
    """The masks everything mode produced for one image.

    Attributes:
        masks: K x H x W bool masks in original pixels (K may be 0).
        predicted_iou: K predicted IoU of each mask.
        stability_score: K stability score of each mask.
    """

    masks: np.ndarray
    predicted_iou: np.ndarray
    stability_score: np.ndarray


@dataclass(frozen=True)
class MatchedMasks:
    """One generated mask per ground-truth object (Eq. 1).

    Attributes:
        masks: N x H x W bool; all False for an object of an image without generated masks.
        index: N index into the generated masks, -1 where there was none.
        scores: N predicted IoU of the matched mask (0.0 where there was none).
    """

    masks: np.ndarray
    index: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class FilteredMasks:
    """The masks of one image under several filter pairs, from one decoding (:meth:`EverythingMode.generate`).

    Attributes:
        masks: per filter pair (in the order given), the masks a run with that pair alone generates.
        filter_seconds: per filter pair, the seconds of its own work: its filters, boxes, NMS, small regions.
        seconds: the seconds of the whole call: the work the pairs share (prefilter, decoding, upsampling and
            stability scores of the masks above the loosest IoU threshold) and every pair's own.
    """

    masks: list[GeneratedMasks]
    filter_seconds: list[float]
    seconds: float


def _clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the device's queued work is done (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def _no_clock(device: torch.device) -> float:
    """No reading (untimed calls): 0, without waiting for the device."""
    return 0.0


class EverythingMode:
    """S1 on cached embeddings: ``mode(embedding, (H, W))`` gives the generated masks of one image.

    Args:
        model: the model (only its prompt encoder and mask decoder run).
        settings: generator settings (``EverythingSettings()`` are SAM's defaults).
        per_call: grid points per decoder call; None: ``settings.points_per_batch``, SAM's batch (so
            decoder outputs are bit-identical to the generator's when ``prefilter`` is off). Masks do not
            depend on it.
        prefilter: decode with SAM's decoder only the grid points that the shared-work IoU prefilter
            keeps (see the module docstring); off: every point, as the generator. Masks do not depend on it.
    """

    def __init__(
        self, model: SamModel, settings: EverythingSettings, *, per_call: int | None = None, prefilter: bool = True
    ) -> None:
        self.model = model
        self.settings = settings
        self.per_call = per_call
        self.prefilter = prefilter
        self.grid = build_point_grid(settings.points_per_side)  # P x 2, XY in [0, 1]

    def _candidates(
        self, points: torch.Tensor, embedding: torch.Tensor, per_call: int, pred_iou: float
    ) -> torch.Tensor:
        """Of n points (n x 2 XY, model pixels), those with a multimask output that may pass the IoU filter
        ``pred_iou``.

        Every ``PREFILTER_SAMPLE``-th point (spread over the whole grid) is looked at first; where more
        than ``PREFILTER_GIVE_UP`` of those pass, all points are returned without looking further.
        """
        sample = torch.zeros(len(points), dtype=torch.bool, device=points.device)
        sample[::PREFILTER_SAMPLE] = True
        keep = torch.ones(len(points), dtype=torch.bool, device=points.device)
        keep[sample] = self._may_pass(points[sample], embedding, per_call, pred_iou)
        if keep[sample].float().mean() > PREFILTER_GIVE_UP:
            return points  # most points pass: the prefilter would cost more than it saves
        keep[~sample] = self._may_pass(points[~sample], embedding, per_call, pred_iou)
        return points[keep]

    def _may_pass(self, points: torch.Tensor, embedding: torch.Tensor, per_call: int, pred_iou: float) -> torch.Tensor:
        """Whether a multimask output of each of n points (n x 2 XY) may pass: prefilter IoU above
        ``pred_iou`` minus the margin (n bools).
        """
        model = self.model
        labels = torch.ones(len(points), dtype=torch.int, device=points.device)
        image_pe = model.prompt_encoder.get_dense_pe()
        autocast = torch.is_autocast_enabled(points.device.type)
        threshold = pred_iou - (PREFILTER_MARGIN_BF16 if autocast else PREFILTER_MARGIN)
        passes = torch.zeros(len(points), dtype=torch.bool, device=points.device)
        with torch.autocast(points.device.type, enabled=False):
            for i in range(0, len(points), per_call):
                sparse, dense = model.prompt_encoder(
                    points=(points[i : i + per_call, None, :], labels[i : i + per_call, None]), boxes=None, masks=None
                )
                no_mask = dense[:1]  # the same for every point prompt
                iou = shared_decoder.predict_iou(model.mask_decoder, embedding, image_pe, no_mask, sparse.float())
                passes[i : i + per_call] = (iou[:, 1:] > threshold).any(dim=1)
        return passes

    def _decode(self, points: torch.Tensor, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (n x 3 x h x w) and IoU (n x 3) of n points (n x 2 XY, model pixels), called as SamPredictor does."""
        model = self.model
        labels = torch.ones(len(points), dtype=torch.int, device=points.device)
        sparse, dense = model.prompt_encoder(points=(points[:, None, :], labels[:, None]), boxes=None, masks=None)
        logits, iou = model.mask_decoder(
            image_embeddings=embedding,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )
        return logits.float(), iou.float()  # float32 also under bf16 autocast

    def _survivors(
        self,
        logits: torch.Tensor,
        iou: torch.Tensor,
        size: tuple[int, int],
        filters: list[MaskFilter],
        clock: Callable[[torch.device], float],
    ) -> tuple[list[dict[str, torch.Tensor]], list[float]]:
        """Filter the n x 3 decoder outputs of one call under each filter pair: per pair, masks (k x H x W
        bool), iou, stability, boxes (XYXY); and per pair the seconds of its own filtering (by ``clock``).

        Only the masks above the loosest predicted-IoU threshold are upsampled, once for every pair.
        """
        s = self.settings
        logits, iou = logits.flatten(0, 1), iou.flatten(0, 1)
        loosest = _loosest(filters)
        if loosest > 0.0:
            keep = iou > loosest
            logits, iou = logits[keep], iou[keep]
        # the upsampling of each mask is independent of the others, so survivors alone give the same logits
        upsampled = self.model.preprocessing.logits_to_original(logits[:, None], size)[:, 0]
        mask_threshold = 0.0  # segment_anything.Sam.mask_threshold
        stability = calculate_stability_score(upsampled, mask_threshold, s.stability_score_offset)
        whole = [0, 0, size[1], size[0]]
        out, seconds = [], []
        for pair in filters:
            start = clock(iou.device)
            keep = torch.ones_like(iou, dtype=torch.bool)
            if pair.pred_iou_thresh > 0.0:
                keep &= iou > pair.pred_iou_thresh
            if pair.stability_score_thresh > 0.0:
                keep &= stability >= pair.stability_score_thresh
            masks = upsampled[keep] > mask_threshold
            boxes = batched_mask_to_box(masks)
            edge = ~is_box_near_crop_edge(boxes, whole, whole)  # never drops a mask without crops; kept as SAM has it
            out.append(
                {"masks": masks[edge], "iou": iou[keep][edge], "stability": stability[keep][edge], "boxes": boxes[edge]}
            )
            seconds.append(clock(iou.device) - start)
        return out, seconds

    @torch.no_grad()
    def __call__(self, embedding: torch.Tensor, original_size: tuple[int, int]) -> GeneratedMasks:
        """Masks of the image whose C x h x w ``embedding`` is given; ``original_size`` is its (H, W).

        Returns the masks in the order SAM's generator returns them (NMS order: highest predicted IoU first).
        """
        return self.generate(embedding, original_size, [MaskFilter.of(self.settings)]).masks[0]

    @torch.no_grad()
    def generate(
        self,
        embedding: torch.Tensor,
        original_size: tuple[int, int],
        filters: list[MaskFilter],
        *,
        timed: bool = False,
    ) -> FilteredMasks:
        """The masks of one image under each filter pair (this mode's own filters are not used), decoding
        the grid once (see the module docstring); the rest of the settings (grid, offset, NMS, small regions)
        are this mode's. Each pair's masks are in the generator's order, as :meth:`__call__` gives them.

        ``timed``: measure the seconds (on CUDA waiting for the device before each reading); otherwise they
        are 0 and the device is never waited for.
        """
        if not filters:
            raise ValueError("generate needs at least one filter pair")
        device = self.model.device
        clock = _clock if timed else _no_clock
        started = clock(device)
        size = (int(original_size[0]), int(original_size[1]))
        points = self.grid * np.array(size)[None, ::-1]  # XY in original pixels, as the generator scales
        model_points = torch.as_tensor(self.model.preprocessing.coords_to_model(points, size), device=device)
        image = embedding[None].to(device, torch.float32)
        per_call = self.per_call or self.settings.points_per_batch
        loosest = _loosest(filters)
        if self.prefilter and loosest > 0.0:
            model_points = self._candidates(model_points, image, per_call, loosest)
        parts: list[list[dict[str, torch.Tensor]]] = [[] for _ in filters]
        own = [0.0] * len(filters)
        for i in range(0, len(model_points), per_call):
            logits, iou = self._decode(model_points[i : i + per_call], image)
            found, seconds = self._survivors(logits, iou, size, filters, clock)
            for k, part in enumerate(found):
                parts[k].append(part)
                own[k] += seconds[k]
        masks = []
        for k, found in enumerate(parts):
            start = clock(device)
            masks.append(self._finish(found, size))
            own[k] += clock(device) - start
        return FilteredMasks(masks=masks, filter_seconds=own, seconds=clock(device) - started)

    def _finish(self, parts: list[dict[str, torch.Tensor]], size: tuple[int, int]) -> GeneratedMasks:
        """NMS (and small-region removal) over the survivors of every call of one filter pair."""
        if not parts:  # the prefilter left no point: no mask passes the IoU filter
            empty = np.zeros((0, *size), dtype=bool)
            return GeneratedMasks(masks=empty, predicted_iou=np.zeros(0), stability_score=np.zeros(0))
        found = {key: torch.cat([p[key] for p in parts]) for key in parts[0]}
        boxes = found["boxes"].float()
        keep = batched_nms(boxes, found["iou"], torch.zeros_like(boxes[:, 0]), self.settings.box_nms_thresh)
        found = {key: value[keep] for key, value in found.items()}
        if self.settings.min_mask_region_area > 0:
            found = _remove_small_regions(found, self.settings)
        return GeneratedMasks(
            masks=found["masks"].cpu().numpy(),
            predicted_iou=found["iou"].double().cpu().numpy(),
            stability_score=found["stability"].double().cpu().numpy(),
        )


def _loosest(filters: list[MaskFilter]) -> float:
    """The predicted-IoU threshold every pair's masks pass: the lowest (0: some pair has no IoU filter)."""
    return min(max(f.pred_iou_thresh, 0.0) for f in filters)


def _remove_small_regions(found: dict[str, torch.Tensor], settings: EverythingSettings) -> dict[str, torch.Tensor]:
    """SAM's small-region post-processing (its own code, on RLEs as it expects) and the NMS that follows it."""
    if len(found["masks"]) == 0:
        return found
    data = MaskData(
        rles=mask_to_rle_pytorch(found["masks"]), boxes=found["boxes"], index=torch.arange(len(found["masks"]))
    )
    data = SamAutomaticMaskGenerator.postprocess_small_regions(
        data,
        settings.min_mask_region_area,
        max(settings.box_nms_thresh, 0.7),  # 0.7: the generator's crop_nms_thresh
    )
    index = torch.as_tensor(data["index"])
    masks = torch.as_tensor(np.stack([rle_to_mask(r) for r in data["rles"]])) if data["rles"] else found["masks"][:0]
    return {
        "masks": masks,
        "iou": found["iou"][index],
        "stability": found["stability"][index],
        "boxes": found["boxes"][index],
    }


def dice_matrix(generated: np.ndarray, gt: np.ndarray, chunk: int = 16) -> np.ndarray:
    """N x K Dice of every ground-truth mask (N x H x W) against every generated mask (K x H x W).

    Both empty gives 1.0, as :func:`sam4med.metrics.dice`; the values equal that function's.
    """
    g = gt.reshape(len(gt), -1)
    # float32 sums of 0/1 are exact below 2**24 pixels; larger images take float64
    dtype = np.float32 if g.shape[1] < 2**24 else np.float64
    gf = g.astype(dtype)
    g_sum = g.sum(axis=1).astype(np.int64)
    out = np.empty((len(gt), len(generated)), dtype=np.float64)
    for start in range(0, len(generated), chunk):
        part = generated[start : start + chunk].reshape(-1, g.shape[1])
        intersection = np.rint(gf @ part.T.astype(dtype)).astype(np.int64)
        total = g_sum[:, None] + part.sum(axis=1).astype(np.int64)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[:, start : start + chunk] = np.where(total > 0, 2.0 * intersection / np.maximum(total, 1), 1.0)
    return out


def match_masks(generated: GeneratedMasks, gt_masks: np.ndarray) -> MatchedMasks:
    """For each ground-truth object (N x H x W bool), the generated mask with the highest Dice (Eq. 1)."""
    n = len(gt_masks)
    if len(generated.masks) == 0:
        return MatchedMasks(
            masks=np.zeros_like(gt_masks, dtype=bool), index=np.full(n, -1, dtype=np.int64), scores=np.zeros(n)
        )
    index = dice_matrix(generated.masks, gt_masks).argmax(axis=1)  # first maximum on ties
    return MatchedMasks(masks=generated.masks[index], index=index, scores=generated.predicted_iou[index])
