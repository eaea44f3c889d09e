"""MedSAM and micro-sam backbones: their preprocessing contract and loading their state dicts."""

import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from segment_anything import sam_model_registry

from sam4med.errors import CheckpointError, ConfigError
from sam4med.models.builders import (
    MEDSAM_PREPROCESSING,
    SAM_PREPROCESSING,
    build_medsam,
    build_micro_sam,
    build_tiny,
    micro_sam_state,
)
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S


@pytest.fixture(scope="module")
def vit_b_file(tmp_path_factory):
    """A ViT-B state dict with random weights of the real shapes, as MedSAM ships it (medsam_vit_b.pth)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vit_b") / "medsam_vit_b.pth"
    torch.save(sam_model_registry["vit_b"](checkpoint=None).state_dict(), path)
    return path


def test_medsam_preprocessing_stretches_to_1024_and_scales_to_unit_range():
    rng = np.random.default_rng(0)
    image = rng.integers(20, 200, size=(181, 217, 3), dtype=np.uint8)
    x = MEDSAM_PREPROCESSING.image_to_tensor(image)
    assert x.shape == (3, 1024, 1024)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0  # min-max to [0, 1], not SAM's mean/std
    assert x[:, -1, :].abs().sum() > 0 and x[:, :, -1].abs().sum() > 0  # stretched: no zero padding
    resized = cv2.resize(image, (1024, 1024), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    expected = (resized - resized.min()) / (resized.max() - resized.min())
    np.testing.assert_allclose(x.permute(1, 2, 0).numpy(), expected, atol=1e-6)
    assert MEDSAM_PREPROCESSING.key() != SAM_PREPROCESSING.key()


def test_medsam_prompts_scale_per_axis_and_masks_return_to_the_original_size():
    size = (181, 217)  # H, W
    box = MEDSAM_PREPROCESSING.boxes_to_model(np.array([[10, 20, 216, 180]]), size)
    np.testing.assert_allclose(box, [[10 * 1024 / 217, 20 * 1024 / 181, 216 * 1024 / 217, 180 * 1024 / 181]])
    point = MEDSAM_PREPROCESSING.coords_to_model(np.array([[[108.5, 90.5]]]), size)
    np.testing.assert_allclose(point, [[[512.0, 512.0]]])
    assert MEDSAM_PREPROCESSING.resized_shape(size) == (1024, 1024)
    assert MEDSAM_PREPROCESSING.mask_to_model(np.ones(size, dtype=bool)).all()  # the mask fills the input
    logits = torch.zeros(1, 1, 256, 256)
    logits[..., :128, :] = 1.0
    out = MEDSAM_PREPROCESSING.logits_to_original(logits, size)
    assert out.shape == (1, 1, *size)
    assert (out[0, 0, :85] > 0).all() and (out[0, 0, 95:] <= 0).all()  # top half of the image, stretched back


def test_medsam_loads_a_vit_b_state_dict(vit_b_file):
    model = build_medsam(str(vit_b_file))
    assert model.name == "medsam" and model.preprocessing == MEDSAM_PREPROCESSING
    state = torch.load(vit_b_file, weights_only=True)
    key = "mask_decoder.iou_prediction_head.layers.0.weight"
    assert torch.equal(model.state_dict()[key], state[key])


def test_micro_sam_loads_an_exported_model_with_sam_preprocessing(vit_b_file):
    model = build_micro_sam("vit_b_lm", str(vit_b_file))
    assert model.name == "microsam_vit_b_lm" and model.preprocessing == SAM_PREPROCESSING


def test_micro_sam_checkpoint_layouts_unwrap_to_segment_anything_keys(tmp_path):
    weights = {"image_encoder.neck.0.weight": torch.ones(2), "mask_decoder.iou_token.weight": torch.zeros(1)}
    exported = tmp_path / "exported.pt"
    torch.save({**weights, "decoder_state": {"base.weight": torch.ones(1)}}, exported)
    training = tmp_path / "training.pt"
    torch.save({"model_state": {f"sam.{k}": v for k, v in weights.items()}, "optimizer_state": {}}, training)
    ddp = tmp_path / "ddp.pt"
    torch.save({"model_state": {f"module.sam.{k}": v for k, v in weights.items()}}, ddp)
    for path in (exported, training, ddp):
        assert set(micro_sam_state(path, "vit_b_lm")) == set(weights)


def test_medsam_and_micro_sam_refuse_other_checkpoints_in_one_line(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(build_tiny().state_dict(), path)
    for build, name in (
        (lambda: build_medsam(str(path)), "medsam"),
        (lambda: build_micro_sam("vit_b_lm", str(path)), "vit_b_lm"),
    ):
        with pytest.raises(CheckpointError, match=f"tiny.pth: does not fit backbone '{name}'"):
            build()
    with pytest.raises(ConfigError, match="model.checkpoint is not set.*medsam"):
        build_medsam(None)
    with pytest.raises(ConfigError, match="vit_t"):
        build_micro_sam("vit_t_lm", str(path))


def test_evaluate_medsam_without_checkpoint_fails_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "evaluate.py", "model=medsam", f"hydra.run.dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: missing setting model.checkpoint"), proc.stderr
