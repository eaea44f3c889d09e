"""Everything mode (S1): ours against segment_anything's SamAutomaticMaskGenerator, same embedding and settings.

    python -m benchmarks.everything_mode [--model litemedsam|vit_b|tiny] [--grids 16 32] [--images 1] [--repeats 1]

For each grid size and image both generators run on the same cached embedding with SAM's default
filters (interleaved, medians). Reports seconds per image of each, their ratio, whether the generated
masks and the Eq. 1 matched masks are identical, and the largest predicted-IoU difference. Both decode
``points_per_batch`` = 64 points per call (SAM's default).

``vit_b`` is SAM ViT-B's architecture (1024 input) with LiteMedSAM's decoder weights on LiteMedSAM's
embedding, so that masks pass SAM's filters as with trained weights (a random decoder's masks all fail
the predicted-IoU filter, which would flatter ours). ``--sam-batch`` also times SAM's generator at
another ``points_per_batch``; ``--pred-iou-thresh`` and ``--stability-thresh`` relax SAM's filters.
"""

import argparse
from dataclasses import replace
from functools import partial

import numpy as np
import torch

from benchmarks.common import MODELS, build_model, colin27_items, interleaved, report
from sam4med.evaluation.everything import EverythingMode, EverythingSettings, match_masks
from sam4med.evaluation.sam_generator import SamGenerator


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="litemedsam", choices=MODELS)
    parser.add_argument("--grids", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--images", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--pred-iou-thresh", type=float, default=0.88, help="SAM's default: 0.88")
    parser.add_argument("--stability-thresh", type=float, default=0.95, help="SAM's default: 0.95")
    parser.add_argument("--sam-batch", type=int, help="also time SAM's generator at this points_per_batch")
    args = parser.parse_args()
    model = build_model(args.model)
    items = colin27_items(args.images, first=24)
    rows = []
    for grid in args.grids:
        settings = EverythingSettings(
            points_per_side=grid, pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_thresh
        )
        for item in items:
            embedding = model.embed_image(item.image) if args.model != "vit_b" else _lite_embedding(item.image)
            size = item.image.shape[:2]
            ours, sam = EverythingMode(model, settings), SamGenerator(model, settings)
            sides = {"ours": partial(ours, embedding, size), "sam": partial(sam, embedding, size)}
            if args.sam_batch:
                sam_small = SamGenerator(model, replace(settings, points_per_batch=args.sam_batch))
                sides[f"sam_batch{args.sam_batch}"] = partial(sam_small, embedding, size)
            # warm-up on a 4 x 4 grid (a full warm-up run of SAM's generator at 32 x 32 takes minutes on a CPU)
            warm = replace(settings, points_per_side=4)
            EverythingMode(model, warm)(embedding, size), SamGenerator(model, warm)(embedding, size)
            seconds = interleaved(sides, args.repeats, warmup=False)
            a, b = ours(embedding, size), sam(embedding, size)
            same = a.masks.shape == b.masks.shape and bool(np.array_equal(a.masks, b.masks))
            matched_same = bool(np.array_equal(match_masks(a, item.masks).masks, match_masks(b, item.masks).masks))
            iou_diff = float(np.abs(a.predicted_iou - b.predicted_iou).max()) if same and len(a.masks) else 0.0
            row = {
                "model": args.model,
                "grid": grid,
                "image": item.record.image_id,
                "masks": len(b.masks),
                "ours_s": seconds["ours"],
                "sam_s": seconds["sam"],
                "speedup": seconds["sam"] / seconds["ours"],
                "masks_identical": same,
                "matched_identical": matched_same,
                "max_iou_diff": iou_diff,
            }
            if args.sam_batch:
                row[f"sam_batch{args.sam_batch}_s"] = seconds[f"sam_batch{args.sam_batch}"]
                row[f"speedup_vs_batch{args.sam_batch}"] = seconds[f"sam_batch{args.sam_batch}"] / seconds["ours"]
            rows.append(row)
            print(row, flush=True)
    columns = ["model", "grid", "image", "masks", "ours_s", "sam_s", "speedup", "masks_identical", "matched_identical"]
    if args.sam_batch:
        columns += [f"sam_batch{args.sam_batch}_s", f"speedup_vs_batch{args.sam_batch}"]
    extra = {"points_per_call": EverythingSettings().points_per_batch, "repeats": args.repeats}
    relaxed = (args.pred_iou_thresh, args.stability_thresh) != (0.88, 0.95)
    extra.update(pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_thresh)
    report(f"everything_mode_{args.model}{'_relaxed' if relaxed else ''}", rows, columns, extra)


_LITE = []


def _lite_embedding(image: np.ndarray) -> torch.Tensor:
    """For ``vit_b`` (random encoder, LiteMedSAM's decoder): the LiteMedSAM embedding its decoder was trained on."""
    if not _LITE:
        _LITE.append(build_model("litemedsam"))
    return _LITE[0].embed_image(image)


if __name__ == "__main__":
    main()
