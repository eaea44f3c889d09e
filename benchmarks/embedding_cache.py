"""Wall time of an evaluation without and with the embedding cache, measured in one process.

    python benchmarks/embedding_cache.py [--images 4] [hydra overrides of conf/evaluate.yaml ...]
    python benchmarks/embedding_cache.py --images 8 strategies=[S2,S3,S4,S5,S6]
    python benchmarks/embedding_cache.py model=tiny dataset=synthetic

Runs the evaluation runner on the first ``--images`` images of the configured split twice: first into
an empty cache folder (every image is encoded), then again with that folder (every embedding is read
back). Prints both wall times, their ratio, the time spent getting embeddings, and whether the two runs
gave bit-identical results. Model building and data preparation are outside the timings.
"""

import argparse
import logging
import tempfile
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.runner import evaluate
from sam4med.prompts.store import PromptStore

CONF = Path(__file__).resolve().parents[1] / "conf"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/evaluate.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=args.overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp()
    model = instantiate(cfg.model)
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    split = datamodule.dataset(cfg.split)
    dataset = type(split)(split.root, [r.image_id for r in split.records[: args.images]], split.min_object_area)
    everything = instantiate(cfg.everything)
    with tempfile.TemporaryDirectory() as tmp:
        times, rows = {}, {}
        for run in ("uncached", "cached"):
            cache = EmbeddingCache(Path(tmp) / "cache", dtype=cfg.embeddings.dtype)
            start = time.perf_counter()
            rows[run] = evaluate(
                model,
                dataset,
                strategies=list(cfg.strategies),
                phase="zero_shot",
                cache=cache,
                prompts=PromptStore(Path(tmp) / run / "prompts.json", seed=cfg.seed),
                multimask=cfg.multimask,
                log_path=None,
                progress=False,
                everything=everything,
            )
            times[run] = time.perf_counter() - start
            print(f"{run}: {times[run]:.1f} s ({cache.stats()})")
    print(
        f"model={model.name} images={len(dataset)} strategies={','.join(cfg.strategies)} "
        f"grid={everything.points_per_side} threads={torch.get_num_threads()}"
    )
    ratio = times["uncached"] / times["cached"]
    print(f"uncached {times['uncached']:.1f} s, cached {times['cached']:.1f} s, ratio {ratio:.2f}")
    print(f"bit-identical results: {rows['uncached'] == rows['cached']}")


if __name__ == "__main__":
    main()
