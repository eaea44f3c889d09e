"""Zero-shot rows shared between runs: reused when images and settings agree, never otherwise."""

import json
import logging

import pytest

import sam4med.evaluation.runner as runner
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.rules import RULES
from sam4med.evaluation.runner import score_dataset
from sam4med.evaluation.zero_shot_store import ZeroShotStore, _checksum, fingerprint
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore

STRATEGIES = ["S1", "S2", "S5"]


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    return CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001"])


class Counting:
    """Counts the (image, strategy) pairs the runner scores itself."""

    def __init__(self, monkeypatch):
        self.calls = 0
        original = runner._score_image

        def score(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(runner, "_score_image", score)


def run(model, dataset, tmp_path, name, store, *, seed=0, phase="zero_shot"):
    prompts_file = tmp_path / name / "prompts.json"
    rows = score_dataset(
        model,
        dataset,
        strategies=STRATEGIES,
        phase=phase,
        cache=EmbeddingCache(tmp_path / "cache"),
        prompts=PromptStore(seed=seed, read_from=prompts_file, write_to=prompts_file),
        multimask=Multimask.SINGLE,
        everything=EverythingSettings(points_per_side=4),
        log_path=tmp_path / name / "log.jsonl",
        progress=False,
        zero_shot_store=store,
    )
    return rows, json.loads(prompts_file.read_text())


def test_a_second_run_reuses_every_row_and_keeps_its_prompts(tiny_model, dataset, tmp_path, monkeypatch, caplog):
    store = ZeroShotStore(tmp_path / "shared")
    counter = Counting(monkeypatch)
    first, first_prompts = run(tiny_model, dataset, tmp_path, "a", store)
    assert counter.calls == len(dataset) * len(STRATEGIES)
    with caplog.at_level(logging.INFO, logger="sam4med"):
        second, second_prompts = run(tiny_model, dataset, tmp_path, "b", store)
    assert counter.calls == len(dataset) * len(STRATEGIES)  # nothing scored again
    assert second == first and second_prompts == first_prompts
    assert f"{len(dataset) * len(STRATEGIES)} (image, strategy) results reused" in caplog.text


def test_another_prompt_seed_or_a_fine_tuned_phase_is_scored_again(tiny_model, dataset, tmp_path, monkeypatch):
    store = ZeroShotStore(tmp_path / "shared")
    counter = Counting(monkeypatch)
    run(tiny_model, dataset, tmp_path, "a", store)
    run(tiny_model, dataset, tmp_path, "b", store, seed=1)
    assert counter.calls == 2 * len(dataset) * len(STRATEGIES)
    stored = sorted(p.name for p in (tmp_path / "shared").rglob("*.json"))
    run(tiny_model, dataset, tmp_path, "c", store, phase="finetuned")
    run(tiny_model, dataset, tmp_path, "d", store, phase="finetuned")
    assert counter.calls == 4 * len(dataset) * len(STRATEGIES)  # fine-tuned rows are neither reused nor stored
    assert sorted(p.name for p in (tmp_path / "shared").rglob("*.json")) == stored


def test_a_changed_image_or_mask_has_another_fingerprint(dataset):
    item = dataset[0]
    image = item.image.copy()
    image[0, 0, 0] ^= 1
    masks = item.masks.copy()
    masks[0, 0, 0] = ~masks[0, 0, 0]
    changed_image = type(item)(record=item.record, image=image, objects=item.objects, masks=item.masks)
    changed_mask = type(item)(record=item.record, image=item.image, objects=item.objects, masks=masks)
    keys = {fingerprint(item), fingerprint(changed_image), fingerprint(changed_mask)}
    assert len(keys) == 3


@pytest.mark.parametrize("damage", ["cut", "other rows", "not json", "edited", "old format"])
def test_an_unusable_file_is_logged_and_scored_again(tiny_model, dataset, tmp_path, monkeypatch, caplog, damage):
    store = ZeroShotStore(tmp_path / "shared")
    first, _ = run(tiny_model, dataset, tmp_path, "a", store)
    path = sorted((tmp_path / "shared").rglob("*-S5.json"))[0]
    text = path.read_text()
    rows = json.loads(text)
    other = rows["rows"][:1] * 3  # rows of one object, with a checksum that fits them
    edited = [{**rows["rows"][0], "dice": 1.0}, *rows["rows"][1:]]  # a changed value under the old checksum
    path.write_text(
        {
            "cut": text[: len(text) // 2],
            "other rows": json.dumps({**RULES, "rows": other, "sha256": _checksum(other)}),
            "not json": "\x00\x01",
            "edited": json.dumps({**RULES, "rows": edited, "sha256": rows["sha256"]}),
            "old format": json.dumps(rows["rows"]),
        }[damage]
    )
    counter = Counting(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        second, _ = run(tiny_model, dataset, tmp_path, "b", store)
    assert counter.calls == 1 and second == first
    assert f"{path}: stored zero-shot rows unusable" in caplog.text
    assert json.loads(path.read_text()) == rows  # rewritten whole
