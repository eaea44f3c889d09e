"""Embedding cache in float32 and float16: bytes per image, load time, and the Dice change float16 causes.

    python -m benchmarks.cache_precision [--images 4] [--repeats 5] [hydra overrides of conf/evaluate.yaml ...]

On the first ``--images`` images of the configured split (Colin27 test split by default), every
embedding is stored once in each precision; the load times of the two folders are timed in turn
(interleaved, medians). Then S2–S6 are scored from each cache on the same prompts and the mean Dice
per strategy compared (float16 minus float32).
"""

import argparse
import logging
import tempfile
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from benchmarks.common import interleaved, report
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.run_files import ResultsFolder

CONF = Path(__file__).resolve().parents[1] / "conf"
PRECISIONS = ("float32", "float16")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/evaluate.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=["evaluation.strategies=[S2,S3,S4,S5,S6]", *args.overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp()
        cfg.evaluation.zero_shot_dir = None  # every run scores its own rows
    model = instantiate(cfg.model)
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    settings = instantiate(cfg.evaluation)
    split = datamodule.dataset(settings.split)
    dataset = split.subset([r.image_id for r in split.records[: args.images]])
    with tempfile.TemporaryDirectory() as tmp:
        caches = {p: EmbeddingCache(Path(tmp) / p, dtype=p) for p in PRECISIONS}
        images = [dataset[i].image for i in range(len(dataset))]
        keys = {p: [cache.get_with_key(model, image)[0] for image in images] for p, cache in caches.items()}
        sizes = {p: [f.stat().st_size for f in (Path(tmp) / p).rglob("*.pt")] for p in PRECISIONS}
        seconds = interleaved({p: lambda p=p: [caches[p].load(k) for k in keys[p]] for p in PRECISIONS}, args.repeats)
        dice = {}
        for p, cache in caches.items():
            session = EvaluationSession(ResultsFolder(Path(tmp) / f"run_{p}"), settings, cache=cache)
            rows = session.score(model, dataset, phase=Phase.ZERO_SHOT, log=False, progress=False)
            dice[p] = (
                pd.DataFrame([{"strategy": r.strategy, "dice": r.dice} for r in rows]).groupby("strategy").dice.mean()
            )
    rows = [
        {
            "precision": p,
            "bytes_per_image": sum(sizes[p]) / len(sizes[p]),
            "load_ms_per_image": 1000 * seconds[p] / len(images),
            "bytes_vs_float32": sum(sizes[p]) / sum(sizes["float32"]),
            "load_vs_float32": seconds[p] / seconds["float32"],
        }
        for p in PRECISIONS
    ]
    change = (dice["float16"] - dice["float32"]).to_dict()
    for strategy, value in change.items():
        rows.append({"precision": f"dice change {strategy}", "bytes_per_image": value})
    extra = {"model": model.name, "images": len(images), "split": settings.split, "dice_change": change}
    report(
        f"cache_precision_{model.name}",
        rows,
        ["precision", "bytes_per_image", "load_ms_per_image", "bytes_vs_float32", "load_vs_float32"],
        extra,
    )


if __name__ == "__main__":
    main()
