"""predict.py: masks from prompt files or labels, equal to what the evaluation decodes; NIfTI out on the source grid;
clear errors for bad prompt files; box propagation through a volume."""

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from hydra.utils import instantiate
from PIL import Image

from sam4med.compute import Compute
from sam4med.data.dataset import CosmosDataset
from sam4med.embeddings import EmbeddingCache
from sam4med.errors import ConfigError, DataError
from sam4med.evaluation.predict import Prediction, predict_scored
from sam4med.inference.inputs import InputFile, Reading, find_inputs, read_volume, slice_image_id, volume_grid
from sam4med.inference.outputs import label_image
from sam4med.inference.propagate import PROPAGATED, propagate, propagated_box
from sam4med.inference.requests import ObjectPrompt, Start, from_file, from_labels
from sam4med.inference.settings import PredictSettings
from sam4med.jobs.evaluate import evaluate_model
from sam4med.jobs.predict import predict_masks
from sam4med.metrics import dice
from sam4med.models.finetuned import read_finetuned
from sam4med.models.multimask import Multimask
from sam4med.prepare.volumes import VolumePreparer, plane_slice, view
from sam4med.prompts.generate import make_prompt, tight_box
from sam4med.prompts.prompt import Prompt
from sam4med.prompts.prompt_file import CSV_COLUMNS, read_prompt_file
from sam4med.prompts.store import PromptStore
from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S, compose_config
from tests.models.checkpoint_files import write_checkpoint
from tests.prepare.volumes import phantom, preparer_settings, volume_folder
from tests.test_entry_points import composed_with_hydra, help_groups

TINY = ["model=tiny", "embeddings=memory", "compute.device=cpu"]  # CPU: the expected masks are computed on it


def write_csv(path: Path, rows: list[dict], columns=CSV_COLUMNS):
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


# --- predict.py equals evaluate.py on the same prompts -------------------------------------------------


def test_predict_on_an_unlabelled_folder_writes_the_masks_evaluate_scores(tmp_path):
    """The feature's smoke test: evaluate.py (S5), then predict.py on the bare test images with those S5 boxes."""
    evaluated = tmp_path / "evaluate"
    cfg = compose_config(
        "evaluate", evaluated, ["experiment=quick", "evaluation.strategies=[S5]", "evaluation.overlays=0", *TINY[1:]]
    )
    results = evaluate_model(cfg)
    dataset_root = Path(cfg.dataset.root)
    stored = json.loads((results / "prompts.json").read_text())["prompts"]
    unlabelled = tmp_path / "unlabelled"  # the images alone: no labels, no manifest
    unlabelled.mkdir()
    rows = []
    for key, prompt in stored.items():
        image_id, _, value = key.split("|")[1].split("/")
        shutil.copy(dataset_root / "images" / f"{image_id}.png", unlabelled / f"{image_id}.png")
        x0, y0, x1, y1 = prompt["box"]
        rows.append({"image": f"{image_id}.png", "object": value, "x0": x0, "y0": y0, "x1": x1, "y1": y1})
    boxes = write_csv(tmp_path / "boxes.csv", rows, columns=("image", "object", "x0", "y0", "x1", "y1"))
    run = tmp_path / "predict"
    proc = subprocess.run(
        [sys.executable, "predict.py", *TINY, f"inputs={unlabelled}", f"prompts={boxes}", f"hydra.run.dir={run}"],
        cwd=REPO,
        env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"},
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]

    # what the evaluation decodes for each image: predict_scored on the dataset's image with the stored prompts
    dataset = CosmosDataset(dataset_root, image_ids=sorted({r["image"][:-4] for r in rows}), min_object_area=4)
    model = instantiate(compose_config("predict", tmp_path, TINY).model).eval()
    cache = EmbeddingCache(None)
    scored = {}
    for line in csv.DictReader((results / "metrics.csv").open()):
        scored[line["object_key"]] = (float(line["dice"]), float(line["score"]))
    predicted = list(csv.DictReader((run / "predictions.csv").open()))
    assert len(predicted) == len(stored) == len(scored)
    for item in (dataset[k] for k in range(len(dataset))):
        keys = [o.key for o in item.objects]
        prompts = [
            Prompt.from_dict({k: v for k, v in stored[f"S5|{key}"].items() if k != "mask_sha256"}) for key in keys
        ]
        expected = predict_scored(
            model,
            cache.get(model, item.image),
            prompts,
            item.image.shape[:2],
            multimask=Multimask.SINGLE,
            compute=Compute(),
        )
        written = np.asarray(Image.open(run / "masks" / f"{item.record.image_id}.png"))
        ids = [o.label_value for o in item.objects]  # the CSV lists each image's objects in this order
        assert np.array_equal(written, label_image(expected.masks, ids, np.uint8))
        for obj, truth, mask, score in zip(item.objects, item.masks, expected.masks, expected.scores, strict=True):
            assert dice(mask, truth) == pytest.approx(scored[obj.key][0], abs=1e-12)
            assert float(score) == pytest.approx(scored[obj.key][1], rel=1e-6)
            row = next(
                r for r in predicted if r["image"] == f"{obj.image_id}.png" and int(r["object"]) == obj.label_value
            )
            assert int(row["area"]) == int(mask.sum()) and row["source"] == "file" and row["slice"] == ""


