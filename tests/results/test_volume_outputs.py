"""Saved masks (label PNGs, NIfTI on the source grid) and volume-level scores, on hand-made volumes."""

import shutil

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch
from monai.metrics import compute_hausdorff_distance
from nibabel.orientations import axcodes2ornt, io_orientation, ornt_transform

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import label_dtype, label_path, load_labels
from sam4med.errors import ConfigError, DataError
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.outputs import OutputSettings
from sam4med.evaluation.predictions import ImagePrediction, PredictionFiles
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.session import EvaluationSession
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.files import save_png
from sam4med.metrics.surface import normalised_surface_dice
from sam4med.results.masks import label_image, write_label_pngs, write_volume_niftis
from sam4med.results.statistics import TOO_SMALL
from sam4med.results.volumes import ALL_TARGETS, index_ranges, volume_comparison, volume_rows, volume_table
from sam4med.run_files import ResultsFolder
from sam4med.volume_grid import read_grids
from tests.prepare.test_volume_grid import OBLIQUE, preparer, write_sources

ZS = str(Phase.ZERO_SHOT)


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    """(sources, dataset folder): two oblique phantom volumes, every slice of each structure prepared."""
    sources = write_sources(tmp_path_factory.mktemp("sources"))
    return sources, preparer(sources, whole_extent=True)(tmp_path_factory.mktemp("dataset"))


def keep_predictions(dataset, files, phase=ZS, strategy="S5", change=None):
    """Write each image's ground truth as its prediction (``change(image_id, object, mask)`` alters one)."""
    for k in range(len(dataset)):
        item = dataset[k]
        masks = np.stack(
            [change(item.record.image_id, o, m) if change else m for o, m in zip(item.objects, item.masks, strict=True)]
        )
        scores = np.linspace(0.5, 0.9, len(item.objects))
        files.write(phase, strategy, item.record.image_id, ImagePrediction.of(item.objects, masks, scores))


def test_prediction_files_round_trip(volumes, tmp_path):
    dataset = CosmosDataset(volumes[1])
    item = dataset[3]
    files = PredictionFiles(tmp_path)
    files.write(ZS, "S5", item.record.image_id, ImagePrediction.of(item.objects, item.masks, [0.25] * len(item.masks)))
    back = files.read(ZS, "S5", item.record.image_id)
    assert back.object_keys == tuple(o.key for o in item.objects)
    assert np.array_equal(back.masks, item.masks) and np.allclose(back.scores, 0.25)
    assert files.has(ZS, "S5", item.record.image_id) and not files.has(ZS, "S4", item.record.image_id)
    with pytest.raises(DataError, match="were not kept"):
        files.read(ZS, "S4", item.record.image_id)


def test_label_image_overlap_goes_to_the_higher_score_then_the_later_object():
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[0, :2], masks[1, 1:3], masks[2, 3] = True, True, True
    prediction = ImagePrediction(("a", "b", "c"), ("m", "m", "other"), (1, 2, 7), np.array([0.9, 0.5, 0.1]), masks)
    image = label_image(prediction, "m")
    assert image[:, 0].tolist() == [1, 1, 2, 0]  # row 1 overlaps: object 1 (score 0.9) wins
    tie = ImagePrediction(("a", "b", "c"), ("m", "m", "other"), (1, 2, 7), np.array([0.5, 0.5, 0.1]), masks)
    assert label_image(tie, "m")[1, 0] == 2  # equal scores: the later object
    assert label_image(prediction, "other")[3].tolist() == [7, 7, 7, 7]
    assert label_dtype(255) is np.uint8 and label_dtype(256) is np.uint16


