"""The compute settings: one device setting (auto picks CUDA when present), GPU options off by default."""

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from sam4med.compute import Compute, resolve_device
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import score_dataset
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore
from tests.helpers import compose_config


def test_auto_picks_cuda_when_present_and_follows_a_given_device():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("auto", follow=torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA device"):
            resolve_device("cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only machine")
def test_auto_resolves_to_the_cpu_here():
    assert Compute().resolve() == torch.device("cpu")


@pytest.mark.parametrize("config", ["evaluate", "train"])
def test_configs_default_to_auto_with_gpu_options_off(tmp_path, config):
    compute = instantiate(compose_config(config, tmp_path).compute)
    assert compute == Compute(device="auto", prompts_per_call=None, bf16=False, compile=False, sdpa=False)
    gpu = instantiate(compose_config(config, tmp_path, ["compute=gpu"]).compute)
    assert gpu.bf16 and gpu.bf16_encoder and gpu.compile and gpu.sdpa and gpu.device == "cuda"
    assert not gpu.shared_decoder


def test_train_callback_takes_the_compute_settings(tmp_path):
    cfg = compose_config("train", tmp_path, ["compute.prompts_per_call=3"])
    assert instantiate(cfg.evaluation).compute.prompts_per_call == 3


def test_place_moves_the_model_to_the_cpu(tiny_model):
    assert Compute(device="cpu").place(tiny_model) is tiny_model
    assert tiny_model.device == torch.device("cpu")


def test_bf16_decoding_runs_and_returns_float_results(tiny_model, synthetic_root, tmp_path):
    dataset = CosmosDataset(synthetic_root).subset([CosmosDataset(synthetic_root).records[0].image_id])
    rows = {}
    for bf16 in (False, True):
        rows[bf16] = score_dataset(
            tiny_model,
            dataset,
            strategies=["S1", "S2", "S6"],
            phase="zero_shot",
            cache=EmbeddingCache(None),
            prompts=PromptStore(seed=0),
            multimask=Multimask.CONFIDENCE,
            everything=EverythingSettings(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0),
            compute=Compute(bf16=bf16),
            progress=False,
        )
    assert len(rows[True]) == len(rows[False]) > 0
    assert all(isinstance(r.dice, float) and 0.0 <= r.dice <= 1.0 for r in rows[True])


def test_bf16_encoder_gives_close_embeddings_under_keys_of_their_own(tiny_model, tmp_path):
    image = np.random.default_rng(0).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    cache = EmbeddingCache(tmp_path)
    full_key, full = cache.get_with_key(tiny_model, image)
    try:
        Compute(bf16_encoder=True).configure(tiny_model)
        assert tiny_model.encoder_bf16
        half_key, half = cache.get_with_key(tiny_model, image)
    finally:
        Compute().configure(tiny_model)
    assert half_key != full_key and half.dtype == torch.float32
    assert not torch.equal(half, full)  # bfloat16 arithmetic did run
    torch.testing.assert_close(half, full, atol=0.1, rtol=0.05)
    assert cache.get_with_key(tiny_model, image)[0] == full_key  # back to float32: the float32 entry
