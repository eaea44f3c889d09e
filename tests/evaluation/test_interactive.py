"""Iterative clicks (strategy I): every click's decode equals SamPredictor's, the mask prompt, both phases'
start prompts, rows I@1 ... I@K, the clicks log, resume after a SIGKILL, the zero-shot store, evaluate.py."""

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from segment_anything import SamPredictor

import sam4med.evaluation.runner as runner
from sam4med.compute import Compute
from sam4med.config_ranges import check_ranges
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError, DataError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.interactive import (
    ClickLoop,
    InteractiveSettings,
    check_start,
    row_strategies,
    start_prompt,
)
from sam4med.evaluation.runner import clicks_log, score_dataset
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.evaluation.zero_shot_store import ZeroShotStore
from sam4med.jobs.evaluate import evaluate_model
from sam4med.metrics import dice
from sam4med.models.builders import build_tiny
from sam4med.models.multimask import Multimask
from sam4med.prompts.clicks import next_click
from sam4med.prompts.generate import make_prompt
from sam4med.prompts.store import PromptStore
from tests.helpers import compose_config
from tests.models.test_golden_predictor import as_sam

# --- settings -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"clicks": 0}, "evaluation.interactive.clicks=0: must be an integer >= 1"),
        ({"clicks": 2.5}, "evaluation.interactive.clicks=2.5: must be an integer >= 1"),
        ({"start": "line"}, "evaluation.interactive.start=line: must be one of point, box"),
        ({"mask_input": "yes"}, "evaluation.interactive.mask_input=yes: must be true or false"),
    ],
)
def test_bad_interactive_settings_are_refused(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        InteractiveSettings(**kwargs)


def test_i_expands_to_one_row_strategy_per_click_and_cannot_be_the_overlay_strategy():
    settings = EvaluationSettings.build(
        strategies=["S5", "I"], multimask="single", everything=EverythingSettings(), interactive=InteractiveSettings(3)
    )
    assert settings.row_strategies == ("S5", "I@1", "I@2", "I@3")
    assert row_strategies("S2", 9) == ("S2",)
    with pytest.raises(ConfigError, match="overlay_strategy=I must be one of the prompted strategies scored"):
        EvaluationSettings.build(
            strategies=["S5", "I"], multimask="single", everything=EverythingSettings(), overlay_strategy="I"
        )


def test_the_config_mirrors_the_settings(tmp_path):
    from hydra.utils import instantiate

    cfg = compose_config(
        "evaluate",
        tmp_path,
        [
            "evaluation.interactive.clicks=4",
            "evaluation.interactive.start=box",
            "evaluation.interactive.mask_input=true",
        ],
    )
    assert instantiate(cfg.evaluation).interactive == InteractiveSettings(clicks=4, start="box", mask_input=True)
    assert instantiate(compose_config("train", tmp_path).evaluation).interactive == InteractiveSettings()
    with pytest.raises(ConfigError, match=r"^evaluation.interactive.clicks=0: must be an integer >= 1$"):
        check_ranges(compose_config("evaluate", tmp_path, ["evaluation.interactive.clicks=0"]))


def test_the_start_is_mode_1s_point_or_s5s_box_and_another_kind_saved_is_refused():
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:7, 3:8] = True  # 5 x 5, centre (row 4, col 5)
    mask[10:18, 10:18] = True  # 8 x 8, the largest region: its four centre pixels tie
    point = start_prompt(mask, start="point", seed=0, object_key="o")
    assert point.point_coords[0] in {(13.0, 13.0), (14.0, 13.0), (13.0, 14.0), (14.0, 14.0)}
    assert point.point_labels == (1,) and point.box is None and point.strategy == "I"
    for seed in range(5):  # ties drawn with M1's seed: I@1's prompt is M1's
        m1 = make_prompt(mask, "M1", seed=seed, object_key="o")
        assert start_prompt(mask, start="point", seed=seed, object_key="o") == replace(m1, strategy="I")
    box = start_prompt(mask, start="box", seed=0, object_key="o")
    assert box.box == (3.0, 2.0, 17.0, 17.0) and not box.point_coords
    assert check_start(box, "box", "o") == box
    with pytest.raises(ConfigError, match="the saved I prompt is not a start point"):
        check_start(box, "point", "o")


