"""analysis=grid: S1 over grid sizes and filter pairs, each grid decoded once for every pair."""

import html
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from sam4med.analysis.grid import GRID_COLUMNS, OBJECTS_FILE, GridSuite, grid_table
from sam4med.data.dataset import CosmosDataset
from sam4med.errors import ConfigError
from sam4med.evaluation.everything import EverythingMode, EverythingSettings, MaskFilter
from sam4med.evaluation.rows import ObjectResult, Phase
from sam4med.jobs.evaluate import evaluate_model
from sam4med.models.builders import build_tiny
from sam4med.results.page import FIGURE_TITLES
from tests.helpers import CONF, compose_config

# a tiny model (seed 34) whose grid points make several distinct masks: at 0.25 more than half of its points
# fail the IoU filter (so the prefilter drops points), at 0.15 every point has a mask within the margin; the
# train split (6 images), so that the Dice interval over images has its 5 units
RUN_S1 = ["model.seed=34", "everything.points_per_side=8", "everything.pred_iou_thresh=0.25"]
RUN_S1 += ["everything.stability_score_thresh=0.0", "everything.points_per_batch=16", "evaluation.split=train"]


def test_the_yaml_holds_the_defaults():
    node = OmegaConf.to_container(OmegaConf.load(CONF / "analysis" / "grid.yaml"))
    assert node.pop("_target_") == "sam4med.analysis.grid.GridSuite"
    from_yaml = GridSuite(**node)
    assert from_yaml == GridSuite()
    assert set(node) == {f.name for f in fields(GridSuite)}
    assert GridSuite().points_per_side == (8, 16, 32, 64)
    assert GridSuite().filters == ((0.88, 0.95), (0.5, 0.8), (0.0, 0.0))
    assert (CONF / "analysis" / "grid.yaml").read_text().startswith("# @package analysis.grid\n")


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"points_per_side": []}, "points_per_side"),
        ({"points_per_side": [8, 8]}, "points_per_side"),
        ({"points_per_side": [0]}, "points_per_side"),
        ({"points_per_side": [8.5]}, "points_per_side"),
        ({"points_per_side": 8}, "points_per_side"),
        ({"filters": []}, "filters"),
        ({"filters": [[0.5]]}, "filters"),
        ({"filters": [[0.5, 1.2]]}, "filters"),
        ({"filters": [[0.5, 0.8], [0.5, 0.8]]}, "filters"),
        ({"max_images": 0}, "max_images"),
        ({"max_images": True}, "max_images"),
    ],
)
def test_bad_settings_name_the_setting(settings, field):
    with pytest.raises(ConfigError, match=f"analysis.grid.{field}"):
        GridSuite(**settings)


def test_config_lists_become_tuples():
    suite = GridSuite(points_per_side=OmegaConf.create([4, 8]), filters=OmegaConf.create([[0.5, 0], [0, 0]]))
    assert suite.points_per_side == (4, 8)
    assert suite.filters == ((0.5, 0.0), (0.0, 0.0))


def test_one_decoding_gives_each_pair_the_masks_it_gets_alone(synthetic_root):
    model = build_tiny(seed=34)
    image = CosmosDataset(synthetic_root)[0].image
    embedding = model.embed_image(image)
    settings = EverythingSettings(points_per_side=12, points_per_batch=16, stability_score_offset=0.02)
    pairs = [MaskFilter(0.25, 0.0), MaskFilter(0.15, 0.3), MaskFilter(0.0, 0.0), MaskFilter(0.99, 0.0)]
    decoded = []
    mode = EverythingMode(model, settings)
    original = mode._decode
    mode._decode = lambda points, image: decoded.append(len(points)) or original(points, image)
    together = mode.generate(embedding, image.shape[:2], pairs, timed=True)
    assert sum(decoded) == settings.points_per_side**2  # the loosest pair (0: no prefilter): every point, once
    kept = []
    for pair, found in zip(pairs, together.masks, strict=True):
        own = replace(
            settings, pred_iou_thresh=pair.pred_iou_thresh, stability_score_thresh=pair.stability_score_thresh
        )
        alone = EverythingMode(model, own)(embedding, image.shape[:2])
        np.testing.assert_array_equal(found.masks, alone.masks)
        np.testing.assert_allclose(found.predicted_iou, alone.predicted_iou, atol=1e-6)
        np.testing.assert_allclose(found.stability_score, alone.stability_score, atol=1e-6)
        kept.append(len(found.masks))
    assert kept[2] > kept[0] >= 1 and kept[3] == 0  # the pairs differ, so the comparison says something
    assert len(together.filter_seconds) == 4 and all(s >= 0 for s in together.filter_seconds)
    assert together.seconds >= sum(together.filter_seconds) > 0


