"""Training-step speed of the two input modes, measured in one run.

    python -m benchmarks.train_step_modes [--model litemedsam|vit_b|vit_b_random|tiny] [--steps 10]

``cached``: the step reads stored image embeddings and runs prompt encoder + mask decoder.
``online``: the step runs the frozen image encoder (no grad) first, as augmentation needs.
Prints steps per second of each mode and their ratio (LiteMedSAM on Colin27 slices by default).
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import MODELS, build_model, report
from sam4med.data.dataset import CosmosDataset
from sam4med.data.format import read_manifest
from sam4med.data.samples import DecoderSamples, collate
from sam4med.embeddings import EmbeddingCache
from sam4med.prepare.colin27 import Colin27AAL
from sam4med.training.module import DecoderFineTuner


def steps_per_second(module: DecoderFineTuner, loader: DataLoader, steps: int) -> float:
    optimizer = module.configure_optimizers()
    batches = iter(loader)
    next_batch = next(batches)
    module._loss(*module(module.embeddings(next_batch), next_batch["box"]), next_batch)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(batches)
        loss, _ = module._loss(*module(module.embeddings(batch), batch["box"]), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="litemedsam", choices=MODELS)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = build_model(args.model)
    module = DecoderFineTuner(model, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-4))
    with tempfile.TemporaryDirectory() as tmp:
        root = Colin27AAL()(Path(tmp) / "colin27")
        ids = [r.image_id for r in read_manifest(root)[20 : 20 + args.steps + 2]]
        dataset = CosmosDataset(root, ids, min_object_area=10)
        cache = EmbeddingCache(Path(tmp) / "cache")
        rates = {}
        for mode in ("cached", "online"):
            samples = DecoderSamples(dataset, model, cache if mode == "cached" else None, mode=mode, progress=False)
            loader = DataLoader(samples, batch_size=2, shuffle=False, collate_fn=collate)
            rates[mode] = steps_per_second(module, loader, args.steps)
    print(f"model={args.model} batch=2 steps={args.steps} threads={torch.get_num_threads()}")
    for mode, rate in rates.items():
        print(f"{mode:>7}: {rate:.3f} steps/s")
    print(f"cached/online speed ratio: {rates['cached'] / rates['online']:.1f}x")
    row = {"model": args.model, "cached_steps_s": rates["cached"], "online_steps_s": rates["online"]}
    row["cached/online"] = rates["cached"] / rates["online"]
    report(f"train_step_modes_{args.model}", [row], list(row), {"steps": args.steps, "batch": 2})


if __name__ == "__main__":
    main()
