"""A run folder re-used with other settings is refused instead of mixing stale rows into new results."""

import json
import shutil

import pytest
import torch

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import image_path, load_rgb
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import DataError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import score_dataset
from sam4med.files import save_png
from sam4med.models.builders import build_tiny
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore

GRID = EverythingSettings(points_per_side=4)


def score(
    model, dataset, log, *, phase="zero_shot", multimask="single", everything=GRID, seed=0, strategies=("S5",),
    sampling="random", clip=None, min_area=1,
):  # fmt: skip
    if clip is not None or min_area != 1:
        dataset = CosmosDataset(dataset.root, [r.image_id for r in dataset.records], min_area, clip)
    return score_dataset(
        model,
        dataset,
        strategies=list(strategies),
        phase=phase,
        cache=EmbeddingCache(None),
        prompts=PromptStore(seed=seed, sampling=sampling),
        multimask=Multimask(multimask),
        everything=everything,
        log_path=log,
        progress=False,
    )


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    return CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001"])


def changed_decoder():
    model = build_tiny()
    with torch.no_grad():
        next(model.mask_decoder.parameters()).add_(0.5)
    return model


def overwritten_base_decoder():
    """The same weights source (path) whose decoder changed: a checkpoint file overwritten in place."""
    model = build_tiny()
    with torch.no_grad():
        next(model.mask_decoder.parameters()).add_(0.5)
    return model.remember_base_decoder()


@pytest.mark.parametrize(
    "change",
    [
        {"model": lambda: build_tiny(seed=1)},  # other base weights
        {"model": overwritten_base_decoder},  # base weights overwritten at the same path
        {"multimask": "oracle"},
        {"everything": EverythingSettings(points_per_side=6), "strategies": ("S1",)},  # another S1 grid
        {"seed": 7},  # another prompt seed
        {"sampling": "strided"},  # another point-sampling rule
        {"clip": (0.5, 99.5)},  # another input clipping
        {"min_area": 5},  # another minimum object area
        {"phase": "finetuned", "model": changed_decoder},  # another fine-tuned decoder
    ],
    ids=[
        "weights",
        "base_decoder_in_place",
        "multimask",
        "s1_grid",
        "prompt_seed",
        "sampling",
        "clip_percentiles",
        "min_area",
        "decoder",
    ],
)
def test_resuming_rows_of_other_settings_is_refused(dataset, tmp_path, change):
    log = tmp_path / "log.jsonl"
    phase = change.get("phase", "zero_shot")
    strategies = change.get("strategies", ("S5",))
    first = build_tiny()
    if phase == "finetuned":
        first = changed_decoder()
        with torch.no_grad():
            next(first.mask_decoder.parameters()).add_(0.25)
    rows = score(first, dataset, log, phase=phase, strategies=strategies)
    assert rows and all("settings" in json.loads(line) for line in log.read_text().splitlines())
    kwargs = {k: v for k, v in change.items() if k != "model"}
    model = change["model"]() if "model" in change else build_tiny()
    with pytest.raises(DataError, match=r"log.jsonl: holds .* rows made with other settings.*use a new run folder"):
        score(model, dataset, log, **kwargs)


def test_same_settings_resume_and_other_phases_are_kept(dataset, tmp_path):
    log = tmp_path / "log.jsonl"
    zero = score(build_tiny(), dataset, log)
    tuned = score(changed_decoder(), dataset, log, phase="finetuned")
    assert score(build_tiny(), dataset, log) == zero  # resumed from the log
    # a resumed training has its trained decoder loaded before the zero-shot rows are read back
    assert score(changed_decoder(), dataset, log) == zero
    assert score(changed_decoder(), dataset, log, phase="finetuned") == tuned


def test_resuming_after_an_image_changed_is_refused(synthetic_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic_root, root)
    dataset = CosmosDataset(root, image_ids=["syn0000", "syn0001"])
    log = tmp_path / "log.jsonl"
    assert score(build_tiny(), dataset, log)
    picture = image_path(root, "syn0001")
    pixels = load_rgb(picture).copy()
    pixels[0, 0] = 255 - pixels[0, 0]  # one pixel of one image
    save_png(picture, pixels)
    with pytest.raises(DataError, match=r"log.jsonl: holds .* rows made with other settings"):
        score(build_tiny(), dataset, log)
