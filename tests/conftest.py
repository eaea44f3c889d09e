import os
from pathlib import Path

import pytest

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

from sam4med.models.builders import build_tiny  # noqa: E402
from sam4med.prepare.synthetic import SyntheticShapes  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MRICRON = Path("/usr/share/mricron/templates/ch2.nii.gz")


@pytest.fixture(scope="session")
def tiny_model():
    return build_tiny()


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    return SyntheticShapes(n_images=8, size=(48, 64), seed=0)(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def colin27_root(tmp_path_factory) -> Path:
    if not MRICRON.is_file():
        pytest.fail("mricron-data is not installed: run 'make setup' (it installs it as root)")
    from sam4med.prepare.colin27 import Colin27AAL

    return Colin27AAL()(tmp_path_factory.mktemp("colin27"))
