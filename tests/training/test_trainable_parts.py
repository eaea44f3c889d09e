"""module.train: only the chosen parts learn, checkpoints hold only them, and an exported checkpoint (LoRA merged)
loaded into a plain segment_anything model predicts what evaluate.py's fine-tuned model predicts."""

import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch
from segment_anything.modeling import Sam
from torch.utils.data import DataLoader

from sam4med.data.dataset import CosmosDataset
from sam4med.data.training_samples import DecoderSamples, collate
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import CheckpointError, ConfigError
from sam4med.export import export
from sam4med.models.builders import build_tiny
from sam4med.models.finetuned import Trained, read_finetuned
from sam4med.training.module import DecoderFineTuner
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S
from tests.models.checkpoint_files import TINY_CONFIG, write_checkpoint

MODES = ("decoder", "decoder+prompt_encoder", "lora")


def trained_key(train: str, key: str) -> bool:
    """What each mode trains, written out here independently of ``Trained.keeps``."""
    if key.startswith("model.mask_decoder."):
        return True
    if train == "decoder+prompt_encoder":
        return key.startswith("model.prompt_encoder.")
    return train == "lora" and key.startswith("model.image_encoder.") and (".lora_A." in key or ".lora_B." in key)


def make_module(train: str, model=None) -> DecoderFineTuner:
    return DecoderFineTuner(
        model or build_tiny(),
        optimizer=lambda params: torch.optim.AdamW(params, lr=1e-2),
        multimask="single",
        train=train,
        lora={"rank": 2, "alpha": 4.0, "dropout": 0.0, "targets": ["attn.qkv"]},
    )


def online_batch(root, model) -> dict:
    samples = DecoderSamples(CosmosDataset(root), model, None, mode="online", box_jitter=2, progress=False)
    return next(iter(DataLoader(samples, batch_size=4, shuffle=False, collate_fn=collate)))


def steps(module: DecoderFineTuner, batch: dict, n: int) -> None:
    module.train()
    optimizer = module.configure_optimizers()
    for _ in range(n):
        loss, _ = module._loss(*module(module.embeddings(batch), batch["box"]), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


@pytest.mark.parametrize("train", MODES)
def test_only_the_chosen_parameters_receive_gradients_and_change(synthetic_root, train):
    module = make_module(train)
    batch = online_batch(synthetic_root, module.model)
    before = {k: v.clone() for k, v in module.state_dict().items()}  # parameters and buffers (BatchNorm stats)
    module.train()
    optimizer = module.configure_optimizers()
    loss, _ = module._loss(*module(module.embeddings(batch), batch["box"]), batch)
    optimizer.zero_grad()
    loss.backward()
    with_grad = {f"{n}" for n, p in module.named_parameters() if p.grad is not None}
    optimizer.step()
    after = module.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert with_grad and all(trained_key(train, k) for k in with_grad)
    assert changed and all(trained_key(train, k) for k in changed)  # every other weight bit-identical
    parts = {k.split(".")[1] for k in changed}
    assert (
        parts
        == {
            "decoder": {"mask_decoder"},
            "decoder+prompt_encoder": {"mask_decoder", "prompt_encoder"},
            "lora": {"mask_decoder", "image_encoder"},
        }[train]
    )
    assert sum(p.numel() for p in optimizer.param_groups[0]["params"]) == sum(
        v.numel() for k, v in module.named_parameters() if trained_key(train, k)
    )


def test_lora_keeps_the_frozen_encoder_in_eval_mode_and_encodes_with_gradient(synthetic_root):
    module = make_module("lora")
    module.train()
    encoder = module.model.image_encoder
    assert not encoder.training and not encoder.blocks[0].attn.qkv.base_layer.training
    assert encoder.blocks[0].attn.qkv.lora_dropout.training
    batch = online_batch(synthetic_root, module.model)
    assert module.embeddings(batch).requires_grad
    with torch.no_grad():
        assert not module.embeddings(batch).requires_grad


@pytest.mark.parametrize("train", MODES)
def test_the_checkpoint_holds_only_the_trained_parameters(train):
    module = make_module(train)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    expected = {k for k in module.state_dict() if trained_key(train, k)}
    assert set(checkpoint["state_dict"]) == expected
    assert checkpoint["sam4med"]["train"] == train
    plain = build_tiny()
    assert checkpoint["sam4med"]["base_weights"]["image_encoder"] == plain.module_hash(plain.image_encoder)
    assert ("lora" in checkpoint["sam4med"]) == (train == "lora")


def save(module: DecoderFineTuner, path):
    checkpoint = {
        "epoch": 1,
        "state_dict": module.state_dict(),
        "hyper_parameters": {"multimask": "single", "run_config": {"model": TINY_CONFIG, "seed": 0}},
    }
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, path)
    return path


