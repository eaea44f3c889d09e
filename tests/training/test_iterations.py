"""module.iterations: corrective clicks from the error region of the current prediction, decoder-only gradients."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from sam4med.data.dataset import CosmosDataset
from sam4med.data.training_samples import DecoderSamples, collate
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError
from sam4med.models.builders import build_tiny
from sam4med.models.multimask import Multimask
from sam4med.training.iterations import ObjectPrompt, batch_prompts, boxes_only, chosen_outputs, corrective_clicks
from sam4med.training.module import DecoderFineTuner

CACHE = EmbeddingCache(None)  # in memory, shared by the tests of this file


def make_module(model, **kwargs):
    return DecoderFineTuner(model, optimizer=lambda params: torch.optim.AdamW(params, lr=1e-3), **kwargs)


def batch_of(root, model, prompts="mixed", size=4, epoch=0):
    samples = DecoderSamples(CosmosDataset(root), model, CACHE, box_jitter=2, progress=False, prompts=prompts)
    return collate([samples[(epoch, i)] for i in range(size)])


def rectangle(shape, rows, cols):
    mask = np.zeros(shape, dtype=bool)
    mask[rows[0] : rows[1], cols[0] : cols[1]] = True
    return mask


def click_of(prompt, before, preprocessing, shape):
    """The click appended to ``before``: (x, y) in original pixels and its label."""
    assert len(prompt.labels) == len(before.labels) + 1
    assert torch.equal(prompt.points[:-1], before.points) and torch.equal(prompt.labels[:-1], before.labels)
    assert prompt.box is before.box  # the box stays
    scale = preprocessing.img_size / max(shape)
    x, y = (prompt.points[-1] / scale).round().long().tolist()
    return x, y, int(prompt.labels[-1])


@pytest.mark.parametrize("error", ["false_positive", "false_negative"])
def test_a_corrective_click_lies_in_the_error_region_with_its_label(tiny_model, error):
    shape = (48, 64)
    gt = rectangle(shape, (10, 30), (10, 30))
    if error == "false_positive":  # the prediction spills into a large region outside the object
        pred = gt | rectangle(shape, (32, 46), (10, 50))
    else:  # the prediction misses most of the object
        pred = rectangle(shape, (10, 30), (10, 14))
    start = boxes_only(torch.tensor([[10.0, 10.0, 29.0, 29.0]]))[0]
    (clicked,) = corrective_clicks(
        [start],
        [pred],
        [torch.from_numpy(gt)],
        seeds=[3],
        object_keys=["img|1"],
        click=2,
        preprocessing=tiny_model.preprocessing,
    )
    x, y, label = click_of(clicked, start, tiny_model.preprocessing, shape)
    assert pred[y, x] != gt[y, x]  # in the error region
    if error == "false_positive":
        assert label == 0 and pred[y, x] and not gt[y, x] and y >= 32
    else:
        assert label == 1 and gt[y, x] and not pred[y, x] and x >= 14


def test_clicks_accumulate_and_an_exact_prediction_gets_none(tiny_model):
    shape = (48, 64)
    gt = rectangle(shape, (5, 40), (5, 40))
    start = ObjectPrompt(torch.tensor([[20.0, 20.0]]), torch.tensor([1]), None)
    missing = rectangle(shape, (5, 40), (5, 20))
    (second,) = corrective_clicks(
        [start], [missing], [torch.from_numpy(gt)], seeds=[0], object_keys=["k"], click=2,
        preprocessing=tiny_model.preprocessing,
    )  # fmt: skip
    x, y, label = click_of(second, start, tiny_model.preprocessing, shape)
    assert label == 1 and gt[y, x] and not missing[y, x]
    (third,) = corrective_clicks(
        [second], [gt | rectangle(shape, (42, 48), (0, 64))], [torch.from_numpy(gt)], seeds=[0], object_keys=["k"],
        click=3, preprocessing=tiny_model.preprocessing,
    )  # fmt: skip
    x, y, label = click_of(third, second, tiny_model.preprocessing, shape)
    assert label == 0 and y >= 42
    (same,) = corrective_clicks(
        [third], [gt], [torch.from_numpy(gt)], seeds=[0], object_keys=["k"], click=4,
        preprocessing=tiny_model.preprocessing,
    )  # fmt: skip
    assert same is third


def test_the_click_follows_the_output_the_evaluation_chooses(tiny_model):
    """Three outputs: the most confident is wrong, the oracle's is the object; the click and the mask prompt
    come from the output the run's mask selection picks.
    """
    pre = tiny_model.preprocessing
    low = pre.img_size // 4
    shape = (48, 64)
    gt = rectangle(shape, (8, 40), (8, 40))
    logits = torch.full((1, 3, low, low), -10.0)
    logits[0, 0, : low // 4, : low // 4] = 10.0  # a small wrong blob
    logits[0, 2] = (pre.mask_to_model(gt)[None, None] > 0.5).float().mul(20).sub(10)[0, 0, ::4, ::4][:low, :low]
    ious = torch.tensor([[0.9, 0.1, 0.2]])
    for multimask, row in ((Multimask.CONFIDENCE, 0), (Multimask.ORACLE, 2)):
        chosen, masks = chosen_outputs(logits, ious, [torch.from_numpy(gt)], pre, multimask)
        assert torch.equal(chosen[0, 0], logits[0, row]) and not chosen.requires_grad
        expected = (pre.logits_to_original(logits[:, row : row + 1], shape) > 0)[0, 0].numpy()
        assert np.array_equal(masks[0], expected)
    assert (masks[0] == gt).mean() > 0.9  # the oracle's output is the object


class DecodeSpy:
    """Wraps ``model.decode`` and records the points and whether a mask prompt came with each call."""

    def __init__(self, model):
        self.real, self.calls = model.decode, []
        model.decode = self

    def __call__(self, embedding, **kwargs):
        points = kwargs["point_labels"]
        self.calls.append((0 if points is None else points.shape[1], kwargs.get("mask_input") is not None))
        return self.real(embedding, **kwargs)


@pytest.mark.parametrize("mask_input", [True, False])
def test_each_iteration_adds_one_click_per_object(synthetic_root, mask_input):
    model = build_tiny()
    module = make_module(model, prompts="mixed", iterations=2, iteration_mask_input=mask_input)
    batch = batch_of(synthetic_root, model)
    spy = DecodeSpy(model)
    module._iterated_loss(module.embeddings(batch), batch)
    first = [int((labels != -1).sum()) for labels in batch["labels"]]
    assert [n for n, _ in spy.calls] == first + [n + 1 for n in first] + [n + 2 for n in first]
    assert [m for _, m in spy.calls] == [False] * 4 + [mask_input] * 8


def test_no_iterations_is_the_loss_of_the_first_prediction(synthetic_root):
    torch.manual_seed(0)
    model = build_tiny()
    batch = batch_of(synthetic_root, model)
    plain, iterated = make_module(model, prompts="mixed"), make_module(model, prompts="mixed", iterations=2)
    logits, ious = plain(batch["embedding"], batch_prompts(batch))
    first, _ = plain._loss(logits, ious, batch)
    assert torch.equal(plain._iterated_loss(batch["embedding"], batch)[0], first)
    assert not torch.equal(iterated._iterated_loss(batch["embedding"], batch)[0], first)


def test_gradients_reach_only_the_decoder(synthetic_root):
    model = build_tiny()
    module = make_module(model, prompts="mixed", iterations=3)
    batch = batch_of(synthetic_root, model)
    loss, _ = module._iterated_loss(module.embeddings(batch), batch)
    loss.backward()
    with_grad = {name for name, p in model.named_parameters() if p.grad is not None}
    assert with_grad and all(name.startswith("mask_decoder.") for name in with_grad)
    assert any(p.grad.abs().sum() > 0 for name, p in model.named_parameters() if name in with_grad)


def test_a_fit_with_iterations_changes_only_the_decoder(synthetic_root):
    model = build_tiny()
    module = make_module(model, prompts="mixed", iterations=2)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("mask_decoder.")}
    decoder = {k: v.clone() for k, v in model.mask_decoder.state_dict().items()}
    samples = DecoderSamples(CosmosDataset(synthetic_root), model, CACHE, box_jitter=2, progress=False, prompts="mixed")
    loader = DataLoader(torch.utils.data.Subset(samples, range(8)), batch_size=4, collate_fn=collate)
    trainer = pl.Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(module, train_dataloaders=loader)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items())  # bit-identical, BatchNorm statistics too
    assert any(not torch.equal(v, model.mask_decoder.state_dict()[k]) for k, v in decoder.items())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"iterations": -1}, "module.iterations=-1: must be an integer >= 0"),
        ({"iterations": 1.5}, "module.iterations=1.5: must be an integer >= 0"),
        ({"iterations": True}, "module.iterations=True: must be an integer >= 0"),
        ({"iteration_mask_input": "yes"}, "module.iteration_mask_input='yes': must be true or false"),
        ({"prompts": "points"}, "module.prompts=points: unknown preset"),
    ],
)
def test_bad_settings_are_config_errors(kwargs, message):
    with pytest.raises(ConfigError) as info:
        make_module(build_tiny(), **kwargs)
    assert message in str(info.value)
