"""Appendix B descriptors: dense FC7, averaged over scales and flips, L2-normalised."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from vgg_keras import build_vgg
from vgg_keras.transfer import feature_extractor, features


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(3)
    return build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125, init="glorot")


def _images(shape, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, shape).astype("float32")


def test_at_the_crop_size_the_descriptor_is_the_fc7_output(model):
    images = _images((3, 32, 32, 3))
    fc7 = keras.Model(model.input, model.get_layer("fc7").output)
    expected = 0.5 * (keras.ops.convert_to_numpy(fc7(images, training=False))
                      + keras.ops.convert_to_numpy(fc7(images[:, :, ::-1], training=False)))
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    got = features(model, images, scales=(32,))
    assert got.shape == (3, 512)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_rows_have_unit_norm_and_stacking_concatenates_scales(model):
    images = _images((2, 40, 56, 3))
    averaged = features(model, images, scales=(32, 48))
    stacked = features(model, images, scales=(32, 48), combine="stack")
    assert averaged.shape == (2, 512) and stacked.shape == (2, 1024)
    np.testing.assert_allclose(np.linalg.norm(averaged, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(stacked, axis=1), 1.0, atol=1e-5)
    # Each scale's half of the stacked row is that scale's own (normalised) descriptor, scaled.
    alone = features(model, images, scales=(48,))
    half = stacked[:, 512:] / np.linalg.norm(stacked[:, 512:], axis=1, keepdims=True)
    np.testing.assert_allclose(half, alone, atol=1e-5)


def test_flip_averaging_leaves_a_mirror_symmetric_image_unchanged(model):
    half = _images((1, 48, 32, 3), seed=1)
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)   # 48 x 64, mirror-symmetric
    np.testing.assert_allclose(features(model, symmetric, scales=(48,), flip=True),
                               features(model, symmetric, scales=(48,), flip=False), atol=1e-5)
    lopsided = _images((1, 48, 64, 3), seed=2)
    assert np.abs(features(model, lopsided, scales=(48,), flip=True)
                  - features(model, lopsided, scales=(48,), flip=False)).max() > 1e-3


def test_a_list_of_images_of_any_size_matches_the_batched_path(model):
    images = _images((3, 36, 44, 3), seed=4)
    batched = features(model, images, scales=(32, 40), batch_size=2)
    one_by_one = features(model, list(images), scales=(32, 40))
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    # Sizes interleaved: the images of one size share passes, the rows keep the list's order.
    other = _images((50, 33, 3), seed=5)
    mixed = features(model, [images[0], other, images[1], other[::-1], images[2]], scales=(32,),
                     batch_size=2)
    assert mixed.shape == (5, 512)
    alone = [features(model, [image], scales=(32,))[0]
             for image in (images[0], other, images[1], other[::-1], images[2])]
    np.testing.assert_allclose(mixed, np.stack(alone), atol=1e-5)


def test_an_extractor_is_reusable_and_other_layers_can_be_read(model):
    extractor = feature_extractor(model)
    images = _images((2, 32, 32, 3), seed=6)
    np.testing.assert_allclose(features(extractor, images, scales=(32,)),
                               features(model, images, scales=(32,)), atol=1e-6)
    assert features(model, images, scales=(32,), layer="fc6").shape == (2, 512)
    assert feature_extractor(model, "block5_pool")(images).shape == (2, 1, 1, 64)


def test_bad_arguments_are_clear_errors(model):
    images = _images((1, 32, 32, 3))
    with pytest.raises(ValueError, match="smaller than the model's 32-pixel input"):
        features(model, images, scales=(24,))
    with pytest.raises(ValueError, match="no layer 'fc9'"):
        features(model, images, scales=(32,), layer="fc9")
    with pytest.raises(ValueError, match="combine"):
        features(model, images, combine="max")
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        features(model, images[0], scales=(32,))


def test_feature_extraction_shows_progress_per_scale(model, capfd):
    from vgg_keras import progress

    progress.set_quiet(False)
    try:
        capfd.readouterr()
        features(model, _images((3, 36, 44, 3), seed=7), scales=(32, 40), batch_size=2)
        err = capfd.readouterr().err
        # One bar per scale, counting images (2 batches: 2 + 1) out of the 3.
        for q in (32, 40):
            assert "3/3" in err.split(f"features Q={q}: 100%")[1].split("\n")[0]
        progress.set_quiet()
        features(model, _images((1, 32, 32, 3)), scales=(32,))
        assert "features" not in capfd.readouterr().err
    finally:
        progress.set_quiet(False)


JAX_FEATURES_CHECK = """
import numpy as np, keras, vgg_keras
from vgg_keras.transforms import rescaled_size
keras.utils.set_random_seed(0)
model = vgg_keras.build_vgg("A", 6, input_shape=(64, 64, 3), width=0.125, init="glorot")
extractor = vgg_keras.transfer.feature_extractor(model)
rng = np.random.default_rng(0)
photos = [rng.uniform(0, 255, (h, w, 3)).astype("float32") for h, w in [(50, 60), (50, 70),
                                                                         (60, 50)]]

def by_hand(photo):   # each image at its own rescaled size, unpadded
    size = tuple(int(v) for v in rescaled_size(np.array(photo.shape[:2], float), 64))
    image = keras.ops.image.resize(photo[None], size)
    plain = np.asarray(extractor(image)).mean(axis=(1, 2))
    mirror = np.asarray(extractor(keras.ops.flip(image, axis=2))).mean(axis=(1, 2))
    row = 0.5 * (plain + mirror)[0]
    return row / np.linalg.norm(row)

expected = np.stack([by_hand(photo) for photo in photos])
shapes = set()
layer = extractor.get_layer("block1_conv1")
call = layer.call
layer.call = lambda x, *a, **k: (shapes.add(tuple(x.shape)), call(x, *a, **k))[1]
np.testing.assert_allclose(vgg_keras.features(extractor, photos, scales=64), expected,
                           rtol=1e-4, atol=1e-5)
print(sorted(shapes))
"""


@pytest.mark.slow
def test_jax_features_compile_one_shape_per_bucket():
    """On JAX, which compiles for every input shape, three image sizes (rescaled to 64 x 77,
    64 x 90 and 77 x 64) run at two padded shapes, with the descriptors of their own sizes."""
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", JAX_FEATURES_CHECK], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[(1, 64, 96, 3), (1, 96, 64, 3)]"
