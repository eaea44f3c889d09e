"""A run resumed in its folder with another prompt seed or sampling is refused; a named prompts file's seed wins."""

import json

import pytest

from sam4med.command import user_error
from sam4med.errors import ConfigError
from sam4med.evaluation.settings import PromptSettings
from sam4med.jobs.evaluate import evaluate_model
from sam4med.prompts.store import PromptStore
from tests.helpers import compose_config

EVALUATE = ["model=tiny", "dataset=synthetic", "evaluation.strategies=[S5]"]


def saved_prompts(path, *, seed, sampling="random"):
    store = PromptStore(seed=seed, sampling=sampling, write_to=path)
    store.save()  # written even if empty: write_to differs from read_from
    return path


def test_a_resumed_run_with_another_seed_is_refused_in_one_line(tmp_path):
    results = evaluate_model(compose_config("evaluate", tmp_path, EVALUATE))  # seed 42, the default
    prompts = results / "prompts.json"
    assert json.loads(prompts.read_text())["seed"] == 42
    before = (results / "metrics.csv").read_text()
    with pytest.raises(Exception) as info:
        evaluate_model(compose_config("evaluate", tmp_path, [*EVALUATE, "seed=7"]))
    error = user_error(info.value)
    assert isinstance(error, ConfigError) and "\n" not in str(error)
    assert str(error) == (
        f"{prompts}: this run folder's prompts were drawn with seed 42 (random sampling), but the run asks for seed 7 "
        "(random sampling); use a new run folder for the new prompts, or resume this one with "
        "evaluation.prompts.seed=42 evaluation.prompts.sampling=random"
    )
    assert (results / "metrics.csv").read_text() == before  # nothing rescored or rewritten


@pytest.mark.parametrize("asked", [{"seed": 7}, {"sampling": "strided"}], ids=["seed", "sampling"])
def test_the_runs_own_prompts_must_be_of_the_asked_seed_and_sampling(tmp_path, asked):
    saved = saved_prompts(tmp_path / "prompts.json", seed=0)
    with pytest.raises(ConfigError, match=r"prompts.json: this run folder's prompts were drawn with seed 0"):
        PromptSettings(**asked).store(saved)
    assert PromptSettings(seed=0).store(saved).seed == 0  # the same seed resumes


def test_a_named_prompts_file_keeps_its_own_seed(tmp_path):
    named = saved_prompts(tmp_path / "earlier.json", seed=3, sampling="strided")
    store = PromptSettings(seed=7, file=str(named)).store(tmp_path / "run" / "prompts.json")
    assert (store.seed, store.sampling) == (3, "strided")
