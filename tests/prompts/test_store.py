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
    store = PromptStore(tmp_path / "prompts.json", seed=3)
    made = {s: store.get(mask, s, "img/m/1") for s in ("S2", "S3", "S4", "S5", "S6")}
    store.save()
    data = json.loads((tmp_path / "prompts.json").read_text())
    assert data["seed"] == 3 and set(data["prompts"]) == {f"{s}|img/m/1" for s in made}
    again = PromptStore(tmp_path / "prompts.json", seed=3)
    other_mask = np.roll(mask, 3, axis=0)  # a stored prompt is reused, never remade
    assert {s: again.get(other_mask, s, "img/m/1") for s in made} == made


def test_store_keeps_the_seed_its_file_was_made_with(tmp_path, mask):
    first = PromptStore(tmp_path / "prompts.json", seed=3)
    s3 = first.get(mask, "S3", "x")
    first.save()
    later = PromptStore(tmp_path / "prompts.json", seed=99)
    assert later.seed == 3 and later.get(mask, "S3", "x") == s3
    assert later.get(mask, "S4", "x") == make_prompt(mask, "S4", seed=3, object_key="x")


def test_foreign_file_is_a_data_error(tmp_path):
    (tmp_path / "prompts.json").write_text("{}")
    with pytest.raises(DataError, match="not a prompt file"):
        PromptStore(tmp_path / "prompts.json", seed=0)