def test_a_finetuned_checkpoint_is_loaded_and_its_multimask_kept(tmp_path, synthetic_root):
    model = instantiate(compose_config("predict", tmp_path, TINY).model).eval()
    checkpoint = write_checkpoint(tmp_path / "trained.ckpt", model)  # decoder weights moved, multimask single
    image = synthetic_root / "images" / "syn0000.png"
    boxes = write_csv(tmp_path / "b.csv", [{"image": image.name, "x0": 10, "y0": 5, "x1": 30, "y1": 20}])
    common = [*TINY, f"inputs={image}", f"prompts={boxes}", f"finetuned={checkpoint}"]
    with pytest.raises(ConfigError, match=r"trained for multimask=single; predict with the same setting"):
        predict_masks(compose_config("predict", tmp_path / "refused", [*common, "prediction.multimask=confidence"]))
    run = predict_masks(compose_config("predict", tmp_path, common))
    rgb = Reading().image(InputFile(image))
    box = Prompt("file", box=(10.0, 5.0, 30.0, 20.0))
    cache = EmbeddingCache(None)
    zero_shot = predict_scored(
        model, cache.get(model, rgb), [box], rgb.shape[:2], multimask=Multimask.SINGLE, compute=Compute()
    )
    read_finetuned(checkpoint).load_into(model)
    expected = predict_scored(
        model, cache.get(model, rgb), [box], rgb.shape[:2], multimask=Multimask.SINGLE, compute=Compute()
    )
    written = np.asarray(Image.open(run / "masks" / "syn0000.png"))
    assert np.array_equal(written, expected.masks[0].astype(np.uint8))
    row = next(csv.DictReader((run / "predictions.csv").open()))
    assert float(row["score"]) == pytest.approx(float(expected.scores[0]), rel=1e-5)
    assert float(row["score"]) != pytest.approx(float(zero_shot.scores[0]), rel=1e-3)  # the trained decoder's


# --- NIfTI in, NIfTI out on the source grid ------------------------------------------------------------


def oblique_volume(tmp_path: Path) -> tuple[Path, Path, np.ndarray]:
    """A 20 x 22 x 8 phantom stored with its first two axes swapped and flipped (P, L, S: not RAS), its label
    volume, and their affine. RAS: 22 x 20 x 8, so 8 axial slices of 20 rows and 22 columns; labels on the
    axial slices 4 and 5 only (few slices to decode).
    """
    image, labels = phantom(shape=(20, 22, 8), seed=1)
    labels[:, :, [0, 1, 2, 3, 6, 7]] = 0
    affine = np.array([[0.0, -0.9, 0.0, 30.0], [-0.8, 0.0, 0.0, 12.0], [0.0, 0.0, 2.0, -5.0], [0.0, 0.0, 0.0, 1.0]])
    image_path, label_path = tmp_path / "vol" / "case.nii.gz", tmp_path / "labels" / "case.nii.gz"
    for path, array in ((image_path, image), (label_path, labels)):
        path.parent.mkdir(parents=True, exist_ok=True)
        nib.save(nib.Nifti1Image(array, affine), str(path))
    return image_path, label_path, affine


