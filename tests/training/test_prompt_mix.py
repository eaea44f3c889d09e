"""module.prompts: the mix of prompt kinds, drawn per training sample by the evaluation's point rules."""

import numpy as np
import pytest
import torch
from scipy import stats

from sam4med.data.datamodule import CosmosDataModule
from sam4med.data.dataset import CosmosDataset
from sam4med.data.training_samples import DecoderSamples, collate, jitter_box
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError
from sam4med.evaluation.predict import prompts_to_tensors
from sam4med.models.builders import build_tiny
from sam4med.prompts.generate import tight_box
from sam4med.prompts.prompt import Prompt
from sam4med.prompts.training_mix import KINDS, MAX_POINTS, PRESETS, PromptMix
from sam4med.training.iterations import batch_prompts
from sam4med.training.module import DecoderFineTuner

COUNTS = {  # kind -> (positives, negatives, box)
    "box": (0, 0, True),
    "point": (1, 0, False),
    "points": (5, 0, False),
    "points_negative": (5, 5, False),
    "box_point": (1, 0, True),
}


CACHE = EmbeddingCache(None)  # in memory, shared: each image is encoded once for all tests


def samples(root, model, prompts, **kwargs):
    return DecoderSamples(CosmosDataset(root), model, CACHE, progress=False, prompts=prompts, **kwargs)


def to_original(sample, model):
    """The sample's real points (labels != -1) back in original pixels, and their labels."""
    real = sample["labels"] != -1
    scale = model.preprocessing.img_size / max(sample["gt"].shape)
    return (sample["points"][real] / scale).round().long().numpy(), sample["labels"][real].numpy()