# --- the click loop against segment_anything's predictor -----------------------------------------------


@pytest.fixture(scope="module")
def image_and_masks():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, size=(50, 70, 3), dtype=np.uint8)
    masks = np.zeros((3, 50, 70), dtype=bool)
    masks[0, 10:30, 8:40] = True
    masks[1, 28:47, 45:66] = True
    masks[1, 35:40, 50:60] = False
    masks[2, 2:9, 50:68] = True
    return image, masks


def loop_for(model, image, masks, *, start="point", mask_input=False, multimask="single", clicks=4):
    settings = InteractiveSettings(clicks=clicks, start=start, mask_input=mask_input)
    keys = [f"o{i}" for i in range(len(masks))]
    starts = [start_prompt(m, start=start, seed=1, object_key=k) for m, k in zip(masks, keys, strict=True)]
    return ClickLoop(
        model,
        model.embed_image(image),
        starts,
        masks,
        object_keys=keys,
        seed=1,
        settings=settings,
        multimask=Multimask(multimask),
        compute=Compute(prompts_per_call=2),  # 3 objects: two decoder calls per click
    )


@pytest.mark.parametrize(
    "start, mask_input, multimask",
    [("point", False, "single"), ("point", True, "oracle"), ("box", True, "confidence"), ("box", False, "oracle")],
)
def test_every_click_decodes_as_sam_predictor_and_follows_the_error_rule(
    tiny_model, image_and_masks, start, mask_input, multimask
):
    image, masks = image_and_masks
    predictor = SamPredictor(as_sam(tiny_model))
    predictor.set_image(image)
    loop = loop_for(tiny_model, image, masks, start=start, mask_input=mask_input, multimask=multimask)
    previous = [None] * len(masks)  # the reference's chosen mask and low-res logits of the click before
    for click in range(1, 5):
        step = loop.step()
        records = loop.records()
        for i, gt in enumerate(masks):
            if click > 1:  # the loop's click is the rule's click on the reference's previous mask
                expected = next_click(previous[i][0], gt, seed=1, object_key=f"o{i}", click=click)
                assert records[i].clicks[click - 2] == expected
            prompt = records[i].prompt_at(click)
            kwargs = {}
            if prompt.point_coords:
                kwargs.update(point_coords=prompt.points_array, point_labels=prompt.labels_array)
            if prompt.box is not None:
                kwargs.update(box=np.asarray(prompt.box))
            if mask_input and click > 1:
                kwargs.update(mask_input=previous[i][1][None])
            ref_masks, ref_scores, ref_low = predictor.predict(multimask_output=multimask != "single", **kwargs)
            if multimask == "oracle":
                best = int(np.argmax([dice(m, gt) for m in ref_masks]))
            else:
                best = int(np.argmax(ref_scores))
            np.testing.assert_array_equal(step.masks[i], ref_masks[best])
            assert step.scores[i] == pytest.approx(float(ref_scores[best]), abs=1e-5)
            previous[i] = (ref_masks[best], ref_low[best])
    assert 0 < step.masks.mean() < 1
    assert sum(len(r.clicks) for r in loop.records()) == 3 * 3  # three clicks after the start, every object


