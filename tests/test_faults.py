"""Faults a user meets, each through train_cls.py as a subprocess: a folder that is not a run
directory, a checkpoint that lost its state file or is damaged, and files the walk must not
read (a FIFO, a directory link loop, a name that is not UTF-8). Each ends in a clear message
naming the file, or in a run that goes on; no file is lost and nothing waits for ever."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import user_trees

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--arch", "A", "--width", "0.125", "--crop", "32", "--scale", "32:40", "--init",
        "glorot", "--optimizer", "adam", "--weight-decay", "0", "--batch-size", "8",
        "--steps-per-epoch", "2", "--eval-methods", "center", "--verbose", "2", "--quiet",
        "--no-report", "--val-fraction", "0.2"]

pytestmark = pytest.mark.slow


def run(args, tmp_path, expect, timeout=300, file_size_limit=None):
    env = dict(os.environ, VGG_KERAS_CACHE=str(tmp_path / "cache"), PYTHONUNBUFFERED="1",
               TF_CPP_MIN_LOG_LEVEL="3")

    def limit():   # a file-size limit fails a write as a disk another process filled does
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    done = subprocess.run([sys.executable, str(ROOT / "train_cls.py"), *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit if file_size_limit else None)
    output = done.stdout + done.stderr
    assert done.returncode == expect, output[-4000:]
    assert "Traceback" not in output, output[-4000:]
    return output


def snapshot(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name not in ("run.lock", "train.log")}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    user_trees.class_folders(root, per_class=10, size=(40, 48), salt=False)
    return root


@pytest.fixture(scope="module")
def finished(data, tmp_path_factory):
    """A finished one-epoch run: its directory and its flags."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    args = TINY + ["--data", data, "--epochs", "1", "--run-dir", run_dir]
    run(args, run_dir.parent, expect=0)
    return run_dir, args


def copy_run(finished, tmp_path):
    run_dir, args = finished
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    return copy, [str(copy) if a == run_dir else a for a in args]


def test_a_folder_that_is_not_a_run_is_refused_untouched(data, tmp_path):
    foreign = tmp_path / "mine"
    (foreign / "checkpoints").mkdir(parents=True)
    (foreign / "checkpoints" / "precious.weights.h5").write_bytes(b"my weights")
    (foreign / "history.csv").write_text("epoch,loss\n1,0.5\n")
    before = snapshot(foreign)
    out = run(TINY + ["--data", data, "--epochs", "1", "--run-dir", foreign], tmp_path, 2)
    assert "not a run directory" in out and "checkpoints, history.csv" in out
    assert snapshot(foreign) == before


def test_a_lost_state_file_is_guarded_and_refused_naming_it(finished, tmp_path):
    run_dir, args = copy_run(finished, tmp_path)
    (run_dir / "checkpoints" / "state.json").unlink()
    before = snapshot(run_dir)
    other = run(args + ["--lr", "1e-3", "--epochs", "2"], tmp_path, 2)
    assert "--lr 0.001" in other and "another configuration" in other
    same = run(args + ["--epochs", "2"], tmp_path, 2)
    assert "state.json" in same and "missing, but last-e0001.weights.h5 is there" in same
    assert snapshot(run_dir) == before     # nothing trained, deleted or overwritten


def test_damaged_checkpoints_are_named(finished, tmp_path):
    run_dir, args = copy_run(finished, tmp_path)
    state_path = run_dir / "checkpoints" / "state.json"
    state = json.loads(state_path.read_text())
    weights = run_dir / "checkpoints" / state["last_weights"]
    cases = [
        (lambda: state_path.write_text('{"epoch": 1, garbage'), "state.json", "Expecting"),
        (lambda: state_path.write_text('{"epoch": 2}'), "state.json", "lacks history"),
        (lambda: state_path.write_text(json.dumps({**state, "last_weights": "last-e0009.weights.h5"})),
         "last-e0009.weights.h5", "missing, though state.json names it"),
        (lambda: weights.write_bytes(weights.read_bytes()[:2000]), weights.name, "damaged"),
    ]
    good_state, good_weights = state_path.read_text(), weights.read_bytes()
    for damage, named, reason in cases:
        state_path.write_text(good_state)
        weights.write_bytes(good_weights)
        damage()
        out = run(args + ["--epochs", "2"], tmp_path, 2)
        assert named in out and reason in out and "cannot resume" in out


