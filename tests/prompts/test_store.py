import json

import numpy as np
import pytest

from sam4med.errors import DataError
from sam4med.prompts.generate import make_prompt
from sam4med.prompts.store import PromptStore


@pytest.fixture
def mask():
    mask = np.zeros((30, 30), dtype=bool)
    mask[5:25, 5:25] = True
    return mask


def test_saved_prompts_are_reused_exactly(tmp_path, mask):
    store = PromptStore(seed=3, read_from=tmp_path / "prompts.json", write_to=tmp_path / "prompts.json")
    made = {s: store.get(mask, s, "img/m/1") for s in ("S2", "S3", "S4", "S5", "S6")}
    store.save()
    data = json.loads((tmp_path / "prompts.json").read_text())
    assert data["seed"] == 3 and set(data["prompts"]) == {f"{s}|img/m/1" for s in made}
    again = PromptStore(seed=3, read_from=tmp_path / "prompts.json", write_to=tmp_path / "prompts.json")
    assert {s: again.get(mask, s, "img/m/1") for s in made} == made  # reused, never remade


def test_store_keeps_the_seed_its_file_was_made_with(tmp_path, mask):
    first = PromptStore(seed=3, read_from=tmp_path / "prompts.json", write_to=tmp_path / "prompts.json")
    s3 = first.get(mask, "S3", "x")
    first.save()
    later = PromptStore(seed=99, read_from=tmp_path / "prompts.json", write_to=tmp_path / "prompts.json")
    assert later.seed == 3 and later.get(mask, "S3", "x") == s3
    assert later.get(mask, "S4", "x") == make_prompt(mask, "S4", seed=3, object_key="x")


def test_foreign_file_is_a_data_error(tmp_path):
    (tmp_path / "prompts.json").write_text("{}")
    with pytest.raises(DataError, match="not a prompt file"):
        PromptStore(seed=0, read_from=tmp_path / "prompts.json", write_to=tmp_path / "prompts.json")


def test_read_and_write_paths_are_separate(tmp_path, mask):
    source = PromptStore(seed=5, write_to=tmp_path / "zero_shot.json")
    made = source.get(mask, "S3", "a")
    source.save()
    before = (tmp_path / "zero_shot.json").read_text()
    copy = PromptStore(seed=5, read_from=tmp_path / "zero_shot.json", write_to=tmp_path / "finetuned.json")
    copy.save()  # a different target is written even when nothing was added
    stored = json.loads((tmp_path / "finetuned.json").read_text())["prompts"]["S3|a"]
    assert {k: v for k, v in stored.items() if k != "mask_sha256"} == made.to_dict()
    copy.get(mask, "S5", "a")
    copy.save()
    assert (tmp_path / "zero_shot.json").read_text() == before  # the source is never rewritten
    assert len(PromptStore(seed=5, read_from=tmp_path / "finetuned.json")) == 2


def test_entries_gathered_from_another_store_are_added_once(tmp_path, mask):
    rank0, rank1 = PromptStore(seed=1), PromptStore(seed=1)
    rank0.get(mask, "S2", "a")
    rank1.get(mask, "S2", "b")
    rank1.get(mask, "S2", "a")
    rank0.add(rank1.entries())
    assert sorted(rank0.entries()) == ["S2|a", "S2|b"]
    assert rank0.entries()["S2|a"] == rank1.entries()["S2|a"]
