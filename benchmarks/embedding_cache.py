"""Wall time of an evaluation without and with the embedding cache, measured in one process.

    python -m benchmarks.embedding_cache [--images 4] [hydra overrides of conf/evaluate.yaml ...]
    python -m benchmarks.embedding_cache --images 8 evaluation.strategies=[S2,S3,S4,S5,S6]
    python -m benchmarks.embedding_cache model=tiny dataset=synthetic
    python -m benchmarks.embedding_cache --random-sam vit_b 'evaluation.strategies=[S2,S3,S4,S5,S6]'

Runs the evaluation runner on the first ``--images`` images of the configured split twice: first into
an empty cache folder (every image is encoded), then again with that folder (every embedding is read
back). Prints both wall times, their ratio, the time spent getting embeddings, and whether the two runs
gave bit-identical results. Model building and data preparation are outside the timings.

``--random-sam vit_b`` (or ``vit_l``, ``vit_h``) times SAM's own architecture without its weights:
random weights are written to a temporary checkpoint and loaded as ``model=vit_b`` would load the
official one. The timings hold for the real weights (the same operations run); the metrics do not.
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
from segment_anything import sam_model_registry

from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.run_files import ResultsFolder

CONF = Path(__file__).resolve().parents[1] / "conf"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--random-sam", choices=["vit_b", "vit_l", "vit_h"], help="time SAM with random weights")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/evaluate.yaml")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    weights = tempfile.TemporaryDirectory()
    if args.random_sam:
        checkpoint = Path(weights.name) / f"random_{args.random_sam}.pth"
        torch.manual_seed(0)
        torch.save(sam_model_registry[args.random_sam](checkpoint=None).state_dict(), checkpoint)
        args.overrides += [f"model={args.random_sam}", f"model.checkpoint={checkpoint}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=args.overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = tempfile.mkdtemp()
        cfg.evaluation.zero_shot_dir = None  # every run scores its own rows
    model = instantiate(cfg.model)
    datamodule = instantiate(cfg.dataset)
    datamodule.prepare_data()
    settings = instantiate(cfg.evaluation)
    split = datamodule.dataset(settings.split)
    dataset = split.subset([r.image_id for r in split.records[: args.images]])
    everything = settings.everything
    with tempfile.TemporaryDirectory() as tmp:
        times, rows = {}, {}
        for run in ("uncached", "cached"):
            cache = EmbeddingCache(Path(tmp) / "cache", dtype=cfg.embeddings.dtype)
            start = time.perf_counter()
            session = EvaluationSession(ResultsFolder(Path(tmp) / run), settings, cache=cache)
            rows[run] = session.score(model, dataset, phase=Phase.ZERO_SHOT, log=False, progress=False)
            times[run] = time.perf_counter() - start
            print(f"{run}: {times[run]:.1f} s ({cache.stats()})")
    print(
        f"model={model.name} images={len(dataset)} evaluation.strategies={','.join(settings.strategies)} "
        f"grid={everything.points_per_side} threads={torch.get_num_threads()}"
    )
    ratio = times["uncached"] / times["cached"]
    print(f"uncached {times['uncached']:.1f} s, cached {times['cached']:.1f} s, ratio {ratio:.2f}")
    print(f"bit-identical results: {rows['uncached'] == rows['cached']}")
    weights.cleanup()


if __name__ == "__main__":
    main()
