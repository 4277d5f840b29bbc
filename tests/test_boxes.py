"""Box encoding, IoU, the ILSVRC localisation criterion and greedy merging, by hand."""

import numpy as np
import pytest
import keras

from vgg_keras import boxes


def test_encoding_round_trips_and_matches_hand_values():
    yxyx = np.array([[0.2, 0.1, 0.6, 0.5], [0.0, 0.0, 1.0, 1.0], [0.5, 0.25, 0.75, 1.0]])
    cxcywh = keras.ops.convert_to_numpy(boxes.encode(yxyx))
    np.testing.assert_allclose(cxcywh, [[0.3, 0.4, 0.4, 0.4], [0.5, 0.5, 1, 1],
                                        [0.625, 0.625, 0.75, 0.25]], atol=1e-7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(boxes.decode(cxcywh)), yxyx, atol=1e-7)


def test_iou_hand_worked():
    unit = np.array([0.0, 0.0, 1.0, 1.0])
    others = np.array([[0, 0, 0.5, 1.0], [0.5, 0.5, 1.5, 1.5], [2, 2, 3, 3], [0, 0, 0, 1]])
    np.testing.assert_allclose(boxes.iou(unit, others), [0.5, 0.25 / 1.75, 0.0, 0.0])
    assert boxes.iou(others[:2], others[:2]).shape == (2, 2)


def test_localization_criterion_with_several_ground_truth_boxes():
    ground_truth = [[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]]
    assert boxes.localization_correct([0.5, 0.5, 0.95, 1.0], ground_truth)       # IoU 0.9
    assert not boxes.localization_correct([0.0, 0.0, 0.4, 0.8], ground_truth)    # IoU exactly 0.5
    assert not boxes.localization_correct([0.2, 0.2, 0.7, 0.7], ground_truth)
    assert not boxes.localization_correct([0, 0, 1, 1], [])


def test_greedy_merge_on_hand_made_predictions():
    predictions = [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.6], [0.6, 0.6, 1.0, 1.0],
                   [0.02, 0.0, 0.5, 0.5], [0.6, 0.6, 1.0, 0.9]]
    scores = [0.5, 0.3, 0.1, 0.2, 0.05]
    merged, rated = boxes.greedy_merge(predictions, scores, threshold=0.5)
    np.testing.assert_allclose(merged, [[0.02 / 3, 0, 0.5, 1.6 / 3], [0.6, 0.6, 1.0, 0.95]])
    np.testing.assert_allclose(rated, [1.0, 0.15])
    apart, _ = boxes.greedy_merge(predictions, scores, threshold=0.99)
    assert len(apart) == 5
    with pytest.raises(ValueError, match="scores"):
        boxes.greedy_merge(predictions, scores[:2])


def test_one_coder_for_every_array_kind():
    import tensorflow as tf

    yxyx = np.array([[0.2, 0.1, 0.6, 0.5], [0.0, 0.25, 1.0, 0.75]])
    expected = [[0.3, 0.4, 0.4, 0.4], [0.5, 0.5, 0.5, 1.0]]
    as_numpy = boxes.encode(yxyx, xp=np)
    assert isinstance(as_numpy, np.ndarray) and as_numpy.dtype == np.float64
    as_tf = boxes.encode(tf.constant(yxyx, tf.float32), xp=tf)
    assert tf.is_tensor(as_tf)
    for encoded in (as_numpy, as_tf.numpy(), keras.ops.convert_to_numpy(boxes.encode(yxyx))):
        np.testing.assert_allclose(encoded, expected, atol=1e-7)
    np.testing.assert_allclose(boxes.decode(np.array(boxes.PRIOR), xp=np), [0, 0, 1, 1])
    np.testing.assert_allclose(boxes.flip(yxyx, xp=np), [[0.2, 0.5, 0.6, 0.9],
                                                        [0.0, 0.25, 1.0, 0.75]])
    np.testing.assert_allclose(boxes.flip(boxes.flip(yxyx, xp=np), xp=np), yxyx)


def test_crop_mapping_and_its_inverse():
    # A 100 x 200 image rescaled to 50 x 100; a 40-pixel crop at (5, 30).
    rescaled, offset = np.array([50.0, 100.0]), np.array([5.0, 30.0])
    yxyx = np.array([[0.1, 0.3, 0.9, 0.7]])
    in_crop = boxes.to_crop(yxyx, rescaled, offset, 40, xp=np)
    np.testing.assert_allclose(in_crop, [[0.0, 0.0, 1.0, 1.0]])   # (5..45, 30..70) pixels
    np.testing.assert_allclose(boxes.from_crop(in_crop, rescaled, offset, 40, xp=np), yxyx)


def test_paired_iou_is_the_iou_box_by_box():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 1, (50, 4))
    b = np.concatenate([rng.uniform(0, 1, (49, 4)), [[0.5, 0.5, 0.5, 0.9]]])   # one degenerate
    paired = boxes.paired_iou(a, b, xp=np)
    np.testing.assert_array_equal(paired, np.diag(boxes.iou(a, b)))
    tensor = keras.ops.convert_to_numpy(boxes.paired_iou(a.astype("float32"), b.astype("float32")))
    np.testing.assert_allclose(tensor, paired, atol=1e-6)
    assert paired[-1] == 0.0
