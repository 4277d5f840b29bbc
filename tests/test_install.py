"""After ``pip install`` of the wheel, training needs no clone: ``vgg-train-cls``,
``vgg-train-loc`` and ``python -m vgg_keras.train_cls`` are the scripts' commands."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import user_trees

pytestmark = pytest.mark.slow   # subprocesses and training: python -m pytest -m 'not slow' skips them

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from this tree, installed (without its dependencies, which this
    environment has) into a folder of its own that comes first on the path."""
    wheels, target = tmp_path_factory.mktemp("wheels"), tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels), str(ROOT)], check=True, capture_output=True)
    wheel = next(wheels.glob("vgg_keras-*.whl"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    return wheel, target


def test_the_wheel_carries_the_package_its_types_and_its_commands(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(next(n for n in names if n.endswith("entry_points.txt")))
    assert {"vgg_keras/py.typed", "vgg_keras/cli.py", "vgg_keras/localization/training.py",
            "vgg_keras/data/embedded.py"} <= set(names)
    assert b"vgg-train-cls = vgg_keras.cli:train_cls" in entry_points
    assert b"vgg-train-loc = vgg_keras.cli:train_loc" in entry_points


def test_installed_commands_train_from_outside_the_clone(installed, tmp_path):
    _, target = installed
    env = dict(os.environ, PYTHONPATH=str(target), VGG_KERAS_CACHE=str(tmp_path / "cache"))
    tree = user_trees.class_folders(tmp_path / "pets", per_class=6, salt=False)
    args = ["--data", tree["root"], "--arch", "A", "--width", "0.125", "--crop", "32",
            "--scale", "32:40", "--batch-size", "4", "--epochs", "1", "--init", "glorot",
            "--val-fraction", "0.25", "--quiet", "--verbose", "2"]
    where = subprocess.run([sys.executable, "-c", "import vgg_keras; print(vgg_keras.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(target))  # the installed copy, not the clone
    command = [str(target / "bin" / "vgg-train-cls"), *args, "--run-dir", str(tmp_path / "cls")]
    done = subprocess.run([sys.executable, *command], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert json.loads((tmp_path / "cls" / "summary.json").read_text())["epochs"] == 1

    helped = subprocess.run([sys.executable, "-m", "vgg_keras.train_loc", "--help"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert helped.returncode == 0 and "--regression {scr,pcr}" in helped.stdout
    assert "python -m vgg_keras.train_loc" in helped.stdout