def box_logits(image_encoder, prompt_encoder, mask_decoder, images, boxes):
    """Low-res logits of one box per image, through segment_anything's modules only."""
    with torch.no_grad():
        embeddings = image_encoder(images)
        out = []
        for embedding, box in zip(embeddings, boxes, strict=True):
            sparse, dense = prompt_encoder(points=None, boxes=box[None].float(), masks=None)
            logits, _ = mask_decoder(embedding[None], prompt_encoder.get_dense_pe(), sparse, dense, False)
            out.append(logits[0])
    return torch.stack(out)


@pytest.mark.parametrize("train", MODES)
def test_an_exported_checkpoint_reproduces_the_finetuned_masks(synthetic_root, tmp_path, train):
    module = make_module(train)
    batch = online_batch(synthetic_root, module.model)
    steps(module, batch, 3)
    path = save(module, tmp_path / "best.ckpt")
    out = export(path, tmp_path / "exported.pth")
    state = torch.load(out, weights_only=True)
    assert not any("lora" in k or "base_layer" in k for k in state)  # plain segment_anything names
    consumer = build_tiny()  # the parts only: a plain segment_anything Sam, as a user without sam4med builds it
    sam = Sam(consumer.image_encoder, consumer.prompt_encoder, consumer.mask_decoder)
    sam.load_state_dict(state, strict=True)
    scored = build_tiny()  # what evaluate.py finetuned= scores
    read_finetuned(path).load_into(scored)
    images, boxes = batch["image"], batch["box"]
    exported = box_logits(sam.image_encoder, sam.prompt_encoder, sam.mask_decoder, images, boxes)
    evaluated = box_logits(scored.image_encoder, scored.prompt_encoder, scored.mask_decoder, images, boxes)
    assert torch.equal(exported, evaluated)  # the very same weights: bit-identical logits, hence masks
    module.eval()
    with torch.no_grad():
        low_res = module.decode_prompts(module.embeddings(batch), boxes)[0]
    torch.testing.assert_close(exported, low_res, atol=1e-4, rtol=1e-4)  # the training model (unmerged adapters)
    base = build_tiny()
    untrained = box_logits(base.image_encoder, base.prompt_encoder, base.mask_decoder, images, boxes)
    assert not torch.allclose(exported, untrained, atol=1e-3)
    if train == "lora":  # the encoder itself changed
        assert not torch.equal(
            sam.image_encoder.blocks[0].attn.qkv.weight, base.image_encoder.blocks[0].attn.qkv.weight
        )


def test_a_lora_run_never_reads_the_base_encoders_cache_entries(synthetic_root, tmp_path):
    module = make_module("lora")
    steps(module, online_batch(synthetic_root, module.model), 2)
    path = save(module, tmp_path / "lora.ckpt")
    cache = EmbeddingCache(tmp_path / "cache")
    image = CosmosDataset(synthetic_root)[0].image
    model = build_tiny()
    base_key, base_embedding = cache.get_with_key(model, image)
    read_finetuned(path).load_into(model)  # the same model object: its memoised encoder key must not be reused
    lora_key, lora_embedding = cache.get_with_key(model, image)
    assert lora_key != base_key
    assert torch.equal(lora_embedding, model.embed_image(image))
    assert not torch.allclose(lora_embedding, base_embedding, atol=1e-5)


def test_validation_of_a_lora_run_encodes_online(synthetic_root):
    from sam4med.data.datamodule import CosmosDataModule

    module = make_module("lora")
    datamodule = CosmosDataModule(
        root=synthetic_root, input_mode="online", fractions=(0.5, 0.25, 0.25), block_size=2, gap=0
    )
    datamodule.attach(module.model, EmbeddingCache(None))
    batch = next(iter(datamodule.val_dataloader()))
    assert "image" in batch and "embedding" not in batch
    frozen = CosmosDataModule(
        root=synthetic_root, input_mode="online", fractions=(0.5, 0.25, 0.25), block_size=2, gap=0
    )
    frozen.attach(build_tiny(), EmbeddingCache(None))
    assert "embedding" in next(iter(frozen.val_dataloader()))  # decoder-only runs keep cached validation


def test_lora_on_cached_embeddings_is_refused_before_training():
    module = make_module("lora")
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(input_mode="cached"))
    with pytest.raises(
        ConfigError, match=r"module.train=lora .* dataset.input_mode is 'cached': set dataset.input_mode"
    ):
        module.setup("fit")
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(input_mode="online"))
    module.setup("fit")


