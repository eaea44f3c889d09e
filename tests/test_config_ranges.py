"""Every size, count, threshold and weight is checked against its range before any work, in one line."""

import pytest

from sam4med.command import user_error
from sam4med.config_ranges import RANGES, Range
from sam4med.jobs.evaluate import evaluate_model
from sam4med.jobs.prepare import prepare_dataset
from sam4med.jobs.train import fine_tune
from tests.helpers import compose_config

# a model that cannot be built: a job that reached instantiate(cfg.model) would fail with a CheckpointError
NO_MODEL = ["model=vit_b", "model.checkpoint=/nonexistent/sam_vit_b.pth", "dataset=synthetic"]


@pytest.mark.parametrize(
    "job, override, message",
    [
        ("train", "dataset.batch_size=0", "dataset.batch_size=0: must be an integer >= 1"),
        ("train", "dataset.block_size=0", "dataset.block_size=0: must be an integer >= 1"),
        ("train", "module.optimizer.lr=0", "module.optimizer.lr=0: must be a number > 0"),
        ("train", "trainer.max_epochs=0", "trainer.max_epochs=0: must be an integer >= 1 or null"),
        ("train", "module.iou_weight=-1", "module.iou_weight=-1: must be a number >= 0"),
        ("evaluate", "everything.points_per_side=0", "everything.points_per_side=0: must be an integer >= 1"),
        ("evaluate", "everything.pred_iou_thresh=1.5", "everything.pred_iou_thresh=1.5: must be a number in [0, 1]"),
        ("evaluate", "embeddings.batch_size=2.5", "embeddings.batch_size=2.5: must be an integer >= 1"),
        ("evaluate", "compute.prompts_per_call=0", "compute.prompts_per_call=0: must be an integer >= 1 or null"),
        ("evaluate", "dataset.fractions=[0.5,0.5]", "dataset.fractions=[0.5, 0.5]: must be three numbers in [0, 1]"),
        ("evaluate", "evaluation.overlays=-1", "evaluation.overlays=-1: must be an integer >= 0"),
        ("train", "metrics.nsd_tolerance=-1", "metrics.nsd_tolerance=-1: must be a number >= 0"),
        ("prepare", "dataset.preparer.n_images=0", "dataset.preparer.n_images=0: must be an integer >= 1"),
    ],
)
def test_a_value_out_of_range_fails_first_in_one_line(tmp_path, job, override, message):
    run = {"train": fine_tune, "evaluate": evaluate_model, "prepare": prepare_dataset}[job]
    overrides = ["dataset=synthetic", override] if job == "prepare" else [*NO_MODEL, override]
    with pytest.raises(Exception) as info:
        run(compose_config(job, tmp_path, overrides))
    error = user_error(info.value)
    assert error is not None and "\n" not in str(error)
    assert message in str(error)
    assert not (tmp_path / "data").exists()  # failed before any work: not even the dataset was prepared


def test_every_range_names_a_key_of_a_config(tmp_path):
    """The table cannot rot: each key is found in a composed config of some entry point."""
    configs = [
        compose_config("train", tmp_path),
        compose_config("train", tmp_path, ["dataset=synthetic"]),
        compose_config("evaluate", tmp_path),
    ]
    unknown = [key for key in RANGES if all(key not in _keys(cfg) for cfg in configs)]
    assert not unknown


def test_range_words_and_edges():
    assert Range(1, integer=True).problem(1) is None
    assert Range(1, integer=True).problem(True) == "must be an integer >= 1"  # a bool is no count
    assert Range(0, 1).problem(float("nan")) == "must be a number in [0, 1]"
    assert Range(0, 1).problem(1.0) is None and Range(0, 1).problem(1.01) is not None
    assert Range(1, nullable=True).problem(None) is None and Range(1).problem(None) is not None


def _keys(cfg, prefix=""):
    from omegaconf import DictConfig

    out = set()
    for key in cfg.keys():
        node = cfg._get_node(key)
        name = f"{prefix}{key}"
        out.add(name)
        if isinstance(node, DictConfig):
            out |= _keys(node, f"{name}.")
    return out
