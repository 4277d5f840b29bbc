"""Every notebook runs top to bottom (no committed outputs).

They run in order in one working directory, as a user running them one after another would:
the classification notebook saves the model the later ones reuse (each trains its own when it
is missing, so any notebook also runs alone). The classification notebook is also the suite's
learning test: it asserts that configuration A, trained with ``model.fit`` for 14 epochs, has
left chance on the embedded dataset.
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.slow   # subprocesses and training: python -m pytest -m 'not slow' skips them

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tfds_dir):
    return tmp_path_factory.mktemp("notebooks")


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, workdir):
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), \
        "commit notebooks without outputs"
    NotebookClient(notebook, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
