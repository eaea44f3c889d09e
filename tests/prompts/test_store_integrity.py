"""A stored prompt is used only on the mask it was drawn from, and only inside the image."""

import json
import re

import numpy as np
import pytest

from sam4med.errors import DataError
from sam4med.prompts.store import PromptStore, mask_hash


@pytest.fixture
def mask():
    mask = np.zeros((30, 40), dtype=bool)
    mask[5:25, 8:30] = True
    return mask


@pytest.fixture
def saved(tmp_path, mask):
    path = tmp_path / "prompts.json"
    store = PromptStore(seed=0, read_from=path, write_to=path)
    for strategy in ("S2", "S3", "S4", "S5", "S6"):
        store.get(mask, strategy, "img/m/1")
    store.save()
    return path


def test_each_stored_prompt_records_its_mask_hash(saved, mask):
    stored = json.loads(saved.read_text())["prompts"]
    assert {p["mask_sha256"] for p in stored.values()} == {mask_hash(mask)}
    assert mask_hash(np.roll(mask, 1, axis=1)) != mask_hash(mask)
    assert mask_hash(mask[:, :-1]) != mask_hash(mask[:, :-1].T)  # the shape is part of the hash


def test_a_stored_prompt_of_a_changed_mask_is_refused_naming_the_object(saved, mask):
    changed = mask.copy()
    changed[24, 8] = False  # one pixel less: the dataset was prepared differently
    store = PromptStore(seed=0, read_from=saved, write_to=saved)
    with pytest.raises(DataError, match=r"prompts.json: the stored S5 prompt of object img/m/1 was drawn from another"):
        store.get(changed, "S5", "img/m/1")


def test_prompts_from_another_dataset_fail_clearly(saved, mask):
    store = PromptStore(seed=0, read_from=saved, write_to=None, only_stored=True)
    with pytest.raises(DataError, match=r"holds no S5 prompt for object other/m/1; it was made for another dataset"):
        store.get(mask, "S5", "other/m/1")


def test_a_named_prompts_file_that_does_not_exist_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"missing.json: prompts file does not exist"):
        PromptStore(seed=0, read_from=tmp_path / "missing.json", only_stored=True)


@pytest.mark.parametrize(
    "edit, where",
    [
        (lambda p: p.update(point_coords=[[40.0, 10.0]], point_labels=[1]), "point (40, 10)"),
        (lambda p: p.update(point_coords=[[-1.0, 10.0]], point_labels=[1]), "point (-1, 10)"),
        (lambda p: p.update(box=[0.0, 0.0, 39.0, 30.0]), "box (0, 0, 39, 30)"),
    ],
)
def test_a_stored_prompt_outside_the_image_is_refused(saved, mask, edit, where):
    data = json.loads(saved.read_text())
    key = "S2|img/m/1" if "point" in where else "S4|img/m/1"
    edit(data["prompts"][key])
    saved.write_text(json.dumps(data))
    store = PromptStore(seed=0, read_from=saved)
    with pytest.raises(DataError, match=f"has {re.escape(where)} outside the 40x30 image"):
        store.get(mask, key.split("|")[0], "img/m/1")


def test_a_prompts_file_without_mask_hashes_is_refused(saved):
    data = json.loads(saved.read_text())
    for prompt in data["prompts"].values():
        del prompt["mask_sha256"]
    saved.write_text(json.dumps(data))
    with pytest.raises(DataError, match="not a prompt file written by this sam4med"):
        PromptStore(seed=0, read_from=saved)
