"""Localisation (Appendix A): PCR loss masking, localizer from a classifier, saving, both test
protocols on hand-worked cases, bad input, and train_loc.py end to end."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_keras.localization import (
    MONITOR, BoxAccuracy, BoxL2, BoxRegressionLoss, dense_boxes, localization_errors,
    localize_image, pack_targets, protocol1, protocol2, regression_of, run_protocol1,
    run_protocol2,
)
from vgg_keras.localization.protocols import (
    protocol1_per_image, protocol2_per_image, protocol2_predictions,
)
from vgg_keras.localization.training import compile_localizer, freeze_for_finetune
from vgg_keras.models import PRIOR_BOX, build_localizer, build_vgg
from vgg_keras.fitting import ResumableTraining

TINY = ["--arch", "A", "--width", "0.125", "--crop", "32", "--scale", "36:44", "--batch-size",
        "16", "--init", "glorot", "--data", "vgg_shapes/small", "--verbose", "0", "--no-report"]


@pytest.fixture(scope="module")
def classifier():
    keras.utils.set_random_seed(1)
    return build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125, init="glorot")


# -- loss ------------------------------------------------------------------------------------


def test_pcr_loss_penalises_only_the_ground_truth_class():
    loss = BoxRegressionLoss(num_classes=3)
    pred = tf.Variable(np.random.default_rng(0).normal(size=(2, 12)).astype("float32"))
    y = np.array([[0.5, 0.5, 0.2, 0.4, 1], [0.1, 0.2, 0.3, 0.4, 2]], "float32")
    with tf.GradientTape() as tape:
        value = loss(y, pred)
    grad = tape.gradient(value, pred).numpy().reshape(2, 3, 4)
    p = pred.numpy().reshape(2, 3, 4)
    expected = np.zeros_like(grad)
    expected[0, 1] = (p[0, 1] - y[0, :4]) / 2  # mean over the batch of 0.5 * ||.||^2
    expected[1, 2] = (p[1, 2] - y[1, :4]) / 2
    np.testing.assert_allclose(grad, expected, rtol=1e-5, atol=1e-7)
    assert np.all(grad[0, [0, 2]] == 0) and np.all(grad[1, :2] == 0)  # exactly zero
    manual = np.mean([0.5 * np.sum((p[0, 1] - y[0, :4]) ** 2),
                      0.5 * np.sum((p[1, 2] - y[1, :4]) ** 2)])
    np.testing.assert_allclose(float(value), manual, rtol=1e-5)
    # Other classes' outputs are never read: not even a NaN there reaches the loss.
    poisoned = p.copy()
    poisoned[0, 0] = np.nan
    assert np.isfinite(float(loss(y, poisoned.reshape(2, 12))))


def test_scr_loss_and_box_accuracy():
    y = np.array([[0.5, 0.5, 0.4, 0.4, 7], [0.5, 0.5, 0.4, 0.4, 3]], "float32")
    pred = np.array([[0.5, 0.5, 0.4, 0.4], [0.1, 0.1, 0.1, 0.1]], "float32")
    value = float(BoxRegressionLoss()(y, pred))
    np.testing.assert_allclose(value, 0.5 * (0 + 0.5 * (0.16 * 2 + 0.09 * 2)), rtol=1e-5)
    metric = BoxAccuracy()
    metric.update_state(y, pred)
    assert float(metric.result()) == 0.5
    with pytest.raises(ValueError, match="40 outputs but the loss expects 4"):
        BoxRegressionLoss()(y, np.zeros((2, 40), "float32"))


def test_pack_targets_masks_degenerate_boxes_and_rejects_foreign_classes():
    labels = tf.constant([0, 1, 2])
    yxyx = tf.constant([[0.2, 0.1, 0.6, 0.5], [0.3, 0.3, 0.3, 0.8], [0, 0, 0, 0]], tf.float32)
    y, weight = pack_targets(labels, yxyx, num_classes=3)
    np.testing.assert_allclose(y[0].numpy(), [0.3, 0.4, 0.4, 0.4, 0.0], atol=1e-6)
    assert weight.numpy().tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(tf.errors.InvalidArgumentError, match="beyond the localizer's head"):
        pack_targets(tf.constant([0, 5]), yxyx[:2], num_classes=3)


# -- model -----------------------------------------------------------------------------------


def test_localizer_keeps_the_classifiers_conv_and_fc_weights(classifier):
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in classifier.layers}
    for regression, outputs in (("scr", 4), ("pcr", 40)):
        loc = build_localizer(classifier, regression=regression)
        assert loc.output_shape == (None, outputs)
        assert regression_of(loc)[0] == regression
        for layer in loc.layers:
            if layer.name == "fc8_box" or not layer.weights:
                continue
            for a, b in zip(layer.get_weights(), before[layer.name]):
                np.testing.assert_array_equal(a, b)
    # No shared layers: training the localizer leaves the classifier alone.
    loc.get_layer("fc7").set_weights([np.zeros_like(w) for w in loc.get_layer("fc7").get_weights()])
    np.testing.assert_array_equal(classifier.get_layer("fc7").get_weights()[0], before["fc7"][0])
    # A classifier of other classes: the box head is made for the classes asked for.
    assert build_localizer(classifier, 5, regression="pcr").output_shape == (None, 5 * 4)
    with pytest.raises(ValueError, match="regression must be one of"):
        build_localizer(classifier, regression="xyz")
    with pytest.raises(ValueError, match="needs num_classes"):
        build_localizer("A", input_shape=(32, 32, 3), width=0.125)


def test_localizer_saves_and_exports(classifier, tmp_path):
    loc = build_localizer(classifier, regression="pcr")
    loc.compile(optimizer="sgd", loss=BoxRegressionLoss(10), metrics=[BoxAccuracy(10)])
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    expected = loc.predict(x, verbose=0)
    loc.save(tmp_path / "loc.keras")
    loaded = keras.saving.load_model(tmp_path / "loc.keras", safe_mode=True)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert isinstance(loaded.loss, BoxRegressionLoss) and loaded.loss.num_classes == 10
    loc.export(str(tmp_path / "saved_model"), verbose=False)
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    np.testing.assert_allclose(served.serve(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_fc_finetuning_starts_from_the_prior_box_and_learns(classifier):
    """A new fc8_box with a zero bias predicted a box of no size at the crop's corner
    (IoU 0 everywhere); it starts at the whole crop, and FC-only training lowers the loss
    without touching the conv layers."""
    keras.utils.set_random_seed(0)
    loc = freeze_for_finetune(build_localizer(classifier, regression="pcr"), "fc")
    assert [w.path.split("/")[0] for w in loc.trainable_weights] == [
        "fc6", "fc6", "fc7", "fc7", "fc8_box", "fc8_box"]
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (32, 32, 32, 3)).astype("float32")
    centre = rng.uniform(0.3, 0.7, (32, 2))
    size = rng.uniform(0.2, 0.5, (32, 2))
    y = np.concatenate([centre, size, rng.integers(0, 10, (32, 1))], axis=1).astype("float32")
    start = loc.predict(x, verbose=0).reshape(32, 10, 4)
    np.testing.assert_allclose(start.mean(axis=(0, 1)), PRIOR_BOX, atol=0.05)
    compile_localizer(loc, keras.optimizers.SGD(1e-3, momentum=0.9))
    conv = loc.get_layer("block1_conv1").get_weights()[0].copy()
    l2 = BoxRegressionLoss(10)
    before = float(l2(y, loc(x, training=False)))
    loc.fit(x, y, batch_size=8, epochs=2, verbose=0)
    after = float(l2(y, loc(x, training=False)))
    assert before > 0.05 and after < 0.8 * before, (before, after)
    np.testing.assert_array_equal(loc.get_layer("block1_conv1").get_weights()[0], conv)


def test_schedule_follows_box_l2_while_box_accuracy_is_flat(tmp_path):
    """On val_box_accuracy, flat at 0 while the boxes still moved, the schedule cut
    the rate every 2 epochs and kept epoch 1's weights as the final model."""
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(1e-3), "mse")
    keeper = ResumableTraining(tmp_path, monitor=MONITOR[0], mode=MONITOR[1], patience=2)
    keeper.set_model(model)
    for epoch, l2 in enumerate([0.4, 0.3, 0.2, 0.1]):
        keeper.on_epoch_end(epoch, {"val_box_accuracy": 0.0, MONITOR[0]: l2})
    assert keeper.state["best_epoch"] == 4 and keeper.state["drops"] == 0
    # BoxL2 is the loss alone, sample-weighted like the loss (no weight decay in it).
    y = np.array([[0.5, 0.5, 0.4, 0.4, 1], [0.5, 0.5, 0.4, 0.4, 0]], "float32")
    pred = np.zeros((2, 8), "float32")
    metric = BoxL2(num_classes=2)
    metric.update_state(y, pred, sample_weight=np.array([1.0, 0.0]))
    np.testing.assert_allclose(float(metric.result()), 0.5 * (0.25 * 2 + 0.16 * 2), rtol=1e-5)


