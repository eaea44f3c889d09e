"""What the benchmarks share: models, Colin27 images, interleaved timing, the JSON and the printed table.

Every figure a benchmark reports is a ratio of two timings taken in the same run, interleaved
(A, B, A, B ...) and summarised by their medians, so that load from other processes on a shared
machine hits both sides alike.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from segment_anything import sam_model_registry

from sam4med.data.dataset import CosmosDataset, ImageItem
from sam4med.dataset_format import read_manifest
from sam4med.models.builders import SAM_PREPROCESSING, build_litemedsam, build_tiny
from sam4med.models.sam_model import SamModel
from sam4med.prepare.colin27 import Colin27AAL

RESULTS = Path(__file__).resolve().parents[1] / "outputs" / "bench"
MODELS = ("litemedsam", "vit_b", "vit_b_random", "tiny")


def build_model(name: str) -> SamModel:
    """A model for timing.

    ``litemedsam``: the shipped weights. ``vit_b``: SAM ViT-B's architecture (1024 x 1024 input, random
    image encoder) whose prompt encoder and mask decoder carry LiteMedSAM's weights (same shapes), so that
    masks pass SAM's filters as with trained weights. ``vit_b_random``: ViT-B with random weights
    throughout. ``tiny``: the test model.
    """
    if name == "litemedsam":
        return build_litemedsam()
    if name == "tiny":
        return build_tiny()
    torch.manual_seed(0)
    sam = sam_model_registry["vit_b"](checkpoint=None)
    if name == "vit_b":
        lite = build_litemedsam()
        sam.mask_decoder.load_state_dict(lite.mask_decoder.state_dict())
        state = {k: v for k, v in lite.prompt_encoder.state_dict().items()}
        sam.prompt_encoder.load_state_dict(state)
    return (
        SamModel(
            name=name,
            image_encoder=sam.image_encoder,
            prompt_encoder=sam.prompt_encoder,
            mask_decoder=sam.mask_decoder,
            preprocessing=SAM_PREPROCESSING,
            weights_source="benchmark",
        )
        .remember_base_decoder()
        .eval()
    )


def colin27_items(count: int, *, first: int = 20, root: Path | None = None) -> list[ImageItem]:
    """``count`` Colin27 slices from the middle of the volume (prepared under ``root``, default a cache folder)."""
    root = root or RESULTS.parent / "bench_data" / "colin27"
    if not (root / "manifest.csv").is_file():
        Colin27AAL()(root)
    ids = [r.image_id for r in read_manifest(root)[first : first + count]]
    dataset = CosmosDataset(root, ids, min_object_area=10)
    return [dataset[i] for i in range(len(dataset))]


def interleaved(sides: dict[str, Callable[[], object]], repeats: int, *, warmup: bool = True) -> dict[str, float]:
    """Median seconds of each side, the sides run in turn ``repeats`` times (after one untimed warm-up each)."""
    for run in sides.values() if warmup else ():
        run()
    times: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(repeats):
        for name, run in sides.items():
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def report(name: str, rows: Sequence[dict], columns: Sequence[str], extra: dict | None = None) -> Path:
    """Print ``rows`` as a table and write them (and ``extra``) to ``outputs/bench/<name>.json``."""
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(_fmt(row.get(c)).ljust(w) for c, w in zip(columns, widths, strict=True)))
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    info = {"threads": torch.get_num_threads(), "torch": torch.__version__, **(extra or {})}
    path.write_text(json.dumps({"benchmark": name, **info, "rows": list(rows)}, indent=2) + "\n")
    print(f"threads={info['threads']}  json: {path}")
    return path


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
