"""The user's own data through the user's doors: both scripts, run as a user runs them, on every
kind of directory ``load`` reads (class folders, VOC, the two ImageNet layouts), salted with the
files real datasets have; killed with ``kill -9`` and run again; evaluated; and bad input.

A class-folder tree once crashed in the first epoch because every training test used the
embedded dataset.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import train_cls
import user_trees
from vgg_keras.fitting import checkpoint_weights

pytestmark = pytest.mark.slow   # subprocesses and training: python -m pytest -m 'not slow' skips them

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--arch", "A", "--width", "0.125", "--crop", "32", "--scale", "32:40", "--init",
        "glorot", "--optimizer", "adam", "--lr", "1e-3", "--weight-decay", "0", "--verbose", "2",
        "--quiet", "--no-report"]


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, TF_DETERMINISTIC_OPS="1", CUDA_VISIBLE_DEVICES="",
                VGG_KERAS_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1")


def start(script, args, env):
    return subprocess.Popen([sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run(script, args, env, expect=0):
    process = start(script, args, env)
    out, _ = process.communicate(timeout=600)
    assert process.returncode == expect, out[-4000:]
    return out


def kill_during_training(script, args, run_dir, env):
    """Start a run and ``kill -9`` it as soon as its first epoch is checkpointed."""
    victim = start(script, args, env)
    state = Path(run_dir) / "checkpoints" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and not state.exists() and victim.poll() is None:
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    out, _ = victim.communicate()
    assert state.exists(), out[-3000:]
    return json.loads(state.read_text())["epoch"]


def weights(run_dir):
    values = {}
    with h5py.File(checkpoint_weights(run_dir), "r") as handle:
        handle.visititems(lambda name, obj: values.__setitem__(name, obj[()])
                          if isinstance(obj, h5py.Dataset) else None)
    return values


def summary_tags(run_dir):
    """The tags TensorBoard finds in the run's pictures log, with how many steps each has."""
    import tensorflow as tf

    tags = {}
    for path in (Path(run_dir) / "logs" / "pictures").glob("events.out.tfevents.*"):
        for record in tf.data.TFRecordDataset(str(path)):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                tags[value.tag] = tags.get(value.tag, 0) + 1
    return tags


def assert_resumed_like_straight(straight_dir, killed_dir, epochs):
    a, b = weights(straight_dir), weights(killed_dir)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)
    history = json.loads((Path(killed_dir) / "checkpoints" / "state.json").read_text())["history"]
    assert [row["epoch"] for row in history] == list(range(1, epochs + 1))
    rows = (Path(killed_dir) / "history.csv").read_text().strip().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == list(range(1, epochs + 1))


def kill_resume_compare(script, args, tmp_path, env, epochs=3):
    """Train straight; train again, killed after its first checkpoint, and rerun the same
    command: the same epochs, once each, and the same weights. Returns the rerun's output."""
    straight, killed = tmp_path / f"{script}-straight", tmp_path / f"{script}-killed"
    args = [*args, "--epochs", epochs]
    run(script, [*args, "--run-dir", straight], env)
    assert kill_during_training(script, [*args, "--run-dir", killed], killed, env) < epochs
    out = run(script, [*args, "--run-dir", killed], env)
    assert "Resuming" in out
    assert "Resuming" in (killed / "train.log").read_text()
    assert_resumed_like_straight(straight, killed, epochs)
    return killed, out


def test_class_folders_train_resume_after_kill_and_evaluate(tmp_path, env):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=12)
    args = [*TINY, "--data", tree["root"], "--batch-size", 4, "--val-fraction", 0.25]
    run_dir, out = kill_resume_compare("train_cls.py", args, tmp_path, env)
    for bad in tree["bad"]:  # skipped, counted and named before training
        assert os.path.basename(bad) in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["classes"] == 3 and summary["epochs"] == 3
    config = json.loads((run_dir / "config.json").read_text())
    assert config["classes"] == ["cat", "dog", "fox"]
    # TensorBoard: augmented crops and the learning rate after each epoch of the rerun (2 and 3;
    # the killed run may have died before writing epoch 1's), the evaluation table once.
    tags = summary_tags(run_dir)
    assert tags["augmented training crops"] >= 2 and tags["learning_rate"] >= 2
    assert tags["evaluation"] == 1

    rows_path = tmp_path / "rows.json"
    out = run("train_cls.py", ["--evaluate", run_dir / "model.keras", "--data", tree["root"],
                               "--val-fraction", 0.25, "--eval-scales", 36, "--eval-methods",
                               "center", "dense", "multicrop", "--eval-output", rows_path], env)
    rows = json.loads(rows_path.read_text())
    assert [r["method"] for r in rows] == ["center", "dense", "multicrop", "dense+multicrop"]
    assert all(0 <= r["top5"] <= r["top1"] <= 100 for r in rows)


