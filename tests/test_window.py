"""The host/device split of the training pipeline (``Placement(resample="device")``, the scripts'
default): the host decodes only the window each crop reads and hands it over as uint8 in a fixed
bucket; ``WindowCrop`` makes the crop in the training step. The crops, flips, boxes and labels
must be the host path's, and a trainer must fit on them."""

import os

import keras
import numpy as np
import pytest
from PIL import Image

import vgg_keras.data as data
from vgg_keras import augment, build_vgg
from vgg_keras.fitting import with_training_augmentation
from vgg_keras.transforms import window_bucket

CROP, SCALE = 64, (64, 128)
# Shorter sides from 50 (upsampled at every S) to 375 (shrunk by up to 5.9: cropped on the
# host), with 90-150 in between, whose windows fit the bucket at some S and not at others.
SIZES = [(90, 120), (150, 200), (50, 70), (120, 90), (375, 500)]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("windows")
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        os.makedirs(root / label)
        for index, (height, width) in enumerate(SIZES * 3):
            # Smooth colour plus noise: JPEG artefacts and edges both matter to the window.
            smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (4, 5, 3), np.uint8)).resize(
                (width, height), Image.BICUBIC), np.float32)
            pixels = np.clip(smooth + rng.normal(0, 30, smooth.shape), 0, 255).astype(np.uint8)
            suffix = "png" if index % 3 == 2 else "jpg"
            Image.fromarray(pixels).save(root / label / f"{index:02d}.{suffix}")
    return root


def both_paths(dataset, batch_size, **options):
    """The first batch made on the host, and the same batch as windows."""
    settings = dict(scale=SCALE, crop=CROP, batch_size=batch_size, seed=3, color_shift=False,
                    **options)
    host = next(iter(data.train_pipeline(dataset, **settings)))
    device = next(iter(data.train_pipeline(
        dataset, placement=data.Placement(resample="device"), **settings)))
    return host, device


def crops_of(windows):
    return keras.ops.convert_to_numpy(augment.WindowCrop(CROP)(windows))


def test_device_crops_equal_the_host_path(photo_folder):
    dataset = data.load(str(photo_folder), "train")
    (host, host_labels), (windows, labels) = both_paths(dataset, 30)
    bucket = window_bucket(CROP)
    assert bucket == 100
    assert windows["windows"].dtype.name == "uint8"
    assert tuple(windows["windows"].shape) == (30, bucket, bucket, 3)
    np.testing.assert_array_equal(labels, host_labels)

    geometry = windows["geometry"].numpy()
    cropped_on_host = (geometry[:, 2] == 1.0) & (np.abs(geometry[:, 3]) == 1.0) & (
        geometry[:, 4] == CROP)
    flipped = geometry[:, 3] < 0
    # Every kind is in the batch: windows handed over (up- and downsampled), oversized ones
    # cropped on the host, mirrored and not.
    assert 5 <= cropped_on_host.sum() <= 25
    assert (geometry[:, 2] < 1.0).any() and (geometry[:, 2] > 1.0).any()
    assert 5 <= flipped.sum() <= 25

    difference = np.abs(crops_of(windows) - host.numpy()).max(axis=(1, 2, 3))
    assert difference[~cropped_on_host].max() < 0.01      # float rounding only
    assert difference[cropped_on_host].max() <= 0.5       # rounded to uint8 on the host


def test_selection_crops_equal_the_host_path(photo_folder):
    dataset = data.load(str(photo_folder), "train")
    options = dict(test_scale=96, crop=CROP, batch_size=30)
    host, labels = next(iter(data.eval_pipeline(dataset, **options)))
    windows, device_labels = next(iter(data.eval_pipeline(dataset, resample_on="device",
                                                          **options)))
    np.testing.assert_array_equal(labels, device_labels)
    assert np.abs(crops_of(windows) - host.numpy()).max() <= 0.5


