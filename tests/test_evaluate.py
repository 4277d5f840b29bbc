"""Test protocols on models whose answer is known."""

import numpy as np
import pytest
import keras

import vgg_keras
from vgg_keras import evaluate, progress


def tiny(seed=0, arch="A"):
    keras.utils.set_random_seed(seed)
    return vgg_keras.build_vgg(arch, 6, input_shape=(64, 64, 3), width=0.125, init="glorot")


def test_topk_error_hand_worked():
    posteriors = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3], [1 / 3, 1 / 3, 1 / 3]])
    labels = np.array([1, 2, 0])
    assert evaluate.topk_error(posteriors, labels, 1) == pytest.approx(2 / 3)
    assert evaluate.topk_error(posteriors, labels, 2) == pytest.approx(1 / 3)  # tie counts against
    assert evaluate.topk_error(posteriors, labels, 3) == 0.0
    assert evaluate.errors(posteriors, labels) == {"top1": pytest.approx(200 / 3), "top5": 0.0}


def test_dense_equals_center_crop_when_q_is_the_crop():
    model = tiny()
    images = np.random.default_rng(0).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    labels = np.arange(4)
    center, _ = evaluate.collect_posteriors(model, [(images, labels)], "center", flip=False)
    dense, seen = evaluate.collect_posteriors(model, [(images, labels)], "dense", flip=False)
    np.testing.assert_array_equal(seen, labels)
    np.testing.assert_allclose(dense, center, atol=1e-6)
    np.testing.assert_allclose(center, evaluate.softmax(model(images)), atol=1e-6)


def test_flip_averaging_of_a_symmetric_image_changes_nothing():
    model = tiny()
    half = np.random.default_rng(1).uniform(0, 255, (2, 96, 48, 3)).astype("float32")
    symmetric = np.concatenate([half, half[:, :, ::-1]], axis=2)
    dense = vgg_keras.to_dense(model)
    with_flip = evaluate.dense_posteriors(dense, symmetric, flip=True)
    without = evaluate.dense_posteriors(dense, symmetric, flip=False)
    # The flipped images share the forward pass: a batch twice as large rounds differently
    # in float32 (measured 1.6e-7).
    np.testing.assert_allclose(with_flip, without, atol=1e-6)
    # ...while on an ordinary image flipping does change the answer.
    ordinary = np.random.default_rng(2).uniform(0, 255, (2, 96, 96, 3)).astype("float32")
    assert np.abs(evaluate.dense_posteriors(dense, ordinary, True)
                  - evaluate.dense_posteriors(dense, ordinary, False)).max() > 1e-4


def test_to_dense_takes_a_saved_model_path_as_its_signature_says(tmp_path):
    model = tiny()
    model.save(tmp_path / "a.keras")
    image = np.random.default_rng(4).uniform(0, 255, (1, 96, 128, 3)).astype("float32")
    from_model = keras.ops.convert_to_numpy(vgg_keras.to_dense(model)(image))
    for path in (tmp_path / "a.keras", str(tmp_path / "a.keras")):
        from_file = keras.ops.convert_to_numpy(vgg_keras.to_dense(path)(image))
        assert from_file.shape == (1, 2, 3, 6)
        np.testing.assert_allclose(from_file, from_model, atol=1e-5)


def test_dense_averages_the_score_map_before_the_softmax():
    model = tiny()
    image = np.random.default_rng(3).uniform(0, 255, (1, 96, 128, 3)).astype("float32")
    dense = vgg_keras.to_dense(model)
    score_map = keras.ops.convert_to_numpy(dense(image))
    assert score_map.shape == (1, 2, 3, 6)
    expected = evaluate.softmax(score_map.mean(axis=(1, 2)))
    np.testing.assert_allclose(evaluate.dense_posteriors(dense, image, flip=False), expected,
                               atol=1e-7)


