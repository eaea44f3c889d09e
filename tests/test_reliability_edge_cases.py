"""Edge cases of real data and of the machine: tiny and border-filling objects, a full disk, SIGKILL in evaluation."""

import errno
import json
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from sam4med.command import user_error
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import DataError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.runner import ALL_STRATEGIES, score_dataset
from sam4med.models.multimask import Multimask
from sam4med.prepare import writer as writer_module
from sam4med.prepare.images import ImageFolderPreparer
from sam4med.prepare.synthetic import SyntheticShapes
from sam4med.prompts.store import PromptStore
from tests.conftest import REPO
from tests.evaluation.evaluate_subprocess import score as score_in_child_settings
from tests.helpers import HANG_TIMEOUT_S


def folder_of(tmp_path, masks: dict[str, np.ndarray]):
    """A prepared folder with one random grey image per mask (object 'A' = value 1)."""
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    for stem, mask in masks.items():
        Image.fromarray(rng.integers(0, 255, mask.shape).astype(np.uint8)).save(src / f"{stem}.png")
        Image.fromarray(mask.astype(np.uint8)).save(src / f"{stem}.mask.png")
    return ImageFolderPreparer(
        name="edge", images=str(src / "*[!k].png"), modality="X", min_label_sum=0,
        label_maps=[{"name": "m", "path": str(src / "{stem}.mask.png"), "objects": {1: "A"}}],
    )(tmp_path / "out")  # fmt: skip


def score(model, root, strategies):
    return score_dataset(
        model, CosmosDataset(root), strategies=strategies, phase="zero_shot", cache=EmbeddingCache(None),
        prompts=PromptStore(seed=0), multimask=Multimask.SINGLE, everything=EverythingSettings(points_per_side=4),
        progress=False,
    )  # fmt: skip


def test_a_1x1_image_is_a_recorded_skip(tmp_path):
    root = folder_of(tmp_path, {"one": np.ones((1, 1)), "big": np.pad(np.ones((8, 8)), 8)})
    assert [r.image_id for r in CosmosDataset(root).records] == ["big"]
    assert "one,,,constant image after normalisation" in (root / "skipped.csv").read_text()


def test_an_object_touching_every_border_is_scored_under_every_strategy(tiny_model, tmp_path):
    frame = np.ones((32, 40))
    frame[2:-2, 2:-2] = 0
    rows = score(tiny_model, folder_of(tmp_path, {"frame": frame}), list(ALL_STRATEGIES))
    assert [r.strategy for r in rows] == list(ALL_STRATEGIES)
    assert np.isfinite([[r.dice, r.iou, r.hd, r.hd95] for r in rows]).all()


def test_an_all_foreground_object_scores_or_names_itself(tiny_model, tmp_path):
    root = folder_of(tmp_path, {"full": np.ones((32, 40))})
    rows = score(tiny_model, root, ["S1", "S2", "S5"])
    assert len(rows) == 3 and np.isfinite([r.dice for r in rows]).all()
    with pytest.raises(DataError, match=r"object full/m/1: no S\d prompt can be drawn \(it covers the whole image"):
        score(tiny_model, root, list(ALL_STRATEGIES))


def files(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_full_disk_during_preparation_leaves_no_torn_file_and_the_rerun_completes(tmp_path, monkeypatch):
    reference = files(SyntheticShapes(n_images=6, size=(32, 40), seed=0)(tmp_path / "reference"))
    real, calls = writer_module.save_png, {"n": 0}

    def fills_the_disk(path, array):
        calls["n"] += 1
        if calls["n"] == 5:
            path.with_name(path.name + ".tmp").write_bytes(b"\x89PNG half")  # the write that ran out of space
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, array)

    monkeypatch.setattr(writer_module, "save_png", fills_the_disk)
    with pytest.raises(OSError) as info:
        SyntheticShapes(n_images=6, size=(32, 40), seed=0)(tmp_path / "out")
    assert "no space left on device; free some space and run the same command again" in str(user_error(info.value))
    for png in (tmp_path / "out").rglob("*.png"):
        Image.open(png).load()  # every file with its final name is whole
    monkeypatch.setattr(writer_module, "save_png", real)
    assert files(SyntheticShapes(n_images=6, size=(32, 40), seed=0)(tmp_path / "out")) == reference


@pytest.mark.slow  # three processes load torch: about 30 s
def test_evaluation_killed_with_sigkill_resumes_to_the_same_rows(synthetic_root, tmp_path):
    log = tmp_path / "log.jsonl"
    killed = subprocess.run(
        [sys.executable, "-m", "tests.evaluation.evaluate_subprocess", str(synthetic_root), str(log),
         str(tmp_path / "killed.out"), "--kill-after", "3"],
        cwd=REPO, capture_output=True, text=True, timeout=HANG_TIMEOUT_S,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (tmp_path / "killed.out").exists()
    assert len({json.loads(line)["image_id"] for line in log.read_text().splitlines()}) == 3
    resumed = score_in_child_settings(synthetic_root, log)
    assert resumed == score_in_child_settings(synthetic_root, tmp_path / "whole.jsonl")
