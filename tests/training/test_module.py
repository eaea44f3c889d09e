import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from sam4med.data.dataset import CosmosDataset
from sam4med.data.training_samples import DecoderSamples, collate
from sam4med.embeddings import EmbeddingCache
from sam4med.models.builders import build_tiny
from sam4med.models.finetuned import load_finetuned_decoder
from sam4med.training.module import DecoderFineTuner


def make_module(model, multimask="single"):
    return DecoderFineTuner(model, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3), multimask=multimask)


def loader(root, model):
    samples = DecoderSamples(CosmosDataset(root), model, EmbeddingCache(None), box_jitter=2, progress=False)
    return DataLoader(samples, batch_size=2, shuffle=False, collate_fn=collate)


def test_only_the_decoder_trains(synthetic_root):
    model = build_tiny()
    module = make_module(model)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("mask_decoder.")}
    decoder_before = {k: v.clone() for k, v in model.mask_decoder.state_dict().items()}
    trainer = pl.Trainer(
        max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, train_dataloaders=loader(synthetic_root, model))
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items())  # BatchNorm stats too
    assert any(not torch.equal(v, model.mask_decoder.state_dict()[k]) for k, v in decoder_before.items())
    assert not any(p.requires_grad for p in model.image_encoder.parameters())
    assert not model.image_encoder.training


def test_loss_falls_when_overfitting_a_batch(synthetic_root):
    torch.manual_seed(0)
    model = build_tiny()
    module = make_module(model)
    batch = next(iter(loader(synthetic_root, model)))
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(80):
        loss, _ = module._loss(*module(batch["embedding"], batch["box"]), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_checkpoint_holds_only_the_decoder(synthetic_root, tmp_path):
    model = build_tiny()
    module = make_module(model)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path
    )
    trainer.fit(module, train_dataloaders=loader(synthetic_root, model))
    path = tmp_path / "decoder.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)  # hyperparameters are plain values, no pickled objects
    state = checkpoint["state_dict"]
    assert state and all(k.startswith("model.mask_decoder.") for k in state)
    assert checkpoint["hyper_parameters"]["multimask"] == "single"
    fresh = build_tiny()
    load_finetuned_decoder(fresh, path)
    assert all(torch.equal(v, model.mask_decoder.state_dict()[k]) for k, v in fresh.mask_decoder.state_dict().items())


def test_multimask_training_trains_three_outputs(synthetic_root):
    model = build_tiny()
    module = make_module(model, multimask="oracle")
    batch = next(iter(loader(synthetic_root, model)))
    logits, ious = module(batch["embedding"], batch["box"])
    assert logits.shape[1] == 3 and ious.shape[1] == 3


def test_online_mode_encodes_like_the_cache(synthetic_root):
    model = build_tiny()
    module = make_module(model)
    dataset = CosmosDataset(synthetic_root)
    cached = DecoderSamples(dataset, model, EmbeddingCache(None), mode="cached", box_jitter=3, progress=False)
    online = DecoderSamples(dataset, model, None, mode="online", box_jitter=3, progress=False)
    a, b = collate([cached[(1, 0)], cached[(1, 1)]]), collate([online[(1, 0)], online[(1, 1)]])
    assert "image" in b and "embedding" not in b
    assert torch.equal(a["box"], b["box"])  # jitter drawn from (seed, epoch, index) only
    torch.testing.assert_close(module.embeddings(a), module.embeddings(b))
    loss_a, _ = module._loss(*module(module.embeddings(a), a["box"]), a)
    loss_b, _ = module._loss(*module(module.embeddings(b), b["box"]), b)
    torch.testing.assert_close(loss_a, loss_b)


def test_jitter_changes_with_epoch_not_with_call(synthetic_root):
    model = build_tiny()
    samples = DecoderSamples(CosmosDataset(synthetic_root), model, EmbeddingCache(None), box_jitter=4, progress=False)
    assert torch.equal(samples[(0, 3)]["box"], samples[(0, 3)]["box"])
    boxes = {tuple(samples[(epoch, 3)]["box"].tolist()) for epoch in range(6)}
    assert len(boxes) > 1


