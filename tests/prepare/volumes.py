"""Small NIfTI volumes made in code for the preparation tests."""

from pathlib import Path

import nibabel as nib
import numpy as np

SPACING = (0.8, 0.9, 2.0)


def phantom(shape=(24, 28, 12), seed=0):
    """(image float32, labels int16) X x Y x Z: a ball (1), a rod (2) and a dot of 3 voxels (3)."""
    rng = np.random.default_rng(seed)
    x, y, z = np.mgrid[: shape[0], : shape[1], : shape[2]]
    labels = np.zeros(shape, dtype=np.int16)
    labels[(x - 10) ** 2 + (y - 12) ** 2 + ((z - 6) * 2) ** 2 <= 36] = 1
    labels[16:19, 4:22, 3:9] = 2
    labels[3, 3, 5:8] = 3
    image = rng.normal(100, 10, size=shape) + 300 * (labels > 0) - 500
    return image.astype(np.float32), labels


def save(path: Path, array: np.ndarray, spacing=SPACING) -> Path:
    """Write ``array`` as NIfTI with a diagonal (RAS) affine of ``spacing``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([*spacing, 1.0])), str(path))
    return path


def volume_folder(root: Path, n: int = 3, shape=(24, 28, 12)) -> Path:
    """``root/images/case<k>.nii.gz`` and ``root/labels/case<k>.nii.gz`` for k < n; returns ``root``."""
    for k in range(n):
        image, labels = phantom(shape, seed=k)
        save(root / "images" / f"case{k}.nii.gz", image)
        save(root / "labels" / f"case{k}.nii.gz", labels)
    return root


def preparer_settings(root: Path, **extra) -> dict:
    """Keyword arguments of a VolumePreparer over :func:`volume_folder`."""
    settings = {
        "name": "phantoms",
        "images": str(root / "images" / "*.nii.gz"),
        "label_maps": [
            {"name": "organs", "path": str(root / "labels" / "{name}"), "objects": {1: "Ball", 2: "Rod", 3: "Dot"}}
        ],
        "modality": "CT",
    }
    settings.update(extra)
    return settings
