"""Boxes for localisation (paper Appendix A): the one box coder of the package.

Two layouts are used:

* ``[ymin, xmin, ymax, xmax]`` normalised to [0, 1], as TFDS stores boxes and as the input
  pipeline hands them over ("yxyx");
* ``[cx, cy, w, h]`` relative to the input crop, the paper's box parameters, which the
  regression head predicts ("cxcywh"); :data:`PRIOR` is the whole crop.

The coder (:func:`encode`, :func:`decode`), the horizontal :func:`flip`, the mapping into and
out of a crop (:func:`to_crop`, :func:`from_crop`), :func:`area` and :func:`paired_iou` are
written once and used by the loss and metrics (``keras.ops``, the default ``xp``), the
protocols (``numpy``), the tf.data pipeline and the serving graph (``tensorflow``, whatever
Keras's backend): ``xp`` is the array namespace, and each needs only ``stack``, ``minimum``,
``maximum`` or ``where``, which the three spell alike. The evaluation helpers below them are
numpy.

>>> encode(np.array([[0.2, 0.1, 0.6, 0.5]]), xp=np)      # -> [[0.3, 0.4, 0.4, 0.4]]
>>> iou(np.array([0, 0, 1, 1.]), np.array([[0, 0, 0.5, 1.]]))   # -> [0.5]
"""

import numpy as np
from keras import ops

PRIOR = (0.5, 0.5, 1.0, 1.0)
"""``[cx, cy, w, h]`` of the whole crop: what an untrained box head predicts
(``vgg_keras.heads.PRIOR_BOX``)."""


def _array(x, xp):
    """``x`` as an array of ``xp`` (nested lists included)."""
    return np.asarray(x) if xp is np else xp.convert_to_tensor(x)


def encode(yxyx, xp=ops):
    """``[ymin, xmin, ymax, xmax]`` -> ``[cx, cy, w, h]`` (last axis)."""
    yxyx = _array(yxyx, xp)
    ymin, xmin, ymax, xmax = yxyx[..., 0], yxyx[..., 1], yxyx[..., 2], yxyx[..., 3]
    return xp.stack([(xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin], axis=-1)


def decode(cxcywh, xp=ops):
    """``[cx, cy, w, h]`` -> ``[ymin, xmin, ymax, xmax]`` (last axis)."""
    cxcywh = _array(cxcywh, xp)
    cx, cy, w, h = cxcywh[..., 0], cxcywh[..., 1], cxcywh[..., 2], cxcywh[..., 3]
    return xp.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def flip(yxyx, xp=ops):
    """Boxes of the horizontally mirrored image: x -> 1 - x (xmin and xmax swap)."""
    yxyx = _array(yxyx, xp)
    ymin, xmin, ymax, xmax = yxyx[..., 0], yxyx[..., 1], yxyx[..., 2], yxyx[..., 3]
    return xp.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)


def to_crop(yxyx, rescaled, offset, crop, xp=ops):
    """Image-normalised boxes -> relative to a ``crop`` (pixels) at ``offset`` ``[..., 2]``
    (y, x, pixels) of the image rescaled to ``rescaled`` ``[..., 2]``; not clipped (a box
    reaching out of the crop leaves [0, 1]). Rescaling maps the whole image onto the whole
    rescaled image, so image fractions are fractions of the rescaled image."""
    ymin, xmin, ymax, xmax = yxyx[..., 0], yxyx[..., 1], yxyx[..., 2], yxyx[..., 3]
    height, width, top, left = rescaled[..., 0], rescaled[..., 1], offset[..., 0], offset[..., 1]
    return xp.stack([(ymin * height - top) / crop, (xmin * width - left) / crop,
                     (ymax * height - top) / crop, (xmax * width - left) / crop], axis=-1)


def from_crop(yxyx, rescaled, offset, crop, xp=ops):
    """The inverse of :func:`to_crop`: boxes relative to the crop -> normalised to the image
    (a point at fraction ``v`` of the crop is ``offset + crop * v`` pixels of the rescaled
    image)."""
    ymin, xmin, ymax, xmax = yxyx[..., 0], yxyx[..., 1], yxyx[..., 2], yxyx[..., 3]
    height, width, top, left = rescaled[..., 0], rescaled[..., 1], offset[..., 0], offset[..., 1]
    return xp.stack([(top + crop * ymin) / height, (left + crop * xmin) / width,
                     (top + crop * ymax) / height, (left + crop * xmax) / width], axis=-1)


def area(yxyx, xp=np):
    """Area of ``[ymin, xmin, ymax, xmax]`` boxes; degenerate boxes have area 0. With numpy
    (the default) in float64."""
    if xp is np:
        yxyx = np.asarray(yxyx, dtype=np.float64)
    return (xp.maximum(yxyx[..., 2] - yxyx[..., 0], 0.0)
            * xp.maximum(yxyx[..., 3] - yxyx[..., 1], 0.0))


def paired_iou(a, b, xp=ops):
    """Intersection over union of yxyx boxes ``a`` and ``b`` that broadcast against each other
    (last axis 4): box by box. Degenerate boxes have IoU 0 with anything."""
    top = xp.maximum(a[..., 0], b[..., 0])
    left = xp.maximum(a[..., 1], b[..., 1])
    bottom = xp.minimum(a[..., 2], b[..., 2])
    right = xp.minimum(a[..., 3], b[..., 3])
    inter = xp.maximum(bottom - top, 0.0) * xp.maximum(right - left, 0.0)
    union = area(a, xp) + area(b, xp) - inter
    return xp.where(union > 0, inter / xp.where(union > 0, union, 1.0), 0.0)


# ----------------------------------------------------------------------------------------------
# Evaluation (numpy)


def iou(box, others):
    """Intersection over union of ``box`` (4,) or boxes (N, 4) against ``others`` (M, 4).

    Returns (M,) for one box, (N, M) for several. Degenerate boxes have IoU 0 with anything.
    """
    box = np.asarray(box, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    result = paired_iou(box.reshape(-1, 4)[:, None, :], others[None, :, :], xp=np)
    return result[0] if box.ndim == 1 else result


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
