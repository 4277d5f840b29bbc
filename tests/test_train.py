"""train_cls.py end to end: flags, resume after kill -9, NaN handling, and learning."""

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
from vgg_keras.fitting import checkpoint_weights

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--arch", "A", "--width", "0.125", "--crop", "32", "--scale", "36:44", "--batch-size",
        "16", "--init", "glorot", "--data", "vgg_shapes/small", "--verbose", "2", "--no-report"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--arch", "F"], "unknown configuration 'F'"),
        (["--scale", "512:256"], "SMIN <= SMAX"),
        (["--scale", "big"], "integers"),
        (["--width", "0"], "must be positive"),
        (["--val-fraction", "1.5"], "between 0 and 1"),
        (["--precision", "float8"], "invalid choice"),
        (["--dropout", "1"], r"\[0, 1\)"),
        (["--epochs", "-3"], "must be positive"),
    ],
)
def test_bad_flags_are_argparse_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cls.main(argv)
    assert exit_info.value.code == 2
    import re

    assert re.search(message, capsys.readouterr().err)


def test_scale_smaller_than_crop_fails_before_training(tfds_dir, tmp_path):
    from vgg_keras.classification import train_classifier

    with pytest.raises(ValueError, match="smaller than the crop"):
        train_classifier(scale=200, crop=224, run_dir=str(tmp_path))


@pytest.mark.slow
def test_unit_scale_start_from_the_command_line(tfds_dir, tmp_path):
    run_dir = tmp_path / "unit"
    args = [*TINY, "--arch", "B", "--init", "unit-scale", "--epochs", "1", "--steps-per-epoch",
            "2", "--optimizer", "sgd", "--lr", "1e-3", "--run-dir", str(run_dir)]
    process = run_script(args, dict(os.environ, TFDS_DATA_DIR=str(tfds_dir)))
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output[-3000:]
    assert json.loads((run_dir / "config.json").read_text())["init"] == "unit-scale"
    rescaled = next(line for line in output.splitlines() if "Kernels rescaled" in line)
    assert "on 64 images: block1_conv1 /" in rescaled and "fc8 /" in rescaled


