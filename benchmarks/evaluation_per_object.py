"""Evaluation time per object against the decoder alone, and a shared embedding against re-encoding.

    python -m benchmarks.evaluation_per_object [--model litemedsam|vit_b|vit_b_random|tiny] [--images 3] [--repeats 3]

On ``--images`` Colin27 slices with their embeddings computed once, three things are timed in turn
(interleaved, medians) for each strategy S2–S6 on the same prompts: the whole scoring of one image
(prompts to tensors, batched decoding, upsampling, mask choice, Dice/IoU/HD/HD95 per object), the
decoder alone (``decode_in_calls`` on the same prompt tensors), and the image encoder. Reports the
ratio evaluation / decoder per strategy, and how much faster scoring S2–S6 on one shared embedding is
than encoding the image again for every strategy: (5 x encode + sum of scoring) / (encode + sum of scoring).
"""

import argparse

import torch

from benchmarks.common import MODELS, build_model, colin27_items, interleaved, report
from sam4med.evaluation.decoding import decode_in_calls, prompts_per_call
from sam4med.evaluation.predict import predict, prompts_to_tensors
from sam4med.evaluation.scoring import score_objects
from sam4med.models.multimask import Multimask
from sam4med.prompts.generate import make_prompt

STRATEGIES = ("S2", "S3", "S4", "S5", "S6")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="litemedsam", choices=MODELS)
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model = build_model(args.model)
    items = [it for it in colin27_items(args.images, first=24) if it.objects]
    embeddings = [model.embed_image(it.image) for it in items]
    objects = sum(len(it.objects) for it in items)
    prompts = {
        s: [
            [make_prompt(m, s, seed=0, object_key=o.key) for o, m in zip(it.objects, it.masks, strict=True)]
            for it in items
        ]
        for s in STRATEGIES
    }

    def evaluate(strategy: str) -> None:
        for item, embedding, batch in zip(items, embeddings, prompts[strategy], strict=True):
            size = item.image.shape[:2]
            pred = predict(model, embedding, batch, size, multimask=Multimask.SINGLE, gt_masks=item.masks)
            score_objects(
                phase="zero_shot",
                strategy=strategy,
                objects=item.objects,
                gt_masks=item.masks,
                pred_masks=pred.masks,
                scores=pred.scores,
                candidates=1,
                spacing=item.record.spacing,
            )

    def decoder(strategy: str) -> None:
        with torch.no_grad():
            for item, embedding, batch in zip(items, embeddings, prompts[strategy], strict=True):
                coords, labels, boxes = prompts_to_tensors(batch, model, item.image.shape[:2])
                decode_in_calls(
                    model, embedding, point_coords=coords, point_labels=labels, boxes=boxes, multimask_output=False
                )

    def encode() -> None:
        with torch.no_grad():
            for item in items:
                model.embed_image(item.image)

    sides = {"encode": encode}
    for s in STRATEGIES:
        sides[f"{s}_eval"] = lambda s=s: evaluate(s)
        sides[f"{s}_decoder"] = lambda s=s: decoder(s)
    seconds = interleaved(sides, args.repeats)
    rows = []
    for s in STRATEGIES:
        evaluation, decoding = seconds[f"{s}_eval"], seconds[f"{s}_decoder"]
        rows.append(
            {
                "model": args.model,
                "strategy": s,
                "objects": objects,
                "eval_ms_per_object": 1000 * evaluation / objects,
                "decoder_ms_per_object": 1000 * decoding / objects,
                "eval/decoder": evaluation / decoding,
            }
        )
    scoring = sum(seconds[f"{s}_eval"] for s in STRATEGIES)
    encode_s = seconds["encode"]
    shared = (len(STRATEGIES) * encode_s + scoring) / (encode_s + scoring)
    rows.append({"model": args.model, "strategy": "S2-S6 shared/re-encoded", "eval/decoder": shared})
    extra = {
        "images": len(items),
        "repeats": args.repeats,
        "encode_s_per_image": encode_s / len(items),
        "prompts_per_call": prompts_per_call(model.device, embeddings[0]),
        "shared_embedding_speedup": shared,
    }
    columns = ["model", "strategy", "objects", "eval_ms_per_object", "decoder_ms_per_object", "eval/decoder"]
    report(f"evaluation_per_object_{args.model}", rows, columns, extra)
    print(f"encode {encode_s / len(items):.3f} s/image; shared embedding vs re-encoding per strategy: {shared:.2f}x")


if __name__ == "__main__":
    main()