def test_online_augmentation_moves_image_mask_and_box_together(synthetic_root):
    from sam4med.data.augment import Augmentation

    model = build_tiny()
    dataset = CosmosDataset(synthetic_root)
    augment = Augmentation(hflip=1.0, rotate=0.0, scale=0.0, translate=0.0, p_affine=0.0, p_intensity=0.0)
    plain = DecoderSamples(dataset, model, None, mode="online", progress=False)
    flipped = DecoderSamples(dataset, model, None, mode="online", augment=augment, progress=False)
    a, b = plain[(0, 0)], flipped[(0, 0)]
    assert torch.equal(b["gt"], torch.flip(a["gt"], dims=[1]))
    w = a["gt"].shape[1]
    x0, y0, x1, y1 = a["box"].tolist()
    scale = model.preprocessing.img_size / max(a["gt"].shape)
    torch.testing.assert_close(b["box"], torch.tensor([(w - 1) * scale - x1, y0, (w - 1) * scale - x0, y1]))
    assert not torch.equal(a["image"], b["image"])


def test_cached_mode_refuses_augmentation(synthetic_root):
    import pytest

    from sam4med.data.augment import Augmentation
    from sam4med.errors import ConfigError

    with pytest.raises(ConfigError, match="online"):
        DecoderSamples(CosmosDataset(synthetic_root), build_tiny(), EmbeddingCache(None), augment=Augmentation())


def test_run_config_and_multimask_travel_in_the_checkpoint(synthetic_root, tmp_path):
    from sam4med.models.finetuned import read_finetuned
    from sam4med.models.multimask import Multimask

    model = build_tiny()
    module = DecoderFineTuner(
        model,
        optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3),
        multimask="oracle",
        run_config={"dataset": {"name": "synthetic"}, "seed": 7},
    )
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path
    )
    trainer.fit(module, train_dataloaders=loader(synthetic_root, model))
    trainer.save_checkpoint(tmp_path / "decoder.ckpt")
    finetuned = read_finetuned(tmp_path / "decoder.ckpt")
    assert finetuned.multimask is Multimask.ORACLE
    assert finetuned.run_config == {"dataset": {"name": "synthetic"}, "seed": 7}


def test_unknown_multimask_is_refused_at_construction():
    import pytest

    from sam4med.errors import ConfigError

    with pytest.raises(ConfigError, match="multimask must be one of single, oracle, confidence; got 'best'"):
        make_module(build_tiny(), multimask="best")


def test_dice_ce_loss_is_monais_at_original_resolution(synthetic_root):
    import torch.nn.functional as F
    from monai.losses import DiceCELoss

    model = build_tiny()
    module = DecoderFineTuner(
        model, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3), loss="dice_ce", train_token="single"
    )
    batch = next(iter(loader(synthetic_root, model)))
    logits, ious = module(batch["embedding"], batch["box"])
    loss, _ = module._loss(logits, ious, batch)
    expected = []
    for logit, gt in zip(logits, batch["gt"], strict=True):
        h, w = model.preprocessing.resized_shape(tuple(gt.shape))
        full = F.interpolate(logit[None, :, :h, :w], tuple(gt.shape), mode="bilinear", align_corners=False)
        expected.append(DiceCELoss(sigmoid=True, squared_pred=True)(full, gt[None, None].float()))
    assert torch.allclose(loss, torch.stack(expected).mean())


def test_token_0_trained_while_the_oracle_scores(synthetic_root):
    model = build_tiny()
    module = DecoderFineTuner(
        model, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3), multimask="oracle", train_token="single"
    )
    batch = next(iter(loader(synthetic_root, model)))
    logits, _ = module(batch["embedding"], batch["box"])
    assert logits.shape[1] == 1  # the single-mask token is what the loss sees
    seen = []
    original = module.forward
    module.forward = lambda *a, **k: seen.append(k.get("multimask_output")) or original(*a, **k)
    module.log = lambda *a, **k: None
    module.validation_step(batch, 0)
    assert seen == [None, True]  # validation scores the oracle over the three multimask tokens
    default = make_module(build_tiny(), multimask="oracle")
    assert default(batch["embedding"], batch["box"])[0].shape[1] == 3  # train_token=scored: the three


def test_seed_reaches_the_datamodule(tmp_path):
    from hydra.utils import instantiate

    from tests.helpers import compose_config

    for seed in (3, 11):
        assert instantiate(compose_config("train", tmp_path, [f"seed={seed}"]).dataset).seed == seed
