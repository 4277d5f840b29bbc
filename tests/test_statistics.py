"""A run's input statistics: the training data's own mean RGB and colour PCA by default, stored
in the run directory and in the saved model; ImageNet's or a file's on request."""

import json

import numpy as np
import pytest

import train_cls
from vgg_keras import load_vgg
from vgg_keras.classification import ClassificationTask
from vgg_keras.options import ClassificationConfig
from vgg_keras.configs import IMAGENET_MEAN_RGB
from vgg_keras.data import Statistics, compute_statistics, info, load
from vgg_keras.models import input_normalization

TINY = ["--arch", "A", "--width", "0.125", "--crop", "32", "--scale", "36", "--batch-size", "16",
        "--init", "glorot", "--data", "vgg_shapes/small", "--epochs", "1", "--steps-per-epoch",
        "2", "--eval-methods", "center", "--eval-split", "test[:32]", "--no-report", "--verbose",
        "0"]


@pytest.mark.slow
def test_a_run_uses_and_saves_its_training_datas_statistics(tfds_dir, tmp_path):
    run_dir = tmp_path / "run"
    assert train_cls.main([*TINY, "--run-dir", str(run_dir)]) == 0
    saved = Statistics.read(run_dir / "statistics.json")
    expected = compute_statistics(load("vgg_shapes/small", "train"), max_images=2000,
                                  max_side=256)
    assert saved.num_images == expected.num_images == 1000
    np.testing.assert_allclose(saved.mean, expected.mean, atol=1e-6)
    np.testing.assert_allclose(saved.eigval, expected.eigval, atol=1e-9)
    # The shapes' backgrounds are not ImageNet's photographs: the means differ by > 1 level.
    assert np.max(np.abs(np.subtract(saved.mean, IMAGENET_MEAN_RGB))) > 1.0
    model = load_vgg(run_dir / "model.keras")
    np.testing.assert_allclose(input_normalization(model)["mean"], saved.mean, atol=1e-4)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["statistics"]["from"] == "the training data's (1000 images)"

    # The colour shift of the training crops follows the same principal components.
    config = ClassificationConfig(arch="A", width=0.125, crop=32, scale=36)
    task = ClassificationTask()
    task.prepare(config)
    _, augmentation, _ = task.build(config, info(load("vgg_shapes/small", "train")), saved)
    shift = augmentation.get_layer("color_shift")
    np.testing.assert_allclose(shift.eigval, saved.eigval)
    np.testing.assert_allclose(shift.eigvec, saved.eigvec)


@pytest.mark.slow
def test_imagenet_or_a_files_statistics_on_request(tfds_dir, tmp_path):
    assert train_cls.main([*TINY, "--statistics", "imagenet", "--run-dir",
                           str(tmp_path / "imagenet")]) == 0
    model = load_vgg(tmp_path / "imagenet" / "model.keras")
    np.testing.assert_allclose(input_normalization(model)["mean"], IMAGENET_MEAN_RGB, atol=1e-4)

    mine = Statistics((10.0, 20.0, 30.0), (0.1, 0.01, 0.001),
                      ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)), 5, 500)
    mine.write(tmp_path / "mine.json")
    assert train_cls.main([*TINY, "--statistics", str(tmp_path / "mine.json"), "--run-dir",
                           str(tmp_path / "file")]) == 0
    model = load_vgg(tmp_path / "file" / "model.keras")
    np.testing.assert_allclose(input_normalization(model)["mean"], mine.mean, atol=1e-4)


def test_bad_statistics_files_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_cls.main([*TINY, "--statistics", str(tmp_path / "missing.json")])
    assert exit_info.value.code == 2
    assert "missing.json" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"mean": [1, 2]}')
    with pytest.raises(ValueError, match="broken.json.*'eigval'"):
        Statistics.read(broken)
    broken.write_text("not json")
    with pytest.raises(ValueError, match="broken.json: not a statistics JSON file"):
        Statistics.read(broken)