def test_mask_input_gives_the_previous_chosen_logits_to_the_decoder(tiny_model, image_and_masks, monkeypatch):
    image, masks = image_and_masks
    calls = []  # (mask prompt given, logits returned) of every decoder call
    decode = type(tiny_model).decode

    def recording(self, *args, **kwargs):
        out = decode(self, *args, **kwargs)
        calls.append((kwargs.get("mask_input"), out.low_res_logits))
        return out

    monkeypatch.setattr(type(tiny_model), "decode", recording)
    on = loop_for(tiny_model, image, masks, mask_input=True, multimask="single", clicks=2)
    on.step()
    first = list(calls)
    calls.clear()
    on_masks = on.step().masks
    assert len(first) == 2 and all(given is None for given, _ in first)  # click 1 (two calls): no mask prompt
    given = torch.cat([given for given, _ in calls])  # click 2: click 1's chosen logits (single: the only output)
    torch.testing.assert_close(given, torch.cat([out for _, out in first]), rtol=0, atol=0)
    calls.clear()
    off = loop_for(tiny_model, image, masks, mask_input=False, multimask="single", clicks=2)
    off.step()
    off_masks = off.step().masks
    assert len(calls) == 4 and all(given is None for given, _ in calls)  # never a mask prompt
    assert off.records() == on.records()  # the same clicks (placed from the same click-1 masks) ...
    assert not np.array_equal(on_masks, off_masks)  # ... decoded into other masks with the mask prompt


def test_an_exact_mask_gets_no_more_clicks_and_keeps_its_rows(tiny_model, image_and_masks, monkeypatch):
    image, masks = image_and_masks
    loop = loop_for(tiny_model, image, masks, clicks=3)
    loop.step()
    loop.masks[1] = masks[1]  # as if object 1 had been segmented exactly
    second = loop.step()
    assert len(loop.records()[1].clicks) == 0 and len(loop.records()[0].clicks) == 1
    np.testing.assert_array_equal(second.masks[1], masks[1])
    third = loop.step()
    np.testing.assert_array_equal(third.masks[1], masks[1])
    with pytest.raises(RuntimeError, match="all 3 clicks are done"):
        loop.step()


# --- the runner: rows, clicks log, both phases, resume, store ----------------------------------------------

CLICKS = InteractiveSettings(clicks=3)


@pytest.fixture(scope="module")
def dataset(synthetic_root):
    return CosmosDataset(synthetic_root, image_ids=["syn0000", "syn0001"])


def score(model, dataset, folder, *, phase="zero_shot", interactive=CLICKS, strategies=("S5", "I"), **kwargs):
    prompts = folder / "prompts.json"
    return score_dataset(
        model,
        dataset,
        strategies=list(strategies),
        phase=phase,
        cache=EmbeddingCache(None),
        prompts=PromptStore(seed=0, read_from=prompts, write_to=prompts),
        multimask=Multimask.ORACLE,
        everything=EverythingSettings(points_per_side=4),
        log_path=folder / "log.jsonl",
        progress=False,
        interactive=interactive,
        **kwargs,
    )


def read_clicks(folder):
    return [json.loads(line) for line in clicks_log(folder / "log.jsonl").read_text().splitlines()]


def perturbed(model):
    """The same model with another decoder (a stand-in for a fine-tuned one)."""
    other = build_tiny()
    with torch.no_grad():
        for p in other.mask_decoder.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return other


def test_rows_per_click_and_both_phases_start_alike_and_follow_their_own_errors(tiny_model, dataset, tmp_path):
    zero = score(tiny_model, dataset, tmp_path)
    tuned = score(perturbed(tiny_model), dataset, tmp_path, phase="finetuned")
    objects = sorted({r.object_key for r in zero})
    for rows in (zero, tuned):
        per_object = {(r.strategy, r.object_key) for r in rows}
        assert per_object == {(s, k) for s in ("S5", "I@1", "I@2", "I@3") for k in objects}
        assert len(rows) == 4 * len(objects) and {r.candidates for r in rows} == {3}
    lines = read_clicks(tmp_path)
    assert sorted((c["phase"], c["object_key"]) for c in lines) == sorted(
        (p, k) for p in ("zero_shot", "finetuned") for k in objects
    )
    start = {(c["phase"], c["object_key"]): c["start"] for c in lines}
    clicks = {(c["phase"], c["object_key"]): c["clicks"] for c in lines}
    assert all(start["zero_shot", k] == start["finetuned", k] for k in objects)  # one click-1 prompt
    assert any(clicks["zero_shot", k] != clicks["finetuned", k] for k in objects)  # each phase its own errors
    saved = json.loads((tmp_path / "prompts.json").read_text())["prompts"]
    assert all({k: v for k, v in saved[f"I|{k}"].items() if k != "mask_sha256"} == start["zero_shot", k]
               for k in objects)  # fmt: skip
    i1 = {r.object_key: r for r in zero if r.strategy == "I@1"}
    assert all(len(c["clicks"]) == 2 or i1[c["object_key"]].dice == 1.0 for c in lines if c["phase"] == "zero_shot")


