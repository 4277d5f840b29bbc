"""The batched Keras augmentation layers: what they do in training and not at inference, their
statistics, seeds, serialisation, other backends, and that the in-memory scale-and-crop layer
draws scales and crop positions from the same distribution as the host pipeline."""

import io
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import vgg_keras.data as data
from vgg_keras import augment
from vgg_keras.configs import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC
from vgg_keras.data import ops


def images(batch=4, height=12, width=16, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype("float32")


def test_layers_are_the_identity_at_inference():
    x = images()
    for layer in (augment.RandomHorizontalFlip(seed=0), augment.PCAColorShift(seed=0)):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x)), x)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer(x, training=False)), x)


def test_flip_mirrors_about_half_and_boxes_follow():
    x = images(batch=400, height=4, width=6)
    boxes = np.tile(np.array([[0.1, 0.2, 0.5, 0.3]], "float32"), (400, 1))
    out = augment.RandomHorizontalFlip(seed=1)({"images": x, "boxes": boxes}, training=True)
    flipped_images = keras.ops.convert_to_numpy(out["images"])
    flipped_boxes = keras.ops.convert_to_numpy(out["boxes"])
    mirrored = np.array([np.array_equal(a, b[:, ::-1]) for a, b in zip(flipped_images, x)])
    same = np.array([np.array_equal(a, b) for a, b in zip(flipped_images, x)])
    assert (mirrored ^ same).all()
    assert 160 < mirrored.sum() < 240  # Binomial(400, 0.5): 200 +- 20 at 4 sigma
    np.testing.assert_allclose(flipped_boxes[mirrored], [[0.1, 0.7, 0.5, 0.8]] * mirrored.sum(),
                               atol=1e-6)
    np.testing.assert_allclose(flipped_boxes[same], boxes[same])


def test_colour_shift_matches_the_pca():
    grey = np.full((6000, 2, 2, 3), 128.0, "float32")
    out = keras.ops.convert_to_numpy(augment.PCAColorShift(seed=2)(grey, training=True))
    np.testing.assert_allclose(out.std(axis=(1, 2)), 0.0, atol=1e-4)  # one shift per image
    shifts = out[:, 0, 0] - 128.0
    eigval, eigvec = np.array(IMAGENET_PCA_EIGVAL), np.array(IMAGENET_PCA_EIGVEC)
    expected = 255.0 ** 2 * eigvec @ np.diag((0.1 * eigval) ** 2) @ eigvec.T
    covariance = np.cov(shifts.T)
    # Full covariance within sampling error of V diag((0.1 lambda)^2) V^T, scaled to 0-255.
    np.testing.assert_allclose(covariance, expected, atol=0.08 * expected[0, 0])
    np.testing.assert_allclose(np.var(shifts @ eigvec, 0), (25.5 * eigval) ** 2, rtol=0.1)


def test_same_seed_same_augmentation():
    x = images(batch=8)
    a = augment.training_augmentation(seed=5)(x, training=True)
    b = augment.training_augmentation(seed=5)(x, training=True)
    c = augment.training_augmentation(seed=6)(x, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    assert not np.array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(c))


