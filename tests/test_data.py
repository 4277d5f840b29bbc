"""The input pipeline's transforms, alone and composed, against numbers that could fail: sizes
after rescaling, crop positions, boxes following crops and flips, colour-shift statistics,
seeds, the evaluation protocols, and the embedded dataset."""

import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

import vgg_keras.data as data
from vgg_keras.configs import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC
from vgg_keras.data import embedded, ops


def encode(array, fmt="JPEG", **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def examples(images, labels=None, boxes=None):
    """An in-memory dataset of pipeline examples from encoded images."""
    n = len(images)
    labels = np.zeros(n, np.int32) if labels is None else np.asarray(labels, np.int32)
    boxes = [np.zeros((0, 4), np.float32)] * n if boxes is None else boxes
    ragged = tf.RaggedTensor.from_row_lengths(
        np.concatenate([np.reshape(b, (-1, 4)) for b in boxes]).astype(np.float32),
        [len(np.reshape(b, (-1, 4))) for b in boxes])
    return tf.data.Dataset.from_tensor_slices((images, labels, ragged)).map(
        lambda image, label, box: {"image": image, "label": label, "boxes": box,
                                   "filename": tf.constant("")})


def photograph(height, width, seed=0):
    """A photo-like uint8 image: smooth coloured light and shade with thin clutter."""
    return embedded._background(np.random.default_rng(seed), height, width).astype(np.uint8)


@pytest.fixture(scope="module")
def shapes_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfds")
    tfds.builder(data.EMBEDDED_NAME, config=data.shapes_config(48, 16, 8, seed=3),
                 data_dir=str(path)).download_and_prepare()
    return str(path)


def load_shapes(shapes_dir, split="train"):
    return data.load(f"{data.EMBEDDED_NAME}/n48_16_8_s3", split, data_dir=shapes_dir)


# ---------------------------------------------------------------------------------------------
# Transforms alone.


@pytest.mark.parametrize("size,scale", [
    ((375, 500), 256), ((500, 375), 384), ((120, 160), 72), ((7, 3), 64), ((1, 1), 32),
    ((4000, 20), 256), ((333, 333), 512),
])
def test_rescale_makes_shorter_side_s_and_keeps_aspect(size, scale):
    image = tf.zeros(size + (3,), tf.uint8)
    out = ops.rescale(image, scale)
    height, width = out.shape[:2]
    assert min(height, width) == scale
    # The longer side is the exact aspect rounded to the nearest pixel.
    exact = max(size) * scale / min(size)
    assert abs(max(height, width) - exact) <= 0.5
    assert (height >= width) == (size[0] >= size[1])


def test_one_rescaling_rule_for_the_pipeline_the_device_and_transfer():
    import keras

    from vgg_keras import transforms

    sizes = [(375, 500), (500, 375), (7, 3), (1, 1), (4000, 20), (333, 333), (99, 100)]
    for size in sizes:
        for scale in (32, 57, 256, 384):
            host = ops.rescaled_size(size, scale).numpy().tolist()
            plain = transforms.rescaled_size(np.array(size, float), scale).tolist()
            device = keras.ops.convert_to_numpy(transforms.rescaled_size(
                keras.ops.convert_to_tensor(np.array(size, "float32")), scale, xp=keras.ops))
            assert host == plain == device.tolist(), (size, scale)
            assert min(host) == scale


def test_fused_decode_and_crop_equals_rescale_then_crop():
    rng = np.random.default_rng(0)
    picture = photograph(150, 200)
    for fmt in ("JPEG", "PNG"):
        encoded = encode(picture, fmt, quality=90) if fmt == "JPEG" else encode(picture, fmt)
        whole = ops.rescale(ops.decode(encoded), 180).numpy()
        for _ in range(4):
            y = rng.integers(0, whole.shape[0] - 96 + 1)
            x = rng.integers(0, whole.shape[1] - 96 + 1)
            patch, rescaled, offset = ops.decode_rescale_crop(
                encoded, 180, 96, lambda r, c, y=y, x=x: tf.constant([y, x], tf.int32))
            assert list(rescaled.numpy()) == list(whole.shape[:2])
            np.testing.assert_allclose(patch.numpy(), whole[y:y + 96, x:x + 96], atol=0.05)


def test_random_crops_lie_inside_and_cover_every_position():
    rescaled = tf.constant([70, 75], tf.int32)
    offsets = np.array([ops.sample_offset(tf.constant([i, 7], tf.int64), rescaled, 64).numpy()
                        for i in range(600)])
    assert offsets.min() == 0
    assert offsets[:, 0].max() == 70 - 64 and offsets[:, 1].max() == 75 - 64
    assert len(np.unique(offsets[:, 1])) == 75 - 64 + 1  # every position is reachable


def test_scale_draws_are_uniform_integers_over_the_range():
    draws = np.array([ops.sample_scale(tf.constant([i, 1], tf.int64), (256, 260)).numpy()
                      for i in range(1000)])
    counts = np.bincount(draws - 256, minlength=5)
    assert draws.min() == 256 and draws.max() == 260
    chi2 = ((counts - 200.0) ** 2 / 200.0).sum()
    assert chi2 < 18.5  # chi-square, 4 degrees of freedom, p = 0.001


def test_multicrop_grid_has_corners_centre_and_edges():
    offsets = ops.grid_offsets(tf.constant([256, 341]), 224).numpy()
    assert offsets.shape == (25, 2)
    assert offsets[0].tolist() == [0, 0] and offsets[-1].tolist() == [32, 117]
    assert offsets[12].tolist() == [16, 58]  # centre: 32 / 2, round(117 / 2)
    assert sorted(set(offsets[:, 0])) == [0, 8, 16, 24, 32]


def test_boxes_follow_crop_and_flip():
    boxes = tf.constant([[0.25, 0.5, 0.75, 1.0]])
    # Image rescaled to 100 x 200, crop 50 at (10, 120): box = y 25..75, x 100..200 pixels.
    cropped = ops.crop_boxes(boxes, tf.constant([100, 200]), tf.constant([10, 120]), 50)
    np.testing.assert_allclose(cropped.numpy(), [[0.3, -0.4, 1.3, 1.6]], atol=1e-6)
    box, present = ops.best_box(cropped)
    assert bool(present)
    np.testing.assert_allclose(box.numpy(), [0.3, 0.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(ops.flip_boxes(cropped).numpy(), [[0.3, -0.6, 1.3, 1.4]], atol=1e-6)


def test_best_box_is_the_one_the_crop_keeps_most_of_and_absent_is_flagged():
    boxes = tf.constant([[0.0, 0.0, 0.2, 0.2],     # fully inside, area 0.04
                         [0.5, 0.5, 1.5, 1.5],     # half cut away, 0.25 left
                         [1.2, 1.2, 1.5, 1.5]])    # outside
    box, present = ops.best_box(boxes)
    assert bool(present)
    np.testing.assert_allclose(box.numpy(), [0.5, 0.5, 1.0, 1.0])
    box, present = ops.best_box(boxes[2:])
    assert not bool(present)
    box, present = ops.best_box(tf.zeros((0, 4)))
    assert not bool(present)


def test_host_colour_shift_matches_the_pca():
    eigval, eigvec = np.array(IMAGENET_PCA_EIGVAL), np.array(IMAGENET_PCA_EIGVEC)
    shifts = tf.map_fn(lambda s: ops.pca_color_shift(s), tf.stack(
        [tf.range(4000, dtype=tf.int64), tf.fill([4000], tf.constant(5, tf.int64))], 1),
        fn_output_signature=tf.float32).numpy()
    expected = 255.0 ** 2 * eigvec @ np.diag((0.1 * eigval) ** 2) @ eigvec.T
    covariance = np.cov(shifts.T)
    # Along each principal axis the variance is (255 * 0.1 * lambda)^2 (to sampling error) and
    # the cross terms vanish; the mean shift is zero.
    projected = eigvec.T @ covariance @ eigvec
    np.testing.assert_allclose(np.diag(projected), np.diag(eigvec.T @ expected @ eigvec),
                               rtol=0.1)
    assert abs(projected[0, 1]) < 0.1 * np.sqrt(projected[0, 0] * projected[1, 1])
    assert (np.abs(shifts.mean(0)) < 4 * np.sqrt(np.diag(expected) / 4000)).all()


# ---------------------------------------------------------------------------------------------
# The training pipeline, composed.


def test_drawn_rectangle_stays_inside_its_box_after_crop_and_flip():
    # A saturated magenta rectangle in a photograph; after rescale, crop and flip, the pixels
    # of that colour must fill the box the pipeline reports.
    picture = photograph(240, 320, seed=4)
    picture = (picture * 0.6).astype(np.uint8)  # keep the photograph away from pure magenta
    top, left, bottom, right = 70, 130, 190, 230
    picture[top:bottom, left:right] = (255, 0, 255)
    box = np.array([[top / 240, left / 320, bottom / 240, right / 320]], np.float32)
    dataset = examples([encode(picture, quality=95)] * 24, boxes=[box] * 24)
    batches = data.train_pipeline(dataset, scale=(160, 224), crop=128, batch_size=24,
                                  color_shift=False, boxes=True, seed=11)
    images, targets, weights = next(iter(batches))
    kept = 0
    for image, found, weight in zip(images.numpy(), targets["box"].numpy(),
                                    weights["box"].numpy()):
        magenta = (image[..., 0] > 200) & (image[..., 1] < 60) & (image[..., 2] > 200)
        if not magenta.any():
            assert weight == 0.0
            continue
        assert weight == 1.0
        kept += 1
        rows, cols = np.flatnonzero(magenta.any(1)), np.flatnonzero(magenta.any(0))
        seen = np.array([rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]) / 128.0
        overlap = np.minimum(seen[2:], found[2:]) - np.maximum(seen[:2], found[:2])
        inter = np.prod(np.maximum(overlap, 0))
        union = np.prod(seen[2:] - seen[:2]) + np.prod(found[2:] - found[:2]) - inter
        assert inter / union > 0.9, (seen, found)
    assert kept >= 12
    # Same seed without the flip: same crops, so the images that differ are the flipped ones.
    unflipped = data.train_pipeline(dataset, scale=(160, 224), crop=128, batch_size=24,
                                    flip=False, color_shift=False, boxes=True, seed=11)
    plain = next(iter(unflipped))[0].numpy()
    assert 3 <= sum(not np.allclose(a, b) for a, b in zip(plain, images.numpy())) <= 21


def test_flip_mirrors_image_and_box_together():
    picture = photograph(100, 100, seed=5)
    box = np.array([[0.1, 0.1, 0.5, 0.3]], np.float32)
    dataset = examples([encode(picture, "PNG")] * 32, boxes=[box] * 32)
    plain = data.train_pipeline(dataset, scale=100, crop=100, batch_size=32, flip=False,
                                color_shift=False, boxes=True, seed=2)
    mirrored = data.train_pipeline(dataset, scale=100, crop=100, batch_size=32, flip=True,
                                   color_shift=False, boxes=True, seed=2)
    image0, target0, _ = next(iter(plain))
    image1, target1, _ = next(iter(mirrored))
    is_flipped = np.array([not np.allclose(a, b) for a, b in zip(image0.numpy(), image1.numpy())])
    assert 4 < is_flipped.sum() < 28
    np.testing.assert_allclose(image1.numpy()[is_flipped], image0.numpy()[is_flipped][:, :, ::-1],
                               atol=1e-3)
    np.testing.assert_allclose(target1["box"].numpy()[is_flipped],
                               [[0.1, 0.7, 0.5, 0.9]] * is_flipped.sum(), atol=1e-6)
    np.testing.assert_allclose(target1["box"].numpy()[~is_flipped],
                               target0["box"].numpy()[~is_flipped])


def test_pipeline_colour_shift_matches_the_pca():
    grey = np.full((8, 8, 3), 128, np.uint8)
    dataset = examples([encode(grey, "PNG")] * 1500)
    batches = data.train_pipeline(dataset, scale=8, crop=8, batch_size=1500, flip=False, seed=3)
    images = next(iter(batches))[0].numpy()
    # One shift per image, the same on every pixel.
    np.testing.assert_allclose(images.std(axis=(1, 2)), 0.0, atol=1e-3)
    shifts = images[:, 0, 0] - 128.0
    eigval, eigvec = np.array(IMAGENET_PCA_EIGVAL), np.array(IMAGENET_PCA_EIGVEC)
    projected = np.var(shifts @ eigvec, axis=0)
    np.testing.assert_allclose(projected, (255 * 0.1 * eigval) ** 2, rtol=0.12)


def test_same_seed_same_batches_and_epochs_differ(shapes_dir):
    train = load_shapes(shapes_dir)

    def epochs(dataset, count):
        return [np.concatenate([x.numpy().ravel()[:4000] for x, _ in dataset])
                for _ in range(count)]

    first = data.train_pipeline(train, scale=(40, 56), crop=32, batch_size=16, seed=7)
    again = data.train_pipeline(load_shapes(shapes_dir), scale=(40, 56), crop=32,
                                batch_size=16, seed=7)
    other = data.train_pipeline(train, scale=(40, 56), crop=32, batch_size=16, seed=8)
    a, b, c = epochs(first, 2), epochs(again, 2), epochs(other, 1)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], c[0])
    # A resumed run (repeat=True, initial_epoch=1) gets exactly the second epoch of the stream.
    def stream(initial_epoch, batches):
        return data.train_pipeline(train, scale=(40, 56), crop=32, batch_size=16, seed=7,
                                   repeat=True, initial_epoch=initial_epoch, steps_per_epoch=3)

    whole = [x.numpy() for x, _ in stream(0, 6).take(6)]
    resumed = [x.numpy() for x, _ in stream(1, 3).take(3)]
    np.testing.assert_array_equal(np.stack(resumed), np.stack(whole[3:]))
    assert not np.array_equal(whole[0], whole[3])


def test_training_batches_shapes_types_and_every_image_once(shapes_dir):
    train = load_shapes(shapes_dir)
    batches = data.train_pipeline(train, scale=(72, 96), crop=64, batch_size=16, seed=0)
    labels = []
    for images, batch_labels in batches:
        assert images.shape == (16, 64, 64, 3) and images.dtype == tf.float32
        assert batch_labels.dtype == tf.int32
        assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0
        labels.append(batch_labels.numpy())
    truth = [int(ex["label"]) for ex in train]
    assert sorted(np.concatenate(labels).tolist()) == sorted(truth)


def test_scale_smaller_than_crop_and_boxes_without_boxes_are_errors():
    dataset = examples([encode(photograph(40, 40), "PNG")])
    with pytest.raises(ValueError, match="smaller than crop"):
        data.train_pipeline(dataset, scale=(200, 300), crop=224, batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        data.train_pipeline(dataset, scale=256, crop=224, batch_size=0)
    with pytest.raises(ValueError, match="initial_epoch"):
        data.train_pipeline(dataset, scale=256, crop=224, batch_size=1, initial_epoch=2)


def test_device_placement_leaves_photometric_work_to_the_attached_layers(shapes_dir):
    train = load_shapes(shapes_dir)
    host = data.train_pipeline(train, scale=64, crop=64, batch_size=8, seed=1, flip=False,
                               color_shift=False)
    device = data.train_pipeline(train, scale=64, crop=64, batch_size=8, seed=1,
                                 placement=data.Placement(augment="device"))
    np.testing.assert_array_equal(next(iter(host))[0].numpy(), next(iter(device))[0].numpy())
    names = [layer.name for layer in device.augmentation.layers]
    assert names == ["flip", "color_shift"]


def test_boxes_keep_the_flip_on_the_host_whatever_the_placement(shapes_dir):
    """Each crop is flipped exactly once: with boxes the host flips (boxes follow), so the
    device's layers must not flip again."""
    train = load_shapes(shapes_dir)
    settings = dict(scale=64, crop=64, batch_size=16, seed=1, boxes=True,
                    placement=data.Placement(augment="device"))
    flipped = next(iter(data.train_pipeline(train, **settings)))
    unflipped = next(iter(data.train_pipeline(train, flip=False, **settings)))
    mirrored = [not np.array_equal(a, b) for a, b in zip(flipped[0].numpy(),
                                                        unflipped[0].numpy())]
    assert 3 <= sum(mirrored) <= 13            # about half of 16, drawn on the host
    np.testing.assert_array_equal(flipped[0].numpy()[~np.array(mirrored)],
                                  unflipped[0].numpy()[~np.array(mirrored)])
    names = [layer.name for layer in data.train_pipeline(train, **settings).augmentation.layers]
    assert names == ["color_shift"]


# ---------------------------------------------------------------------------------------------
# Evaluation protocols.


def test_center_dense_and_multicrop_batches():
    pictures = [photograph(120, 160, seed=1), photograph(150, 100, seed=2)]
    dataset = examples([encode(p, "PNG") for p in pictures], labels=[3, 5])
    rescaled = [ops.rescale(p, 96).numpy() for p in pictures]

    center = list(data.eval_pipeline(dataset, test_scale=96, crop=64, mode="center", batch_size=2))
    images, labels = center[0]
    assert images.shape == (2, 64, 64, 3) and labels.numpy().tolist() == [3, 5]
    np.testing.assert_allclose(images[0], rescaled[0][16:80, 32:96], atol=0.05)

    dense = list(data.eval_pipeline(dataset, test_scale=96, mode="dense"))
    assert [tuple(x.shape) for x, _ in dense] == [(1, 96, 128, 3), (1, 144, 96, 3)]
    np.testing.assert_allclose(dense[1][0][0], rescaled[1], atol=1e-3)
    with pytest.raises(ValueError, match="one whole image"):
        data.eval_pipeline(dataset, test_scale=96, mode="dense", batch_size=4)

    multi = list(data.eval_pipeline(dataset, test_scale=96, crop=64, mode="multicrop", batch_size=2))
    crops, labels = multi[0]
    assert crops.shape == (100, 64, 64, 3) and labels.shape == (2,)
    first = crops[:50].numpy()
    np.testing.assert_allclose(first[0], rescaled[0][:64, :64], atol=1e-3)      # top-left
    np.testing.assert_allclose(first[24], rescaled[0][-64:, -64:], atol=1e-3)   # bottom-right
    np.testing.assert_allclose(first[25:], first[:25, :, ::-1], atol=1e-6)     # the mirrors
    np.testing.assert_allclose(crops[50:75].numpy()[0], rescaled[1][:64, :64], atol=1e-3)


def test_eval_boxes_relative_to_crop_and_padded():
    pictures = [photograph(100, 200, seed=3), photograph(100, 100, seed=4)]
    boxes = [np.array([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]], np.float32),
             np.array([[0.2, 0.2, 0.4, 0.4]], np.float32)]
    dataset = examples([encode(p, "PNG") for p in pictures], boxes=boxes)
    images, targets = next(iter(data.eval_pipeline(dataset, test_scale=100, crop=100, boxes=True,
                                                   batch_size=2)))
    assert targets["num_boxes"].numpy().tolist() == [2, 1]
    # First image: 100 x 200, central crop at x = 50: x 0..100 -> -0.5..0.5 (not clipped).
    np.testing.assert_allclose(targets["boxes"][0].numpy(),
                               [[0.0, -0.5, 0.5, 0.5], [0.5, 0.5, 1.0, 1.5]], atol=1e-6)
    np.testing.assert_allclose(targets["boxes"][1, 1].numpy(), [-1.0] * 4)
    dense = next(iter(data.eval_pipeline(dataset, test_scale=50, mode="dense", boxes=True)))
    np.testing.assert_allclose(dense[1]["boxes"][0].numpy(), boxes[0])


# ---------------------------------------------------------------------------------------------
# The embedded dataset and statistics.


def test_embedded_examples_are_deterministic_and_varied():
    a = embedded.make_example(0, "train", 5)
    b = embedded.make_example(0, "train", 5)
    c = embedded.make_example(1, "train", 5)
    assert a[0] == b[0] and a[1] == b[1] and np.array_equal(a[2], b[2])
    assert a[0] != c[0]
    sizes = np.array([embedded.make_example(0, "train", i)[3] for i in range(60)])
    assert sizes.min() >= embedded.MIN_SIDE and sizes.min(1).max() <= embedded.MAX_SIDE
    assert (sizes[:, 0] > sizes[:, 1]).any() and (sizes[:, 0] < sizes[:, 1]).any()


def test_embedded_box_holds_the_object_at_its_drawn_size():
    rng = np.random.default_rng(9)
    low, high = embedded.OBJECT_FRACTION
    for _ in range(20):
        image, label, box = embedded.draw_example(rng)
        height, width = image.shape[:2]
        top, left = box[0] * height, box[1] * width
        bottom, right = box[2] * height, box[3] * width
        assert 0 <= top < bottom <= height and 0 <= left < right <= width
        # The object's larger extent is drawn from OBJECT_FRACTION of the shorter side.
        extent = max(bottom - top, right - left)
        short = min(height, width)
        assert low * short - 2 <= extent <= high * short + 2


def test_embedded_colour_does_not_give_the_class_away():
    # Mean colour inside the box per class: classes' averages are indistinguishable.
    means = {k: [] for k in range(len(embedded.CLASS_NAMES))}
    for i in range(300):
        rng = embedded.example_rng(0, "train", i)
        image, label, box = embedded.draw_example(rng)
        h, w = image.shape[:2]
        inner = image[int(box[0] * h):int(box[2] * h), int(box[1] * w):int(box[3] * w)]
        means[label].append(inner.reshape(-1, 3).mean(0))
    per_class = np.array([np.mean(v, 0) for v in means.values() if v])
    spread = np.array([np.std(v, 0) for v in means.values() if v]).mean(0)
    # Class averages of ~30 images lie within a few standard errors of one another.
    assert (per_class.std(0) < spread * 0.5).all()


def test_tfds_load_works_after_import_and_info_names_classes(shapes_dir):
    dataset = tfds.load(f"{data.EMBEDDED_NAME}/n48_16_8_s3", split="validation",
                        data_dir=shapes_dir)
    example = next(iter(dataset))
    assert example["image"].shape[-1] == 3 and example["objects"]["bbox"].shape == (1, 4)
    loaded = load_shapes(shapes_dir, "validation")
    meta = data.info(loaded)
    assert meta.num_classes == 10 and meta.class_names[0] == "circle"
    assert meta.num_examples == 16 and meta.has_boxes
    first = next(iter(loaded))
    assert first["boxes"].shape == (1, 4) and first["image"].dtype == tf.string
    # What TFDS stored is exactly what the generator draws for that seed, split and index.
    for example in loaded.take(4):
        index = int(example["filename"].numpy().decode()[len("validation_"):-len(".jpg")])
        jpeg, label, box, _ = embedded.make_example(3, "validation", index)
        assert example["image"].numpy() == jpeg and int(example["label"]) == label
        np.testing.assert_allclose(example["boxes"][0].numpy(), box, atol=1e-6)


def test_compute_statistics_recovers_mean_and_components():
    rng = np.random.default_rng(0)
    direction = np.array([0.6, 0.64, 0.48])
    pictures = []
    for _ in range(6):
        t = rng.normal(0, 40, (32, 32, 1))
        pictures.append(np.clip(np.array([120, 110, 100]) + t * direction
                                + rng.normal(0, 5, (32, 32, 3)), 0, 255).astype(np.uint8))
    stats = data.compute_statistics(examples([encode(p, "PNG") for p in pictures]))
    pixels = np.concatenate([p.reshape(-1, 3) for p in pictures]) / 255.0
    np.testing.assert_allclose(stats.mean, pixels.mean(0) * 255, atol=1e-6)
    values, vectors = np.linalg.eigh(np.cov(pixels.T, bias=True))
    np.testing.assert_allclose(stats.eigval, values[::-1], rtol=1e-5)
    assert abs(abs(np.dot(np.array(stats.eigvec)[:, 0], direction)) - 1) < 0.01
    assert stats.num_images == 6 and stats.num_pixels == 6 * 32 * 32


def test_box_batches_fit_a_two_headed_keras_model(shapes_dir):
    import keras

    inputs = keras.Input((32, 32, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, {"label": keras.layers.Dense(10, name="label")(features),
                                 "box": keras.layers.Dense(4, name="box")(features)})
    model.compile("sgd", loss={"label": keras.losses.SparseCategoricalCrossentropy(True),
                               "box": "mse"})
    batches = data.train_pipeline(load_shapes(shapes_dir), scale=(32, 48), crop=32,
                                  batch_size=16, boxes=True, seed=0)
    history = model.fit(batches, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("size", [1, 2, 30, 300])
def test_an_epochs_order_at_once_is_the_order_position_by_position(size):
    """``keyed_order`` (the training pipeline's, once an epoch) equals ``keyed_index`` (a tf.data
    service worker's, one position at a time): the same examples in the same order either way."""
    from vgg_keras.data.sources import keyed_index, keyed_order

    for key in (11, -987654321):
        order = keyed_order(key, size).numpy().tolist()
        assert sorted(order) == list(range(size))
        assert order == [int(keyed_index(key, position, size)) for position in range(size)]
    assert keyed_order(1, 1000).numpy().tolist() != keyed_order(2, 1000).numpy().tolist()