def run_script(args, env, **kwargs):
    return subprocess.Popen([sys.executable, str(ROOT / "train_cls.py"), *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kwargs)


def read_weights(path):
    values = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, obj: values.__setitem__(name, obj[()])
                          if isinstance(obj, h5py.Dataset) else None)
    return values


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_weights(tfds_dir, tmp_path):
    env = dict(os.environ, TFDS_DATA_DIR=str(tfds_dir), TF_DETERMINISTIC_OPS="1",
               CUDA_VISIBLE_DEVICES="")
    args = TINY + ["--epochs", "3", "--steps-per-epoch", "50", "--lr", "0.01"]
    straight = run_script(args + ["--run-dir", str(tmp_path / "straight")], env)
    out, _ = straight.communicate(timeout=600)
    assert straight.returncode == 0, out[-3000:]

    killed_dir = tmp_path / "killed"
    victim = run_script(args + ["--run-dir", str(killed_dir)], env)
    state = killed_dir / "checkpoints" / "state.json"
    deadline = time.time() + 400
    while time.time() < deadline and not state.exists():
        time.sleep(0.2)
    assert state.exists(), "the first epoch never finished"
    time.sleep(0.5)  # inside epoch 2 (an epoch takes seconds)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    assert json.loads(state.read_text())["epoch"] == 1

    resumed = run_script(args + ["--run-dir", str(killed_dir)], env)
    out, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, out[-3000:]
    assert "Resuming" in out or "resuming" in out.lower()

    a = read_weights(checkpoint_weights(tmp_path / "straight"))
    b = read_weights(checkpoint_weights(killed_dir))
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-6, err_msg=name)
    history = json.loads(state.read_text())["history"]
    assert [row["epoch"] for row in history] == [1, 2, 3]
    for name in ("model.keras", "summary.json", "history.csv", "history.png"):
        assert (killed_dir / name).exists(), name
    assert (killed_dir / "saved_model" / "saved_model.pb").exists()
    summary = json.loads((killed_dir / "summary.json").read_text())
    assert 0 <= summary["top1_error"] <= 100 and summary["top5_error"] <= summary["top1_error"]
    # Chosen on validation, reported on test; the headline is the paper's dense multi-scale row.
    assert {role: v["split"] for role, v in summary["splits"].items()} == {
        "train": "train", "selection": "validation", "report": "test"}
    assert summary["splits"]["report"]["images"] == summary["headline"]["images"] == 200
    assert summary["headline"] == {"method": "dense", "scales": [36, 40, 44], "flip": True,
                                   "split": "test", "images": 200}
    dense = [r for r in summary["evaluation"] if r["method"] == "dense"]
    assert [r["scales"] for r in dense] == [[36], [40], [44], [36, 40, 44]]
    assert summary["top1_error"] == dense[-1]["top1"]
    assert summary["center_q40_top1_error"] == [r for r in summary["evaluation"]
                                                if r["method"] == "center"][1]["top1"]
    assert summary["kept_weights"].startswith("best epoch")

    # Every protocol on the saved models, from the command line, printed and written as JSON:
    # the killed-and-resumed run and the straight one fused (Table 6), each alone first.
    rows_path = tmp_path / "rows.json"
    evaluation = run_script(["--evaluate", str(killed_dir / "model.keras"),
                             str(tmp_path / "straight" / "model.keras"), "--data",
                             "vgg_shapes/small", "--eval-scales", "36", "44", "--eval-methods",
                             "center", "dense", "multicrop", "--eval-output", str(rows_path)],
                            env)
    out, _ = evaluation.communicate(timeout=600)
    assert evaluation.returncode == 0, out[-3000:]
    assert "| 36,44 | dense+multicrop |" in out
    rows = json.loads(rows_path.read_text())
    protocols = [([36], "center"), ([44], "center"), ([36, 44], "center"), ([36], "dense"),
                 ([44], "dense"), ([36, 44], "dense"), ([36], "multicrop"), ([44], "multicrop"),
                 ([36, 44], "multicrop"), ([36, 44], "dense+multicrop")]
    assert [(len(r["models"]), r["scales"], r["method"]) for r in rows] == [
        (members, *protocol) for members in (1, 1, 2) for protocol in protocols]
    # The two runs ended with the same weights, so each alone and both fused score alike.
    for alone, other, fused in zip(rows[:10], rows[10:20], rows[20:]):
        assert alone["top1"] == other["top1"] == fused["top1"]
        assert 0 <= fused["top5"] <= fused["top1"] <= 100


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    """Epoch 2's data blows the loss up: the run stops, epoch 1's checkpoint stays as it was."""
    import keras
    import tensorflow as tf

    from vgg_keras.fitting import TrainingDiverged, fit_resumable

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(True))
    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def train_data(start):
        def epoch(e):
            scale = tf.where(e >= 1, np.float32(np.inf), np.float32(1.0))
            return tf.data.Dataset.from_tensor_slices((x, y)).map(lambda a, b: (a * scale, b))
        return tf.data.Dataset.range(start, 10).flat_map(lambda e: epoch(e).batch(8))

    with pytest.raises(TrainingDiverged, match=r"NaN/Inf at epoch 2, step 1.*epoch 1"):
        fit_resumable(model, train_data, epochs=3, steps_per_epoch=5, run_dir=tmp_path,
                      monitor="loss", mode="min", verbose=0)
    state = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 1 and len(state["history"]) == 1
    saved = read_weights(checkpoint_weights(tmp_path))
    kernel = [v for k, v in saved.items() if k.endswith("vars/0") and "dense" in k][0]
    assert np.all(np.isfinite(kernel)) and np.abs(kernel).max() > 0


