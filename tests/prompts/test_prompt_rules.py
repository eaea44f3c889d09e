"""prompts.json records its prompt-rule version; a file of another version (or none) is refused, never mixed."""

import json

import numpy as np
import pytest

from sam4med.errors import DataError
from sam4med.evaluation.settings import PromptSettings
from sam4med.prompts.store import PromptStore
from sam4med.prompts.version import PROMPT_RULES


@pytest.fixture
def saved(tmp_path):
    """A prompts file of this version holding one S5 prompt."""
    mask = np.zeros((20, 20), dtype=bool)
    mask[4:12, 6:15] = True
    store = PromptStore(seed=0, write_to=tmp_path / "prompts.json")
    store.get(mask, "S5", "img/m/1")
    store.save()
    return tmp_path / "prompts.json"


def with_rules(path, version):
    """Rewrite the file as one of prompt-rule ``version`` (None: no version recorded, as before issue 22)."""
    data = json.loads(path.read_text())
    data.pop("prompt_rules")
    if version is not None:
        data["prompt_rules"] = version
    path.write_text(json.dumps(data))
    return path


def test_the_file_records_the_prompt_rules_and_is_read_back(saved):
    assert PROMPT_RULES == 1
    assert json.loads(saved.read_text())["prompt_rules"] == 1
    assert len(PromptStore(seed=0, read_from=saved)) == 1


@pytest.mark.parametrize(
    ("version", "found"), [(PROMPT_RULES + 1, "were drawn under prompt rules 2"), (None, "record no")]
)
def test_a_named_prompts_file_of_another_rule_version_is_refused(saved, version, found):
    with_rules(saved, version)
    with pytest.raises(DataError) as info:
        PromptSettings(seed=0, file=str(saved)).store(saved.parent / "run" / "prompts.json")
    message = str(info.value)
    assert message.startswith(f"{saved}: the prompts {found}") and "\n" not in message
    assert message.endswith(
        "this sam4med draws under prompt rules 1; leave evaluation.prompts.file out to draw new prompts, or score it "
        "with the sam4med version that wrote it"
    )
    assert not (saved.parent / "run" / "prompts.json").exists()  # nothing copied


@pytest.mark.parametrize("version", [PROMPT_RULES + 1, None])
def test_a_run_folder_resumed_with_prompts_of_another_rule_version_is_refused(saved, version):
    with_rules(saved, version)
    before = saved.read_text()
    with pytest.raises(DataError, match=r"this run folder was made by another sam4med version; start a new run folder"):
        PromptSettings(seed=0).store(saved)  # the run's own prompts, read back on resume
    assert saved.read_text() == before  # neither rewritten nor mixed


def test_any_other_reader_refuses_it_too(saved):
    with_rules(saved, 0)
    with pytest.raises(DataError, match="were drawn under prompt rules 0, this sam4med draws under prompt rules 1"):
        PromptStore(seed=0, read_from=saved, write_to=saved)