# -- protocol 1 ------------------------------------------------------------------------------


def fixed_predictor(rows):
    """A 'localizer' that outputs rows[i] for the one-hot input e_i."""
    rows = np.asarray(rows, "float32")
    inputs = keras.Input((len(rows),))
    layer = keras.layers.Dense(rows.shape[1], use_bias=False)
    model = keras.Model(inputs, layer(inputs))
    layer.set_weights([rows])
    return model


def test_protocol1_hand_cases():
    junk = [0.9, 0.9, 0.01, 0.01]
    rows = [
        junk + [0.4, 0.4, 0.4, 0.4],           # label 1, exactly its box: right
        [0.75, 0.75, 0.5, 0.5] + junk,         # label 0, matches the 2nd of two boxes: right
        [0.25, 0.5, 0.5, 1.0] + junk,          # label 0, IoU exactly 0.5: wrong
        junk + junk,                           # no ground-truth box: skipped
        junk + junk,                           # only a degenerate box: skipped
    ]
    pad = [-1.0] * 4
    labels = {
        "label": np.array([1, 0, 0, 1, 0]),
        "boxes": np.array([[[0.2, 0.2, 0.6, 0.6], pad], [[0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]],
                           [[0, 0, 1, 1], pad], [pad, pad], [[0.5, 0.5, 0.5, 0.9], pad]]),
        "num_boxes": np.array([1, 2, 1, 0, 1]),
    }
    result = protocol1(fixed_predictor(rows), [(np.eye(5, dtype="float32"), labels)])
    assert result["images"] == 3 and result["skipped"] == 2
    assert result["error"] == pytest.approx(100 / 3)
    # Image by image: the same verdicts, with the boxes a picture of them needs.
    per_image = list(protocol1_per_image(fixed_predictor(rows),
                                         [(np.eye(5, dtype="float32"), labels)]))
    assert [r.right for r in per_image] == [True, True, False, False, False]
    assert [r.skipped for r in per_image] == [False, False, False, True, True]
    np.testing.assert_allclose([r.iou for r in per_image[:3]], [1.0, 1.0, 0.5])
    np.testing.assert_allclose(per_image[0].box, [0.2, 0.2, 0.6, 0.6])
    np.testing.assert_allclose(per_image[1].ground_truth, labels["boxes"][1])
    assert per_image[4].ground_truth.shape == (0, 4) and np.isnan(per_image[4].iou)
    labels["label"] = np.array([1, 0, 0, 1, 2])
    with pytest.raises(ValueError, match="Class id 2 is beyond the head's 2 classes"):
        protocol1(fixed_predictor(rows), [(np.eye(5, dtype="float32"), labels)])


