"""Saved models come back identical: .keras with safe_mode, SavedModel, and across backends."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import keras

import vgg_keras


def tiny(arch):
    return vgg_keras.build_vgg(arch, 5, input_shape=(48, 48, 3), width=0.125, init="glorot")


def batch(seed=0, size=48):
    return np.random.default_rng(seed).uniform(0, 255, (2, size, size, 3)).astype("float32")


@pytest.mark.parametrize("arch", ["A-LRN", "C"])
def test_keras_file_round_trips_with_safe_mode(tmp_path, arch):
    model = tiny(arch)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    np.testing.assert_array_equal(loaded(batch()), model(batch()))


def test_dense_model_round_trips(tmp_path):
    dense = vgg_keras.to_dense(tiny("A"))
    dense.save(tmp_path / "dense.keras")
    loaded = keras.saving.load_model(tmp_path / "dense.keras", safe_mode=True)
    x = batch(size=80)
    np.testing.assert_array_equal(loaded(x), dense(x))
    with pytest.raises(ValueError, match="at least 48x48"):
        loaded(batch(size=40))


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="SavedModel needs TF")
def test_savedmodel_export_serves_the_same_outputs(tmp_path):
    import tensorflow as tf

    model = tiny("A-LRN")
    model.export(str(tmp_path / "saved"))
    served = tf.saved_model.load(str(tmp_path / "saved"))
    x = batch(3)
    np.testing.assert_allclose(served.serve(x).numpy(), model(x), atol=1e-6)


CROSS_BACKEND = textwrap.dedent(
    """
    import sys, numpy as np, keras, vgg_keras
    assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
    from vgg_keras.layers import LocalResponseNormalization
    path, x_path, expected_path = sys.argv[2:5]
    x = np.load(x_path)
    model = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), np.load(expected_path),
                               rtol=1e-4, atol=1e-5)
    fresh = vgg_keras.build_vgg("A-LRN", 5, input_shape=(48, 48, 3), width=0.125)
    assert fresh.count_params() == model.count_params()
    dense = vgg_keras.to_dense(model)
    tall = np.concatenate([x, x], axis=1)
    assert tuple(dense(tall).shape) == (2, 3, 1, 5), dense(tall).shape
    score_map = keras.ops.convert_to_numpy(dense(x))
    np.testing.assert_allclose(score_map[:, 0, 0], np.load(expected_path), rtol=1e-4, atol=1e-5)
    print("ok", keras.backend.backend())
    """
)


def _backend_available(name):
    module = {"jax": "jax", "torch": "torch"}[name]
    import importlib.util

    return importlib.util.find_spec(module) is not None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_model_saved_here_runs_identically_on_other_backends(tmp_path, backend):
    if not _backend_available(backend):
        pytest.skip(f"{backend} is not installed")
    model = tiny("A-LRN")
    x = batch(4)
    model.save(tmp_path / "model.keras")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "expected.npy", keras.ops.convert_to_numpy(model(x)))
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, "-c", CROSS_BACKEND, backend, str(tmp_path / "model.keras"),
         str(tmp_path / "x.npy"), str(tmp_path / "expected.npy")],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ok {backend}" in result.stdout


@pytest.mark.parametrize("regression", ["pcr", "scr"])
def test_localizers_load_with_safe_mode_and_say_what_they_are(tmp_path, regression):
    from vgg_keras.heads import BoxRegression, regression_of

    classifier = tiny("A")
    localizer = vgg_keras.build_localizer(classifier, regression=regression)
    localizer.save(tmp_path / "loc.keras")
    loaded = vgg_keras.models.load_vgg(tmp_path / "loc.keras", kind="localizer")
    assert isinstance(loaded.get_layer("fc8_box"), BoxRegression)
    assert regression_of(loaded) == regression_of(localizer) == (
        regression, 5 if regression == "pcr" else None)
    np.testing.assert_array_equal(loaded(batch()), localizer(batch()))


@pytest.mark.parametrize("units,expected", [(20, ("pcr", 5)), (4, ("scr", None))])
def test_localizers_saved_before_the_box_head_still_load(tmp_path, units, expected):
    """Files saved before BoxRegression have a plain Dense fc8_box: what they predict is read
    from the width of the output, as it always was."""
    from vgg_keras.heads import regression_of
    from vgg_keras.localization import regression_of as exported

    classifier = tiny("A")
    box = keras.layers.Dense(units, name="fc8_box")(classifier.get_layer("fc8").input)
    old = keras.Model(classifier.input, box, name="old_loc")
    old.save(tmp_path / "old.keras")
    loaded = vgg_keras.models.load_vgg(tmp_path / "old.keras", kind="localizer")
    assert type(loaded.get_layer("fc8_box")) is keras.layers.Dense
    assert regression_of(loaded) == exported(loaded) == expected
    if expected[0] == "pcr":
        with pytest.raises(ValueError, match="boxes for 5 classes but the data"):
            regression_of(loaded, num_classes=10)
    with pytest.raises(ValueError, match="is a localizer, not a classifier"):
        vgg_keras.models.load_vgg(tmp_path / "old.keras", kind="classifier")
