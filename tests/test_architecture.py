"""The package's layers only point down: every module imports on its own, in a fresh
interpreter, and no two modules import each other, directly or round a loop, counting imports
inside functions (an import moved into a function to dodge a cycle is still a cycle)."""

import ast
import concurrent.futures
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vgg_keras"


def modules():
    """``{module name: path}`` of every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def imported_modules(name, path, known):
    """The package's modules that ``name`` imports anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:  # `from pkg import module` imports that module
                submodule = f"{module}.{alias.name}"
                targets.add(submodule if submodule in known else module)
    return {t for t in targets if t in known and t != name}


def cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles_counting_imports_inside_functions():
    known = modules()
    graph = {name: imported_modules(name, path, known) for name, path in known.items()}
    # A package's own __init__ importing its modules is how packages work; a module importing
    # the package that contains it (``from vgg_keras import x``) would close a loop.
    for name in graph:
        graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
    assert cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle(tmp_path):
    """The check above can fail: a loop through a function-level import is found."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "one.py").write_text("from .two import g\n")
    (package / "two.py").write_text("def g():\n    from .one import f\n")
    known = {"pkg.one": package / "one.py", "pkg.two": package / "two.py"}
    looped = {n: imported_modules(n, p, known) for n, p in known.items()}
    assert cycles(looped) == [["pkg.one", "pkg.two"]]


def _import_alone(name):
    """Import ``name`` first in a fresh interpreter: ``(name, exit code, stderr, the package's
    modules it brought in)``."""
    code = f"import sys, {name}; print(' '.join(m for m in sys.modules if m.startswith('vgg_keras')))"
    process = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                             text=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return name, process.returncode, process.stderr[-2000:], set(process.stdout.split())


@pytest.mark.slow
def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    """Each module, imported first in a fresh interpreter, imports. Importing a module runs its
    packages' ``__init__`` first, so the modules a package brings in when imported alone are
    covered, in the only order they can have, by importing that package alone; every other
    module gets an interpreter of its own."""
    known = [n for n in modules() if not n.endswith("__main__")]
    packages = [n for n in known if modules()[n].name == "__init__.py"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = {r[0]: r for r in pool.map(_import_alone, packages)}
        brought_in = {name: r[3] for name, r in results.items()}

        def covered(name):
            parent = name.rpartition(".")[0]
            return name in packages or (parent in brought_in and name in brought_in[parent])

        alone = [n for n in known if not covered(n)]
        results.update({r[0]: r for r in pool.map(_import_alone, alone)})
    assert {"vgg_keras.cli", "vgg_keras.run", "vgg_keras.localization.training"} <= set(alone)
    assert [(name, err) for name, code, err, _ in results.values() if code] == []


def test_keras_internals_are_read_in_one_module_that_names_the_version_when_they_move(
        monkeypatch):
    """Private Keras attributes (``layer._x``) are read only in vgg_keras/_keras_compat.py, and
    its check fails loudly, naming the Keras version, when one of them moves."""
    import re

    import keras

    from vgg_keras import _keras_compat

    private = re.compile(r"\.(_inbound_nodes|_seed_generators|_layers|_outbound_nodes)\b")
    readers = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "vgg_keras").rglob("*.py")
                     if private.search(path.read_text()))
    assert readers == ["vgg_keras/_keras_compat.py"]
    _keras_compat.check()
    monkeypatch.setattr(_keras_compat, "seed_generators", lambda layer: [])
    with pytest.raises(RuntimeError, match=rf"Keras {re.escape(keras.__version__)} has moved "
                                            r"Layer\._seed_generators"):
        _keras_compat.check()
