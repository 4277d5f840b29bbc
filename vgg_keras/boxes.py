"""Boxes for localisation (paper Appendix A): encoding, IoU, the ILSVRC criterion, merging.

Two layouts are used:

* ``[ymin, xmin, ymax, xmax]`` normalised to [0, 1], as TFDS stores boxes and as the input
  pipeline hands them over ("yxyx");
* ``[cx, cy, w, h]`` relative to the input crop, the paper's box parameters, which the
  regression head predicts ("cxcywh").

Encoding works on any array type through ``keras.ops``; the evaluation helpers are numpy.

>>> encode(np.array([[0.2, 0.1, 0.6, 0.5]]))      # -> [[0.3, 0.4, 0.4, 0.4]]
>>> iou(np.array([0, 0, 1, 1.]), np.array([[0, 0, 0.5, 1.]]))   # -> [0.5]
"""

import numpy as np
from keras import ops


def encode(yxyx):
    """``[ymin, xmin, ymax, xmax]`` -> ``[cx, cy, w, h]`` (last axis)."""
    ymin, xmin, ymax, xmax = ops.unstack(yxyx, 4, axis=-1)
    return ops.stack([(xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin], axis=-1)


def decode(cxcywh):
    """``[cx, cy, w, h]`` -> ``[ymin, xmin, ymax, xmax]`` (last axis)."""
    cx, cy, w, h = ops.unstack(cxcywh, 4, axis=-1)
    return ops.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def area(yxyx):
    """Area of ``[ymin, xmin, ymax, xmax]`` boxes (numpy); degenerate boxes have area 0."""
    yxyx = np.asarray(yxyx, dtype=np.float64)
    return np.clip(yxyx[..., 2] - yxyx[..., 0], 0, None) * np.clip(yxyx[..., 3] - yxyx[..., 1],
                                                                   0, None)


def iou(box, others):
    """Intersection over union of ``box`` (4,) or boxes (N, 4) against ``others`` (M, 4).

    Returns (M,) for one box, (N, M) for several. Degenerate boxes have IoU 0 with anything.
    """
    box = np.asarray(box, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    single = box.ndim == 1
    boxes = box.reshape(-1, 4)[:, None, :]
    top = np.maximum(boxes[..., 0], others[None, :, 0])
    left = np.maximum(boxes[..., 1], others[None, :, 1])
    bottom = np.minimum(boxes[..., 2], others[None, :, 2])
    right = np.minimum(boxes[..., 3], others[None, :, 3])
    inter = np.clip(bottom - top, 0, None) * np.clip(right - left, 0, None)
    union = area(boxes) + area(others)[None, :] - inter
    result = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    return result[0] if single else result


def localization_correct(box, ground_truth, threshold=0.5):
    """The ILSVRC criterion: IoU with any ground-truth box of the class exceeds ``threshold``."""
    ground_truth = np.asarray(ground_truth).reshape(-1, 4)
    if len(ground_truth) == 0:
        return False
    return bool(np.max(iou(box, ground_truth)) > threshold)


def greedy_merge(boxes, scores, *, threshold=0.5):
    """OverFeat-style greedy merging of box predictions (Sermanet et al. 2014).

    Repeatedly takes the two most overlapping predictions (highest IoU) and, while their IoU is
    above ``threshold``, replaces them by one box whose coordinates are the average of all the
    predictions merged into it, rated by the sum of their scores (the classification net's
    confidence). Returns ``(boxes, scores)`` sorted by decreasing score.

    >>> greedy_merge([[0, 0, .5, .5], [0, 0, .5, .6], [.6, .6, 1, 1]], [0.5, 0.3, 0.1])
    (array([[0.  , 0.  , 0.5 , 0.55], [0.6 , 0.6 , 1.  , 1.  ]]), array([0.8, 0.1]))
    """
    sums = [np.asarray(b, dtype=np.float64) for b in np.asarray(boxes).reshape(-1, 4)]
    counts = [1] * len(sums)
    rated = [float(s) for s in np.asarray(scores).reshape(-1)]
    if len(rated) != len(sums):
        raise ValueError(f"{len(sums)} boxes but {len(rated)} scores.")
    while len(sums) > 1:
        means = np.stack([s / c for s, c in zip(sums, counts)])
        overlaps = iou(means, means)
        np.fill_diagonal(overlaps, -1.0)
        i, j = np.unravel_index(np.argmax(overlaps), overlaps.shape)
        if overlaps[i, j] <= threshold:
            break
        i, j = min(i, j), max(i, j)
        sums[i] = sums[i] + sums[j]
        counts[i] += counts[j]
        rated[i] += rated[j]
        del sums[j], counts[j], rated[j]
    merged = np.stack([s / c for s, c in zip(sums, counts)]) if sums else np.zeros((0, 4))
    order = np.argsort(-np.asarray(rated), kind="stable")
    return merged[order], np.asarray(rated)[order]
