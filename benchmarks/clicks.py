"""Time per click of the iterative clicks (strategy ``I``) against the decoder alone on the same prompts.

    python -m benchmarks.clicks [--model litemedsam|vit_b|vit_b_random|tiny] [--images 2] [--clicks 3]
        [--repeats 2] [--multimask single|confidence|oracle] [--mask-input]

A click of :class:`~sam4med.evaluation.interactive.ClickLoop` places the next click of every object of
one image (error map, largest region, distance transform), decodes all objects in one batched call,
upsamples the logits to the image and chooses a mask. The decoder alone is :meth:`SamModel.decode`
replaying exactly the calls the loop made (same points, boxes and mask prompts, same call sizes) with
nothing around them. Both sides run on the same embedding, interleaved; reports per image the objects,
milliseconds per click of each side and their ratio (target: loop / decoder <= 1.2).
"""

import argparse

import torch

from benchmarks.common import MODELS, build_model, colin27_items, interleaved, report
from sam4med.compute import Compute
from sam4med.evaluation.interactive import ClickLoop, InteractiveSettings, start_prompt
from sam4med.models.multimask import Multimask


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="litemedsam", choices=MODELS)
    parser.add_argument("--images", type=int, default=2)
    parser.add_argument("--clicks", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--multimask", default="single", choices=[m.value for m in Multimask])
    parser.add_argument("--mask-input", action="store_true")
    args = parser.parse_args()
    model = build_model(args.model)
    settings = InteractiveSettings(clicks=args.clicks, mask_input=args.mask_input)
    multimask = Multimask(args.multimask)
    rows = []
    for item in colin27_items(args.images, first=24):
        embedding = model.embed_image(item.image)
        keys = [o.key for o in item.objects]
        starts = [start_prompt(m, start="point", seed=0, object_key=k) for m, k in zip(item.masks, keys, strict=True)]

        def loop(starts=starts, keys=keys, item=item, embedding=embedding):
            clicks = ClickLoop(
                model,
                embedding,
                starts,
                item.masks,
                object_keys=keys,
                seed=0,
                settings=settings,
                multimask=multimask,
                compute=Compute(),
            )
            for _ in range(settings.clicks):
                clicks.step()

        calls = []  # the decoder calls of one loop, replayed alone
        decode = model.decode

        def recording(*call_args, calls=calls, decode=decode, **kwargs):
            calls.append((call_args, kwargs))
            return decode(*call_args, **kwargs)

        model.decode = recording
        loop()
        del model.decode

        def decoder(calls=calls):
            with torch.no_grad():
                for call_args, kwargs in calls:
                    model.decode(*call_args, **kwargs)

        seconds = interleaved({"loop": loop, "decoder": decoder}, args.repeats)
        rows.append(
            {
                "model": args.model,
                "image": item.record.image_id,
                "objects": len(keys),
                "decoder_calls_per_click": len(calls) / settings.clicks,
                "loop_ms_per_click": 1000 * seconds["loop"] / settings.clicks,
                "decoder_ms_per_click": 1000 * seconds["decoder"] / settings.clicks,
                "loop/decoder": seconds["loop"] / seconds["decoder"],
            }
        )
    columns = ["model", "image", "objects", "decoder_calls_per_click", "loop_ms_per_click", "decoder_ms_per_click",
               "loop/decoder"]  # fmt: skip
    extra = {"clicks": settings.clicks, "multimask": multimask.value, "mask_input": settings.mask_input,
             "repeats": args.repeats}  # fmt: skip
    report(f"clicks_{args.model}", rows, columns, extra)


if __name__ == "__main__":
    main()