def test_a_trained_prompt_encoder_under_ddp_needs_find_unused_parameters():
    from pytorch_lightning.strategies import DDPStrategy

    module = make_module("decoder+prompt_encoder")
    online = SimpleNamespace(input_mode="online")
    module._trainer = SimpleNamespace(datamodule=online, strategy=DDPStrategy(find_unused_parameters=False))
    with pytest.raises(ConfigError, match="needs trainer.strategy.find_unused_parameters=true"):
        module.setup("fit")
    module._trainer = SimpleNamespace(datamodule=online, strategy=DDPStrategy(find_unused_parameters=True))
    module.setup("fit")
    decoder = make_module("decoder")  # the decoder uses every parameter: DDP as before
    decoder._trainer = SimpleNamespace(datamodule=online, strategy=DDPStrategy(find_unused_parameters=False))
    decoder.setup("fit")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("rank", 0, "module.lora.rank must be an integer of 1 or more"),
        ("alpha", 0.0, "module.lora.alpha must be a number above 0"),
        ("dropout", 1.0, "module.lora.dropout must be at least 0 and below 1"),
        ("targets", [], "module.lora.targets must be a non-empty list"),
        ("bias", "all", "module.lora has no setting bias"),
    ],
)
def test_bad_lora_settings_are_config_errors(setting, value, message):
    lora = {"rank": 2, "alpha": 4.0, "dropout": 0.0, "targets": ["attn.qkv"], setting: value}
    with pytest.raises(ConfigError, match=message):
        DecoderFineTuner(build_tiny(), optimizer=torch.optim.AdamW, train="lora", lora=lora)


def test_unknown_train_is_a_config_error():
    with pytest.raises(ConfigError, match="module.train must be one of decoder | decoder\\+prompt_encoder | lora"):
        make_module("encoder")


def test_resume_restores_the_adapters_and_refuses_another_mode(synthetic_root):
    module = make_module("lora")
    steps(module, online_batch(synthetic_root, module.model), 2)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    resumed = make_module("lora")
    resumed.on_load_checkpoint(checkpoint)
    resumed.load_state_dict(checkpoint["state_dict"], strict=True)
    assert all(torch.equal(v, module.state_dict()[k]) for k, v in resumed.state_dict().items())
    for other in ("decoder", "decoder+prompt_encoder"):
        again = {"state_dict": dict(checkpoint["state_dict"]), "sam4med": dict(checkpoint["sam4med"])}
        with pytest.raises(
            CheckpointError, match=f"module.train=lora with .*, this run module.train={re.escape(other)};"
        ):
            make_module(other).on_load_checkpoint(again)


def test_old_decoder_only_checkpoints_still_load(tmp_path):
    tiny = build_tiny()
    path = write_checkpoint(tmp_path / "old.ckpt", tiny)  # no sam4med.train, as before it was recorded
    finetuned = read_finetuned(path)
    assert finetuned.trained is Trained.DECODER and finetuned.prompt_encoder_state is None and finetuned.lora is None
    fresh = build_tiny()
    finetuned.load_into(fresh)
    assert all(torch.equal(v, finetuned.decoder_state[k]) for k, v in fresh.mask_decoder.state_dict().items())
    assert fresh.module_hash(fresh.image_encoder) == tiny.module_hash(tiny.image_encoder)


@pytest.mark.slow  # two subprocess runs: about two minutes on a busy CPU
def test_train_lora_end_to_end_then_evaluate_scores_it(tmp_path):
    common = [
        f"paths.data_dir={tmp_path / 'data'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "evaluation.strategies=[S2]",
    ]
    train = subprocess.run(
        [
            sys.executable,
            "train.py",
            "experiment=quick",
            "module.train=lora",
            "dataset.input_mode=online",
            "paths.zero_shot_dir=null",
            "trainer.enable_progress_bar=false",
            f"hydra.run.dir={tmp_path / 'train'}",
            *common,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    best = next((tmp_path / "train" / "checkpoints").glob("epoch*.ckpt"))
    assert read_finetuned(best).trained is Trained.LORA
    evaluate = subprocess.run(
        [
            sys.executable,
            "evaluate.py",
            "model=tiny",
            "dataset=synthetic",
            f"finetuned={best}",
            f"hydra.run.dir={tmp_path / 'eval'}",
            *common,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert evaluate.returncode == 0, evaluate.stderr[-3000:]
    import pandas as pd

    trained = pd.read_csv(tmp_path / "train" / "results" / "metrics.csv")
    scored = pd.read_csv(tmp_path / "eval" / "results" / "metrics.csv")
    finetuned = trained[trained.phase == "finetuned"].reset_index(drop=True)
    assert len(scored) == len(finetuned) > 0
    pd.testing.assert_series_equal(scored["dice"], finetuned["dice"])  # the callback scores what evaluate.py loads


def test_a_non_finite_adapter_matrix_is_refused_before_scoring(tmp_path):
    module = make_module("lora")
    checkpoint = {"state_dict": module.state_dict(), "hyper_parameters": {"run_config": {"model": TINY_CONFIG}}}
    module.on_save_checkpoint(checkpoint)
    key = "model.image_encoder.blocks.1.attn.qkv.lora_B.default.weight"
    checkpoint["state_dict"][key] = torch.full_like(checkpoint["state_dict"][key], float("nan"))
    torch.save(checkpoint, tmp_path / "nan.ckpt")
    with pytest.raises(CheckpointError, match=f"trained tensor '{re.escape(key)}' holds 192 NaN"):
        read_finetuned(tmp_path / "nan.ckpt")
