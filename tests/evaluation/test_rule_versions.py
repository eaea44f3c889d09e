"""Evaluation-log lines and zero-shot store files record the prompt and metric rule versions; rows of another
version (or of none, written before versions were recorded) are scored again, never reused, and the log says
how many were dropped and why.
"""

import json
import logging

import pytest

import sam4med.evaluation.runner as runner
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.rules import RULES, describe
from sam4med.evaluation.runner import score_dataset
from sam4med.evaluation.zero_shot_store import ZeroShotStore
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore

STRATEGIES = ["S2", "S5"]


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    return CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001"])


@pytest.fixture
def calls(monkeypatch):
    """How many (image, strategy) pairs the runner scores itself."""
    counted = []
    original = runner._score_image

    def score(*args, **kwargs):
        counted.append(args[3])
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "_score_image", score)
    return counted


def score(model, dataset, tmp_path, *, log=True, store=None, name="run"):
    prompts = tmp_path / name / "prompts.json"
    return score_dataset(
        model,
        dataset,
        strategies=STRATEGIES,
        phase="zero_shot",
        cache=EmbeddingCache(None),
        prompts=PromptStore(seed=0, read_from=prompts, write_to=prompts),
        multimask=Multimask.SINGLE,
        everything=EverythingSettings(points_per_side=4),
        log_path=tmp_path / name / "log.jsonl" if log else None,
        progress=False,
        zero_shot_store=store,
    )


def test_rule_versions_are_one_and_two():
    assert RULES == {"prompt_rules": 1, "metric_rules": 2}
    assert describe(RULES) == "prompt rules 1, metric rules 2"
    assert describe({"prompt_rules": 1}) == "prompt rules 1, metric rules none"


def test_log_lines_of_another_rule_version_are_dropped_with_one_warning_and_scored_again(
    tiny_model, dataset, tmp_path, calls, caplog
):
    first = score(tiny_model, dataset, tmp_path)
    log = tmp_path / "run" / "log.jsonl"
    lines = log.read_text().splitlines()
    assert all({k: json.loads(line)[k] for k in RULES} == RULES for line in lines)
    assert len(calls) == len(dataset) * len(STRATEGIES)
    # one image's lines as a later metric version wrote them, the other's as before versions (and `source`) existed
    first_image = [json.loads(line)["image_id"] == "syn0000" for line in lines]
    edited = [
        {**json.loads(line), "metric_rules": 3}
        if mine
        else {k: v for k, v in json.loads(line).items() if k not in (*RULES, "source")}
        for line, mine in zip(lines, first_image, strict=True)
    ]
    log.write_text("".join(json.dumps(row) + "\n" for row in edited))
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        again = score(tiny_model, dataset, tmp_path)
    assert again == first
    assert len(calls) == 2 * len(dataset) * len(STRATEGIES)  # every image scored again, none reused
    warned = [r.getMessage() for r in caplog.records if "rule versions" in r.getMessage()]
    n_new, n_old = sum(first_image), len(lines) - sum(first_image)
    assert warned == [
        f"{log}: dropped {len(lines)} rows made under other rule versions ({n_new} of prompt rules 1, metric rules 3; "
        f"{n_old} of prompt rules none, metric rules none; this sam4med: prompt rules 1, metric rules 2): rows of "
        "other prompt or metric rules are never reused, their images are scored again"
    ]
    assert sorted(log.read_text().splitlines()) == sorted(lines)  # rewritten: only rows of this version


def test_zero_shot_store_files_record_the_versions_and_another_version_is_scored_again(
    tiny_model, dataset, tmp_path, calls, caplog
):
    store = ZeroShotStore(tmp_path / "shared")
    first = score(tiny_model, dataset, tmp_path, log=False, store=store, name="a")
    files = sorted((tmp_path / "shared").rglob("*.json"))
    assert len(files) == len(dataset) * len(STRATEGIES)
    stored = {path: json.loads(path.read_text()) for path in files}
    assert all({k: data[k] for k in RULES} == RULES for data in stored.values())
    # one file of an older prompt-rule version, one written before versions were recorded
    older, unversioned = files[0], files[1]
    older.write_text(json.dumps({**stored[older], "prompt_rules": 0}))
    unversioned.write_text(json.dumps({k: v for k, v in stored[unversioned].items() if k not in RULES}))
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        again = score(tiny_model, dataset, tmp_path, log=False, store=store, name="b")
    assert again == first
    assert len(calls) == len(files) + 2  # the two outdated files scored again, the rest reused
    assert store.outdated == 2
    assert (
        f"zero_shot: 2 (image, strategy) results in {tmp_path / 'shared'} were made under other rule versions "
        "(this sam4med: prompt rules 1, metric rules 2) and were scored again, never reused"
    ) in caplog.text
    assert "unusable" not in caplog.text  # outdated, not damaged
    assert {path: json.loads(path.read_text()) for path in files} == stored  # rewritten under this version