def test_a_volume_gives_a_nifti_on_its_own_grid(tmp_path):
    image_path, label_path, affine = oblique_volume(tmp_path)
    cfg = compose_config("predict", tmp_path, [*TINY, f"inputs={image_path}", f"labels={label_path}"])
    run = predict_masks(cfg)
    written = nib.load(str(run / "masks" / "case.nii.gz"))
    source = nib.load(str(image_path))
    assert written.shape == source.shape and np.allclose(written.affine, affine)
    assert written.get_data_dtype() == np.uint8

    # slice by slice: what the evaluation's decoder gives for the prompts drawn from the labels, at its position
    settings: PredictSettings = instantiate(cfg.prediction)
    reading: Reading = instantiate(cfg.reading)
    volume = read_volume(volume_grid(image_path, reading.axis))
    model = instantiate(cfg.model).eval()
    canonical = np.asarray(nib.as_closest_canonical(written).dataobj)
    labels = np.asarray(nib.as_closest_canonical(nib.load(str(label_path))).dataobj)
    cache = EmbeddingCache(None)
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    prompted = sorted({int(r["slice"]) for r in rows})
    assert prompted == [k for k in range(labels.shape[2]) if labels[:, :, k].any()]
    for index in range(canonical.shape[2]):
        shown = view(plane_slice(canonical, index, 2))
        if index not in prompted:
            assert not shown.any()
            continue
        truth = view(plane_slice(labels, index, 2))
        values = [int(v) for v in np.unique(truth) if v]
        prompts = [
            make_prompt(truth == v, "S5", seed=settings.seed, object_key=f"case_z{index:03d}/labels/{v}")
            for v in values
        ]
        image = reading.slice_image(volume, index)
        expected = predict_scored(
            model, cache.get(model, image), prompts, image.shape[:2], multimask=Multimask.SINGLE, compute=Compute()
        )
        assert np.array_equal(shown, label_image(expected.masks, values, np.uint8)), index


@pytest.mark.parametrize(
    ("preparer", "reading"),
    [({}, {}), ({"plane": "coronal", "intensity": {"mode": "window", "window": [-300, 100]}}, None)],
    ids=["axial-minmax", "coronal-window"],
)
def test_a_volume_slice_reaches_the_model_as_its_prepared_image(tmp_path, preparer, reading):
    """The same settings: the slice predict.py encodes is the prepared PNG as the dataset reads it."""
    source = volume_folder(tmp_path / "src", n=1)
    root = VolumePreparer(**preparer_settings(source, **preparer))(tmp_path / "prepared")
    settings = Reading.build(**(preparer if reading is None else reading))
    volume = read_volume(volume_grid(source / "images" / "case0.nii.gz", settings.axis))
    dataset = CosmosDataset(root)
    assert len(dataset) > 2
    for k in range(len(dataset)):
        item = dataset[k]
        assert item.record.image_id == slice_image_id(volume.grid, item.record.slice_index)
        assert np.array_equal(settings.slice_image(volume, item.record.slice_index), item.image)


def test_prompts_from_labels_are_the_evaluations(synthetic_root):
    """labels= with the dataset's label map name draws the prompts evaluate.py draws (same seed and keys)."""
    inputs = find_inputs(synthetic_root / "images")[:3]
    settings = PredictSettings.build(strategy="S4", seed=42, label_map="shapes")
    requests = from_labels(synthetic_root / "labels" / "shapes", inputs, settings, axis=2)
    store = PromptStore(seed=42)
    assert len(requests) == 3
    for request in requests:
        labels = np.asarray(Image.open(synthetic_root / "labels" / "shapes" / request.item.name))
        drawn = request.slices[-1]
        assert [p.object for p in drawn] == [int(v) for v in np.unique(labels) if v]
        for p in drawn:
            key = f"{request.item.stem}/shapes/{p.object}"
            assert p.prompt == store.get(labels == p.object, "S4", key) and p.source == "S4"


# --- prompt files and their errors ---------------------------------------------------------------------


