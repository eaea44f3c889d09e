"""segment_anything's attention against scaled-dot-product attention (``compute.sdpa``), measured in one run.

    python -m benchmarks.attention [--model vit_b_random|vit_b|litemedsam|tiny] [--prompts 32] [--repeats 3]

Two parts, each timed interleaved (segment_anything's layers, then the same model switched to SDPA by
:func:`sam4med.models.sdpa.use_sdpa`, and back, ``repeats`` times; medians):

- image encoder: seconds per image of one Colin27 slice (only for ViT encoders; LiteMedSAM's TinyViT
  has attention of its own and is not switched);
- mask decoder: milliseconds per prompt of ``--prompts`` random boxes in one call.

Reports the ratio of each (segment_anything / SDPA) and the largest absolute output difference.
"""

import argparse

import numpy as np
import torch

from benchmarks.common import MODELS, build_model, colin27_items, interleaved, report
from sam4med.models import sdpa


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="vit_b_random", choices=MODELS)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = build_model(args.model)
    item = colin27_items(1, first=24)[0]
    size = item.image.shape[:2]
    image = model.preprocessing.image_to_tensor(item.image)[None]
    rng = np.random.default_rng(0)
    corners = np.sort(rng.uniform(0, min(size), (args.prompts, 2, 2)), axis=1).reshape(args.prompts, 4)
    boxes = torch.as_tensor(model.preprocessing.boxes_to_model(corners, size), dtype=torch.float32)
    rows = []
    with torch.no_grad():
        embedding = model.encode(image)[0]
        parts = {
            "decoder": lambda: (
                model.decode(
                    embedding, point_coords=None, point_labels=None, boxes=boxes, multimask_output=True
                ).low_res_logits
            )
        }
        if any(isinstance(m, sdpa.image_encoder.Attention) for m in model.image_encoder.modules()):  # a ViT
            parts = {"image encoder": lambda: model.encode(image), **parts}
        for part, run in parts.items():
            module = model.image_encoder if part == "image encoder" else model.mask_decoder
            outputs = {}

            def side(on: bool, module=module, run=run, outputs=outputs):
                def go():
                    sdpa.use_sdpa(module, on)
                    outputs[on] = run()

                return go

            seconds = interleaved({"sam": side(False), "sdpa": side(True)}, args.repeats)
            sdpa.use_sdpa(module, on=False)
            per = 1 if part == "image encoder" else args.prompts
            unit = 1.0 if part == "image encoder" else 1000.0
            rows.append(
                {
                    "model": args.model,
                    "part": part,
                    "unit": "s / image" if part == "image encoder" else "ms / prompt",
                    "sam": seconds["sam"] / per * unit,
                    "sdpa": seconds["sdpa"] / per * unit,
                    "sam/sdpa": seconds["sam"] / seconds["sdpa"],
                    "largest difference": float((outputs[True] - outputs[False]).abs().max()),
                }
            )
    report(f"attention_{args.model}", rows, list(rows[0]), {"prompts": args.prompts, "repeats": args.repeats})


if __name__ == "__main__":
    main()
