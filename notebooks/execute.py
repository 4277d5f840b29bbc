"""Execute the notebooks top to bottom and write their outputs back into them.

    python notebooks/execute.py                                  # all four, in order
    python notebooks/execute.py notebooks/03_localization.ipynb  # one (it trains what it needs)

Each notebook runs in a fresh ``python3`` kernel. The notebooks of one call share one temporary
working directory, as a user running them one after another would (03 and 04 reuse the model 02
saves there), so nothing they write lands in the repository. A notebook is written back only
when every cell ran without an error, stamped with ``metadata["vgg_keras"]``: the sha256 of its
code cells' sources and the Keras version and backend its kernel used. tests/test_notebooks.py
fails when a code cell no longer matches that stamp.
"""

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOK_DIR = Path(__file__).resolve().parent
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
STAMP_KEY = "vgg_keras"
CELL_TIMEOUT_S = 900          # the longest cell trains a small VGG for 14 epochs on a CPU

# Run after the notebook's own cells and then removed: the versions the kernel really imported.
_VERSION_PROBE = ("import json, keras\n"
                  "print(json.dumps({'keras': keras.__version__, "
                  "'backend': keras.backend.backend()}))")


def source_sha256(notebook: nbformat.NotebookNode) -> str:
    """The sha256 of a notebook's code cells' sources, in order (markdown cells do not count).

    >>> cell = nbformat.v4.new_code_cell
    >>> notebook = nbformat.v4.new_notebook(cells=[cell("x = 1"), cell("print(x)")])
    >>> source_sha256(notebook) == hashlib.sha256(b'["x = 1", "print(x)"]').hexdigest()
    True
    """
    sources = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(sources).encode("utf-8")).hexdigest()


def execute(notebook: nbformat.NotebookNode, workdir: str | Path) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` in a fresh kernel in ``workdir``, in place, and stamp it.

    Raises ``nbclient.exceptions.CellExecutionError`` at the first cell that fails.

    >>> notebook = nbformat.read("notebooks/01_vgg_family.ipynb", as_version=4)  # doctest: +SKIP
    >>> execute(notebook, tempfile.mkdtemp()).metadata["vgg_keras"]["backend"]  # doctest: +SKIP
    'tensorflow'
    """
    probe = nbformat.v4.new_code_cell(_VERSION_PROBE)
    notebook.cells.append(probe)
    try:
        NotebookClient(
            notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
            resources={"metadata": {"path": str(workdir)}},
            # No per-cell timestamps, which would change with every run.
            record_timing=False,
            # One output per cell for consecutive prints, not one per print call.
            coalesce_streams=True,
            # TensorFlow's C++ runtime logs (time-stamped, with process ids) go to the terminal,
            # not into the outputs; Python's stdout, stderr and warnings are recorded as usual.
            extra_arguments=["--IPKernelApp.capture_fd_output=False"],
        ).execute()
    finally:
        notebook.cells.pop()
    printed = "".join(output.get("text", "") for output in probe.outputs
                      if output.output_type == "stream" and output.name == "stdout")
    versions = json.loads(printed.strip().splitlines()[-1])
    notebook.metadata[STAMP_KEY] = {"source_sha256": source_sha256(notebook), **versions}
    return notebook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Execute notebooks and write their outputs back into the .ipynb files.")
    parser.add_argument("notebooks", nargs="*", type=Path, metavar="NOTEBOOK",
                        help="notebooks to execute (default: all of notebooks/, in order)")
    args = parser.parse_args(argv)
    # In name order whatever the order given: 02 saves the model that 03 and 04 reuse.
    paths = sorted(set(args.notebooks or NOTEBOOKS), key=lambda path: path.name)
    with tempfile.TemporaryDirectory(prefix="vgg_keras_notebooks_") as workdir:
        for path in paths:
            print(f"executing {path} ...", flush=True)
            notebook = nbformat.read(path, as_version=4)
            try:
                execute(notebook, workdir)
            except CellExecutionError as error:
                print(f"{path} failed; left unchanged:\n{error}", file=sys.stderr)
                return 1
            nbformat.write(notebook, path)
            print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