@pytest.fixture
def inputs(tmp_path):
    """A 40 x 30 (W x H) PNG ``a.png`` and a 20 x 22 x 8 volume ``case.nii.gz`` (axial slices 20 wide, 22 high)."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(np.full((30, 40), 100, np.uint8)).save(folder / "a.png")
    image, _ = phantom(shape=(20, 22, 8))
    nib.save(nib.Nifti1Image(image, np.diag([1.0, 1.0, 2.0, 1.0])), str(folder / "case.nii.gz"))
    return find_inputs(folder)


def test_a_prompts_file_reads_boxes_points_and_default_ids(tmp_path, inputs):
    rows = [
        {"image": "a.png", "x0": 1, "y0": 2, "x1": 10, "y1": 12},
        {"image": "a", "points": "5 6 1; 20 3 0"},  # the name without extension works too
        {"image": "case.nii.gz", "slice": 4, "object": 7, "x0": 0, "y0": 0, "x1": 19, "y1": 21, "points": "3 4 1"},
    ]
    entries = read_prompt_file(write_csv(tmp_path / "p.csv", rows))
    assert [(e.image, e.slice, e.object) for e in entries] == [
        ("a.png", None, None),
        ("a", None, None),
        ("case.nii.gz", 4, 7),
    ]
    assert entries[1].prompt.point_coords == ((5.0, 6.0), (20.0, 3.0)) and entries[1].prompt.point_labels == (1, 0)
    assert entries[2].prompt.box == (0.0, 0.0, 19.0, 21.0)
    as_json = tmp_path / "p.json"
    as_json.write_text(
        json.dumps(
            {
                "prompts": [
                    {"image": "a.png", "box": [1, 2, 10, 12]},
                    {"image": "a", "points": [[5, 6, 1], [20, 3, 0]]},
                    {"image": "case.nii.gz", "slice": 4, "object": 7, "box": [0, 0, 19, 21], "points": [[3, 4, 1]]},
                ]
            }
        )
    )
    assert [(e.image, e.slice, e.object, e.prompt) for e in read_prompt_file(as_json)] == [
        (e.image, e.slice, e.object, e.prompt) for e in entries
    ]
    requests = from_file(entries, inputs, axis=2)
    assert [r.item.name for r in requests] == ["a.png", "case.nii.gz"]
    assert [p.object for p in requests[0].slices[-1]] == [1, 2] and list(requests[1].slices) == [4]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"image": "a.png", "x0": 5, "y0": 2, "x1": 4, "y1": 12}], r"p\.csv line 2: box \(5, 2, 4, 12\) has x0 > x1"),
        (
            [{"image": "a.png", "x0": 1, "y0": 2, "x1": 40, "y1": 12}],
            r"line 2: box \(1, 2, 40, 12\) lies outside the 40x30",
        ),
        ([{"image": "a.png", "points": "3 30 1"}], r"line 2: point \(3, 30\) lies outside the 40x30 image a\.png"),
        ([{"image": "b.png", "x0": 1, "y0": 1, "x1": 2, "y1": 2}], r"line 2: image 'b\.png' is not among the inputs"),
        ([{"image": "a.png", "x0": 1, "y0": 1, "x1": 2}], r"line 2: a box needs all of x0, y0, x1, y1"),
        ([{"image": "a.png", "x0": 1, "y0": 1, "x1": "two", "y1": 2}], r"line 2: x1 must be a number, got 'two'"),
        ([{"image": "a.png", "points": "3 4 2"}], r"line 2: point label must be 1 \(foreground\) or 0"),
        ([{"image": "a.png", "object": 0, "points": "3 4 1"}], r"line 2: object must be a whole number 1\.\.65535"),
        ([{"image": "a.png"}], r"line 2: neither a box nor points"),
        ([{"image": "a.png", "slice": 3, "points": "3 4 1"}], r"line 2: slice 3 given for the 2D image a\.png"),
        ([{"image": "case.nii.gz", "points": "3 4 1"}], r"line 2: case\.nii\.gz is a volume; give the slice index"),
        (
            [{"image": "case.nii.gz", "slice": 8, "points": "3 4 1"}],
            r"line 2: slice 8 is outside case\.nii\.gz, whose 8",
        ),
        (
            [{"image": "case.nii.gz", "slice": 2, "x0": 0, "y0": 0, "x1": 20, "y1": 5}],
            r"line 2: box \(0, 0, 20, 5\) lies outside the 20x22 image slice 2 of case\.nii\.gz",
        ),
        (
            [{"image": "a.png", "object": 2, "points": "3 4 1"}, {"image": "a.png", "object": 2, "points": "5 4 1"}],
            r"line 3: object 2 of image a\.png was already given \(.*p\.csv line 2\)",
        ),
    ],
)
def test_a_bad_prompts_file_names_its_line_and_problem(tmp_path, inputs, rows, message):
    with pytest.raises(DataError, match=message):
        from_file(read_prompt_file(write_csv(tmp_path / "p.csv", rows)), inputs, axis=2)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("p.csv", "image,box\na.png,1 2 3 4\n", r"p\.csv line 1: unknown columns \['box'\]"),
        ("p.csv", "image,x0,y0\n", r"line 1: a box needs the four columns x0, y0, x1, y1"),
        ("p.csv", "image,points\na.png,1 2 1,extra\n", r"line 2: 3 cells for the 2 columns"),
        ("p.json", '[{"image": "a.png", "box": [1, 2, 3]}]', r"p\.json entry 1: box must be \[x0, y0, x1, y1\]"),
        ("p.json", '[{"image": "a.png", "box": [1, 2, 3, 4], "label": 1}]', r"entry 1: unknown keys \['label'\]"),
        ("p.json", '[{"image": "a.png",\n "box": [1, 2, 3, 4],}]', r"p\.json line 2: not JSON"),
        ("p.json", "[]", r"p\.json: holds no prompt"),
        ("p.txt", "image\n", r"prompts=.*p\.txt: expected a \.csv or \.json prompts file"),
    ],
)
def test_a_malformed_prompts_file_is_refused_with_its_place(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises((DataError, ConfigError), match=message):
        read_prompt_file(path)


def test_settings_refuse_what_predict_cannot_do(tmp_path, inputs):
    with pytest.raises(ConfigError, match="oracle picks the mask closest to the ground truth"):
        PredictSettings.build(multimask="oracle")
    with pytest.raises(ConfigError, match="give one source of prompts"):
        predict_masks(compose_config("predict", tmp_path, [*TINY, f"inputs={inputs[0].path}"]))
    with pytest.raises(ConfigError, match=r"inputs=.*nothing: no such file or folder"):
        find_inputs(tmp_path / "nothing")
    entries = read_prompt_file(write_csv(tmp_path / "p.csv", [{"image": "case.nii.gz", "slice": 2, "points": "3 4 1"}]))
    with pytest.raises(DataError, match=r"line 2: propagation starts from a box"):
        from_file(entries, inputs, axis=2, propagate=True)
    twice = [{"image": "case.nii.gz", "slice": k, "object": 1, "x0": 1, "y0": 1, "x1": 5, "y1": 5} for k in (2, 5)]
    entries = read_prompt_file(write_csv(tmp_path / "p.csv", twice))
    assert [p.object for p in from_file(entries, inputs, axis=2)[0].slices[5]] == [1]  # one object per slice
    with pytest.raises(DataError, match=r"line 3: object 1 of image case\.nii\.gz slice 5 was already given"):
        from_file(entries, inputs, axis=2, propagate=True)  # propagating: one object per volume


# --- box propagation -----------------------------------------------------------------------------------


def cylinder(slices=12, low=3, high=7, shape=(30, 40)) -> np.ndarray:
    """A Z x H x W stack: a disc present on slices low..high, growing by one pixel of radius per slice."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    stack = np.zeros((slices, *shape), dtype=bool)
    for k in range(low, high + 1):
        stack[k] = (yy - 15) ** 2 + (xx - 20) ** 2 <= (4 + k - low) ** 2
    return stack


