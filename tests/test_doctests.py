"""The ``>>>`` examples in the package's docstrings run, one test per module: each docstring's
examples see a fresh copy of its module's namespace (as ``python -m doctest`` gives them) and
nothing else, so an example that uses a name it never imports or defines fails here. Examples
that need what only a user has (pretrained weights, ImageNet, a trained run) are marked
``# doctest: +SKIP`` on exactly those lines; the others run, with tiny models."""

import doctest
import importlib
import os
import pkgutil

import pytest

import vgg_keras

OPTIONS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def module_names():
    """Every module of the package, the package itself included; ``__main__`` modules are left
    out (they are commands, with no examples)."""
    names = [vgg_keras.__name__]
    for found in pkgutil.walk_packages(vgg_keras.__path__, prefix=vgg_keras.__name__ + "."):
        if found.name.rpartition(".")[2] != "__main__":
            names.append(found.name)
    return sorted(names)


@pytest.fixture(scope="module")
def embedded_dataset(tfds_dir):
    """The embedded dataset, built before the examples run: building prints TFDS's messages on
    standard output, which would become part of the first example's output."""
    from vgg_keras import data

    data.load(data.EMBEDDED_NAME, "train")
    return tfds_dir


@pytest.mark.parametrize("name", module_names())
def test_docstring_examples(name, embedded_dataset, tmp_path, monkeypatch):
    module = importlib.import_module(name)
    tests = [test for test in doctest.DocTestFinder(exclude_empty=True).find(module, name)
             if test.examples]
    if not tests:
        pytest.skip("no examples")
    # Examples that write files with relative paths ("runs/quick") write them here.
    monkeypatch.chdir(tmp_path)
    environment = dict(os.environ)   # an example may set a variable ($VGG_KERAS_CACHE)
    runner = doctest.DocTestRunner(optionflags=OPTIONS)
    report = []
    try:
        for test in tests:
            test.globs = dict(module.__dict__)   # a fresh namespace per docstring
            runner.run(test, out=report.append)
            test.globs.clear()
    finally:
        os.environ.clear()
        os.environ.update(environment)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, "".join(report)