def test_class_folders_with_train_and_val_subfolders(tmp_path, env):
    tree = user_trees.class_folders(tmp_path / "split", per_class=10, split_dirs=True)
    run_dir = tmp_path / "run"
    run("train_cls.py", [*TINY, "--data", tree["root"], "--batch-size", 5, "--epochs", 2,
                         "--run-dir", run_dir], env)
    summary = json.loads((run_dir / "summary.json").read_text())
    validation = sum(tree["counts"]["validation"].values())
    splits = summary["splits"]
    # Epochs are chosen on 5% of train/, the error reported on val/; the bad files are skipped.
    assert {role: splits[role]["split"] for role in splits} == {
        "train": "train[5%:]", "selection": "train[:5%]", "report": "validation"}
    assert summary["train_images"] == splits["train"]["images"]
    assert splits["train"]["images"] + splits["selection"]["images"] == sum(
        tree["counts"]["train"].values())
    assert summary["evaluation"][0]["images"] == splits["report"]["images"] == validation


def test_model_fit_on_a_class_folder_pipeline(tmp_path, monkeypatch):
    """The notebook door: ``model.fit(train_pipeline(load(folder)))`` for two epochs."""
    import keras

    import vgg_keras
    from vgg_keras import data

    monkeypatch.setenv("VGG_KERAS_CACHE", str(tmp_path / "cache"))
    tree = user_trees.class_folders(tmp_path / "pets", per_class=8)
    train = data.load(tree["root"], "train[25%:]")
    batches = data.train_pipeline(train, scale=(32, 40), crop=32, batch_size=4, seed=0)
    model = vgg_keras.build_vgg("A", data.info(train).num_classes, input_shape=(32, 32, 3),
                                width=0.125, init="glorot")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(batches, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert all(np.isfinite(history.history["loss"]))


def _classifier(tree_root, tmp_path, env, name, extra=()):
    run_dir = tmp_path / name
    run("train_cls.py", [*TINY, "--data", tree_root, "--batch-size", 4, "--epochs", 1,
                         "--run-dir", run_dir, *extra], env)
    return run_dir / "model.keras"


LOC = ["--crop", "32", "--scale", "32:40", "--regression", "pcr", "--optimizer", "adam",
       "--lr", "1e-3", "--weight-decay", "0", "--verbose", "2", "--quiet", "--batch-size", "4",
       "--no-report"]


def test_voc_tree_classifies_and_localises_pcr_with_resume(tmp_path, env):
    tree = user_trees.voc_tree(tmp_path / "voc", per_class=8)
    classifier = _classifier(tree["root"], tmp_path, env, "cls", ["--val-fraction", 0.25])
    args = [*LOC, "--data", tree["root"], "--init-from", classifier, "--val-fraction", 0.25]
    run_dir, out = kill_resume_compare("train_loc.py", args, tmp_path, env)
    for bad in tree["bad"]:
        assert os.path.basename(bad) in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["arch"] == "A" and summary["regression"] == "pcr"
    assert summary_tags(run_dir)["validation boxes (green true, red predicted)"] >= 2
    assert 0 <= summary["protocol1_error"] <= 100 and "protocol2_top5_error" in summary

    out = run("train_loc.py", ["--evaluate", run_dir / "model.keras", "--classifier", classifier,
                               "--data", tree["root"], "--val-fraction", 0.25,
                               "--eval-scales", 36], env)
    assert "Protocol 1" in out and "Protocol 2" in out


def test_imagenet_localization_challenge_layout_through_both_scripts(tmp_path, env):
    tree = user_trees.imagenet_loc_tree(tmp_path / "kaggle", train_per_class=6, val_per_class=3)
    classifier = _classifier(tree["root"], tmp_path, env, "cls")
    config = json.loads((classifier.parent / "config.json").read_text())
    assert config["classes"] == sorted(user_trees.WNIDS)
    args = [*LOC, "--data", tree["root"], "--init-from", classifier]
    run_dir, _ = kill_resume_compare("train_loc.py", args, tmp_path, env)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["protocol1"]["images"] == len(tree["validation"])


def test_ilsvrc2012_archives_layout_through_both_scripts(tmp_path, env):
    tree = user_trees.ilsvrc2012_tree(tmp_path / "ilsvrc", train_per_class=6, val_per_class=3)
    classifier = _classifier(tree["root"], tmp_path, env, "cls")
    summary = json.loads((classifier.parent / "summary.json").read_text())
    assert summary["evaluation"][0]["images"] == len(tree["validation"])
    loc_dir = tmp_path / "loc"
    run("train_loc.py", [*LOC, "--data", tree["root"], "--init-from", classifier, "--epochs", 2,
                         "--run-dir", loc_dir], env)
    assert json.loads((loc_dir / "summary.json").read_text())["epochs"] == 2

    # Each script refuses the other task's model instead of printing a meaningless error rate.
    out = run("train_cls.py", ["--evaluate", loc_dir / "model.keras", "--data", tree["root"]],
              env, expect=2)
    assert "is a localizer, not a classifier (train_loc.py evaluates it)" in out
    out = run("train_loc.py", ["--evaluate", classifier, "--data", tree["root"]], env, expect=2)
    assert "is a classifier, not a localizer (train_cls.py evaluates it)" in out


def test_evaluate_takes_torchvision_weight_files(tmp_path, env):
    """``--evaluate vgg11.pth`` judges weights the user already has by the paper's protocols."""
    torch = pytest.importorskip("torch")
    from test_weights import TorchvisionVGG

    tree = user_trees.class_folders(tmp_path / "pets", per_class=4, salt=False)
    path = tmp_path / "vgg11_3classes.pth"
    torch.save(TorchvisionVGG("A", num_classes=3).state_dict(), path)
    rows_path = tmp_path / "rows.json"
    run("train_cls.py", ["--evaluate", path, "--data", tree["root"], "--eval-split", "train",
                         "--eval-scales", 256, "--eval-methods", "center", "--eval-output",
                         rows_path], env)
    rows = json.loads(rows_path.read_text())
    assert rows[0]["images"] == 12 and 0 <= rows[0]["top1"] <= 100


# ----------------------------------------------------------------------------------------------
# Bad input: a clear message naming the file or flag, a non-zero exit, nothing lost.


def _main(script, argv, capsys):
    code = script.main([str(a) for a in argv])
    return code, capsys.readouterr()


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(), "No image files"),
    (lambda root: user_trees.class_folders(root, classes=("cat",), per_class=3, salt=False),
     "at least two classes"),
])
def test_unusable_folders_are_refused_before_training(tmp_path, capsys, monkeypatch, make,
                                                      message):
    monkeypatch.setenv("VGG_KERAS_CACHE", str(tmp_path / "cache"))
    make(tmp_path / "data")
    code, output = _main(train_cls, [*TINY, "--data", tmp_path / "data", "--run-dir",
                                     tmp_path / "run"], capsys)
    assert code == 2 and message in output.err and str(tmp_path / "data") in output.err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_missing_paths_and_unwritable_run_directories_are_named(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VGG_KERAS_CACHE", str(tmp_path / "cache"))
    code, output = _main(train_cls, [*TINY, "--data", tmp_path / "nowhere", "--run-dir",
                                     tmp_path / "run"], capsys)
    assert code == 2 and str(tmp_path / "nowhere") in output.err

    tree = user_trees.class_folders(tmp_path / "pets", per_class=4, salt=False)
    code, output = _main(train_cls, [*TINY, "--data", tree["root"], "--run-dir",
                                     "/sys/kernel/vgg_keras_run"], capsys)
    assert code == 2 and "Cannot write to the run directory /sys/kernel/vgg_keras_run" in output.err

    for bad in ("damaged.keras", "image.keras"):
        path = tmp_path / bad
        path.write_bytes(b"PK\x03\x04 not really" if bad == "damaged.keras" else
                         (ROOT / "README.md").read_bytes())
        code, output = _main(train_cls, [*TINY, "--data", tree["root"], "--init-from", path,
                                         "--run-dir", tmp_path / "run"], capsys)
        assert code == 2 and f"{path}: not a Keras model file" in output.err
        assert "File not found" not in output.err


def test_a_run_directory_in_use_is_refused_and_its_run_goes_on(tmp_path, capsys, monkeypatch):
    from vgg_keras.rundir import RunDirectory

    monkeypatch.setenv("VGG_KERAS_CACHE", str(tmp_path / "cache"))
    tree = user_trees.class_folders(tmp_path / "pets", per_class=4, salt=False)
    with RunDirectory(tmp_path / "run", {}):  # another run holds it
        code, output = _main(train_cls, [*TINY, "--data", tree["root"], "--epochs", 1,
                                         "--run-dir", tmp_path / "run"], capsys)
    assert code == 2 and f"in use by process {os.getpid()}" in output.err
    assert not (tmp_path / "run" / "checkpoints").exists()
