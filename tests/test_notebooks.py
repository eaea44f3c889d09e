"""Every notebook runs top to bottom in a Jupyter kernel (nbclient), on its own tiny run and on a given one."""

import re

import nbformat
from nbclient import NotebookClient

from tests.conftest import REPO
from tests.helpers import HANG_TIMEOUT_S

NOTEBOOKS = REPO / "notebooks"


def execute(name, results=None):
    """Run a notebook (``results`` set in its parameters cell); returns the executed notebook.

    nbclient raises ``CellExecutionError`` on the first cell that fails.
    """
    path = NOTEBOOKS / name
    notebook = nbformat.read(path, as_version=4)
    if results is not None:
        cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
        cell.source += f"\nresults = {str(results)!r}"
    NotebookClient(
        notebook, kernel_name="python3", timeout=HANG_TIMEOUT_S, resources={"metadata": {"path": NOTEBOOKS}}
    ).execute()
    return notebook


def outputs(notebook, output_type):
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == output_type]


def images(notebook):
    return [o for o in outputs(notebook, "display_data") if "image/png" in o.get("data", {})]


def printed(notebook, stream="stdout"):
    return "".join(o.get("text", "") for o in outputs(notebook, "stream") if o.get("name") == stream)


def test_notebooks_are_committed_without_outputs():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01_zero_shot_strategies.ipynb", "02_finetuning_comparison.ipynb"]
    for name in names:
        for cell in nbformat.read(NOTEBOOKS / name, as_version=4).cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, name


def test_notebooks_run_on_their_own_run_and_on_a_given_one():
    finetuning = execute("02_finetuning_comparison.ipynb")  # its own train.py experiment=quick run
    assert len(images(finetuning)) >= 2 and "Warning" not in printed(finetuning, "stderr")
    results = re.match(r"(\S+/results) \d+ rows", printed(finetuning)).group(1)

    given = execute("01_zero_shot_strategies.ipynb", results=results)  # the run above, both phases
    overlays = len(list((REPO / results / "overlays").glob("*.png")))
    assert overlays > 0 and len(images(given)) == 3 + overlays
    assert "Warning" not in printed(given, "stderr")

    own = execute("01_zero_shot_strategies.ipynb")  # its own zero-shot evaluate.py run
    assert len(images(own)) >= 3 and "Warning" not in printed(own, "stderr")