def test_propagation_carries_the_mask_box_and_stops_at_an_empty_slice():
    """A decoder that returns the object's own slice inside the box given: the walk covers its extent and
    one empty slice beyond it on each side, each box the tight box of the slice before plus the margin."""
    truth = cylinder()
    calls: list[tuple[int, tuple]] = []

    def decode(index: int, prompts) -> Prediction:
        masks = []
        for p in prompts:
            x0, y0, x1, y1 = p.prompt.box
            inside = np.zeros(truth.shape[1:], dtype=bool)
            inside[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1] = True
            masks.append(truth[index] & inside)
            calls.append((index, p.prompt.box))
        return Prediction(np.stack(masks), np.full(len(masks), 0.5, np.float32), np.zeros(len(masks), np.int64))

    start = ObjectPrompt(3, Prompt("file", box=(14.0, 9.0, 26.0, 21.0)), "file")
    results = propagate([Start(5, start, 0, 11)], 12, decode, margin=2)
    assert [r.index for r in results] == [2, 3, 4, 5, 6, 7, 8]  # 8 and 2 are empty: each direction stops there
    assert [int(r.masks[0].sum() > 0) for r in results] == [0, 1, 1, 1, 1, 1, 0]
    boxes = dict(calls)
    assert boxes[5] == start.prompt.box
    for index, before in ((6, 5), (7, 6), (8, 7), (4, 5), (3, 4), (2, 3)):
        x0, y0, x1, y1 = tight_box(truth[before] & _inside(boxes[before], truth.shape[1:]))
        assert boxes[index] == (max(0, x0 - 2), max(0, y0 - 2), min(39, x1 + 2), min(29, y1 + 2)), index
    assert all(r.prompts[0].source == PROPAGATED for r in results if r.index != 5)
    assert results[3].prompts[0].source == "file" and {p.object for r in results for p in r.prompts} == {3}


