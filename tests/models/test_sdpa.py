"""segment_anything's attention through scaled-dot-product attention: same weights and names, same outputs
up to float rounding, embeddings of a switched encoder cached apart, results hashed apart."""

import numpy as np
import torch
from segment_anything.modeling import ImageEncoderViT
from segment_anything.modeling import image_encoder as sam_image_encoder
from segment_anything.modeling import transformer as sam_transformer

from sam4med.compute import Compute
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import score_dataset, settings_hash
from sam4med.models import sdpa
from sam4med.models.builders import build_litemedsam
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore
from tests.helpers import two_layer_parts


def random_vit() -> ImageEncoderViT:
    """Windowed and global layers with non-zero relative positions (SAM initialises them to zero)."""
    torch.manual_seed(0)
    encoder = ImageEncoderViT(
        img_size=64,
        patch_size=8,
        embed_dim=32,
        depth=3,
        num_heads=4,
        mlp_ratio=2.0,
        out_chans=16,
        use_rel_pos=True,
        global_attn_indexes=(1,),
        window_size=3,  # 8 x 8 tokens in 3 x 3 windows: padded windows run too
    ).eval()
    for block in encoder.blocks:
        torch.nn.init.normal_(block.attn.rel_pos_h, std=0.5)
        torch.nn.init.normal_(block.attn.rel_pos_w, std=0.5)
    return encoder


def test_relative_position_bias_matches_segment_anything():
    torch.manual_seed(1)
    q = torch.randn(2, 3, 4 * 5, 8)
    rel_h, rel_w = torch.randn(7, 8), torch.randn(9, 8)
    attn = torch.zeros(6, 20, 20)
    want = sam_image_encoder.add_decomposed_rel_pos(attn, q.reshape(6, 20, 8), rel_h, rel_w, (4, 5), (4, 5))
    got = sdpa.relative_position_bias(q, rel_h, rel_w, (4, 5))
    torch.testing.assert_close(got.reshape(6, 20, 20), want, atol=1e-5, rtol=0)


def test_encoder_outputs_and_state_are_unchanged():
    encoder = random_vit()
    state = {k: v.clone() for k, v in encoder.state_dict().items()}
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        want = encoder(images)
        assert sdpa.use_sdpa(encoder) == 3
        got = encoder(images)
    assert all(isinstance(b.attn, sdpa.EncoderAttentionSDPA) for b in encoder.blocks)
    assert encoder.state_dict().keys() == state.keys()
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in state.items())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert want.std() > 0.1
    assert sdpa.use_sdpa(encoder, on=False) == 0
    assert all(type(b.attn) is sam_image_encoder.Attention for b in encoder.blocks)


def test_decoder_outputs_are_unchanged():
    decoder, prompts = two_layer_parts(seed=2)
    boxes = torch.tensor([[4.0, 6.0, 30.0, 40.0], [10.0, 10.0, 60.0, 50.0], [0.0, 0.0, 20.0, 20.0]])
    embedding = torch.randn(1, 32, 8, 8) * 2
    with torch.no_grad():
        sparse, dense = prompts(points=None, boxes=boxes, masks=None)
        args = dict(
            image_embeddings=embedding,
            image_pe=prompts.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )
        want_masks, want_iou = decoder(**args)
        assert sdpa.use_sdpa(decoder) == 7  # per block: self, token-to-image, image-to-token; final attention
        got_masks, got_iou = decoder(**args)
    assert all(type(m) is not sam_transformer.Attention for m in decoder.modules())
    torch.testing.assert_close(got_masks, want_masks, atol=1e-5, rtol=0)
    torch.testing.assert_close(got_iou, want_iou, atol=1e-5, rtol=0)
    assert want_masks.std() > 0.01


def test_tinyvit_encoder_is_left_alone_and_its_cache_keys_stay():
    model = build_litemedsam()
    key = model.encoder_key()
    model.use_sdpa()
    assert not model.encoder_sdpa and model.decoder_sdpa
    assert model.encoder_key() == key
    assert not any(isinstance(m, sdpa.EncoderAttentionSDPA) for m in model.image_encoder.modules())


def test_switched_vit_encoder_is_cached_and_hashed_apart(tiny_model, synthetic_root, tmp_path):
    dataset = CosmosDataset(synthetic_root)
    dataset = dataset.subset([dataset.records[0].image_id])
    image = np.random.default_rng(0).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    cache = EmbeddingCache(tmp_path / "cache")
    everything = EverythingSettings(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    common = dict(phase="zero_shot", multimask=Multimask.CONFIDENCE, everything=everything)
    rows = {}
    try:
        for on in (False, True):
            Compute(sdpa=on).configure(tiny_model)
            assert tiny_model.encoder_sdpa == tiny_model.decoder_sdpa == on
            rows[on] = (
                cache.get_with_key(tiny_model, image),
                settings_hash(tiny_model, dataset, PromptStore(seed=0), **common),
                score_dataset(
                    tiny_model,
                    dataset,
                    strategies=["S1", "S2", "S5"],
                    cache=cache,
                    prompts=PromptStore(seed=0),
                    progress=False,
                    **common,
                ),
            )
    finally:
        Compute().configure(tiny_model)
    (key, embedding), settings, results = rows[False]
    (sdpa_key, sdpa_embedding), sdpa_settings, sdpa_results = rows[True]
    assert sdpa_key != key and sdpa_settings != settings
    torch.testing.assert_close(sdpa_embedding, embedding, atol=1e-5, rtol=0)
    assert len(results) == len(sdpa_results) > 0
    for plain, fused in zip(results, sdpa_results, strict=True):
        assert (plain.image_id, plain.strategy, plain.object_key) == (fused.image_id, fused.strategy, fused.object_key)
        assert abs(plain.dice - fused.dice) < 0.02  # masks may flip at pixels whose logit is within rounding of 0
    assert type(tiny_model.image_encoder.blocks[0].attn) is sam_image_encoder.Attention  # switched back


def test_settings_hash_names_the_decoding_options(tiny_model, synthetic_root):
    dataset = CosmosDataset(synthetic_root)
    common = dict(phase="zero_shot", multimask=Multimask.CONFIDENCE, everything=EverythingSettings())
    plain = settings_hash(tiny_model, dataset, PromptStore(seed=0), **common)
    assert settings_hash(tiny_model, dataset, PromptStore(seed=0), bf16=False, shared_work=False, **common) == plain
    bf16 = settings_hash(tiny_model, dataset, PromptStore(seed=0), bf16=True, **common)
    shared = settings_hash(tiny_model, dataset, PromptStore(seed=0), shared_work=True, **common)
    assert len({plain, bf16, shared}) == 3
