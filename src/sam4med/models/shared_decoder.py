"""SAM's mask decoder for many prompts on one image, with the work the prompts share done once.

``segment_anything.modeling.MaskDecoder`` copies the image embedding once per prompt and runs its
two-way transformer on N copies of h*w image tokens of C channels. Two facts make most of that work
avoidable when no mask prompt is given (the dense prompt embedding is then one learned vector, the
same for every prompt):

1. Before the first block updates them, the image tokens are the same for every prompt, so that
   block's projections of the image tokens (keys and values of the token-to-image attention, queries
   of the image-to-token attention) are computed once, on one copy.
2. Every attention has T = 5 + P prompt tokens (P = 2 for one point or a box) on one side and h*w
   image tokens on the other. A projection of the image tokens followed by a product with the T
   tokens is the same linear map as a product of the image tokens with the T tokens projected back,
   ``(x W^T) k^T = x (W^T k^T)``, which costs h*w * C * (heads * T) instead of h*w * C * C/2. The
   biases move with it: a key bias adds one constant to each query's logits (softmax ignores it);
   value and output biases pass through because each head's attention weights sum to one.

The outputs equal segment_anything's up to float rounding (the products are associated differently;
``tests/models/test_shared_decoder.py`` checks logits and predicted IoU against ``MaskDecoder`` to
1e-4 on a random two-layer decoder and on LiteMedSAM). The weights, their names and the modules are
segment_anything's own; nothing is copied or re-trained. :func:`predict_iou` stops after the IoU head:
it skips the mask upscaling, which everything mode needs only for the few masks that pass its
predicted-IoU filter.
"""

from __future__ import annotations

import math

import torch
from segment_anything.modeling.mask_decoder import MaskDecoder
from segment_anything.modeling.transformer import Attention, TwoWayTransformer
from torch import Tensor


def predict_iou(
    decoder: MaskDecoder, image_embedding: Tensor, image_pe: Tensor, no_mask: Tensor, sparse: Tensor
) -> Tensor:
    """Predicted IoU of all M = 4 mask tokens of N prompts (N x 4; column 0 is the single-mask output).

    Args:
        decoder: a segment_anything ``MaskDecoder``.
        image_embedding: 1 x C x h x w embedding of the one image.
        image_pe: 1 x C x h x w positional encoding (``PromptEncoder.get_dense_pe()``).
        no_mask: 1 x C x 1 x 1 (or 1 x C x h x w) dense embedding without a mask prompt
            (``PromptEncoder.no_mask_embed``), the same for every prompt.
        sparse: N x P x C sparse prompt embeddings (points, boxes) from the prompt encoder.
    """
    tokens, _ = _transformer(decoder, image_embedding, image_pe, no_mask, sparse)
    return decoder.iou_prediction_head(tokens[:, 0, :])


