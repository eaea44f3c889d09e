"""The nuclei fluorescence image bundled with the ``stardist`` package, as a COSMOS dataset.

``stardist/data/images/img2d.tif`` (512 x 512, uint16, from the 2018 Data Science Bowl) with its
instance mask ``mask2d.tif``: modality ``Microscopy``, each nucleus an instance of object ``Cell``.
The files are read with ``tifffile``; ``stardist`` itself is never imported (it needs TensorFlow), its
folder is found with ``importlib``. The image is cut into ``tiles`` sub-images so that the dataset can
be split into train/val/test (nuclei cut by a tile border become one instance in each tile).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

from sam4med.errors import DataError
from sam4med.prepare.images import ImageFolderPreparer

MODALITY = "Microscopy"


def stardist_images_dir() -> Path:
    """``stardist/data/images`` of the installed package, without importing it."""
    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("stardist is not installed: run 'pip install --no-deps stardist==0.9.2' (make does it)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
    if not (folder / "img2d.tif").is_file():
        raise DataError(f"{folder / 'img2d.tif'}: missing from the installed stardist package")
    return folder


class StardistNuclei:
    """Builds the dataset folder on first use; a complete folder is left as it is.

    Args:
        tiles: (rows, cols) sub-images of the 512 x 512 image.
        min_label_sum: keep a sub-image only if the sum of its label values exceeds this.
        min_object_area: drop nucleus pieces smaller than this many pixels (0 keeps all).
        images_dir: folder holding ``img2d.tif`` and ``mask2d.tif`` (default: the stardist package's).
    """

    def __init__(
        self,
        *,
        tiles: Sequence[int] = (2, 2),
        min_label_sum: int = 50,
        min_object_area: int = 0,
        images_dir: str | Path | None = None,
    ) -> None:
        self.tiles, self.min_label_sum, self.min_object_area = tuple(tiles), min_label_sum, min_object_area
        self.images_dir = None if images_dir is None else Path(images_dir)

    def __call__(self, root: str | Path) -> Path:
        """Prepare into ``root`` unless it is complete; returns ``root``."""
        folder = self.images_dir or stardist_images_dir()
        return ImageFolderPreparer(
            name="stardist_nuclei",
            images=str(folder / "img2d.tif"),
            label_maps=[{"name": "nuclei", "path": str(folder / "mask2d.tif"), "instances": "Cell"}],
            modality=MODALITY,
            intensity={"mode": "minmax"},
            min_label_sum=self.min_label_sum,
            min_object_area=self.min_object_area,
            tiles=self.tiles,
        )(root)