def test_serialisation_round_trip(tmp_path):
    pipeline = augment.training_augmentation(scale=(20, 28), crop=16, seed=3)
    inputs = keras.Input((24, 32, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(pipeline(inputs)))
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = images(batch=2, height=24, width=32)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)),
                               keras.ops.convert_to_numpy(model(x)), atol=1e-4)
    for layer in pipeline.layers:
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def test_prepended_augmentation_trains_inside_fit():
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2)])
    trainer = keras.Sequential([augment.training_augmentation(seed=0), model])
    trainer.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = trainer.fit(images(8, 16, 16), np.zeros(8, "int32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def coordinate_image(height=120, width=160):
    """Channel 0 holds the column, channel 1 the row: a crop shows where it was cut from."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x, y, np.zeros_like(x)], -1).astype(np.uint8)


def recover(crops, size):
    """(shorter side S, offset y, offset x) of each crop of a coordinate image of ``size``."""
    # Away from the clamped border, channel = (offset + i + 0.5) * step - 0.5 exactly.
    step_x = (crops[:, 5, 40, 0] - crops[:, 5, 20, 0]) / 20.0
    step_y = (crops[:, 40, 5, 1] - crops[:, 20, 5, 1]) / 20.0
    x0 = (crops[:, 5, 20, 0] + 0.5) / step_x - 20.5
    y0 = (crops[:, 20, 5, 1] + 0.5) / step_y - 20.5
    assert size[0] <= size[1]  # rows are the shorter side here
    return size[0] / step_y, y0, x0


def ks_statistic(a, b):
    values = np.sort(np.concatenate([a, b]))
    cdf_a = np.searchsorted(np.sort(a), values, side="right") / len(a)
    cdf_b = np.searchsorted(np.sort(b), values, side="right") / len(b)
    return np.abs(cdf_a - cdf_b).max()


def test_device_scale_crop_draws_what_the_host_pipeline_draws():
    picture = coordinate_image()
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    n = 600
    dataset = tf.data.Dataset.from_tensors(
        {"image": buffer.getvalue(), "label": 0, "boxes": tf.zeros((0, 4)), "filename": ""}
    ).repeat(n)
    host = next(iter(data.train_pipeline(dataset, scale=(72, 96), crop=64, batch_size=n,
                                         flip=False, color_shift=False, seed=0)))[0].numpy()
    layer = augment.RandomScaleCrop((72, 96), 64, seed=0)
    batch = np.repeat(picture[None].astype("float32"), 100, axis=0)
    device = np.concatenate([keras.ops.convert_to_numpy(layer(batch, training=True))
                             for _ in range(n // 100)])
    host_s, host_y, host_x = recover(host, picture.shape[:2])
    device_s, device_y, device_x = recover(device, picture.shape[:2])
    # S is an integer in [72, 96] on both paths, every value reachable.
    for s in (host_s, device_s):
        np.testing.assert_allclose(s, np.round(s), atol=0.05)
        assert s.min() > 71.9 and s.max() < 96.1 and len(np.unique(np.round(s))) >= 20
    # Two-sample Kolmogorov-Smirnov: critical value 1.95 * sqrt(2 / n) at p = 0.001.
    critical = 1.95 * np.sqrt(2.0 / n)
    assert ks_statistic(host_s, device_s) < critical
    # Crop positions as a fraction of the room the rescaled image leaves.
    for host_o, device_o, axis in ((host_y, device_y, 0), (host_x, device_x, 1)):
        room_h = np.round(np.array(picture.shape[axis]) * host_s / 120.0) - 64
        room_d = np.round(np.array(picture.shape[axis]) * device_s / 120.0) - 64
        assert (host_o > -0.05).all() and (host_o < room_h + 0.05).all()
        assert (device_o > -0.05).all() and (device_o < room_d + 0.05).all()
        assert ks_statistic(host_o / (room_h + 1), device_o / (room_d + 1)) < critical


def test_device_center_crop_equals_host_pixels():
    picture = np.random.default_rng(3).uniform(0, 255, (90, 130, 3)).astype("uint8")
    layer = augment.RandomScaleCrop((64, 96), 48)
    device = keras.ops.convert_to_numpy(layer(picture[None].astype("float32")))[0]
    whole = ops.rescale(picture, 80).numpy()  # Q = (64 + 96) / 2
    top, left = (whole.shape[0] - 48) // 2, (whole.shape[1] - 48) // 2
    np.testing.assert_allclose(device, whole[top:top + 48, left:left + 48], atol=0.02)


def test_small_images_are_padded_not_broken():
    out = augment.RandomScaleCrop((64, 72), 64, seed=0)(images(2, 20, 30), training=True)
    assert tuple(out.shape) == (2, 64, 64, 3)


BACKEND_CHECK = textwrap.dedent("""
    import os
    import numpy as np, keras
    from vgg_keras import augment
    from vgg_keras.configs import IMAGENET_PCA_EIGVAL as L
    x = np.random.default_rng(0).uniform(0, 255, (64, 40, 50, 3)).astype("float32")
    aug = augment.training_augmentation(scale=(32, 48), crop=32, seed=1)
    out = keras.ops.convert_to_numpy(aug(x, training=True))
    assert out.shape == (64, 32, 32, 3), out.shape
    assert 0 <= out.min() and out.max() <= 255
    center = keras.ops.convert_to_numpy(aug(x, training=False))
    assert center.shape == (64, 32, 32, 3)
    grey = np.full((4000, 1, 1, 3), 128.0, "float32")
    shift = keras.ops.convert_to_numpy(augment.PCAColorShift(seed=0)(grey, training=True))
    var = np.var((shift[:, 0, 0] - 128) @ np.array(augment.IMAGENET_PCA_EIGVEC), 0)
    assert np.allclose(var, (25.5 * np.array(L)) ** 2, rtol=0.15), var
    reference = np.load(os.environ["WINDOW_REFERENCE"])
    crops = augment.WindowCrop(reference["crops"].shape[1])(
        {"windows": reference["windows"], "geometry": reference["geometry"]})
    error = np.abs(keras.ops.convert_to_numpy(crops) - reference["crops"]).max()
    assert error < 0.01, error
    print("ok", keras.backend.backend())
""")


def window_reference(path, crop=24):
    """Windows, their geometry (one mirrored, one upsampled past its border) and the crops the
    host path makes of them (``ops.resample``), saved for another backend to compare."""
    rng = np.random.default_rng(4)
    windows = rng.integers(0, 256, (3, 40, 40, 3), np.uint8)
    geometry = np.array([[0.2, 0.4, 1.5, 1.45, 40, 39], [3.0, 30.0, 1.2, -1.0, 33, 40],
                         [-0.3, -0.2, 0.6, 0.7, 14, 16]], np.float32)
    crops = []
    for window, (first_y, first_x, step_y, step_x, height, width) in zip(windows, geometry):
        flip = step_x < 0
        first_x = first_x + (crop - 1) * step_x if flip else first_x
        crops.append(ops.resample(window[:int(height), :int(width)],
                                  tf.constant([first_y, first_x], tf.float64),
                                  tf.constant([step_y, abs(step_x)], tf.float64), crop,
                                  flip=bool(flip)).numpy())
    np.savez(path, windows=windows, geometry=geometry, crops=np.stack(crops))


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_layers_run_on_other_backends(backend, tmp_path):
    pytest.importorskip(backend)
    window_reference(tmp_path / "windows.npz")
    env = dict(os.environ, KERAS_BACKEND=backend, CUDA_VISIBLE_DEVICES="",
               WINDOW_REFERENCE=str(tmp_path / "windows.npz"))
    result = subprocess.run([sys.executable, "-c", BACKEND_CHECK], env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"ok {backend}" in result.stdout