def decode(
    decoder: MaskDecoder, image_embedding: Tensor, image_pe: Tensor, no_mask: Tensor, sparse: Tensor
) -> tuple[Tensor, Tensor]:
    """Mask logits (N x 4 x 4h x 4w) and predicted IoU (N x 4) of all mask tokens, as ``MaskDecoder.predict_masks``.

    Arguments as :func:`predict_iou`. Slice ``[:, 1:]`` for SAM's multimask output, ``[:, :1]`` for the
    single mask.
    """
    tokens, keys = _transformer(decoder, image_embedding, image_pe, no_mask, sparse)
    n, (c, h, w) = len(tokens), image_embedding.shape[1:]
    upscaled = decoder.output_upscaling(keys.transpose(1, 2).reshape(n, c, h, w))
    mask_tokens = tokens[:, 1 : 1 + decoder.num_mask_tokens, :]
    hyper = torch.stack([mlp(mask_tokens[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
    n, c, h, w = upscaled.shape
    masks = (hyper @ upscaled.view(n, c, h * w)).view(n, -1, h, w)
    return masks, decoder.iou_prediction_head(tokens[:, 0, :])


def _transformer(
    decoder: MaskDecoder, image_embedding: Tensor, image_pe: Tensor, no_mask: Tensor, sparse: Tensor
) -> tuple[Tensor, Tensor]:
    """``TwoWayTransformer.forward`` on N prompts of one image: tokens N x T x C, image tokens N x hw x C."""
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens[None].expand(len(sparse), -1, -1), sparse), dim=1)  # N x T x C
    transformer: TwoWayTransformer = decoder.transformer
    keys = (image_embedding + no_mask).flatten(2).transpose(1, 2)  # 1 x hw x C: one copy for all prompts
    pe = image_pe.flatten(2).transpose(1, 2)
    queries = tokens
    for layer in transformer.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + tokens
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        keys_pe = keys + pe
        queries = layer.norm2(
            queries + _tokens_to_image(layer.cross_attn_token_to_image, queries + tokens, keys_pe, keys)
        )
        queries = layer.norm3(queries + layer.mlp(queries))
        keys = layer.norm4(_image_to_tokens(layer.cross_attn_image_to_token, keys, keys_pe, queries + tokens, queries))
    attended = _tokens_to_image(transformer.final_attn_token_to_image, queries + tokens, keys + pe, keys)
    return transformer.norm_final_attn(queries + attended), keys.expand(len(tokens), -1, -1)


def _heads(attention: Attention, tokens: Tensor, projection: torch.nn.Linear) -> Tensor:
    """Project N x T x C tokens and split them into heads: N x heads x T x d."""
    n, t, _ = tokens.shape
    projected = projection(tokens)
    return projected.view(n, t, attention.num_heads, -1).transpose(1, 2)


def _tokens_to_image(attention: Attention, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``attention(q=q, k=k, v=v)`` for N x T x C tokens ``q`` and (1 or N) x hw x C image tokens ``k``, ``v``."""
    heads = attention.num_heads
    query = _heads(attention, q, attention.q_proj) / math.sqrt(attention.internal_dim // heads)  # N x H x T x d
    n, _, t, d = query.shape
    if k.shape[0] == 1:  # shared image tokens: project them once
        key = attention.k_proj(k).view(1, -1, heads, d).transpose(1, 2)  # 1 x H x hw x d
        value = attention.v_proj(v).view(1, -1, heads, d).transpose(1, 2)
        out = torch.softmax(query @ key.transpose(-1, -2), dim=-1) @ value  # N x H x T x d
    else:
        w_k = attention.k_proj.weight.view(heads, d, -1)  # H x d x C (its bias: a constant per row, dropped)
        back = torch.einsum("nhtd,hdc->nhtc", query, w_k).reshape(n, heads * t, -1)  # queries in image channels
        weights = torch.softmax(back @ k.transpose(1, 2), dim=-1)  # N x HT x hw
        mixed = (weights @ v).view(n, heads, t, -1)  # N x H x T x C: weighted image tokens, not yet projected
        w_v, b_v = attention.v_proj.weight.view(heads, d, -1), attention.v_proj.bias.view(heads, 1, d)
        out = torch.einsum("nhtc,hdc->nhtd", mixed, w_v) + b_v  # weights sum to 1 per head: the bias passes
    return attention.out_proj(out.transpose(1, 2).reshape(n, t, heads * d))


def _image_to_tokens(attention: Attention, keys: Tensor, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """``keys + attention(q=q, k=k, v=v)``: (1 or N) x hw x C image tokens ``q``, N x T x C tokens ``k``, ``v``."""
    heads = attention.num_heads
    key = _heads(attention, k, attention.k_proj) / math.sqrt(attention.internal_dim // heads)  # N x H x T x d
    value = _heads(attention, v, attention.v_proj)
    n, _, t, d = key.shape
    w_out = attention.out_proj.weight.view(-1, heads, d)  # C x H x d
    # each value projected by its head's part of out_proj; the bias shared out over the heads (weights sum to H)
    value_out = torch.einsum("nhtd,chd->nhtc", value, w_out).reshape(n, heads * t, -1) + attention.out_proj.bias / heads
    if q.shape[0] == 1:  # shared image tokens: project them once, then one product with block-diagonal keys
        query = attention.q_proj(q)  # 1 x hw x D
        block = torch.zeros(n, heads, d, heads, t, dtype=key.dtype, device=key.device)
        index = torch.arange(heads, device=key.device)
        block[:, index, :, index, :] = key.permute(1, 0, 3, 2)  # head h's keys in rows h*d.., columns h*T..
        logits = query @ block.view(n, heads * d, heads * t)  # N x hw x HT
    else:
        w_q, b_q = attention.q_proj.weight.view(heads, d, -1), attention.q_proj.bias.view(heads, d)
        back = torch.einsum("nhtd,hdc->ncht", key, w_q).reshape(n, -1, heads * t)  # keys in image channels
        bias = torch.einsum("nhtd,hd->nht", key, b_q).reshape(n, 1, heads * t)
        logits = torch.baddbmm(bias, q, back)
    weights = torch.softmax(logits.view(n, -1, heads, t), dim=-1).view(n, -1, heads * t)
    return torch.baddbmm(keys.expand(n, -1, -1), weights, value_out)