def test_kind_frequencies_follow_the_probabilities(synthetic_root, tiny_model):
    mix = {"box": 0.1, "point": 0.3, "points": 0.2, "points_negative": 0.25, "box_point": 0.15}
    drawn = samples(synthetic_root, tiny_model, mix)
    per_epoch = len(drawn)
    epochs = -(-2000 // per_epoch)
    kinds = [drawn[(epoch, i)]["kind"] for epoch in range(epochs) for i in range(per_epoch)]
    n = len(kinds)
    for kind, p in mix.items():
        low, high = stats.binom.interval(0.9999, n, p)
        assert low <= kinds.count(kind) <= high, (kind, kinds.count(kind), n * p)


def test_a_kind_is_drawn_from_seed_epoch_and_index_only(synthetic_root, tiny_model):
    a, b = samples(synthetic_root, tiny_model, "mixed"), samples(synthetic_root, tiny_model, "mixed")
    for position in [(0, 0), (3, 2), (7, 5)]:
        x, y = a[position], b[position]
        assert x["kind"] == y["kind"] and torch.equal(x["points"], y["points"]) and torch.equal(x["seed"], y["seed"])
    assert len({a[(epoch, 1)]["kind"] for epoch in range(12)}) > 1  # it changes with the epoch
    other = samples(synthetic_root, tiny_model, "mixed", seed=1)
    assert any(not torch.equal(a[(0, i)]["points"], other[(0, i)]["points"]) for i in range(len(a)))


def test_box_preset_gives_the_box_only_samples(synthetic_root, tiny_model):
    """The default: the jittered tight box from rng(seed, epoch, index), no points, the box used."""
    drawn = samples(synthetic_root, tiny_model, "box", box_jitter=3, seed=4)
    dataset = CosmosDataset(synthetic_root)
    for epoch, index in [(0, 0), (2, 3), (5, 6)]:
        sample = drawn[(epoch, index)]
        image_index, object_index, _ = drawn.items[index]
        mask = dataset[image_index].masks[object_index]
        box = jitter_box(np.asarray(tight_box(mask)), 3, mask.shape, np.random.default_rng([4, epoch, index]))
        expected = tiny_model.preprocessing.boxes_to_model(box[None], mask.shape)[0]
        assert torch.equal(sample["box"], torch.as_tensor(expected, dtype=torch.float32))
        assert sample["kind"] == "box" and bool(sample["use_box"])
        assert sample["points"].shape == (MAX_POINTS, 2) and (sample["labels"] == -1).all()


def test_the_box_mask_and_embedding_do_not_depend_on_the_mix(synthetic_root, tiny_model):
    box_only = samples(synthetic_root, tiny_model, "box", box_jitter=3)
    mixed = samples(synthetic_root, tiny_model, "mixed", box_jitter=3)
    for position in [(0, 1), (4, 5)]:
        a, b = box_only[position], mixed[position]
        assert all(torch.equal(a[k], b[k]) for k in ("box", "mask", "gt", "embedding"))


def test_points_follow_the_evaluation_rules(synthetic_root, tiny_model):
    drawn = samples(synthetic_root, tiny_model, "mixed")
    dataset = CosmosDataset(synthetic_root)
    seen = set()
    for epoch in range(6):
        for index in range(len(drawn)):
            sample = drawn[(epoch, index)]
            kind = sample["kind"]
            seen.add(kind)
            points, labels = to_original(sample, tiny_model)
            positives, negatives, box = COUNTS[kind]
            assert list(labels) == [1] * positives + [0] * negatives
            assert bool(sample["use_box"]) == box
            image_index, object_index, _ = drawn.items[index]
            mask = dataset[image_index].masks[object_index]
            assert all(mask[y, x] for x, y in points[labels == 1])  # positives inside the object
            x0, y0, x1, y1 = tight_box(mask)
            half_w, half_h = (x1 - x0 + 1) / 2, (y1 - y0 + 1) / 2
            for x, y in points[labels == 0]:  # negatives: background inside the box enlarged two times
                assert not mask[y, x]
                assert x0 - half_w - 1 <= x <= x1 + half_w + 1 and y0 - half_h - 1 <= y <= y1 + half_h + 1
    assert seen == set(KINDS)


def test_the_decoder_sees_the_evaluation_prompt_of_the_kind(synthetic_root):
    """No padding reaches the decoder: a points sample decodes exactly as the evaluation's S3/S4 prompt."""
    model = build_tiny()  # the module freezes its encoders: not the shared fixture's
    module = DecoderFineTuner(model, optimizer=lambda params: torch.optim.AdamW(params), prompts="mixed")
    drawn = samples(synthetic_root, model, {"points_negative": 0.5, "point": 0.5})
    batch = collate([drawn[(0, i)] for i in range(4)])
    assert {"points_negative", "point"} == set(batch["kind"])
    logits, ious = module.decode_prompts(batch["embedding"], batch_prompts(batch))
    for row in range(4):
        sample = drawn[(0, row)]
        points, labels = to_original(sample, model)
        prompt = Prompt(
            strategy="S4", point_coords=tuple(map(tuple, points.tolist())), point_labels=tuple(labels.tolist())
        )
        coords, point_labels, boxes = prompts_to_tensors([prompt], model, tuple(sample["gt"].shape))
        with torch.no_grad():
            out = model.decode(
                sample["embedding"], point_coords=coords, point_labels=point_labels, boxes=boxes, multimask_output=False
            )
        assert boxes is None and coords.shape[1] == len(labels)
        torch.testing.assert_close(logits[row], out.low_res_logits[0], rtol=0, atol=1e-5)
        torch.testing.assert_close(ious[row], out.iou_predictions[0], rtol=0, atol=1e-6)


def test_the_datamodule_mixes_training_prompts_and_validates_on_boxes(synthetic_root, tiny_model):
    module = CosmosDataModule(root=synthetic_root, fractions=(0.5, 0.5, 0.0), block_size=1, gap=0, batch_size=4)
    module.attach(tiny_model, EmbeddingCache(None), prompts={"point": 1.0})
    train = [kind for batch in module.train_dataloader() for kind in batch["kind"]]
    val = [kind for batch in module.val_dataloader() for kind in batch["kind"]]
    assert train and set(train) == {"point"}
    assert val and set(val) == {"box"}


@pytest.mark.parametrize(
    "value, message",
    [
        ("boxes", "module.prompts=boxes: unknown preset; use one of box, mixed"),
        ({"box": 0.5, "click": 0.5}, "module.prompts: unknown prompt kind(s) click"),
        ({"box": 1.2, "point": -0.2}, "module.prompts.point=-0.2: a probability must be a number >= 0"),
        ({"box": 0.5, "point": 0.4}, "module.prompts: the probabilities sum to 0.9, not 1"),
        ({"box": "half"}, "module.prompts.box='half': a probability must be a number >= 0"),
        (3, "module.prompts=3: must be a preset"),
    ],
)
def test_a_bad_mix_is_a_config_error_naming_the_setting(value, message):
    with pytest.raises(ConfigError) as info:
        PromptMix.parse(value)
    assert message in str(info.value)


def test_presets_are_valid_mixes_and_box_is_box_only():
    assert PromptMix.parse("box").box_only and not PromptMix.parse("mixed").box_only
    for name in PRESETS:
        mix = PromptMix.parse(name)
        assert abs(sum(p for _, p in mix.probabilities) - 1) < 1e-9 and mix.to_config() == name
    mixed = dict(PromptMix.parse("mixed").probabilities)
    assert mixed["box"] + mixed["box_point"] == pytest.approx(0.5)  # half of the objects get a box
    negatives = dict(PromptMix.parse("mixed_negatives").probabilities)
    assert negatives["points_negative"] == pytest.approx(2 * mixed["points_negative"])  # doubled
    assert negatives["box"] + negatives["box_point"] == pytest.approx(0.4)  # from the box (0.1) and one point (0.05)
    assert negatives["point"] == pytest.approx(mixed["point"] - 0.05)
    interactive = dict(PromptMix.parse("interactive").probabilities)
    assert max(interactive, key=interactive.get) == "points_negative"
    assert interactive["points_negative"] == pytest.approx(0.4)  # the largest share: five + five points
    assert interactive["box"] + interactive["box_point"] == pytest.approx(negatives["box"] + negatives["box_point"])
    assert PromptMix.parse({"point": 1}).to_config() == {"point": 1.0}