def test_resuming_keeps_foreign_files_in_the_checkpoint_folder(finished, tmp_path):
    run_dir, args = copy_run(finished, tmp_path)
    precious = run_dir / "checkpoints" / "precious.weights.h5"
    precious.write_bytes(b"my weights")
    run(args + ["--epochs", "2"], tmp_path, 0)
    assert precious.read_bytes() == b"my weights"
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert "last-e0002.weights.h5" in names and "last-e0001.weights.h5" not in names


def test_fifos_link_loops_and_undecodable_names_are_skipped_and_named(tmp_path):
    root = tmp_path / "pets"
    user_trees.class_folders(root, per_class=10, size=(40, 48), salt=False)
    os.mkfifo(root / "cat" / "fifo.jpg")
    os.symlink("..", root / "cat" / "loopdir")
    shutil.copy(next((root / "dog").glob("*.jpg")), os.fsencode(root / "dog") + b"/caf\xe9.jpg")
    # Without the fixes this hangs on the FIFO: the alarm turns a hang into a failure.
    signal.alarm(240)
    try:
        out = run(TINY + ["--data", root, "--epochs", "1", "--run-dir", tmp_path / "run"],
                  tmp_path, 0, timeout=230)
    finally:
        signal.alarm(0)
    assert "skipped 1 file(s) that are not regular files" in out and "fifo.jpg" in out
    assert "skipped 1 directory link(s) back to a folder already listed" in out
    assert "skipped 1 file(s) whose name is not valid UTF-8" in out and "caf\\xe9" in out
    # 3 classes x 10 images, each listed once (the loop would have listed them again).
    splits = json.loads((tmp_path / "run" / "summary.json").read_text())["splits"]
    assert sum(split["images"] for split in splits.values()) == 30


@pytest.mark.parametrize("short", [1_000, 50_000])   # in the closing metadata, in the data
def test_a_write_that_fails_inside_hdf5_ends_cleanly_and_the_rerun_trains(
        finished, data, tmp_path, short):
    # Room on the disk when the checkpoint starts, none midway (another process filled it):
    # HDF5 keeps the half-written file, and a normal exit crashed in its cleanup.
    run_dir = tmp_path / "run"
    size = max(path.stat().st_size for path in (finished[0] / "checkpoints").iterdir())
    args = TINY + ["--data", data, "--epochs", "1", "--run-dir", run_dir]
    out = run(args, tmp_path, 2, file_size_limit=size - short)
    assert "Cannot write" in out and "File too large" in out and "resume" in out
    assert "Segmentation" not in out and "Exception ignored" not in out and "h5py" not in out
    assert not list((run_dir / "checkpoints").glob("*.tmp.*"))
    run(args, tmp_path, 0)
    assert json.loads((run_dir / "checkpoints" / "state.json").read_text())["epoch"] == 1


def test_a_full_disk_ends_with_the_error_and_the_rerun_resumes(finished, data, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    # 10 MB: the first epoch's two weight files fit (about 1.8 and 5.4 MB), the second's do not.
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=10m", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        args = TINY + ["--data", data, "--epochs", "3", "--run-dir", disk / "run"]
        out = run(args, tmp_path, 2)
        assert "No space left on device" in out and "run the same command to resume" in out
        assert "Segmentation" not in out and "Exception ignored" not in out
        state = json.loads((disk / "run" / "checkpoints" / "state.json").read_text())
        history = (disk / "run" / "history.csv").read_text().strip().splitlines()
        assert state["epoch"] == 1 and len(history) == 1 + state["epoch"]
        subprocess.run(["mount", "-o", "remount,size=60m", str(disk)], check=True)
        out = run(args, tmp_path, 0)
        assert "Resuming" in out and "after epoch 1" in out
        state = json.loads((disk / "run" / "checkpoints" / "state.json").read_text())
        assert state["epoch"] == 3
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