@pytest.mark.slow
def test_diverging_run_from_the_command_line_saves_nothing(tfds_dir, tmp_path):
    env = dict(os.environ, TFDS_DATA_DIR=str(tfds_dir))
    run_dir = tmp_path / "nan"
    blowup = run_script(TINY + ["--epochs", "2", "--steps-per-epoch", "4", "--lr", "1e12",
                                "--run-dir", str(run_dir)], env)
    out, _ = blowup.communicate(timeout=600)
    assert blowup.returncode != 0
    assert "NaN/Inf at epoch 1" in out and "No epoch finished" in out
    assert checkpoint_weights(run_dir) is None


TWO_DEVICES = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, sys.argv[1])
import train_cls
sys.exit(train_cls.main(sys.argv[2:]))
"""


# Center-crop evaluation only: dense evaluation compiles once per image size on JAX.
PARALLEL_ARGS = TINY + ["--epochs", "2", "--steps-per-epoch", "6", "--dropout", "0", "--no-flip",
                        "--no-color-shift", "--lr", "0.02", "--weight-decay", "0",
                        "--eval-methods", "center"]


def _train_each_mode(command, env, tmp_path, extra=()):
    """Train with ``--distribute none`` and ``mirrored``; return their final weights and the
    mirrored run's output."""
    runs = {}
    for mode in ("none", "mirrored"):
        run_dir = tmp_path / mode
        process = subprocess.run([*command, *PARALLEL_ARGS, *extra, "--distribute", mode,
                                  "--run-dir", str(run_dir)],
                                 env=env, capture_output=True, text=True, timeout=600)
        assert process.returncode == 0, process.stdout[-2000:] + process.stderr[-3000:]
        runs[mode] = read_weights(checkpoint_weights(run_dir))
    return runs, process.stdout


def _assert_same_kernels(runs, count):
    one = runs["none"]
    kernels = [name for name in one if name.endswith("vars/0") and not name.startswith("optimizer")]
    assert len(kernels) == count
    for name in kernels:
        np.testing.assert_allclose(runs["mirrored"][name], one[name], rtol=1e-4, atol=1e-5,
                                   err_msg=name)


