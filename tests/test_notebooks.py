"""The notebooks are committed with the outputs of one run of their current code, and every
notebook runs top to bottom.

``python notebooks/execute.py`` records the outputs and stamps each notebook with the sha256 of
its code cells; the fast tests here check that stamp, so an edited cell whose outputs were not
recorded again fails. The slow tests execute the notebooks afresh with that script's function,
in order in one working directory, as a user running them one after another would: the
classification notebook saves the model the later ones reuse (each trains its own when it is
missing, so any notebook also runs alone). The classification notebook is also the suite's
learning test: it asserts that configuration A, trained with ``model.fit`` for 14 epochs, has
left chance on the embedded dataset.
"""

import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_execute_script():
    """notebooks/execute.py, imported by path: ``notebooks/`` is not a package."""
    spec = importlib.util.spec_from_file_location("notebooks_execute",
                                                  ROOT / "notebooks" / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute_script = _load_execute_script()
NOTEBOOKS = execute_script.NOTEBOOKS


def recorded_run_problems(notebook: nbformat.NotebookNode) -> list[str]:
    """Why the outputs in ``notebook`` are not one clean run of its current code (none: ``[]``).

    >>> recorded_run_problems(nbformat.v4.new_notebook())
    ['no stamp from notebooks/execute.py']
    """
    problems = []
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code]
    if counts != list(range(1, len(code) + 1)):
        problems.append(f"execution counts {counts}, not 1 to {len(code)} in order")
    for number, cell in enumerate(code, 1):
        for output in cell.outputs:
            if output.output_type == "error":
                problems.append(f"code cell {number} raised {output.ename}: {output.evalue}")
        shown = any("image/png" in output.get("data", {}) for output in cell.outputs)
        if "plt.show()" in cell.source and not shown:
            problems.append(f"code cell {number} shows a figure but has no PNG output")
    stamp = notebook.metadata.get(execute_script.STAMP_KEY, {}).get("source_sha256")
    if stamp is None:
        problems.append("no stamp from notebooks/execute.py")
    elif stamp != execute_script.source_sha256(notebook):
        problems.append("the code cells changed since notebooks/execute.py recorded the outputs")
    return problems


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_outputs_come_from_the_committed_code(path):
    problems = recorded_run_problems(nbformat.read(path, as_version=4))
    assert not problems, (f"{path.name}: " + "; ".join(problems) + ". Record its outputs with: "
                          f"python notebooks/execute.py notebooks/{path.name}")


def test_an_edited_cell_without_new_outputs_is_caught():
    notebook = nbformat.read(NOTEBOOKS[0], as_version=4)
    assert recorded_run_problems(notebook) == []
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    code[1].source += "\nprint('edited')"
    code[2].execution_count = None
    counts = [1, 2, None, *range(4, len(code) + 1)]
    assert recorded_run_problems(notebook) == [
        f"execution counts {counts}, not 1 to {len(code)} in order",
        "the code cells changed since notebooks/execute.py recorded the outputs"]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, tfds_dir):
    return tmp_path_factory.mktemp("notebooks")


@pytest.mark.slow   # a kernel per notebook, and training: python -m pytest -m 'not slow' skips it
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_executes(path, workdir):
    notebook = execute_script.execute(nbformat.read(path, as_version=4), workdir)
    assert recorded_run_problems(notebook) == []
