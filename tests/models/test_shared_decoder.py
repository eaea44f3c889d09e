"""The shared-work decoder gives segment_anything's MaskDecoder outputs (to 1e-4) for every kind of prompt."""

import pytest
import torch
from segment_anything.modeling import MaskDecoder, PromptEncoder

from sam4med.models import shared_decoder
from sam4med.models.builders import build_litemedsam
from tests.helpers import two_layer_parts


def prompts(kind: str, n: int, size: int) -> dict:
    generator = torch.Generator().manual_seed(n)
    if kind == "box":
        corner = torch.rand(n, 2, generator=generator) * size * 0.7
        return {"points": None, "boxes": torch.cat([corner, corner + size * 0.25], dim=1)}
    coords = torch.rand(n, 4, 2, generator=generator) * size
    labels = torch.randint(0, 2, (n, 4), generator=generator)
    if kind == "points":
        return {"points": (coords, labels), "boxes": None}
    return {
        "points": (coords[:, :1], labels[:, :1] * 0 + 1),
        "boxes": torch.tensor([[4.0, 4.0, size / 2, size / 2]] * n),
    }


def compare(decoder: MaskDecoder, encoder: PromptEncoder, embedding: torch.Tensor, kind: str, n: int) -> None:
    size = encoder.input_image_size[0]
    with torch.no_grad():
        sparse, dense = encoder(masks=None, **prompts(kind, n, size))
        image_pe = encoder.get_dense_pe()
        want_masks, want_iou = decoder.predict_masks(embedding, image_pe, sparse, dense)
        no_mask = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        masks, iou = shared_decoder.decode(decoder, embedding, image_pe, no_mask, sparse)
        iou_only = shared_decoder.predict_iou(decoder, embedding, image_pe, no_mask, sparse)
    assert masks.shape == want_masks.shape and iou.shape == want_iou.shape == iou_only.shape
    torch.testing.assert_close(masks, want_masks, atol=1e-4, rtol=0)
    torch.testing.assert_close(iou, want_iou, atol=1e-5, rtol=0)
    torch.testing.assert_close(iou_only, want_iou, atol=1e-5, rtol=0)
    assert want_masks.std() > 0.01  # the outputs vary, so agreeing says something


@pytest.mark.parametrize("kind", ["points", "box", "box+point"])
@pytest.mark.parametrize("n", [1, 5])
def test_equals_mask_decoder_on_a_two_block_decoder(kind, n):
    decoder, encoder = two_layer_parts(seed=3)
    compare(decoder, encoder, torch.randn(1, 32, 8, 8) * 2, kind, n)


@pytest.fixture(scope="module")
def litemedsam():
    return build_litemedsam().eval()


@pytest.mark.parametrize("kind", ["points", "box"])
def test_equals_mask_decoder_with_litemedsam(litemedsam, kind):
    torch.manual_seed(0)
    image = (torch.rand(96, 120, 3) * 255).to(torch.uint8).numpy()
    embedding = litemedsam.embed_image(image)[None]
    compare(litemedsam.mask_decoder, litemedsam.prompt_encoder, embedding, kind, 6)


def test_weights_and_module_names_stay_segment_anythings(litemedsam):
    before = {k: v.clone() for k, v in litemedsam.mask_decoder.state_dict().items()}
    encoder = litemedsam.prompt_encoder
    sparse, _ = encoder(points=(torch.rand(2, 1, 2) * 256, torch.ones(2, 1, dtype=torch.int)), boxes=None, masks=None)
    with torch.no_grad():
        no_mask = encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        shared_decoder.decode(
            litemedsam.mask_decoder, torch.randn(1, 256, 64, 64), encoder.get_dense_pe(), no_mask, sparse
        )
    after = litemedsam.mask_decoder.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