def test_propagation_stays_in_the_slice_range_given():
    truth = cylinder(slices=12, low=0, high=11)  # the object runs through the whole volume
    seen = []

    def decode(index, prompts):
        seen.append(index)
        masks = np.stack([truth[index]] * len(prompts))
        return Prediction(masks, np.ones(len(prompts), np.float32), np.zeros(len(prompts), np.int64))

    start = Start(6, ObjectPrompt(1, Prompt("file", box=(10.0, 5.0, 30.0, 25.0)), "file"), 4, 8)
    results = propagate([start], 12, decode, margin=1)
    assert seen == [6, 7, 8, 5, 4] and [r.index for r in results] == [4, 5, 6, 7, 8]


def test_a_slice_range_is_read_and_checked(tmp_path, inputs):
    row = {"image": "case.nii.gz", "slice": 3, "object": 1, "x0": 1, "y0": 1, "x1": 5, "y1": 5}
    entries = read_prompt_file(write_csv(tmp_path / "p.csv", [{**row, "slice_min": 2, "slice_max": 6}]))
    (start,) = from_file(entries, inputs, axis=2, propagate=True)[0].starts
    assert (start.slice, start.low, start.high, start.prompt.object) == (3, 2, 6, 1)
    unbounded = read_prompt_file(write_csv(tmp_path / "q.csv", [row]))
    (start,) = from_file(unbounded, inputs, axis=2, propagate=True)[0].starts
    assert (start.low, start.high) == (0, 7)  # no range: the whole volume
    with pytest.raises(DataError, match=r"line 2: slice_min and slice_max bound a propagation .*; set propagate=true"):
        from_file(entries, inputs, axis=2)
    with pytest.raises(DataError, match=r"line 2: the slice range 4\.\.6 must hold the prompted slice \(3\)"):
        read_prompt_file(write_csv(tmp_path / "p.csv", [{**row, "slice_min": 4, "slice_max": 6}]))
    with pytest.raises(DataError, match=r"line 2: a slice range needs both slice_min and slice_max"):
        read_prompt_file(write_csv(tmp_path / "p.csv", [{**row, "slice_min": 2}]))
    entries = read_prompt_file(write_csv(tmp_path / "p.csv", [{**row, "slice_min": 2, "slice_max": 8}]))
    with pytest.raises(
        DataError, match=r"line 2: slice_max 8 is outside case\.nii\.gz, whose slices are numbered 0\.\.7"
    ):
        from_file(entries, inputs, axis=2, propagate=True)


def _inside(box, shape):
    inside = np.zeros(shape, dtype=bool)
    x0, y0, x1, y1 = (int(v) for v in box)
    inside[y0 : y1 + 1, x0 : x1 + 1] = True
    return inside


def test_propagated_boxes_are_clipped_and_an_empty_mask_gives_none():
    mask = np.zeros((10, 12), dtype=bool)
    assert propagated_box(mask, 3) is None
    mask[0:4, 9:12] = True
    assert propagated_box(mask, 3) == (6.0, 0.0, 11.0, 6.0)


