"""Scoring keeps each image's predicted masks: the saved label PNGs (``outputs.masks=png``) of a tiny run, masks
decoded again on a resumed run without new rows, and a volume dataset's NIfTI masks and volume_metrics."""

import nibabel as nib
import numpy as np
import pandas as pd

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import load_labels
from sam4med.embeddings import EmbeddingCache
from sam4med.evaluation.everything import EverythingSettings
from sam4med.evaluation.interactive import InteractiveSettings
from sam4med.evaluation.outputs import OutputSettings
from sam4med.evaluation.predictions import PredictionFiles
from sam4med.evaluation.rows import Phase
from sam4med.evaluation.runner import score_dataset
from sam4med.evaluation.session import EvaluationSession
from sam4med.evaluation.settings import EvaluationSettings
from sam4med.jobs.evaluate import evaluate_model
from sam4med.metrics import dice
from sam4med.models.multimask import Multimask
from sam4med.prompts.store import PromptStore
from sam4med.results.volumes import volume_outputs
from sam4med.run_files import ResultsFolder
from tests.helpers import compose_config
from tests.prepare.test_volume_grid import preparer, write_sources


def test_a_tiny_run_with_png_masks_writes_one_label_png_per_image_and_strategy(tmp_path):
    overrides = ["experiment=quick", "evaluation.strategies=[S2,S5]", "outputs.masks=png", "evaluation.overlays=0"]
    results = ResultsFolder(evaluate_model(compose_config("evaluate", tmp_path, overrides)))
    frame = pd.read_csv(results.metrics)
    images = sorted(set(frame["image_id"]))
    root = tmp_path / "data" / "synthetic"
    maps = [p.name for p in (root / "labels").iterdir()]
    for strategy in ("S2", "S5"):
        for label_map in maps:
            folder = results.masks / "zero_shot" / strategy / label_map
            assert sorted(p.stem for p in folder.glob("*.png")) == images
        for image_id in images:  # the kept masks are the scored ones
            prediction = PredictionFiles(results.predictions).read("zero_shot", strategy, image_id)
            scored = frame[(frame["strategy"] == strategy) & (frame["image_id"] == image_id)]
            truth = {m: load_labels(root / "labels" / m / f"{image_id}.png") for m in maps}
            for key, mask in zip(prediction.object_keys, prediction.masks, strict=True):
                _, label_map, value = key.rsplit("/", 2)
                row = scored[scored["object_key"] == key].iloc[0]
                assert dice(mask, truth[label_map] == int(value)) == row["dice"]
            png = load_labels(results.masks / "zero_shot" / strategy / maps[0] / f"{image_id}.png")
            assert png.shape == prediction.masks.shape[1:] and set(np.unique(png)) <= {0, *prediction.values}
    assert not (results.path / "volume_metrics.csv").exists()  # 2D images: no volume scores


def test_a_resumed_run_decodes_missing_masks_again_without_new_rows(tiny_model, synthetic_root, tmp_path):
    full = CosmosDataset(synthetic_root)
    dataset = full.subset([full.records[0].image_id])
    files = PredictionFiles(tmp_path / "predictions")

    def run():
        return score_dataset(
            tiny_model,
            dataset,
            strategies=["S4", "I"],
            phase="zero_shot",
            cache=EmbeddingCache(None),
            prompts=PromptStore(seed=0, read_from=tmp_path / "prompts.json", write_to=tmp_path / "prompts.json"),
            multimask=Multimask.SINGLE,
            everything=EverythingSettings(points_per_side=4),
            log_path=tmp_path / "log.jsonl",
            progress=False,
            predictions=files,
            interactive=InteractiveSettings(clicks=2),
        )

    first = run()
    image_id = dataset.records[0].image_id
    kept = files.read("zero_shot", "S4", image_id)
    assert files.has("zero_shot", "I@2", image_id) and not files.has("zero_shot", "I@1", image_id)
    files.path("zero_shot", "S4", image_id).unlink()
    lines = (tmp_path / "log.jsonl").read_text().count("\n")
    again = run()
    assert again == first and (tmp_path / "log.jsonl").read_text().count("\n") == lines  # no row added
    assert np.array_equal(files.read("zero_shot", "S4", image_id).masks, kept.masks)


def test_a_volume_dataset_gets_nifti_masks_and_volume_metrics(tiny_model, tmp_path):
    sources = write_sources(tmp_path / "sources")
    dataset = CosmosDataset(preparer(sources, whole_extent=True)(tmp_path / "dataset"))
    settings = EvaluationSettings.build(
        strategies=["S5"], multimask="single", everything=EverythingSettings(), outputs=OutputSettings(masks="nifti")
    )
    results = ResultsFolder(tmp_path / "results")
    session = EvaluationSession(results, settings, cache=EmbeddingCache(None))
    rows = session.score(tiny_model, dataset, phase=Phase.ZERO_SHOT, progress=False)
    tables = volume_outputs(results, dataset, settings, [Phase.ZERO_SHOT])
    table = tables["volume_metrics"]
    assert set(tables) == {"volume_metrics"}  # one phase: no comparison
    assert len(table) == 2 * 3 and (table["coverage"] == 1).all() and table["dice"].between(0, 1).all()
    assert table["slices_scored"].sum() == len({(r.image_id, r.object) for r in rows})
    for volume in ("case0", "case1"):
        written = nib.load(str(results.masks / "zero_shot" / "S5" / "organs" / f"{volume}.nii.gz"))
        source = nib.load(str(sources / "labels" / f"{volume}.nii.gz"))
        assert written.shape == source.shape and np.allclose(written.affine, source.affine)


def test_a_second_run_reads_rows_and_masks_from_the_zero_shot_store_without_decoding(
    tiny_model, synthetic_root, tmp_path, monkeypatch
):
    """Jobs of a sweep share the zero-shot phase: the masks the first job kept serve the next one too."""
    import sam4med.evaluation.runner as runner
    from sam4med.evaluation.zero_shot_store import ZeroShotStore

    full = CosmosDataset(synthetic_root)
    dataset = full.subset([r.image_id for r in full.records[:2]])

    def run(name):
        files = PredictionFiles(tmp_path / name / "predictions")
        rows = score_dataset(
            tiny_model,
            dataset,
            strategies=["S5", "I"],
            phase="zero_shot",
            cache=EmbeddingCache(None),
            prompts=PromptStore(seed=0, write_to=tmp_path / name / "prompts.json"),
            multimask=Multimask.SINGLE,
            everything=EverythingSettings(points_per_side=4),
            progress=False,
            predictions=files,
            zero_shot_store=ZeroShotStore(tmp_path / "store"),
            interactive=InteractiveSettings(clicks=2),
        )
        return rows, files

    first, first_files = run("a")
    calls = []
    real = runner._score_image
    monkeypatch.setattr(runner, "_score_image", lambda *a, **k: calls.append(a[3]) or real(*a, **k))
    second, second_files = run("b")
    assert calls == [] and second == first  # nothing decoded: rows and masks came from the store
    for record in dataset.records:
        for strategy in ("S5", "I@2"):
            a, b = (
                first_files.read("zero_shot", strategy, record.image_id),
                second_files.read("zero_shot", strategy, record.image_id),
            )
            assert a.object_keys == b.object_keys and np.array_equal(a.masks, b.masks)
    # a store written without masks (e.g. by a run that kept none): the image is decoded for its masks only
    for npz in (tmp_path / "store").rglob("*.npz"):
        npz.unlink()
    third, _ = run("c")
    assert third == first and sorted(set(calls)) == ["I", "S5"]
