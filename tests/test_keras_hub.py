"""keras-hub VGG presets (the directories ``save_to_preset`` writes and ``from_preset`` caches)
load into our models and give the logits keras-hub gives, with keras-hub's own preprocessing."""

import json
import os
import shutil

import keras
import numpy as np
import pytest

import vgg_keras
from vgg_keras.weights import read_pretrained

keras_hub = pytest.importorskip("keras_hub")

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
REPEATS = {"A": [1, 1, 2, 2, 2], "B": [2, 2, 2, 2, 2], "D": [2, 2, 3, 3, 3]}


def _preset(directory, arch, *, width, image_shape, pooling, classes=5):
    """A keras-hub VGGImageClassifier with random weights and biases, saved as a preset."""
    filters = [int(c * width) for c in (64, 128, 256, 512, 512)]
    backbone = keras_hub.models.VGGBackbone(REPEATS[arch], filters, image_shape=image_shape)
    converter = keras_hub.layers.VGGImageConverter(
        image_size=image_shape[:2], scale=[1 / (255 * s) for s in STD],
        offset=[-m / s for m, s in zip(MEAN, STD)])
    preprocessor = keras_hub.models.VGGImageClassifierPreprocessor(image_converter=converter)
    classifier = keras_hub.models.VGGImageClassifier(
        backbone, classes, preprocessor=preprocessor, pooling=pooling,
        pooling_hidden_dim=int(4096 * width))
    rng = np.random.default_rng(0)
    for variable in classifier.weights:
        # Non-zero biases, so a bias left behind or misplaced changes the logits.
        scale = 0.1 if len(variable.shape) == 1 else float(np.sqrt(2 / np.prod(variable.shape[:-1])))
        variable.assign(rng.normal(0, scale, variable.shape).astype("float32"))
    classifier.save_to_preset(str(directory))
    return classifier, converter


def _their_logits(classifier, converter, images):
    return keras.ops.convert_to_numpy(classifier(converter(images)))


IMAGES_64 = np.random.default_rng(1).uniform(0, 255, (3, 64, 64, 3)).astype("float32")


def test_flatten_head_preset_gives_keras_hubs_logits(tmp_path):
    classifier, converter = _preset(tmp_path / "a", "A", width=1 / 8, image_shape=(64, 64, 3),
                                    pooling="flatten")
    model = vgg_keras.load_vgg(tmp_path / "a")
    assert vgg_keras.arch_of(model) == "A"
    assert model.input_shape == (None, 64, 64, 3)
    assert model.count_params() == classifier.count_params() + 6  # + our stored mean and std
    ours = keras.ops.convert_to_numpy(model(IMAGES_64))
    np.testing.assert_allclose(ours, _their_logits(classifier, converter, IMAGES_64),
                               rtol=1e-5, atol=1e-5)
    assert np.std(ours) > 0.1  # logits that differ, not a constant both sides agree on


def test_imagenet_form_preset_gives_keras_hubs_logits(tmp_path):
    """The published presets' head: fc1 a 7x7 convolution, fc2 a 1x1 one, then global pooling;
    at 224 pixels that is fc6 and fc7 reading the flattened 7x7 pool5 map."""
    classifier, converter = _preset(tmp_path / "d", "D", width=1 / 16,
                                    image_shape=(None, None, 3), pooling="avg")
    pretrained = read_pretrained(tmp_path / "d")
    assert (pretrained.arch, pretrained.description) == ("D", "keras-hub vgg16 preset")
    assert pretrained.preprocessing["std"] == pytest.approx([255 * s for s in STD])
    assert pretrained.preprocessing["mean"] == pytest.approx([255 * m for m in MEAN])
    model = vgg_keras.load_vgg(tmp_path / "d", kind="classifier")
    images = np.random.default_rng(2).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    converter = keras_hub.layers.VGGImageConverter(
        image_size=(224, 224), scale=converter.scale, offset=converter.offset)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images)),
                               _their_logits(classifier, converter, images),
                               rtol=1e-5, atol=1e-5)


def test_backbone_only_preset_loads_the_conv_layers(tmp_path):
    classifier, _ = _preset(tmp_path / "b", "B", width=1 / 8, image_shape=(64, 64, 3),
                            pooling="flatten")
    for name in ("task.json", "task.weights.h5"):
        os.remove(tmp_path / "b" / name)
    with pytest.raises(ValueError, match="include_top=False"):
        vgg_keras.build_vgg("B", 5, width=1 / 8, input_shape=(64, 64, 3), weights=tmp_path / "b")
    model = vgg_keras.build_vgg("B", include_top=False, width=1 / 8, input_shape=(64, 64, 3),
                                weights=tmp_path / "b")
    normalized = (IMAGES_64 / 255 - np.array(MEAN)) / np.array(STD)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(IMAGES_64)),
        keras.ops.convert_to_numpy(classifier.backbone(normalized.astype("float32"))),
        rtol=1e-5, atol=1e-5)


def test_bad_presets_fail_naming_the_file(tmp_path):
    _preset(tmp_path / "a", "A", width=1 / 8, image_shape=(64, 64, 3), pooling="flatten")
    with pytest.raises(ValueError, match="not a keras-hub preset") as info:
        vgg_keras.load_vgg(tmp_path)
    assert str(tmp_path) in str(info.value)

    other = tmp_path / "other"
    shutil.copytree(tmp_path / "a", other)
    config = json.loads((other / "config.json").read_text())
    config["class_name"] = "ResNetBackbone"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="ResNetBackbone.*not a VGGBackbone") as info:
        vgg_keras.load_vgg(other)
    assert str(other / "config.json") in str(info.value)

    config["class_name"] = "VGGBackbone"
    config["config"]["stackwise_num_filters"] = [8, 16, 32, 64, 32]
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="not the paper's"):
        vgg_keras.load_vgg(other)

    os.remove(tmp_path / "a" / "task.weights.h5")
    with pytest.raises(ValueError, match="no task.weights.h5"):
        vgg_keras.load_vgg(tmp_path / "a")
