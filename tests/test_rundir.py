"""A run directory belongs to one run: locked, one configuration, whole checkpoints."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_keras import fitting
from vgg_keras.options import ClassificationConfig
from vgg_keras.rundir import RunDirectory as _RunDirectory, RunDirectoryError
from vgg_keras.fitting import checkpoint_weights, fit_resumable

RESUMABLE = ClassificationConfig.resumable()


def RunDirectory(path, config):  # noqa: N802
    """The run directory as the scripts take it: the configuration's resumable options."""
    return _RunDirectory(path, config, resumable=RESUMABLE)


CONFIG = {"arch": "A", "width": 0.25, "lr": 0.01, "epochs": 4, "data": "/data/cats"}


def _started(run_dir, config=CONFIG):
    """A run directory whose first epoch finished."""
    with RunDirectory(run_dir, config) as run:
        run.write_config({"classes": ["cat", "dog"]})
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "state.json").write_text('{"epoch": 1}')


def test_a_second_run_on_a_locked_directory_is_refused_naming_the_holder(tmp_path):
    with RunDirectory(tmp_path, CONFIG):
        with pytest.raises(RunDirectoryError, match=rf"in use by process {os.getpid()} .*"
                                                    r"another --run-dir"):
            with RunDirectory(tmp_path, CONFIG):
                pass
    with RunDirectory(tmp_path, CONFIG):  # released when the holder is done
        pass


def test_another_configuration_is_refused_naming_each_differing_flag(tmp_path):
    _started(tmp_path)
    before = (tmp_path / "config.json").read_text()
    changed = {**CONFIG, "arch": "D", "lr": 0.001, "epochs": 10}
    with pytest.raises(RunDirectoryError) as error:
        with RunDirectory(tmp_path, changed):
            pass
    message = str(error.value)
    assert "--arch D (the run has A)" in message and "--lr 0.001 (the run has 0.01)" in message
    assert "--epochs" not in message and f"delete {tmp_path}" in message
    assert (tmp_path / "config.json").read_text() == before  # nothing overwritten


def test_resumable_flags_may_change_and_are_logged(tmp_path, caplog):
    _started(tmp_path)
    with caplog.at_level("INFO", logger="vgg_keras"):
        with RunDirectory(tmp_path, {**CONFIG, "epochs": 10}) as run:
            run.write_config({"classes": ["cat", "dog"]})
    assert "Resuming with --epochs 10 (was 4)" in caplog.text
    assert json.loads((tmp_path / "config.json").read_text())["epochs"] == 10


def test_other_classes_in_the_data_are_refused(tmp_path):
    _started(tmp_path)
    with pytest.raises(RunDirectoryError, match=r"--classes \['cat', 'dog', 'fox'\]"):
        with RunDirectory(tmp_path, CONFIG) as run:
            run.write_config({"classes": ["cat", "dog", "fox"]})


def test_a_directory_without_a_finished_epoch_takes_any_configuration(tmp_path):
    with RunDirectory(tmp_path, CONFIG) as run:
        run.write_config()
    with RunDirectory(tmp_path, {**CONFIG, "arch": "D"}) as run:
        run.write_config()
    assert json.loads((tmp_path / "config.json").read_text())["arch"] == "D"


def test_an_unwritable_location_is_a_clear_error():
    with pytest.raises(RunDirectoryError, match="Cannot write to the run directory /sys/"):
        with RunDirectory("/sys/kernel/vgg_keras_run", CONFIG):
            pass


def test_the_package_logs_reach_train_log(tmp_path):
    import logging

    with RunDirectory(tmp_path, CONFIG):
        logging.getLogger("vgg_keras.data").info("split summary for the log")
    assert "split summary for the log" in (tmp_path / "train.log").read_text()


def _tiny_run(run_dir, epochs):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(2)])
    model.compile(keras.optimizers.SGD(0.1, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(True))
    x = np.random.default_rng(0).normal(size=(40, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int32")

    def train_data(start):
        def epoch(e):
            order = tf.random.experimental.stateless_shuffle(tf.range(40), seed=[e, 0])
            return tf.data.Dataset.from_tensor_slices(order).map(
                lambda i: (tf.gather(x, i), tf.gather(y, i))).batch(8)
        return tf.data.Dataset.range(start, 100).flat_map(epoch)

    fit_resumable(model, train_data, epochs=epochs, steps_per_epoch=5, run_dir=run_dir,
                  monitor="loss", mode="min", verbose=0)
    return model


def test_a_kill_between_the_weights_and_the_state_leaves_a_whole_checkpoint(tmp_path,
                                                                            monkeypatch):
    """The fault: killed after epoch 2's weights were written but before its state was, the
    run resumed epoch 2 from epoch 2's weights (15 steps instead of 10, other weights)."""
    straight = _tiny_run(tmp_path / "straight", epochs=3)

    write_state = fitting._atomic_write_text
    writes = []

    def killed_on_the_second_state(path, text):
        writes.append(path)
        if len(writes) == 2:
            raise KeyboardInterrupt("killed")  # after epoch 2's weights, before its state
        write_state(path, text)

    monkeypatch.setattr(fitting, "_atomic_write_text", killed_on_the_second_state)
    with pytest.raises(KeyboardInterrupt):
        _tiny_run(tmp_path / "killed", epochs=3)
    monkeypatch.setattr(fitting, "_atomic_write_text", write_state)
    state = json.loads((tmp_path / "killed" / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 1 and checkpoint_weights(tmp_path / "killed").name == \
        "last-e0001.weights.h5"

    resumed = _tiny_run(tmp_path / "killed", epochs=3)
    for a, b in zip(straight.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    state = json.loads((tmp_path / "killed" / "checkpoints" / "state.json").read_text())
    assert [row["epoch"] for row in state["history"]] == [1, 2, 3]
    # Only the checkpoint's own files stay.
    names = sorted(p.name for p in (tmp_path / "killed" / "checkpoints").iterdir())
    assert names == sorted({"state.json", state["last_weights"], state["best_weights"]})