@pytest.mark.slow
def test_two_replicas_train_like_one_device(tfds_dir, tmp_path):
    """Synchronous data parallelism gives the same result as one device (the paper's claim)."""
    env = dict(os.environ, TFDS_DATA_DIR=str(tfds_dir), TF_DETERMINISTIC_OPS="1")
    runs, output = _train_each_mode([sys.executable, "-c", TWO_DEVICES, str(ROOT)], env, tmp_path)
    assert "2 replica(s)" in output
    _assert_same_kernels(runs, 12)  # the normalisation mean, 8 conv and 3 FC layers of A

    # Several workers (TF_CONFIG) are refused up front with the reason, not mid-epoch.
    cluster = {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}
    worker_env = dict(env, TF_CONFIG=json.dumps({"cluster": cluster,
                                                 "task": {"type": "worker", "index": 0}}))
    refused = subprocess.run([sys.executable, str(ROOT / "train_cls.py"), *PARALLEL_ARGS,
                              "--run-dir", str(tmp_path / "multiworker")],
                             env=worker_env, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "keras-team/keras#20585" in refused.stderr
    assert not (tmp_path / "multiworker" / "checkpoints").exists()


@pytest.mark.slow
def test_jax_data_parallel_trains_like_one_device(tfds_dir, tmp_path):
    """keras.distribution.DataParallel over two (forced host) JAX devices == one device, with
    the crops resampled in the training step from the windows the host hands over."""
    env = dict(os.environ, TFDS_DATA_DIR=str(tfds_dir), KERAS_BACKEND="jax",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    command = [sys.executable, str(ROOT / "train_cls.py")]

    # Two threads per forced device, or the steps' all-reduces can deadlock (a 2-core CI
    # machine hung here for 600 s): refused up front, with the remedy.
    starved = subprocess.run([*command, *PARALLEL_ARGS, "--distribute", "mirrored",
                              "--run-dir", str(tmp_path / "starved")],
                             env=dict(env, NPROC="3"), capture_output=True, text=True, timeout=300)
    assert starved.returncode == 2 and "NPROC=4" in starved.stderr, starved.stderr[-2000:]
    assert "Traceback" not in starved.stderr
    assert not (tmp_path / "starved" / "checkpoints").exists()

    runs, output = _train_each_mode(command, dict(env, NPROC="4"), tmp_path,
                                    extra=["--resample-on", "device"])
    assert "DataParallel over 2 devices" in output
    assert "resampled on the device" in output
    _assert_same_kernels(runs, 12)  # measured: max difference 7e-8 after 12 steps


def test_schedule_divides_by_ten_on_plateau_at_most_three_times_and_holds_at_chance(tmp_path):
    import keras

    from vgg_keras.fitting import ResumableTraining

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), "mse")
    keeper = ResumableTraining(tmp_path, patience=2, max_drops=3, hold_below=0.2)
    keeper.set_model(model)
    rates = []
    # At chance (0.1) for 4 epochs: no drop. Then 0.5, then a long plateau.
    for epoch, accuracy in enumerate([0.1, 0.12, 0.1, 0.11, 0.5] + [0.5] * 10):
        keeper.on_epoch_end(epoch, {"val_accuracy": accuracy, "loss": 1.0})
        rates.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
    assert rates[:6] == pytest.approx([0.01] * 6)
    assert rates[6] == pytest.approx(1e-3)  # two epochs without improvement after 0.5
    assert rates[8] == pytest.approx(1e-4) and rates[10] == pytest.approx(1e-5)
    assert rates[-1] == pytest.approx(1e-5)  # three drops at most
    state = json.loads((tmp_path / "checkpoints" / "state.json").read_text())
    assert state["drops"] == 3 and state["best"] == 0.5 and state["best_epoch"] == 5


def test_a_data_folder_with_or_without_its_trailing_slash_is_one_run(tmp_path):
    from vgg_keras.options import ClassificationConfig
    from vgg_keras.rundir import RunDirectory

    with_slash = ClassificationConfig(data=f"{tmp_path}/pets/", epochs=1)
    without = ClassificationConfig(data=f"{tmp_path}/pets", epochs=2)
    assert with_slash.data == without.data == f"{tmp_path}/pets"
    run_dir = tmp_path / "run"
    with RunDirectory(run_dir, with_slash.to_dict(), resumable=type(with_slash).resumable()) as d:
        d.write_config()
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "state.json").write_text("{}")
    with RunDirectory(run_dir, without.to_dict(), resumable=type(without).resumable()):
        pass   # resumes: only --epochs differs


def test_help_marks_exactly_the_resumable_flags():
    """One list of what may change on resume: the configuration's, shown by --help."""
    from vgg_keras.options import ClassificationConfig, LocalizationConfig, build_parser

    for config in (ClassificationConfig, LocalizationConfig):
        parser = build_parser(config, "")
        marked = {action.dest for action in parser._actions
                  if action.help and action.help.endswith("(may change when a run resumes)")}
        assert marked == config.resumable() & {a.dest for a in parser._actions}
        assert {"epochs", "eval_methods" if config is ClassificationConfig else "merge"} <= marked
        assert not marked & {"arch", "lr", "width", "data", "batch_size", "finetune"}


def test_to_dense_takes_a_path(tmp_path):
    from vgg_keras import build_vgg, to_dense

    build_vgg("A", 3, input_shape=(32, 32, 3), width=0.125).save(tmp_path / "a.keras")
    assert to_dense(tmp_path / "a.keras").output_shape == (None, None, None, 3)
