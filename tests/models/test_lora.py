"""LoRA adapters (sam4med.models.lora): where they go, what they start as, the refusal without a target, the merge
into plain weights, and a phase's weights swapped in and out of a model (zero-shot after a LoRA run)."""

from pathlib import Path

import pytest
import torch
from torch import nn

from sam4med.errors import CheckpointError, ConfigError
from sam4med.models import lora
from sam4med.models.builders import build_litemedsam, build_tiny
from sam4med.models.finetuned import PartStates, use_state
from sam4med.models.lora import LoraSettings

SETTINGS = LoraSettings(rank=2, alpha=4.0)


def randomise_adapters(encoder: nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in encoder.named_parameters():
            if ".lora_" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)
    return lora.adapter_state(encoder)


def test_adapters_go_on_the_attention_projections_only_and_start_as_the_base_encoder():
    model = build_tiny()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        base = model.image_encoder(images)
    names = lora.inject(model.image_encoder, SETTINGS, "tiny")
    assert names == ["blocks.0.attn.qkv", "blocks.1.attn.qkv"]
    trainable = sorted(n for n, p in model.image_encoder.named_parameters() if p.requires_grad)
    assert trainable == [f"blocks.{b}.attn.qkv.lora_{m}.default.weight" for b in (0, 1) for m in "AB"]
    assert model.image_encoder.blocks[0].attn.qkv.lora_A["default"].weight.shape == (2, 32)
    with torch.no_grad():
        assert torch.equal(model.image_encoder(images), base)  # B starts at zero: the base encoder exactly
    assert lora.has_adapters(model.image_encoder) and model.encoder_trains


def test_litemedsams_tinyvit_gets_adapters_on_its_attention_too():
    model = build_litemedsam()
    base = model.image_encoder.layers[3].blocks[1].attn.qkv.weight.detach().clone()
    names = lora.inject(model.image_encoder, SETTINGS, "litemedsam")
    assert len(names) == 10 and all(n.startswith("layers.") and n.endswith(".attn.qkv") for n in names)
    randomise_adapters(model.image_encoder)
    qkv = model.image_encoder.layers[3].blocks[1].attn.qkv
    delta = qkv.lora_B["default"].weight @ qkv.lora_A["default"].weight * SETTINGS.scaling
    lora.merge(model.image_encoder)
    merged = model.image_encoder.layers[3].blocks[1].attn.qkv
    assert type(merged) is nn.Linear and not lora.has_adapters(model.image_encoder)
    torch.testing.assert_close(merged.weight, base + delta)


def test_an_encoder_without_the_target_layers_is_refused_with_the_backbone_and_its_layers():
    model = build_tiny()
    with pytest.raises(ConfigError) as error:
        lora.inject(model.image_encoder, LoraSettings(targets=("attention.query",)), "tiny")
    message = str(error.value)
    assert "backbone 'tiny' has no nn.Linear named by module.lora.targets=['attention.query']" in message
    assert "attn.qkv" in message and "mlp.lin1" in message
    assert not lora.has_adapters(model.image_encoder)


def test_merge_gives_plain_layers_with_the_adapted_output():
    model = build_tiny()
    lora.inject(model.image_encoder, SETTINGS, "tiny")
    state = randomise_adapters(model.image_encoder)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        adapted = model.image_encoder(images)
    plain = build_tiny()
    base_qkv = plain.image_encoder.blocks[1].attn.qkv.weight.detach().clone()
    lora.merge_into(plain.image_encoder, SETTINGS, state, "tiny", Path("x.ckpt"))
    assert type(plain.image_encoder.blocks[1].attn.qkv) is nn.Linear
    assert set(plain.image_encoder.state_dict()) == set(build_tiny().image_encoder.state_dict())
    qkv = model.image_encoder.blocks[1].attn.qkv
    delta = qkv.lora_B["default"].weight @ qkv.lora_A["default"].weight * SETTINGS.scaling
    torch.testing.assert_close(plain.image_encoder.blocks[1].attn.qkv.weight, base_qkv + delta)
    with torch.no_grad():
        torch.testing.assert_close(plain.image_encoder(images), adapted, atol=1e-5, rtol=1e-5)


def test_adapters_of_other_targets_are_refused():
    model = build_tiny()
    lora.inject(model.image_encoder, LoraSettings(targets=("attn.proj",)), "tiny")
    state = lora.adapter_state(model.image_encoder)
    plain = build_tiny()
    with pytest.raises(
        CheckpointError,
        match="x.ckpt: holds the adapter 'blocks.0.attn.proj.lora_A.default.weight', which backbone 'tiny' ",
    ):
        lora.merge_into(plain.image_encoder, SETTINGS, state, "tiny", Path("x.ckpt"))
    assert not lora.has_adapters(plain.image_encoder)  # left as it was


def test_the_zero_shot_state_of_a_lora_run_swaps_the_base_encoder_in_and_out():
    model = build_tiny()
    lora.inject(model.image_encoder, SETTINGS, "tiny")
    zero_shot = PartStates.of(model, ("image_encoder", "mask_decoder"))
    assert set(zero_shot.parts["image_encoder"]) == {
        f"blocks.{b}.attn.qkv.{w}" for b in (0, 1) for w in ("weight", "bias")
    }
    state = randomise_adapters(model.image_encoder)
    lora.unload(model.image_encoder)
    lora.merge_into(model.image_encoder, SETTINGS, state, "tiny", Path("x.ckpt"))  # as on_fit_end leaves it
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        finetuned = model.image_encoder(images)
        version = model.encoder_version
        with use_state(model, zero_shot):
            assert torch.equal(model.image_encoder(images), build_tiny().image_encoder(images))
            assert model.encoder_version > version  # the embedding cache computes a new key
            assert model.module_hash(model.image_encoder) == build_tiny().module_hash(build_tiny().image_encoder)
        assert torch.equal(model.image_encoder(images), finetuned)


def test_a_plain_mapping_is_still_a_decoder_state():
    model = build_tiny()
    other = {k: v + 1 for k, v in model.mask_decoder.state_dict().items()}
    own = {k: v.clone() for k, v in model.mask_decoder.state_dict().items()}
    with use_state(model, other):
        assert all(torch.equal(v, other[k]) for k, v in model.mask_decoder.state_dict().items())
    assert all(torch.equal(v, own[k]) for k, v in model.mask_decoder.state_dict().items())
