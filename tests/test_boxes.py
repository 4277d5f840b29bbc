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


# -- OverFeat's merging (Sermanet et al. 2014, section 4.3) and the criteria side by side -----


def test_match_score_is_centre_distance_minus_intersection_in_image_units():
    box = [0.0, 0.0, 0.5, 0.5]
    others = [box,                       # same box: -area
              [0.0, 0.1, 0.5, 0.6],      # shifted 0.1 right: 0.1 - 0.5 * 0.4
              [0.3, 0.4, 0.6, 0.8],      # overlapping corner: hypot(.2, .35) - .2 * .1
              [0.5, 0.5, 1.0, 1.0]]      # touching corners, no overlap: hypot(.5, .5)
    np.testing.assert_allclose(boxes.match_score([box], others),
                               [[-0.25, -0.1, np.hypot(0.2, 0.35) - 0.02, np.sqrt(0.5)]])
    # More shared area makes a pair more alike (a lower score), never less.
    shifts = np.linspace(0.0, 0.5, 11)
    shifted = [[0.0, s, 0.5, 0.5 + s] for s in shifts]
    assert np.all(np.diff(boxes.match_score([box], shifted)[0]) > 0)
    np.testing.assert_allclose(boxes.match_score(others, others),
                               boxes.match_score(others, others).T)


def test_overfeat_merge_averages_near_identical_boxes_and_sums_their_scores():
    merged, rated = boxes.overfeat_merge([[0.10, 0.20, 0.70, 0.80], [0.12, 0.22, 0.70, 0.84]],
                                         [0.25, 0.5])
    np.testing.assert_allclose(merged, [[0.11, 0.21, 0.70, 0.82]])
    np.testing.assert_allclose(rated, [0.75])


def test_overfeat_merge_keeps_far_apart_boxes_separate():
    far = [[0.0, 0.0, 0.3, 0.3], [0.6, 0.6, 0.9, 0.9], [0.0, 0.7, 0.2, 0.9]]
    merged, rated = boxes.overfeat_merge(far, [0.2, 0.5, 0.3])
    np.testing.assert_allclose(merged, [far[1], far[2], far[0]])    # by decreasing score
    np.testing.assert_allclose(rated, [0.5, 0.3, 0.2])
    # A threshold as large as the longest distance merges even these: the threshold counts.
    merged, rated = boxes.overfeat_merge(far, [0.2, 0.5, 0.3], threshold=1.5)
    np.testing.assert_allclose(merged, [np.mean(far, axis=0)])
    np.testing.assert_allclose(rated, [1.0])


def test_overfeat_threshold_is_the_largest_score_that_still_merges():
    pair = [[0.0, 0.0, 0.2, 0.2], [0.0, 0.3, 0.2, 0.5]]   # disjoint: score = distance 0.3
    assert len(boxes.overfeat_merge(pair, [1, 1], threshold=0.29)[0]) == 2
    assert len(boxes.overfeat_merge(pair, [1, 1], threshold=0.31)[0]) == 1
    assert len(boxes.overfeat_merge(pair, [1, 1])[0]) == 2          # default: must overlap


def test_overfeat_merges_concentric_boxes_that_iou_keeps_apart():
    big, small = [0.1, 0.1, 0.9, 0.9], [0.3, 0.3, 0.7, 0.7]         # IoU 0.25, same centre
    assert len(boxes.greedy_merge([big, small], [1, 1])[0]) == 2
    merged, rated = boxes.overfeat_merge([big, small], [1, 1])
    np.testing.assert_allclose(merged, [[0.2, 0.2, 0.8, 0.8]])
    # ... and pairs the closest boxes first: of three, the two nearly equal ones.
    merged, rated = boxes.overfeat_merge([[0, 0, .4, .4], [.5, .5, .9, .9], [0, .02, .4, .42]],
                                         [1, 3, 1], threshold=-0.1)
    np.testing.assert_allclose(merged, [[.5, .5, .9, .9], [0, .01, .4, .41]])
    np.testing.assert_allclose(rated, [3, 2])


@pytest.mark.parametrize("merge", ["overfeat", "iou"])
def test_highest_summed_score_wins(merge):
    # Three close low-rated predictions outweigh one confident stray one: 3 x 0.3 > 0.6.
    cluster = [[0.10, 0.10, 0.60, 0.60], [0.11, 0.10, 0.60, 0.61], [0.10, 0.09, 0.61, 0.60]]
    stray = [0.70, 0.70, 0.95, 0.95]
    merged, rated = boxes.merge_boxes([stray] + cluster, [0.6, 0.3, 0.3, 0.3], merge=merge)
    np.testing.assert_allclose(merged[0], np.mean(cluster, axis=0))
    np.testing.assert_allclose(rated, [0.9, 0.6])
    np.testing.assert_allclose(merged[1], stray)