def test_boxes_follow_the_same_crops_and_flips(tfds_dir):
    dataset = data.load(data.EMBEDDED_NAME, "train[:48]")
    (host, host_targets, host_weights), (windows, targets, weights) = both_paths(
        dataset, 48, boxes=True)
    for name in ("label", "box"):
        np.testing.assert_allclose(targets[name], host_targets[name], atol=1e-6)
        np.testing.assert_array_equal(weights[name], host_weights[name])
    assert 8 <= (windows["geometry"].numpy()[:, 3] < 0).sum() <= 40   # flipped, with their boxes
    assert np.abs(crops_of(windows) - host.numpy()).max() <= 0.5


def test_a_trainer_fits_on_windows(photo_folder):
    dataset = data.load(str(photo_folder), "train")
    train = data.train_pipeline(dataset, scale=SCALE, crop=CROP, batch_size=10, seed=0,
                                placement=data.Placement(resample="device"))
    augmentation = train.augmentation
    assert [layer.name for layer in augmentation.layers[2:]] == ["window_crop", "color_shift"]
    model = build_vgg("A", 2, input_shape=(CROP, CROP, 3), width=0.125)
    trainer = with_training_augmentation(model, augmentation)
    assert sorted(trainer.input) == ["geometry", "windows"]
    trainer.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = trainer.fit(train, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()

    # The colour shift follows the crop: one RGB offset per image (where nothing is clipped).
    windows, _ = next(iter(train))
    shifted = keras.ops.convert_to_numpy(augmentation(windows, training=True))
    offsets = shifted - crops_of(windows)
    inside = (shifted > 0.5) & (shifted < 254.5)
    for offset, keep in zip(offsets, inside):
        for channel in range(3):
            assert np.ptp(offset[..., channel][keep[..., channel]]) < 1e-3


def test_window_crop_serialises_and_loads_safely(tmp_path):
    inputs = augment.window_inputs(window_bucket(32))
    model = keras.Model(inputs, augment.WindowCrop(32, name="window_crop")(inputs))
    path = tmp_path / "crop.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    rng = np.random.default_rng(1)
    batch = {"windows": rng.integers(0, 256, (2, 52, 52, 3), np.uint8),
             "geometry": np.array([[0.3, 50.0, 1.4, -1.5, 50, 52], [-0.2, -0.2, 0.7, 0.7, 30, 24]],
                                  np.float32)}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(batch)),
                               keras.ops.convert_to_numpy(model(batch)), atol=1e-5)
    assert loaded.get_layer("window_crop").get_config()["crop"] == 32


def test_bad_arguments_are_refused(photo_folder):
    dataset = data.load(str(photo_folder), "train")
    with pytest.raises(ValueError, match="augment='device'"):
        data.Placement(augment="host", resample="device")
    with pytest.raises(ValueError, match="must hold at least the crop"):
        data.train_pipeline(dataset, batch_size=4, scale=64, crop=64,
                            placement=data.Placement(resample="device", bucket=60))
    with pytest.raises(ValueError, match="resample must be"):
        data.Placement(resample="gpu")
    with pytest.raises(TypeError, match="vgg_keras.data.Placement"):
        data.train_pipeline(dataset, batch_size=4, scale=64, crop=64, placement="device")
    with pytest.raises(ValueError, match="'center' mode"):
        data.eval_pipeline(dataset, test_scale=64, crop=64, mode="multicrop", resample_on="device")
    with pytest.raises(ValueError, match="neither scale nor flip"):
        augment.training_augmentation(windows=100, crop=64, flip=True)


def test_window_crop_is_the_host_resampling(tmp_path):
    from test_augment import window_reference

    window_reference(tmp_path / "windows.npz")
    reference = np.load(tmp_path / "windows.npz")
    crops = augment.WindowCrop(24)({"windows": reference["windows"],
                                    "geometry": reference["geometry"]})
    assert np.abs(keras.ops.convert_to_numpy(crops) - reference["crops"]).max() < 0.01
