"""Saved predicted masks (``outputs.masks``): label PNGs per image, NIfTI volumes on the source grid.

Written after scoring from the predictions kept in ``results/predictions/`` (:mod:`sam4med.evaluation.predictions`)
into ``results/masks/<phase>/<strategy>/<label map>/``:

* ``<image_id>.png`` (``png`` and ``nifti``): a label image of the image's size whose values are the label
  values of the label map's objects as predicted (0 = background), as the dataset's own
  ``labels/<label map>/<image_id>.png``, so the two open side by side. One folder per label map, because
  label maps may overlap by design (the brain holds the thalamus) and reuse values. uint8 where the map's
  values fit, else uint16.
* ``<volume>.nii.gz`` (``nifti``, datasets prepared from volumes): the label images of one source volume put
  back at their slice positions (``rot90`` and the reorientation to RAS undone, :mod:`sam4med.volume_grid`),
  with the source file's affine and array shape, so a viewer (ITK-SNAP, 3D Slicer, napari) shows it over
  the source image. Slices not scored (not prepared, or not in the split) are 0.

Overlapping predictions of two objects of one label map: the pixel takes the object with the higher predicted
score (the decoder's predicted IoU; S1: the score of its matched mask); at equal scores, the object listed later
(higher label value) wins. ``I`` (iterative clicks) saves the masks of its last click, ``I@<clicks>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sam4med.data.dataset import CosmosDataset
from sam4med.dataset_format import label_dtype
from sam4med.evaluation.predictions import ImagePrediction, PredictionFiles
from sam4med.files import save_png, write_bytes
from sam4med.run_files import ResultsFolder
from sam4med.volume_grid import VolumeGrid, label_nifti_bytes


def label_image(prediction: ImagePrediction, label_map: str, dtype: type = np.uint8) -> np.ndarray:
    """The H x W label image of ``label_map``'s predicted objects (see the module docstring for overlaps)."""
    shape = prediction.masks.shape[1:]
    image = np.zeros(shape, dtype=dtype)
    mine = [k for k, m in enumerate(prediction.label_maps) if m == label_map]
    # painted in ascending score, the later over the earlier: the highest score wins, ties go to the later object
    for k in sorted(mine, key=lambda k: float(prediction.scores[k])):
        image[prediction.masks[k]] = prediction.values[k]
    return image


def mask_folder(folder: ResultsFolder, phase: str, strategy: str, label_map: str) -> Path:
    """``results/masks/<phase>/<strategy>/<label map>/``."""
    return folder.masks / str(phase) / strategy / label_map


def write_label_pngs(
    folder: ResultsFolder,
    dataset: CosmosDataset,
    predictions: PredictionFiles,
    *,
    phase: str,
    strategy: str,
) -> int:
    """One label PNG per image and label map of ``dataset`` scored under (``phase``, ``strategy``); returns how many.

    Images with no object to score have no predictions and get no file.
    """
    written = 0
    for record in dataset.records:
        if not predictions.has(phase, strategy, record.image_id):
            continue
        prediction = predictions.read(phase, strategy, record.image_id)
        for label_map in dataset.info.label_maps:
            image = label_image(prediction, label_map.name, label_dtype(max(label_map.objects, default=0)))
            save_png(mask_folder(folder, phase, strategy, label_map.name) / f"{record.image_id}.png", image)
            written += 1
    return written


def volume_labels(
    grid: VolumeGrid, predictions: PredictionFiles, *, phase: str, strategy: str, label_map: str, dtype: type
) -> np.ndarray | None:
    """The RAS (X x Y x Z) label volume of one label map from the kept predictions of ``grid``'s slices; None where
    none of its slices was scored.
    """
    slices = {
        index: label_image(predictions.read(phase, strategy, image_id), label_map, dtype)
        for image_id, index in grid.images.items()
        if predictions.has(phase, strategy, image_id)
    }
    return grid.stack(slices, dtype=dtype) if slices else None


def write_volume_niftis(
    folder: ResultsFolder,
    dataset: CosmosDataset,
    grids: Sequence[VolumeGrid],
    predictions: PredictionFiles,
    *,
    phase: str,
    strategy: str,
) -> int:
    """One ``<volume>.nii.gz`` per volume with a scored slice and label map, on the source grid; returns how many."""
    written = 0
    for grid in grids:
        for label_map in dataset.info.label_maps:
            dtype = label_dtype(max(label_map.objects, default=0))
            volume = volume_labels(
                grid, predictions, phase=phase, strategy=strategy, label_map=label_map.name, dtype=dtype
            )
            if volume is None:
                continue
            data = label_nifti_bytes(grid, volume)
            write_bytes(mask_folder(folder, phase, strategy, label_map.name) / f"{grid.key}.nii.gz", data)
            written += 1
    return written
