"""Every public function of ``vgg_keras`` is annotated: the package ships ``py.typed``, so a
user's type checker reads these signatures. mypy's flags cannot ask this of public functions
only (``disallow_untyped_defs`` also takes in private helpers and closures), so this reads the
source with ``ast``: a function counts as public when its name does not start with ``_`` (or
it is a special method: ``__init__``, ``__call__``...) and it sits at a module's top level or in
a public class."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vgg_keras"



def _unannotated(function: ast.FunctionDef | ast.AsyncFunctionDef, is_method: bool) -> list[str]:
    """What ``function``'s signature lacks: the names of its unannotated parameters, and
    ``return`` when it has no return annotation."""
    args = function.args
    positional = [*args.posonlyargs, *args.args]
    if is_method and positional and not any(
            isinstance(d, ast.Name) and d.id == "staticmethod" for d in function.decorator_list):
        positional = positional[1:]  # self or cls
    parameters = [*positional, *args.kwonlyargs, *filter(None, [args.vararg, args.kwarg])]
    missing = [parameter.arg for parameter in parameters if parameter.annotation is None]
    return missing + ([] if function.returns else ["return"])


def _is_public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def _public_functions(tree: ast.Module):
    """``(qualified name, node, is_method)`` of each public function in a module's tree."""
    def walk(body: list[ast.stmt], prefix: str, in_class: bool):
        for node in body:
            public = _is_public(getattr(node, "name", "_"))
            if public and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield prefix + node.name, node, in_class
            elif public and isinstance(node, ast.ClassDef):
                yield from walk(node.body, f"{prefix}{node.name}.", True)
    yield from walk(tree.body, "", False)


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE.parent).as_posix()


def test_every_public_function_is_annotated():
    problems = []
    for path in _modules():
        for name, function, is_method in _public_functions(ast.parse(path.read_text())):
            missing = _unannotated(function, is_method)
            if missing:
                problems.append(f"{_relative(path)}:{function.lineno} {name}: "
                                f"no annotation for {', '.join(missing)}")
    assert not problems, "public functions without annotations:\n" + "\n".join(problems)


def test_the_check_finds_a_missing_annotation():
    source = ("def typed(x: int) -> int: ...\n"
              "def untyped(x, *, y: int): ...\n"
              "def _private(x): ...\n"
              "class Box:\n"
              "    def __init__(self, side): ...\n"
              "    def area(self, scale) -> float: ...\n"
              "    @staticmethod\n"
              "    def make(size: int): ...\n"
              "    def _helper(self, x): ...\n"
              "class _Hidden:\n"
              "    def method(self, x): ...\n")
    found = {name: _unannotated(node, is_method)
             for name, node, is_method in _public_functions(ast.parse(source))}
    assert found == {"typed": [], "untyped": ["x", "return"], "Box.__init__": ["side", "return"],
                     "Box.area": ["scale"], "Box.make": ["return"]}