def test_the_runs_own_grid_and_filters_give_its_s1_rows(analysis_input):
    inputs = analysis_input(["S1"], RUN_S1)
    # the loosest pair prefilters at 0.15, so the run's own pair (0.25) is decoded with other points in each call
    suite = GridSuite(points_per_side=[4, 8], filters=[[0.25, 0.0], [0.15, 0.0]])
    out = suite.run(inputs)
    objects = pd.read_csv(inputs.folder.path / OBJECTS_FILE)
    own = objects[
        (objects["points_per_side"] == 8)
        & (objects["pred_iou_thresh"] == 0.25)
        & (objects["stability_score_thresh"] == 0)
    ].set_index("object_key")
    run = inputs.frame[inputs.frame["strategy"] == "S1"].set_index("object_key")
    assert len(run) > 0 and sorted(own.index) == sorted(run.index)
    own = own.loc[run.index]
    for column in ("dice", "iou", "hd", "hd95", "candidates", "empty"):
        np.testing.assert_array_equal(own[column].to_numpy(), run[column].to_numpy(), err_msg=column)
    assert (run["dice"] > 0).any()  # masks were found: the check says something

    table = out.tables["grid"]
    assert list(table.columns) == list(GRID_COLUMNS)
    assert len(table) == 2 * 2 and set(table["phase"]) == {"zero_shot"}
    assert sorted(set(table["points"])) == [16, 64]
    row = table[(table["points_per_side"] == 8) & (table["pred_iou_thresh"] == 0.25)].iloc[0]
    assert row["objects"] == len(run) and row["images"] == run["image_id"].nunique() == row["split_images"]
    assert row["dice"] == pytest.approx(run["dice"].mean())
    assert row["matched"] == pytest.approx(1 - run["empty"].mean())
    assert row["masks_per_image"] == pytest.approx(run.groupby("image_id")["candidates"].first().mean())
    assert row["ci_method"] in ("BCa", "percentile") and row["dice_ci_low"] <= row["dice"] <= row["dice_ci_high"]
    assert (table["seconds_per_image"] >= table["shared_seconds_per_image"]).all()
    assert (table["shared_seconds_per_image"] > 0).all()
    # the looser the filter, the more masks survive (the same decoding, so never fewer)
    at8 = table[table["points_per_side"] == 8].set_index("pred_iou_thresh")["masks_per_image"]
    assert at8[0.15] >= at8[0.25]
    fig = out.figures["grid"]
    curves = [[line for line in ax.lines if line.get_linestyle() != "None"] for ax in fig.axes]  # not error bar caps
    assert [len(c) for c in curves] == [2, 2]
    np.testing.assert_allclose(
        sorted(curves[0][0].get_ydata()), sorted(table["dice"][table["pred_iou_thresh"] == 0.25])
    )


def test_max_images_takes_the_first_images_of_the_split(analysis_input):
    inputs = analysis_input(["S1"], RUN_S1)
    out = GridSuite(points_per_side=[4], filters=[[0.0, 0.0]], max_images=2).run(inputs)
    table = out.tables["grid"]
    first = [inputs.dataset.records[i].image_id for i in range(2)]
    objects = pd.read_csv(inputs.folder.path / OBJECTS_FILE)
    assert sorted(set(objects["image_id"])) == sorted(first)
    assert table["images"].tolist() == [2] and table["split_images"].tolist() == [len(inputs.dataset)]
    assert "the first 2 of" in out.notes[0]


def _row(image: str, key: str, dice: float, empty: bool) -> ObjectResult:
    return ObjectResult(
        phase=Phase.FINETUNED, strategy="S1", target="t", modality="m", object="o", image_id=image, object_key=key,
        dice=dice, iou=dice, hd=1.0, hd95=1.0, hd_unit="px", score=0.5, nsd=dice, empty=empty, source="s",
    )  # fmt: skip


def test_the_table_by_hand():
    key = ("finetuned", 16, MaskFilter(0.5, 0.8))
    rows = {key: [_row("a", "a1", 0.9, False), _row("a", "a2", 0.0, True), _row("b", "b1", 0.6, False)]}
    table = grid_table(rows, {key: [3, 0]}, {key: [(2.0, 1.5), (4.0, 0.5)]}, split_images=7)
    row = table.iloc[0]
    assert row["points"] == 256 and row["images"] == 2 and row["split_images"] == 7 and row["objects"] == 3
    assert row["dice"] == pytest.approx(0.5)
    assert row["matched"] == pytest.approx(2 / 3)
    assert row["masks_per_image"] == pytest.approx(1.5)
    assert row["seconds_per_image"] == pytest.approx(3.0) and row["shared_seconds_per_image"] == pytest.approx(1.0)
    assert np.isnan(row["dice_ci_low"]) and row["n_units"] == 2  # 2 images: fewer than 5 units, no interval


def test_evaluate_writes_the_grid_table_and_figure(tmp_path: Path):
    overrides = ["experiment=quick", "analysis=grid", "evaluation.overlays=0", "evaluation.strategies=[S1,S5]"]
    overrides += ["analysis.grid.points_per_side=[4,8]", "analysis.grid.filters=[[0.88,0.95],[0.0,0.0]]"]
    results = evaluate_model(compose_config("evaluate", tmp_path, overrides))
    table = pd.read_csv(results / "grid.csv")
    assert len(table) == 4 and set(table["points_per_side"]) == {4, 8}
    assert (results / "grid.md").read_text().startswith("| phase | points_per_side |")
    assert (results / "figures" / "grid.png").is_file() and (results / "figures" / "grid.svg").is_file()
    assert (results / OBJECTS_FILE).is_file()
    assert f'alt="{html.escape(FIGURE_TITLES["grid"])}"' in (results / "report.html").read_text()
