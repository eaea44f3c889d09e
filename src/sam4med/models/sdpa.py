"""segment_anything's attention layers computed with PyTorch's scaled-dot-product attention.

``segment_anything`` writes attention out as ``softmax(q kᵀ / √d + bias) v`` with the full
attention matrix in memory. :func:`use_sdpa` switches its two attention classes, in place, to
subclasses whose ``forward`` calls :func:`torch.nn.functional.scaled_dot_product_attention`, which on
a GPU picks a fused kernel (memory-efficient or flash attention):

- ``image_encoder.Attention`` (SAM's ViT, windowed and global): the decomposed relative-position
  terms (``rel_h + rel_w``, computed from the unscaled queries as segment_anything does) become the
  additive ``attn_mask``;
- ``transformer.Attention`` (the mask decoder's two-way transformer): no mask.

Parameters, buffers and module names stay segment_anything's (the class of each layer changes, not
its state), so checkpoints, ``state_dict`` keys and weight hashes are unchanged. Outputs equal the
originals up to float rounding (``tests/models/test_sdpa.py``: 1e-5 on a random ViT with windowed and
global layers and on a decoder). LiteMedSAM's TinyViT encoder has attention of its own and is left as
it is; its decoder is switched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from segment_anything.modeling import image_encoder, transformer
from torch import Tensor, nn


def relative_position_bias(q: Tensor, rel_pos_h: Tensor, rel_pos_w: Tensor, size: tuple[int, int]) -> Tensor:
    """Additive attention bias of SAM's decomposed relative positions.

    Args:
        q: B x heads x (h*w) x d queries, unscaled (row-major over the h x w window).
        rel_pos_h, rel_pos_w: (2h - 1) x d and (2w - 1) x d learned embeddings of the layer.
        size: (h, w) of the window (queries and keys cover the same window).

    Returns:
        B x heads x (h*w) x (h*w): bias[q at (i, j), k at (i', j')] = q · R_h[i - i'] + q · R_w[j - j'].
    """
    h, w = size
    table_h = image_encoder.get_rel_pos(h, h, rel_pos_h)  # h x h x d, rows: query row, cols: key row
    table_w = image_encoder.get_rel_pos(w, w, rel_pos_w)
    b, heads, n, d = q.shape
    grid = q.reshape(b, heads, h, w, d)
    along_h = torch.einsum("bnhwd,hkd->bnhwk", grid, table_h)  # ... x key row
    along_w = torch.einsum("bnhwd,wkd->bnhwk", grid, table_w)  # ... x key column
    bias = along_h[..., :, None] + along_w[..., None, :]  # b x heads x h x w x (key row) x (key column)
    return bias.reshape(b, heads, n, n)


class EncoderAttentionSDPA(image_encoder.Attention):
    """SAM's ViT attention (same parameters) through scaled-dot-product attention."""

    def forward(self, x: Tensor) -> Tensor:
        """B x H x W x C tokens of one window (or the whole grid) to the same shape."""
        b, h, w, c = x.shape
        heads = self.num_heads
        q, k, v = self.qkv(x).reshape(b, h * w, 3, heads, c // heads).permute(2, 0, 3, 1, 4).unbind(0)
        bias = relative_position_bias(q, self.rel_pos_h, self.rel_pos_w, (h, w)) if self.use_rel_pos else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class DecoderAttentionSDPA(transformer.Attention):
    """The mask decoder's attention (same parameters) through scaled-dot-product attention."""

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """B x Nq x C queries, B x Nk x C keys and values to B x Nq x C."""
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        return self.out_proj(self._recombine_heads(F.scaled_dot_product_attention(q, k, v)))


SWITCHES = {image_encoder.Attention: EncoderAttentionSDPA, transformer.Attention: DecoderAttentionSDPA}
BACK = {sdpa_class: sam_class for sam_class, sdpa_class in SWITCHES.items()}


def use_sdpa(module: nn.Module, on: bool = True) -> int:
    """Switch every segment_anything attention layer under ``module`` to SDPA (``on``) or back, in place.

    Returns:
        how many layers run through SDPA afterwards (0 for a module without segment_anything
        attention, such as LiteMedSAM's TinyViT, or with ``on`` false).
    """
    switch = SWITCHES if on else BACK
    for layer in module.modules():
        target = switch.get(type(layer))
        if target is not None:
            layer.__class__ = target
    return sum(isinstance(layer, tuple(BACK)) for layer in module.modules())


def uses_sdpa(module: nn.Module) -> bool:
    """Whether any attention layer under ``module`` runs through SDPA."""
    return any(isinstance(layer, tuple(BACK)) for layer in module.modules())