def test_a_label_png_round_trips_the_prediction(volumes, tmp_path):
    """A prediction equal to the ground truth is written as the dataset's own label PNG, value for value."""
    dataset = CosmosDataset(volumes[1])
    files, folder = PredictionFiles(tmp_path / "predictions"), ResultsFolder(tmp_path)
    keep_predictions(dataset, files)
    assert write_label_pngs(folder, dataset, files, phase=ZS, strategy="S5") == len(dataset)
    for record in dataset.records:
        saved = load_labels(folder.masks / ZS / "S5" / "organs" / f"{record.image_id}.png")
        assert np.array_equal(saved, load_labels(label_path(dataset.root, "organs", record.image_id)))
    wide = np.array([[0, 300], [65535, 1]], dtype=np.uint16)  # values above 255 stay 16-bit
    save_png(tmp_path / "wide.png", wide)
    assert np.array_equal(load_labels(tmp_path / "wide.png"), wide)


def test_nifti_masks_reload_onto_the_source_grid(volumes, tmp_path):
    sources, root = volumes
    dataset = CosmosDataset(root)
    missing = "case0_z005"
    files, folder = PredictionFiles(tmp_path / "predictions"), ResultsFolder(tmp_path)
    keep_predictions(dataset.subset([r.image_id for r in dataset.records if r.image_id != missing]), files)
    grids = list(read_grids(root).values())
    assert write_volume_niftis(folder, dataset, grids, files, phase=ZS, strategy="S5") == 2
    written = nib.load(str(folder.masks / ZS / "S5" / "organs" / "case0.nii.gz"))
    source = nib.load(str(sources / "labels" / "case0.nii.gz"))
    assert np.allclose(written.affine, source.affine) and np.allclose(written.affine, OBLIQUE)
    assert written.shape == source.shape and written.get_data_dtype() == np.uint8
    # expected, by nibabel alone: the source labels in RAS with slice 5 cleared, turned back to the stored order
    canonical = nib.as_closest_canonical(source)
    expected = np.asarray(canonical.dataobj).copy()
    expected[:, :, 5] = 0
    back = nib.Nifti1Image(expected, canonical.affine).as_reoriented(
        ornt_transform(axcodes2ornt("RAS"), io_orientation(source.affine))
    )
    assert np.allclose(back.affine, source.affine)
    assert np.array_equal(np.asarray(written.dataobj), np.asarray(back.dataobj))
    assert np.asarray(written.dataobj).any()


def shift(image_id, obj, mask):
    """An imperfect prediction: the ball moved by one pixel on every other slice, the rod thinned."""
    if obj.label_value == 1 and int(image_id[-3:]) % 2:
        return np.roll(mask, 1, axis=1)
    if obj.label_value == 2:
        return mask & np.roll(mask, 1, axis=0)
    return mask


def test_volume_scores_equal_those_of_the_stacked_arrays(volumes, tmp_path):
    dataset = CosmosDataset(volumes[1])
    files = PredictionFiles(tmp_path)
    keep_predictions(dataset, files, change=shift)
    grid = read_grids(volumes[1])["case1"]
    rows = volume_rows(dataset, grid, files, phases=[ZS], strategies=["S5"], tolerance=1.0)
    assert [(r["label_value"], r["coverage"]) for r in rows] == [(1, 1.0), (2, 1.0), (3, 1.0)]
    index = {r.image_id: k for k, r in enumerate(dataset.records)}
    for row in rows:
        # by hand: each slice's masks put back as RAS slices (rot90 undone) along Z
        pred = np.zeros(grid.shape, dtype=bool)
        gt = np.zeros(grid.shape, dtype=bool)
        for image_id, z in grid.images.items():
            item = dataset[index[image_id]]
            for obj, mask in zip(item.objects, item.masks, strict=True):
                if obj.label_value == row["label_value"]:
                    gt[:, :, z] = np.rot90(mask, -1)
                    pred[:, :, z] = np.rot90(shift(image_id, obj, mask), -1)
        dice = 2 * (pred & gt).sum() / (pred.sum() + gt.sum())
        assert row["dice"] == pytest.approx(dice, abs=1e-12)
        spacing = (0.8, 0.9, 2.0)  # X, Y, Z: the arrays' own axis order
        nsd = normalised_surface_dice(pred.transpose(2, 1, 0), gt.transpose(2, 1, 0), 1.0, spacing=spacing)
        assert row["nsd"] == pytest.approx(nsd, abs=1e-9)
        hd95 = compute_hausdorff_distance(
            torch.from_numpy(pred)[None, None].float(),
            torch.from_numpy(gt)[None, None].float(),
            percentile=95,
            spacing=spacing,
        )
        assert row["hd95"] == pytest.approx(float(hd95), abs=1e-5)
    assert rows[0]["dice"] < 1 and rows[1]["dice"] < 1 and rows[2]["dice"] == 1.0  # the test can fail