def _clusters(rng, count):
    """``count`` boxes jittered around three objects, with distinct random scores."""
    objects = np.array([[0.1, 0.1, 0.5, 0.4], [0.3, 0.5, 0.9, 0.95], [0.6, 0.05, 0.8, 0.3]])
    yxyx = objects[rng.integers(0, 3, count)] + rng.normal(0, 0.04, (count, 4))
    return yxyx, rng.permutation(count) / count + 0.01


@pytest.mark.parametrize("merge", ["overfeat", "iou"])
def test_merging_does_not_depend_on_the_order_of_the_predictions(merge):
    rng = np.random.default_rng(3)
    yxyx, scores = _clusters(rng, 40)
    merged, rated = boxes.merge_boxes(yxyx, scores, merge=merge)
    assert 2 <= len(merged) < 40                                    # it merged, not everything
    for _ in range(3):
        order = rng.permutation(len(yxyx))
        again, rated_again = boxes.merge_boxes(yxyx[order], scores[order], merge=merge)
        np.testing.assert_allclose(again, merged, atol=1e-12)
        np.testing.assert_allclose(rated_again, rated, atol=1e-12)


def _merge_by_recomputing_every_pair(yxyx, scores, score_pairs, merges):
    """Reference: the greedy loop written plainly, every pair scored again at every step."""
    members = [[np.asarray(b, dtype=np.float64)] for b in yxyx]
    rated = [float(s) for s in scores]
    while len(members) > 1:
        means = np.stack([np.mean(m, axis=0) for m in members])
        pairs = score_pairs(means, means)
        np.fill_diagonal(pairs, -np.inf)
        i, j = np.unravel_index(np.argmax(pairs), pairs.shape)
        if not merges(pairs[i, j]):
            break
        i, j = min(i, j), max(i, j)
        members[i] += members.pop(j)
        rated[i] += rated.pop(j)
    means = np.stack([np.mean(m, axis=0) for m in members])
    order = np.argsort(-np.asarray(rated), kind="stable")
    return means[order], np.asarray(rated)[order]


def test_merges_match_the_plain_greedy_loop_on_hundreds_of_boxes():
    yxyx, scores = _clusters(np.random.default_rng(5), 300)
    for merge, score_pairs, merges in [
            ("overfeat", lambda a, b: -boxes.match_score(a, b),
             lambda v: -v <= boxes.OVERFEAT_THRESHOLD),
            ("iou", boxes.iou, lambda v: v > 0.5)]:
        merged, rated = boxes.merge_boxes(yxyx, scores, merge=merge)
        expected, expected_rated = _merge_by_recomputing_every_pair(yxyx, scores, score_pairs,
                                                                    merges)
        np.testing.assert_allclose(merged, expected, atol=1e-12)
        np.testing.assert_allclose(rated, expected_rated, atol=1e-12)


def test_merge_boxes_names_the_criteria_and_their_defaults():
    assert set(boxes.MERGES) == {"overfeat", "iou"} and boxes.DEFAULT_MERGE in boxes.MERGES
    assert boxes.MERGE_THRESHOLDS == {"overfeat": boxes.OVERFEAT_THRESHOLD,
                                      "iou": boxes.IOU_THRESHOLD}
    pair = [[0.0, 0.0, 0.6, 0.6], [0.0, 0.1, 0.6, 0.7]]           # IoU 5/7, score -0.2
    assert len(boxes.merge_boxes(pair, [1, 1], merge="iou", threshold=0.75)[0]) == 2
    assert len(boxes.merge_boxes(pair, [1, 1], merge="iou")[0]) == 1
    assert len(boxes.merge_boxes(pair, [1, 1], merge="overfeat", threshold=-0.21)[0]) == 2
    assert len(boxes.merge_boxes(pair, [1, 1], merge="overfeat")[0]) == 1
    empty, no_scores = boxes.merge_boxes(np.zeros((0, 4)), [])
    assert empty.shape == (0, 4) and no_scores.shape == (0,)
    with pytest.raises(ValueError, match="merge must be one of overfeat, iou"):
        boxes.merge_boxes(pair, [1, 1], merge="nms")
    with pytest.raises(ValueError, match="2 boxes but 1 scores"):
        boxes.overfeat_merge(pair, [1])
