"""An evaluation log never yields a (phase, strategy, object) twice, whoever wrote it twice."""

import collections
import json
import logging

import pytest

from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import score_dataset
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore


def score(model, dataset, log):
    return score_dataset(
        model,
        dataset,
        strategies=["S2", "S5"],
        phase="zero_shot",
        cache=EmbeddingCache(None),
        prompts=PromptStore(seed=0),
        multimask=Multimask("single"),
        everything=EverythingSettings(points_per_side=4),
        log_path=log,
        progress=False,
    )


def keys(rows):
    return collections.Counter((r.phase, r.strategy, r.object_key) for r in rows)


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    return CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001"])


def test_a_log_with_duplicated_lines_is_read_once_with_one_warning_and_rewritten(tiny_model, dataset, tmp_path, caplog):
    log = tmp_path / "evaluation_log.jsonl"
    first = score(tiny_model, dataset, log)
    lines = log.read_text().splitlines()
    # two runs appended to one log: every row twice, the second copy with other numbers
    changed = [json.dumps({**json.loads(line), "dice": 0.123456}) for line in lines]
    log.write_text("\n".join(lines + changed) + "\n")
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        again = score(tiny_model, dataset, log)
    assert set(keys(again).values()) == {1} and keys(again) == keys(first)
    assert [r.dice for r in again] == [r.dice for r in first]  # the first of each is kept
    warned = [r.getMessage() for r in caplog.records if "duplicated" in r.getMessage()]
    assert warned == [
        f"{log}: dropped {len(lines)} duplicated rows (a phase, strategy and object logged more than once, e.g. by two "
        "runs writing into one run folder); the first of each is kept and the log rewritten without the others"
    ]
    assert log.read_text().splitlines() == lines  # the file holds each row once again
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sam4med"):
        score(tiny_model, dataset, log)
    assert "duplicated" not in caplog.text  # warned once: the rewritten log is clean