def test_two_objects_propagate_together_in_file_order():
    """Objects started on different slices share the decoder calls of a slice, drawn in the order given."""
    truth = cylinder(slices=6, low=0, high=5)
    seen = []

    def decode(index, prompts):
        seen.append((index, [p.object for p in prompts]))
        masks = np.stack([truth[index]] * len(prompts))
        return Prediction(masks, np.ones(len(prompts), np.float32), np.zeros(len(prompts), np.int64))

    box = Prompt("file", box=(10.0, 5.0, 30.0, 25.0))
    starts = [Start(3, ObjectPrompt(2, box, "file"), 0, 5), Start(1, ObjectPrompt(1, box, "file"), 0, 5)]
    results = propagate(starts, 6, decode, margin=0)
    assert seen[:5] == [(1, [1]), (2, [1]), (3, [2, 1]), (4, [2, 1]), (5, [2, 1])]  # upwards, slice by slice
    assert seen[5:] == [(2, [2]), (1, [2]), (0, [2, 1])]  # downwards: object 2 from slice 3, object 1 from slice 1
    assert [[p.object for p in r.prompts] for r in results] == [[2, 1], [2, 1], [2, 1], [2, 1], [2, 1], [2, 1]]


@pytest.mark.slow
def test_predict_propagates_a_box_through_a_volume(tmp_path):
    image_path, label_path, _ = oblique_volume(tmp_path)
    labels = np.asarray(nib.as_closest_canonical(nib.load(str(label_path))).dataobj)
    start = int(np.argmax((labels == 1).sum(axis=(0, 1))))  # the axial slice with the most of the ball
    x0, y0, x1, y1 = tight_box(view(plane_slice(labels, start, 2)) == 1)
    row = {"image": "case.nii.gz", "slice": start, "object": 5, "x0": x0, "y0": y0, "x1": x1, "y1": y1}
    boxes = write_csv(tmp_path / "box.csv", [row])
    cfg = compose_config("predict", tmp_path, [*TINY, f"inputs={image_path}", f"prompts={boxes}", "propagate=true"])
    run = predict_masks(cfg)
    rows = list(csv.DictReader((run / "predictions.csv").open()))
    by_slice = {int(r["slice"]): r for r in rows}
    assert by_slice[start]["source"] == "file"
    assert all(r["source"] == PROPAGATED and int(r["object"]) == 5 for k, r in by_slice.items() if k != start)
    indices = sorted(by_slice)
    assert indices == list(range(indices[0], indices[-1] + 1)) and indices[0] <= start <= indices[-1]
    # a walk goes on past a slice only when its mask is not empty
    for k in indices:
        if k != start and indices[0] < k < indices[-1]:
            assert int(by_slice[k]["area"]) > 0, k
    written = nib.load(str(run / "masks" / "case.nii.gz"))
    assert written.shape == (20, 22, 8) and set(np.unique(np.asarray(written.dataobj))) <= {0, 5}
    assert np.allclose(written.affine, nib.load(str(image_path)).affine)


# --- the entry point's --help --------------------------------------------------------------------------


def test_predict_help_names_exactly_the_groups_of_its_defaults_list():
    cfg, help_text = composed_with_hydra("predict")
    assert cfg.hydra.runtime.choices["hydra/help"] == "predict"
    selected = {group for group in cfg.hydra.runtime.choices if not group.startswith("hydra/")}
    assert set(help_groups(cfg)) == selected == {"paths", "model", "embeddings", "compute"}
    assert "python predict.py inputs=PATH" in help_text


def test_predict_help_answers_without_loading_torch():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "predict.py", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert not imported & {"torch", "nibabel", "pandas", "matplotlib"}
    assert "== Configuration groups ==" in proc.stdout and "embeddings:" in proc.stdout
    assert "dataset:" not in proc.stdout


def test_inputs_of_one_name_are_refused(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "a.jpg").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"a\.jpg and a\.png would write masks of one name \(a\)"):
        find_inputs(tmp_path)
    assert InputFile(tmp_path / "x.nii.gz").is_volume and InputFile(tmp_path / "x.nii.gz").stem == "x"