def test_dense_regroups_images_by_size_and_keeps_their_order():
    """Whole images of three sizes, interleaved, one a batch as eval_pipeline gives them: the
    posteriors are each image's own, in the order the images came, and the forward passes hold
    images of one size, at most as many pixels as batch_size crops."""
    model = tiny()
    dense = vgg_keras.to_dense(model)
    rng = np.random.default_rng(5)
    sizes = [(64, 80), (80, 64), (64, 80), (96, 64), (64, 80), (80, 64), (64, 80)]
    images = [rng.uniform(0, 255, (1, h, w, 3)).astype("float32") for h, w in sizes]
    labels = [np.array([i % 6]) for i in range(len(images))]
    expected = np.concatenate([evaluate.dense_posteriors(dense, image) for image in images])
    for batch_size in (1, 4, 8, 64):
        got, seen = evaluate.collect_posteriors(model, zip(images, labels), "dense",
                                                dense_model=dense, batch_size=batch_size)
        np.testing.assert_array_equal(seen, np.concatenate(labels))
        np.testing.assert_allclose(got, expected, atol=1e-6, err_msg=str(batch_size))
    # 8 crops of 64 x 64, half of the pixels for the mirror images: 16384 // 5120 = 3 images
    # of 64 x 80 a pass (4 of them: 3 + 1), both of 80 x 64, the one of 96 x 64.
    groups = evaluate.same_size_batches(zip(images, labels), 8 * 64 * 64 // 2)
    assert [(list(positions), group.shape) for positions, group, _ in groups] == [
        ([0, 2, 4], (3, 64, 80, 3)), ([6], (1, 64, 80, 3)), ([1, 5], (2, 80, 64, 3)),
        ([3], (1, 96, 64, 3))]


def test_forward_follows_the_weights_and_does_not_keep_the_model_alive():
    """The compiled call (TensorFlow) reads the model's current weights, not those of its
    first call, and its cache lets the model go."""
    import gc
    import weakref

    model = tiny()
    images = np.random.default_rng(6).uniform(0, 255, (2, 64, 64, 3)).astype("float32")
    before = evaluate.forward(model, images)
    np.testing.assert_allclose(before, keras.ops.convert_to_numpy(model(images)), atol=1e-5)
    fc8 = model.get_layer("fc8")
    fc8.set_weights([np.zeros(fc8.kernel.shape, "float32"), np.arange(6, dtype="float32")])
    np.testing.assert_array_equal(evaluate.forward(model, images), [np.arange(6)] * 2)
    alive = weakref.ref(model)
    del model
    gc.collect()
    assert alive() is None


def test_multicrop_averages_crop_posteriors_and_fusion_averages_models():
    first, second = tiny(0), tiny(1)
    crops = np.random.default_rng(4).uniform(0, 255, (2, 5, 64, 64, 3)).astype("float32")
    labels = np.array([0, 3])
    got, _ = evaluate.collect_posteriors(first, [(crops, labels)], "multicrop")
    expected = evaluate.softmax(first(crops.reshape(10, 64, 64, 3))).reshape(2, 5, 6).mean(1)
    np.testing.assert_allclose(got, expected, atol=1e-7)

    images = crops[:, 0]
    rows = evaluate.evaluate_classifier(
        [first, second], lambda q, m: [(images, labels)], scales=(64,), methods=("center",),
        flip=False)
    alone = [evaluate.softmax(first(images)), evaluate.softmax(second(images))]
    fused = 0.5 * (alone[0] + alone[1])
    # Each member alone from the same passes, then the fusion, as in the paper's Table 6.
    assert rows == [{"models": names, "scales": [64], "method": "center", "images": 2,
                     **evaluate.errors(posteriors, labels)}
                    for names, posteriors in (([first.name], alone[0]), ([second.name], alone[1]),
                                              ([first.name, second.name], fused))]


def test_multiscale_and_combined_rows():
    model = tiny()
    rng = np.random.default_rng(5)
    data = {q: rng.uniform(0, 255, (3, q, q, 3)).astype("float32") for q in (64, 80)}
    labels = np.array([1, 2, 3])

    def batches(q, method):
        if method == "multicrop":
            return [(np.stack([data[q][:, :64, :64], data[q][:, -64:, -64:]], axis=1), labels)]
        return [(data[q], labels)]

    rows = evaluate.evaluate_classifier(model, batches, scales=(64, 80),
                                        methods=("dense", "multicrop"))
    assert [(r["scales"], r["method"]) for r in rows] == [
        ([64], "dense"), ([80], "dense"), ([64, 80], "dense"),
        ([64], "multicrop"), ([80], "multicrop"), ([64, 80], "multicrop"),
        ([64, 80], "dense+multicrop"),
    ]
    table = evaluate.format_table(rows)
    assert "| 64,80 | dense+multicrop |" in table


@pytest.fixture
def progress_on():
    """Bars shown whatever an earlier test left; the package default restored afterwards."""
    progress.set_quiet(False)
    yield
    progress.set_quiet(False)


def test_each_protocol_pass_shows_progress_until_set_quiet(progress_on, capfd, tmp_path,
                                                           monkeypatch):
    from PIL import Image

    from vgg_keras import data

    monkeypatch.setenv("VGG_KERAS_CACHE", str(tmp_path / "cache"))  # listing caches
    rng = np.random.default_rng(6)
    for i in range(5):   # 5 images in class folders, as a user's data would be
        folder = tmp_path / "images" / ("ab"[i % 2])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    examples = data.load(str(tmp_path / "images"), validate="none")

    def batches(q, method):   # as the tasks pass them: the protocols' eval pipelines
        return evaluate.protocol_batches(examples, method, q, crop=64, batch_size=2)

    model = tiny()
    capfd.readouterr()
    evaluate.evaluate_classifier(model, batches, scales=(72,), methods=("center", "dense"))
    err = capfd.readouterr().err
    # One bar per pass, named by method and scale, counting images (center has 3 batches of
    # at most 2) out of the dataset's size, which load() recorded.
    for name in ("center Q=72", "dense Q=72"):
        assert f"{name}: 100%" in err and "5/5" in err.split(name)[-1].split("\n")[0]

    progress.set_quiet()
    evaluate.evaluate_classifier(model, batches, scales=(72,), methods=("center",))
    assert "Q=72" not in capfd.readouterr().err


def test_protocol_registry_batches_each_protocol_by_its_rule(tmp_path, monkeypatch):
    from PIL import Image

    from vgg_keras import data

    assert evaluate.METHODS == ("center", "dense", "multicrop") == tuple(evaluate.PROTOCOLS)
    assert [p.dense for p in evaluate.PROTOCOLS.values()] == [False, True, False]
    monkeypatch.setenv("VGG_KERAS_CACHE", str(tmp_path / "cache"))
    rng = np.random.default_rng(7)
    for i in range(5):
        folder = tmp_path / "images" / ("ab"[i % 2])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (70, 90, 3), dtype=np.uint8)).save(
            folder / f"{i}.png")
    examples = data.load(str(tmp_path / "images"), validate="none")
    # batch_size is about the crops of a forward pass: center takes that many images, dense
    # one whole image, multi-crop as many 50-crop sets as fit (at least one).
    for method, batch_size, images, labels in [
            ("center", 2, [2, 2, 1], [2, 2, 1]), ("dense", 2, [1] * 5, [1] * 5),
            ("multicrop", 32, [50] * 5, [1] * 5), ("multicrop", 100, [100, 100, 50], [2, 2, 1])]:
        batches = list(evaluate.protocol_batches(examples, method, 72, crop=64,
                                                 batch_size=batch_size))
        assert [len(x) for x, _ in batches] == images, method
        assert [len(y) for _, y in batches] == labels, method
    with pytest.raises(ValueError, match="method must be one of"):
        evaluate.protocol_batches(examples, "tencrop", 72)


