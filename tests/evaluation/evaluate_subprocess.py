"""Score a dataset folder with the tiny model, in a child process that may SIGKILL itself (resume tests).

    python -m tests.evaluation.evaluate_subprocess ROOT LOG OUT [--kill-after N] [--limit N]
        [--cache DIR] [--memory MEMORY_JSON]

Writes the rows as JSON lines to OUT. With ``--kill-after N`` the process kills itself with SIGKILL
when it asks for the embedding of image N + 1 (N images are scored and logged). ``--limit N`` scores
the first N images only. ``--memory`` records the peak resident set size of the process
(``ru_maxrss``, KiB) and the peak of Python allocations traced by ``tracemalloc`` while scoring (bytes).
Tests call :func:`score` in their own process for the runs that are not killed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import tracemalloc
from dataclasses import asdict
from pathlib import Path

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.rows import ObjectResult
from sam4med.evaluation.runner import score_dataset
from sam4med.models.builders import build_tiny
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore


def score(
    root: str | Path,
    log: str | Path,
    *,
    strategies: tuple[str, ...] = ("S2", "S5"),
    kill_after: int = -1,
    limit: int = 0,
    cache_dir: str | Path | None = None,
) -> list[ObjectResult]:
    """The rows of the tiny model on ``root``, logged to ``log`` (prompts beside it); see the module doc."""
    cache = EmbeddingCache(cache_dir)
    if kill_after >= 0:
        calls = {"n": 0}
        get = cache.get

        def get_or_die(model, image):
            if calls["n"] == kill_after:
                os.kill(os.getpid(), signal.SIGKILL)
            calls["n"] += 1
            return get(model, image)

        cache.get = get_or_die
    dataset = CosmosDataset(root)
    if limit:
        dataset = dataset.subset([r.image_id for r in dataset.records[:limit]])
    return score_dataset(
        build_tiny(),
        dataset,
        strategies=list(strategies),
        phase="zero_shot",
        cache=cache,
        prompts=PromptStore(seed=0, read_from=f"{log}.prompts.json", write_to=f"{log}.prompts.json"),
        multimask=Multimask.SINGLE,
        everything=EverythingSettings(points_per_side=4),
        log_path=log,
        progress=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("log")
    parser.add_argument("out")
    parser.add_argument("--kill-after", type=int, default=-1)
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--memory", default="")
    parser.add_argument("--strategies", default="S2,S5")
    args = parser.parse_args()
    if args.memory:
        tracemalloc.start()
    rows = score(
        args.root,
        args.log,
        strategies=tuple(args.strategies.split(",")),
        kill_after=args.kill_after,
        limit=args.limit,
        cache_dir=args.cache,
    )
    Path(args.out).write_text("".join(json.dumps(asdict(row)) + "\n" for row in rows))
    if args.memory:
        peak = tracemalloc.get_traced_memory()[1]
        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        Path(args.memory).write_text(json.dumps({"maxrss_kib": maxrss, "tracemalloc_peak_bytes": peak}))


if __name__ == "__main__":
    main()
