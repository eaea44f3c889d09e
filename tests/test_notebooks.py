"""The notebooks' code cells run against a real (tiny) run's results."""

import json

import matplotlib
import pytest

from sam4med.jobs.train import fine_tune
from tests.conftest import REPO
from tests.helpers import compose_config

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb")
    fine_tune(
        compose_config("train", tmp, ["experiment=quick", "trainer.enable_progress_bar=false", "trainer.max_epochs=1"])
    )
    return tmp / "run" / "results"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(notebook, results_dir, monkeypatch):
    matplotlib.use("Agg")
    monkeypatch.setenv("SAM4MED_RESULTS", str(results_dir))
    monkeypatch.chdir(REPO / "notebooks")
    cells = json.loads(notebook.read_text())["cells"]
    namespace: dict = {}
    for cell in cells:
        if cell["cell_type"] == "code":
            exec(compile("".join(cell["source"]), f"{notebook.name}", "exec"), namespace)
    assert "frame" in namespace and len(namespace["frame"]) > 0
