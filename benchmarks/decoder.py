"""Our decoding against segment_anything's predictor on the same prompts: time and largest logit difference.

    python -m benchmarks.decoder [--model litemedsam|vit_b|vit_b_random|tiny] [--prompts 4 32 96] [--repeats 3]

All sides run the same ``MaskDecoder`` weights on one image embedding with the same box prompts:
ours is :func:`~sam4med.evaluation.decoding.decode_in_calls` (calls sized for the device) with
segment_anything's decoder (``compute.shared_decoder=false``, the default) and with the shared-work
decoder (:mod:`sam4med.models.shared_decoder`, ``compute.shared_decoder=true``); the reference is
``SamPredictor.predict_torch`` (all prompts in one call, as segment_anything does it). Reports
milliseconds per prompt of each, the ratios to SAM's, and the largest absolute logit difference.
"""

import argparse

import numpy as np
import torch
from segment_anything import SamPredictor

from benchmarks.common import MODELS, build_model, colin27_items, interleaved, report
from sam4med.evaluation.decoding import decode_in_calls, prompts_per_call
from sam4med.evaluation.sam_generator import embedding_only_sam


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="litemedsam", choices=MODELS)
    parser.add_argument("--prompts", type=int, nargs="+", default=[4, 32, 96])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = build_model(args.model)
    item = colin27_items(1, first=24)[0]
    embedding = model.embed_image(item.image)
    size = item.image.shape[:2]
    predictor = SamPredictor(embedding_only_sam(model))
    predictor.original_size, predictor.input_size = size, model.preprocessing.resized_shape(size)
    predictor.features, predictor.is_image_set = embedding[None], True
    rng = np.random.default_rng(0)
    rows = []
    for count in args.prompts:
        corners = np.sort(rng.uniform(0, min(size), (count, 2, 2)), axis=1).reshape(count, 4)  # XYXY, image pixels
        boxes = torch.as_tensor(model.preprocessing.boxes_to_model(corners, size), dtype=torch.float32)

        def ours(boxes=boxes):
            with torch.no_grad():
                return decode_in_calls(
                    model, embedding, point_coords=None, point_labels=None, boxes=boxes, multimask_output=False
                ).low_res_logits

        def shared(boxes=boxes):
            with torch.no_grad():
                return decode_in_calls(
                    model,
                    embedding,
                    point_coords=None,
                    point_labels=None,
                    boxes=boxes,
                    multimask_output=False,
                    shared_work=True,
                ).low_res_logits

        def sam(boxes=boxes):
            with torch.no_grad():
                return predictor.predict_torch(None, None, boxes=boxes, multimask_output=False, return_logits=True)[2]

        seconds = interleaved({"ours": ours, "shared": shared, "sam": sam}, args.repeats)
        reference = sam()
        difference = float((ours() - reference).abs().max())
        shared_difference = float((shared() - reference).abs().max())
        rows.append(
            {
                "model": args.model,
                "prompts": count,
                "ours_ms_per_prompt": 1000 * seconds["ours"] / count,
                "sam_ms_per_prompt": 1000 * seconds["sam"] / count,
                "shared_ms_per_prompt": 1000 * seconds["shared"] / count,
                "sam/ours": seconds["sam"] / seconds["ours"],
                "sam/shared": seconds["sam"] / seconds["shared"],
                "max_logit_diff": difference,
                "shared_max_logit_diff": shared_difference,
            }
        )
    extra = {"prompts_per_call": prompts_per_call(model.device, embedding), "repeats": args.repeats}
    columns = [
        "model",
        "prompts",
        "ours_ms_per_prompt",
        "shared_ms_per_prompt",
        "sam_ms_per_prompt",
        "sam/ours",
        "sam/shared",
        "max_logit_diff",
        "shared_max_logit_diff",
    ]
    report(f"decoder_{args.model}", rows, columns, extra)


if __name__ == "__main__":
    main()