def test_coverage_states_a_slice_that_was_not_scored(volumes, tmp_path):
    dataset = CosmosDataset(volumes[1])
    grid = read_grids(volumes[1])["case0"]
    ball = grid.extent["organs"][1]
    missing = f"case0_z{ball[2]:03d}"
    split = dataset.subset([r.image_id for r in dataset.records if r.image_id != missing])
    files = PredictionFiles(tmp_path)
    keep_predictions(split, files)
    table = volume_table(
        split, list(read_grids(volumes[1]).values()), files, phases=[ZS], strategies=["S5"], tolerance=2
    )
    row = table[(table["volume"] == "case0") & (table["label_value"] == 1)].iloc[0]
    assert (row["slices_scored"], row["slices_in_extent"]) == (len(ball) - 1, len(ball))
    assert row["coverage"] == pytest.approx((len(ball) - 1) / len(ball))
    assert row["slices_not_scored"] == str(ball[2])
    assert row["dice"] == 1.0  # the missing slice is left out of both volumes, not counted as a miss
    assert set(table["volume"]) == {"case0", "case1"} and (table[table["volume"] == "case1"]["coverage"] == 1).all()
    assert index_ranges([9, 3, 4, 5]) == "3-5,9"


def test_volume_comparison_with_few_volumes_gives_the_paired_difference_per_volume():
    rows = []
    for phase, dice in ((Phase.ZERO_SHOT, (0.5, 0.6)), (Phase.FINETUNED, (0.7, 0.65))):
        for volume, value in zip(("v1", "v2"), dice, strict=True):
            rows.append({"phase": str(phase), "strategy": "S5", "volume": volume, "target": "Ball-CT", "dice": value})
    comp = volume_comparison(pd.DataFrame(rows))
    assert list(comp["target"]) == ["Ball-CT", ALL_TARGETS]
    first = comp.iloc[0]
    assert first["volumes"] == 2 and first["dice_delta"] == pytest.approx(0.125)
    assert first["small_n"] == TOO_SMALL and first["per_volume"] == "v1: +0.200; v2: +0.050"


def test_nifti_masks_are_refused_for_a_folder_without_volumes(synthetic_root, volumes, tmp_path):
    def session(masks):
        settings = EvaluationSettings.build(
            strategies=["S5"], multimask="single", everything=EverythingSettings(), outputs=OutputSettings(masks=masks)
        )
        return EvaluationSession(ResultsFolder(tmp_path), settings, cache=None)

    with pytest.raises(ConfigError, match="use outputs.masks=png"):
        session("nifti").predictions(CosmosDataset(synthetic_root))
    assert session("png").predictions(CosmosDataset(synthetic_root)) is not None
    assert session("none").predictions(CosmosDataset(synthetic_root)) is None  # 2D images: nothing to keep
    assert session("none").predictions(CosmosDataset(volumes[1])) is not None  # volumes: volume_metrics
    with pytest.raises(ConfigError, match="outputs.masks=tiff"):
        OutputSettings(masks="tiff")
    old = shutil.copytree(volumes[1], tmp_path / "old")  # prepared by a version that recorded no grids
    shutil.rmtree(old / "volumes")
    with pytest.raises(DataError, match="prepare it again"):
        session("nifti").predictions(CosmosDataset(old))