# -- protocol 2 ------------------------------------------------------------------------------


def test_dense_boxes_are_placed_at_their_window():
    # A 32x64 image, crop 32: two locations, windows at x = 0 and x = 32 pixels.
    box_map = np.array([[[[0.5, 0.5, 1.0, 1.0]], [[0.5, 0.5, 1.0, 1.0]]]])
    out = dense_boxes(box_map, (32, 64), 32)
    np.testing.assert_allclose(out[0, 0, 0], [0, 0, 1, 0.5])
    np.testing.assert_allclose(out[0, 1, 0], [0, 0.5, 1, 1])
    out = dense_boxes(np.array([[[[0.25, 0.5, 0.5, 0.5]]]]), (64, 64), 32)
    np.testing.assert_allclose(out[0, 0, 0], [0.125, 0, 0.375, 0.25])


def test_protocol2_merges_and_rates_by_class_scores():
    a, a2, far = [0.1, 0.1, 0.5, 0.5], [0.1, 0.1, 0.5, 0.6], [0.6, 0.6, 0.9, 0.9]
    # SCR: three locations share their box over the classes.
    scr_boxes = np.array([[a], [a2], [far]])
    rates = np.array([[0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])
    guesses = localize_image([(scr_boxes, rates)], np.array([0.6, 0.4]))
    assert [c for c, _ in guesses] == [0, 1]
    np.testing.assert_allclose(guesses[0][1], [0.1, 0.1, 0.5, 0.55])  # a, a2 merged: 1.3 > 0.2
    np.testing.assert_allclose(guesses[1][1], far)                    # 0.8 > 0.4 + 0.3
    # PCR from two nets/scales: the union is merged per class.
    pcr1 = np.array([[a, far]])
    pcr2 = np.array([[a2, far]])
    guesses = localize_image([(pcr1, np.array([[0.9, 0.1]])), (pcr2, np.array([[0.8, 0.2]]))],
                             np.array([0.3, 0.7]), top=5)
    assert [c for c, _ in guesses] == [1, 0]
    np.testing.assert_allclose(guesses[0][1], far)
    np.testing.assert_allclose(guesses[1][1], [0.1, 0.1, 0.5, 0.55])
    # ILSVRC criterion with several ground-truth boxes: the 2nd guess hits the 2nd box.
    gt = np.array([[0, 0, 0.05, 0.05], [0.1, 0.1, 0.5, 0.55]])
    assert localization_errors(guesses, 0, gt) == {"top1": 1.0, "top5": 0.0}
    assert localization_errors(guesses, 1, gt) == {"top1": 1.0, "top5": 1.0}  # right class, bad box



def test_protocol2_merging_criterion_is_a_choice_down_to_the_command_line():
    from vgg_keras import boxes
    from vgg_keras.options import LocalizationConfig, build_parser, from_args

    # Two concentric predictions (IoU 0.25) and a confident stray one, SCR, one class.
    big, small, stray = [0.1, 0.1, 0.9, 0.9], [0.3, 0.3, 0.7, 0.7], [0.0, 0.0, 0.2, 0.2]
    predictions = [(np.array([[big], [small], [stray]]), np.array([[0.4], [0.4], [0.6]]))]
    by_iou = localize_image(predictions, np.array([1.0]), merge="iou")
    by_overfeat = localize_image(predictions, np.array([1.0]), merge="overfeat")
    np.testing.assert_allclose(by_iou[0][1], stray)                     # 0.6 > 0.4, 0.4
    np.testing.assert_allclose(by_overfeat[0][1], [0.2, 0.2, 0.8, 0.8])  # 0.4 + 0.4 > 0.6
    np.testing.assert_allclose(
        localize_image(predictions, np.array([1.0]), merge="overfeat", merge_threshold=-0.2)[0][1],
        stray)                                                          # score -0.16 > -0.2
    with pytest.raises(ValueError, match="merge must be one of"):
        localize_image(predictions, np.array([1.0]), merge="nms")
    parser = build_parser(LocalizationConfig, "")
    config = from_args(LocalizationConfig, parser.parse_args([]))
    assert (config.merge, config.merge_threshold) == (boxes.DEFAULT_MERGE, None)
    config = from_args(LocalizationConfig, parser.parse_args(
        ["--merge", "iou", "--merge-threshold", "0.6"]))
    assert (config.merge, config.merge_threshold) == ("iou", 0.6)
    assert LocalizationConfig.from_dict(config.to_dict()) == config
    assert {"merge", "merge_threshold"} <= LocalizationConfig.resumable()

def test_protocol2_skips_images_without_usable_boxes_and_rejects_foreign_classes(classifier):
    loc = build_localizer(classifier, regression="pcr")
    image = np.random.default_rng(0).uniform(0, 255, (1, 32, 48, 3)).astype("float32")
    pad = [-1.0] * 4

    def item(label, boxes, count):
        return image, {"label": np.array([label]), "boxes": np.array([boxes], "float32"),
                       "num_boxes": np.array([count])}

    good = item(3, [[0.1, 0.1, 0.9, 0.9], pad], 1)
    none = item(3, [pad, pad], 0)
    flat = item(3, [[0.5, 0.2, 0.5, 0.8], pad], 1)  # zero height
    result = protocol2(loc, classifier, lambda q: [good, none, flat], scales=[32])
    assert result["images"] == 1 and result["skipped"] == 2
    with pytest.raises(ValueError, match="Class id 12 is beyond the head's 10 classes"):
        protocol2(loc, classifier, lambda q: [item(12, [[0.1, 0.1, 0.9, 0.9], pad], 1)],
                  scales=[32])


def mixed_box_examples(count=10):
    """Random images of classes 0 to 9 whose box alternates between the whole image (where an
    untrained localizer's prior box, the whole crop, is right) and a small corner (where it is
    wrong); the last has a degenerate box only."""
    rng = np.random.default_rng(3)
    images = [tf.io.encode_png(rng.integers(0, 256, (32 + 4 * (i % 3), 36, 3), dtype=np.uint8))
              .numpy() for i in range(count)]
    boxes = [[0.0, 0.0, 1.0, 1.0] if i % 2 else [0.0, 0.0, 0.3, 0.3] for i in range(count - 1)]
    boxes.append([0.5, 0.2, 0.5, 0.8])
    return tf.data.Dataset.from_tensor_slices(
        (images, np.arange(count, dtype=np.int32) % 10, np.asarray(boxes, "float32")[:, None])
    ).map(lambda image, label, box: {"image": image, "label": label, "boxes": box,
                                     "filename": tf.constant("")})


def test_per_image_results_add_up_to_the_protocols_errors(classifier):
    """What the report draws is what the tables count: averaged, the per-image results are
    protocol 1's and protocol 2's errors, and each verdict follows from its own boxes."""
    from vgg_keras import boxes
    from vgg_keras.evaluate import protocol_batches

    examples = mixed_box_examples()
    keras.utils.set_random_seed(0)
    loc = build_localizer(classifier, regression="pcr")
    per_image = list(protocol1_per_image(loc, protocol_batches(examples, "center", 36, 32, 4,
                                                               boxes=True)))
    rated = [r for r in per_image if not r.skipped]
    assert len(per_image) == 10 and len(rated) == 9
    table = protocol1(loc, protocol_batches(examples, "center", 36, 32, 4, boxes=True))
    assert (table["images"], table["skipped"]) == (9, 1)
    assert table["error"] == pytest.approx(100 * np.mean([not r.right for r in rated]))
    assert table["mean_iou"] == pytest.approx(np.mean([r.iou for r in rated]))
    assert 0 < table["error"] < 100       # right on some images, wrong on others
    for r in rated:
        assert r.right == (boxes.iou(r.box, r.ground_truth).max() > 0.5)

    def make_batches(q):
        return protocol_batches(examples, "dense", q, boxes=True).as_numpy_iterator()

    per_image = list(protocol2_per_image(loc, classifier, make_batches, scales=[32, 40]))
    rated = [r for r in per_image if not r.skipped]
    assert len(rated) == 9 and per_image[-1].skipped and per_image[-1].guesses == []
    table = protocol2(loc, classifier, make_batches, scales=[32, 40])
    for key in ("top1_loc", "top5_loc", "top1_cls", "top5_cls"):
        assert table[key] == pytest.approx(100 * np.mean([r.errors[key] for r in rated])), key
    assert 0 < table["top5_loc"] < 100 and 0 < table["top5_cls"] < 100
    outputs = [item for item in protocol2_predictions(loc, classifier, make_batches,
                                                      scales=[32, 40]) if item[2] is not None]
    for r, (label, gt, predictions, posterior) in zip(rated, outputs):
        assert r.label == label and min(r.image.shape[:2]) == 32
        np.testing.assert_allclose(r.posterior, posterior)
        ranked = [c for c, _ in r.guesses]
        assert ranked == list(np.argsort(-posterior, kind="stable")[:5])
        for (c, box), (c2, box2) in zip(r.guesses, localize_image(predictions, posterior)):
            assert c == c2
            np.testing.assert_allclose(box, box2)
        assert r.errors["top5_cls"] == float(label not in ranked)
        assert r.right == (ranked[0] == label and boxes.localization_correct(
            r.guesses[0][1], gt))


def box_examples(count=6, seed=0):
    """In-memory examples of vgg_keras.data.load's form, one or two boxes each."""
    rng = np.random.default_rng(seed)
    images = [tf.io.encode_png(rng.integers(0, 256, (40 + 4 * i, 56, 3), dtype=np.uint8)).numpy()
              for i in range(count)]
    boxes = [[[0.1, 0.2, 0.7, 0.8]] * (1 + i % 2) for i in range(count)]
    ragged = tf.RaggedTensor.from_row_lengths(
        np.concatenate(boxes).astype("float32"), [len(b) for b in boxes])
    return tf.data.Dataset.from_tensor_slices(
        (images, np.arange(count, dtype=np.int32) % 10, ragged)).map(
        lambda image, label, box: {"image": image, "label": label, "boxes": box,
                                   "filename": tf.constant("")})


def test_run_protocols_read_the_protocol_registry(classifier):
    loc = build_localizer(classifier, regression="scr")
    row = run_protocol1(loc, box_examples(), scale=36, batch_size=4)
    assert row["regression"] == "scr" and row["images"] == 6 and row["scales"] == [36]
    row = run_protocol2(loc, classifier, box_examples(), scales=[32, 40])
    assert row["images"] == 6 and row["scales"] == [32, 40] and 0 <= row["top5_loc"] <= 100


# -- train_loc.py ----------------------------------------------------------------------------


@pytest.mark.slow
def test_train_loc_end_to_end_resumes_and_evaluates(tfds_dir, tmp_path, classifier, capsys):
    import train_loc

    classifier.save(tmp_path / "cls.keras")
    run_dir = tmp_path / "loc"
    args = TINY + ["--init-from", str(tmp_path / "cls.keras"), "--steps-per-epoch", "4",
                   "--lr", "1e-3",   # the paper's rate as given, not scaled to the batch of 16
                   "--run-dir", str(run_dir), "--finetune", "fc", "--regression", "pcr",
                   "--eval-split", "validation[:24]", "--resample-on", "device"]
    assert train_loc.main(args + ["--epochs", "1"]) == 0
    assert train_loc.main(args + ["--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "Resuming" in out and "after epoch 1" in out
    assert "resampled on the device" in out
    state = json.loads((run_dir / "checkpoints" / "state.json").read_text())
    assert state["epoch"] == 2
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["protocol1"]["images"] > 0 and 0 <= summary["protocol1_error"] <= 100
    assert summary["protocol1"]["mean_iou"] > 0.1  # not the degenerate boxes of a zero-bias head
    l2 = [row["val_box_l2"] for row in state["history"]]
    assert state["best_epoch"] == 1 + int(np.argmin(l2))
    assert 0 <= summary["protocol2_top5_error"] <= 100
    trained = keras.saving.load_model(run_dir / "model.keras", safe_mode=True)
    # FC-only fine-tuning: the conv layers are still the classifier's.
    np.testing.assert_array_equal(trained.get_layer("block3_conv2").get_weights()[0],
                                  classifier.get_layer("block3_conv2").get_weights()[0])
    assert not np.array_equal(trained.get_layer("fc7").get_weights()[0],
                              classifier.get_layer("fc7").get_weights()[0])
    report = tmp_path / "eval.json"
    assert train_loc.main(TINY + ["--evaluate", str(run_dir / "model.keras"),
                                  str(run_dir / "model.keras"), "--classifier",
                                  str(tmp_path / "cls.keras"), "--eval-scales", "36", "44",
                                  "--eval-output", str(report), "--eval-split",
                                  "validation[:16]"]) == 0
    out = capsys.readouterr().out
    assert "Protocol 1" in out and "Protocol 2" in out and "top-5 loc" in out
    tables = json.loads(report.read_text())
    assert len(tables["protocol1"]) == 2 and [r["scales"] for r in tables["protocol2"]] == [
        [36], [44], [36, 44]]


@pytest.mark.slow
def test_train_loc_from_scratch_says_so(tfds_dir, tmp_path, capsys):
    import train_loc

    assert train_loc.main(TINY + ["--regression", "scr", "--epochs", "1", "--steps-per-epoch",
                                  "2", "--run-dir", str(tmp_path / "scratch"), "--eval-split",
                                  "validation[:8]"]) == 0
    assert "from scratch" in capsys.readouterr().out


@pytest.mark.slow
def test_a_classifier_of_other_classes_and_data_without_boxes(tfds_dir, tmp_path,
                                                                         capsys):
    import train_loc

    # A classifier of 3 classes for data of 10: fc8_box is made for the data's 10, and that
    # classifier does not rate protocol 2 by classes it does not know.
    small = build_vgg("A", 3, input_shape=(32, 32, 3), width=0.125)
    small.save(tmp_path / "cls3.keras")
    assert train_loc.main(TINY + ["--init-from", str(tmp_path / "cls3.keras"), "--epochs", "1",
                                  "--steps-per-epoch", "2", "--eval-split", "validation[:16]",
                                  "--run-dir", str(tmp_path / "r1")]) == 0
    assert "has 3 classes, the data 10" in capsys.readouterr().out
    summary = json.loads((tmp_path / "r1" / "summary.json").read_text())
    assert "protocol2" not in summary
    assert keras.saving.load_model(tmp_path / "r1" / "model.keras").output_shape == (None, 40)

    for name in ("cat", "dog"):
        folder = tmp_path / "plain" / name
        folder.mkdir(parents=True)
        for i in range(4):
            png = tf.io.encode_png(tf.fill([40, 40, 3], tf.constant(30 * i, tf.uint8)))
            (folder / f"{i}.png").write_bytes(png.numpy())
    plain = [*TINY]
    plain[plain.index("--data") + 1] = str(tmp_path / "plain")
    assert train_loc.main(plain + ["--val-fraction", "0.25", "--epochs", "1", "--run-dir",
                                   str(tmp_path / "r2")]) == 2
    assert "has no bounding boxes" in capsys.readouterr().err


def test_both_protocols_show_progress_in_images(classifier, capfd):
    from vgg_keras import progress

    progress.set_quiet(False)
    try:
        capfd.readouterr()
        boxes = {"label": np.array([0, 1, 0]), "num_boxes": np.array([1, 1, 1]),
                 "boxes": np.tile([[[0.2, 0.2, 0.6, 0.6]]], (3, 1, 1))}
        predictor = fixed_predictor([[0.4, 0.4, 0.4, 0.4]] * 3)
        protocol1(predictor, [(np.eye(3, dtype="float32"), boxes)])   # one batch of 3 images
        image = np.random.default_rng(1).uniform(0, 255, (1, 32, 48, 3)).astype("float32")
        one = (image, {"label": np.array([3]), "boxes": np.array([[[0.1, 0.1, 0.9, 0.9]]]),
                       "num_boxes": np.array([1])})
        protocol2(build_localizer(classifier, regression="scr"), classifier,
                  lambda q: [one, one], scales=[32, 40])
        err = capfd.readouterr().err
        # Counted in images, not batches, each bar to its end.
        assert "3/3" in err.split(f"protocol 1 {predictor.name}: 100%")[1].split("\n")[0]
        assert "2/2" in err.split("protocol 2 Q=32,40: 100%")[1].split("\n")[0]
    finally:
        progress.set_quiet(False)
