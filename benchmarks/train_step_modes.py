"""Training-step speed of the two input modes, with and without SDPA attention, measured in one run; and of
corrective-click iterations (``module.iterations``) in the default cached mode.

    python -m benchmarks.train_step_modes [--model litemedsam|vit_b|vit_b_random|tiny] [--steps 10]
    python -m benchmarks.train_step_modes --part iterations [--model tiny] [--steps 10] [--iterations 8]

``cached``: the step reads stored image embeddings and runs prompt encoder + mask decoder.
``online``: the step runs the frozen image encoder (no grad) first, as augmentation needs.
Each mode runs with segment_anything's attention and with its attention layers through
scaled-dot-product attention (``compute.sdpa=true``). The four sides take turns step by step
(interleaved, one warm-up step each); a side's rate is 1 / its median step time. Prints steps per
second of each and the ratios (LiteMedSAM on Colin27 slices by default).

``--part iterations``: cached steps on ``module.prompts=mixed`` samples with 0 and ``--iterations``
corrective clicks per object (each click one more decoder pass per object, with the mask prompt),
interleaved in the same way; prints steps per second of each and their ratio.
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import MODELS, build_model, report
from sam4med.data.dataset import CosmosDataset
from sam4med.data.training_samples import DecoderSamples, collate
from sam4med.dataset_format import read_manifest
from sam4med.embeddings import EmbeddingCache
from sam4med.prepare.colin27 import Colin27AAL
from sam4med.training.module import DecoderFineTuner


def step(module: DecoderFineTuner, optimizer: torch.optim.Optimizer, batch: dict) -> float:
    """Seconds of one optimisation step on ``batch``."""
    start = time.perf_counter()
    loss, _ = module._iterated_loss(module.embeddings(batch), batch)  # with iterations=0: the box-only loss
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return time.perf_counter() - start


def iterations(model_name: str, steps: int, clicks: int) -> None:
    """Cached steps with 0 and ``clicks`` iterations on mixed prompts, interleaved; prints and writes the rates."""
    torch.manual_seed(0)
    model = build_model(model_name)
    module = DecoderFineTuner(model, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-4), prompts="mixed")
    optimizer = module.configure_optimizers()
    with tempfile.TemporaryDirectory() as tmp:
        root = Colin27AAL()(Path(tmp) / "colin27")
        ids = [r.image_id for r in read_manifest(root)[20 : 20 + steps + 2]]
        samples = DecoderSamples(
            CosmosDataset(root, ids, min_object_area=10),
            model,
            EmbeddingCache(Path(tmp) / "cache"),
            prompts="mixed",
            progress=False,
        )
        loader = DataLoader(samples, batch_size=2, shuffle=False, collate_fn=collate)
        batches = [batch for batch, _ in zip(loader, range(steps + 1), strict=False)]
        times: dict[int, list[float]] = {0: [], clicks: []}
        for index, batch in enumerate(batches):  # step 0 is the warm-up of each side
            for side in times:
                module.iterations = side
                seconds = step(module, optimizer, batch)
                if index:
                    times[side].append(seconds)
    rate = {side: 1.0 / statistics.median(values) for side, values in times.items()}
    print(f"model={model_name} batch=2 steps={steps} prompts=mixed threads={torch.get_num_threads()}")
    row = {"model": model_name, "steps_s_0": rate[0], f"steps_s_{clicks}": rate[clicks]}
    row[f"0/{clicks}"] = rate[0] / rate[clicks]
    report(f"train_step_iterations_{model_name}", [row], list(row), {"steps": steps, "batch": 2, "clicks": clicks})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="litemedsam", choices=MODELS)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--part", default="modes", choices=("modes", "iterations"))
    parser.add_argument("--iterations", type=int, default=8, help="corrective clicks of --part iterations")
    args = parser.parse_args()
    if args.part == "iterations":
        iterations(args.model, args.steps, args.iterations)
        return
    torch.manual_seed(0)
    model = build_model(args.model)
    module = DecoderFineTuner(model, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-4))
    optimizer = module.configure_optimizers()
    with tempfile.TemporaryDirectory() as tmp:
        root = Colin27AAL()(Path(tmp) / "colin27")
        ids = [r.image_id for r in read_manifest(root)[20 : 20 + args.steps + 2]]
        dataset = CosmosDataset(root, ids, min_object_area=10)
        cache = EmbeddingCache(Path(tmp) / "cache")
        batches = {}
        for mode in ("cached", "online"):
            samples = DecoderSamples(dataset, model, cache if mode == "cached" else None, mode=mode, progress=False)
            loader = DataLoader(samples, batch_size=2, shuffle=False, collate_fn=collate)
            batches[mode] = [batch for batch, _ in zip(loader, range(args.steps + 1), strict=False)]
        sides = [(mode, on) for on in (False, True) for mode in ("cached", "online")]
        times: dict[tuple[str, bool], list[float]] = {side: [] for side in sides}
        for index in range(args.steps + 1):  # step 0 is the warm-up of each side
            for mode, on in sides:
                model.use_sdpa(on)
                seconds = step(module, optimizer, batches[mode][index])
                if index:
                    times[(mode, on)].append(seconds)
        model.use_sdpa(False)
    rate = {side: 1.0 / statistics.median(values) for side, values in times.items()}
    print(f"model={args.model} batch=2 steps={args.steps} threads={torch.get_num_threads()}")
    rows = []
    for on in (False, True):
        row = {"model": args.model, "attention": "sdpa" if on else "segment_anything"}
        row["cached_steps_s"], row["online_steps_s"] = rate[("cached", on)], rate[("online", on)]
        row["cached/online"] = row["cached_steps_s"] / row["online_steps_s"]
        row["cached sdpa/sam"] = rate[("cached", True)] / rate[("cached", False)] if on else None
        rows.append(row)
    report(f"train_step_modes_{args.model}", rows, list(rows[1]), {"steps": args.steps, "batch": 2})


if __name__ == "__main__":
    main()