@pytest.mark.parametrize("arch", ["A", "A-LRN"])
def test_padded_dense_forward_equals_the_image_own_pass(arch):
    """Padded to a multiple of 32 and masked after every layer, each image gives its own score
    map (sizes that pool unevenly, both orientations, the crop itself)."""
    dense = vgg_keras.to_dense(tiny(arch=arch))
    rng = np.random.default_rng(7)
    for height, width in [(64, 64), (70, 93), (93, 70), (101, 64), (127, 129)]:
        images = rng.uniform(0, 255, (2, height, width, 3)).astype("float32")
        expected = evaluate.forward(dense, images)
        got = evaluate.padded_dense_forward(dense, images)
        assert got.shape == expected.shape
        assert np.abs(expected).max() > 0.1   # Glorot's start: maps far from zero
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5,
                                   err_msg=f"{height}x{width}")


def test_padded_dense_forward_of_a_localizer_keeps_its_box_maps():
    localizer = vgg_keras.build_localizer(tiny(), regression="pcr", init="glorot")
    dense = vgg_keras.to_dense(localizer)
    images = np.random.default_rng(8).uniform(0, 255, (1, 100, 110, 3)).astype("float32")
    expected = evaluate.forward(dense, images)
    assert expected.shape == (1, 2, 2, 24)
    np.testing.assert_allclose(evaluate.padded_dense_forward(dense, images), expected,
                               rtol=1e-4, atol=1e-5)


def test_padded_dense_forward_refuses_an_image_smaller_than_the_crop():
    dense = vgg_keras.to_dense(tiny())
    with pytest.raises(ValueError, match="at least 64x64 pixels"):
        evaluate.padded_dense_forward(dense, np.zeros((1, 60, 80, 3), "float32"))


JAX_DENSE_CHECK = """
import numpy as np, keras, vgg_keras
from vgg_keras import evaluate
keras.utils.set_random_seed(0)
model = vgg_keras.build_vgg("A", 6, input_shape=(64, 64, 3), width=0.125, init="glorot")
dense = vgg_keras.to_dense(model)
rng = np.random.default_rng(0)
sizes = [(64, 70), (64, 81), (64, 96), (70, 64), (96, 90)]
images = [rng.uniform(0, 255, (1, h, w, 3)).astype("float32") for h, w in sizes]
expected = [np.asarray(dense(image)) for image in images]   # each at its own size
shapes = set()
layer = dense.get_layer("block1_conv1")
call = layer.call
layer.call = lambda x, *a, **k: (shapes.add(tuple(x.shape)), call(x, *a, **k))[1]
for image, want in zip(images, expected):
    maps, posteriors = evaluate.dense_scores(dense, image, flip=True)
    np.testing.assert_allclose(maps, want, rtol=1e-4, atol=1e-5)
    assert np.abs(want).max() > 0.1
print(sorted(shapes))
"""


@pytest.mark.slow
def test_jax_dense_evaluation_compiles_one_shape_per_bucket(tmp_path):
    """On JAX, which compiles for every input shape, five image sizes run at two padded
    shapes, with the maps of their own unpadded passes."""
    pytest.importorskip("jax")
    import os
    import subprocess
    import sys
    env = dict(os.environ, KERAS_BACKEND="jax", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run([sys.executable, "-c", JAX_DENSE_CHECK], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    # Image and mirror in one pass; 70 and 81 and 90 pad to 96, 64 stays, 96 is a bucket.
    shapes = result.stdout.strip().splitlines()[-1]
    assert shapes == "[(2, 64, 96, 3), (2, 96, 64, 3), (2, 96, 96, 3)]"
