"""LRN against Caffe's formula written directly in numpy; the input normalisation layer."""

import numpy as np
import pytest
import keras

from vgg_keras.layers import InputNormalization, LocalResponseNormalization


def caffe_lrn(x, size=5, k=2.0, alpha=1e-4, beta=0.75):
    """Caffe's ACROSS_CHANNELS LRN, one channel at a time."""
    out = np.empty_like(x, dtype=np.float64)
    channels = x.shape[-1]
    half = (size - 1) // 2
    for c in range(channels):
        lo, hi = max(0, c - half), min(channels, c - half + size)
        window = np.sum(x[..., lo:hi].astype(np.float64) ** 2, axis=-1)
        out[..., c] = x[..., c] / (k + alpha / size * window) ** beta
    return out


@pytest.mark.parametrize("size", [5, 3, 4])
def test_lrn_matches_caffe_formula(size):
    # Activations of the size a first conv layer produces, so the alpha term really matters.
    x = np.random.default_rng(0).normal(0, 300, (2, 5, 6, 11)).astype("float32")
    got = keras.ops.convert_to_numpy(LocalResponseNormalization(size=size)(x))
    expected = caffe_lrn(x, size=size)
    assert np.abs(expected - x / 2 ** 0.75).max() > 1  # the window sum is not negligible
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_lrn_differs_from_tensorflow_alpha_convention():
    """tf.nn.local_response_normalization does not divide alpha by n; we must (Caffe)."""
    x = np.full((1, 1, 1, 5), 100.0, "float32")
    got = float(keras.ops.convert_to_numpy(LocalResponseNormalization()(x))[0, 0, 0, 2])
    assert got == pytest.approx(100 / (2 + 1e-4 / 5 * 5 * 100**2) ** 0.75, rel=1e-6)
    assert got != pytest.approx(100 / (2 + 1e-4 * 5 * 100**2) ** 0.75, rel=1e-3)


def test_input_normalization_orders_and_scales():
    x = np.random.default_rng(1).uniform(0, 255, (2, 3, 3, 3)).astype("float32")
    rgb = InputNormalization(mean=(1.0, 2.0, 3.0), std=(2.0, 4.0, 8.0))
    np.testing.assert_allclose(rgb(x), (x - [1, 2, 3]) / [2, 4, 8], rtol=1e-6)
    bgr = InputNormalization(mean=(103.939, 116.779, 123.68), channel_order="bgr")
    np.testing.assert_allclose(bgr(x), x[..., ::-1] - [103.939, 116.779, 123.68], atol=1e-4)
    assert [w.trainable for w in bgr.weights] == [False]
    with pytest.raises(ValueError, match="channel_order"):
        InputNormalization(channel_order="bw")
    with pytest.raises(ValueError, match="3 mean values"):
        InputNormalization()(np.zeros((1, 4, 4, 1), "float32"))