def test_other_interactive_settings_refuse_the_log_but_adding_i_to_a_run_keeps_its_rows(tiny_model, dataset, tmp_path):
    s5 = score(tiny_model, dataset, tmp_path, strategies=("S5",))
    both = score(tiny_model, dataset, tmp_path)
    assert [r for r in both if r.strategy == "S5"] == s5  # read back from the log, not scored again
    with pytest.raises(DataError, match="evaluation.interactive"):
        score(tiny_model, dataset, tmp_path, interactive=replace(CLICKS, clicks=4))


def test_an_interrupted_run_resumes_to_the_rows_and_clicks_of_a_whole_run(tiny_model, dataset, tmp_path, monkeypatch):
    whole = score(tiny_model, dataset, tmp_path / "whole")
    # what a run killed while logging the second image leaves: the first image's rows and a cut line, the clicks
    # of both (they are logged before the rows), the prompts
    split = tmp_path / "split"
    split.mkdir()
    lines = (tmp_path / "whole" / "log.jsonl").read_text().splitlines(keepends=True)
    done = [line for line in lines if json.loads(line)["image_id"] != "syn0001"]
    cut = next(line for line in lines if json.loads(line)["image_id"] == "syn0001" and '"I@2"' in line)
    (split / "log.jsonl").write_text("".join(done) + cut[:50])
    for name in ("log.clicks.jsonl", "prompts.json"):
        (split / name).write_text((tmp_path / "whole" / name).read_text())
    calls = []
    original = runner._score_image
    monkeypatch.setattr(
        runner, "_score_image", lambda *a, **k: calls.append((a[1].record.image_id, a[3])) or original(*a, **k)
    )
    resumed = score(tiny_model, dataset, split)
    assert calls == [("syn0001", "S5"), ("syn0001", "I")]  # only the image whose rows were not all logged
    assert resumed == whole
    assert read_clicks(split) == read_clicks(tmp_path / "whole")  # the second image's clicks once, not twice
    assert (split / "log.jsonl").read_text() == (tmp_path / "whole" / "log.jsonl").read_text()


def test_the_zero_shot_store_keeps_the_clicks_and_keys_the_interactive_settings(
    tiny_model, dataset, tmp_path, monkeypatch
):
    store = ZeroShotStore(tmp_path / "shared")
    first = score(tiny_model, dataset, tmp_path / "a", zero_shot_store=store)
    calls = []
    original = runner._score_image
    monkeypatch.setattr(runner, "_score_image", lambda *a, **k: calls.append(a[3]) or original(*a, **k))
    second = score(tiny_model, dataset, tmp_path / "b", zero_shot_store=store)
    assert calls == [] and second == first
    assert read_clicks(tmp_path / "b") == read_clicks(tmp_path / "a")
    score(tiny_model, dataset, tmp_path / "c", zero_shot_store=store, interactive=replace(CLICKS, start="box"))
    assert calls == ["I"] * len(dataset)  # S5 reused; I under another start scored again


def test_evaluate_py_writes_the_rows_of_every_click(tmp_path):
    overrides = ["experiment=quick", "evaluation.strategies=[S5,I]", "evaluation.interactive.clicks=3"]
    results = evaluate_model(compose_config("evaluate", tmp_path, overrides))
    frame = pd.read_csv(results / "metrics.csv")
    assert set(frame["strategy"]) == {"S5", "I@1", "I@2", "I@3"}
    counts = frame.groupby("strategy").size()
    assert counts["I@1"] == counts["I@2"] == counts["I@3"] == counts["S5"]
    assert (results / "evaluation_log.clicks.jsonl").is_file()
    assert any(key.startswith("I|") for key in json.loads((results / "prompts.json").read_text())["prompts"])
