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

>>> encode(np.array([[0.2, 0.1, 0.6, 0.5]]), xp=np)
array([[0.3, 0.4, 0.4, 0.4]])
>>> iou(np.array([0, 0, 1, 1.]), np.array([[0, 0, 0.5, 1.]]))
array([0.5])

Protocol 2 merges its dense predictions greedily with one of two criteria (:data:`MERGES`):
OverFeat's match score (:func:`overfeat_merge`, the default) or IoU (:func:`greedy_merge`).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from keras import ops

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ._typing import Tensor

PRIOR = (0.5, 0.5, 1.0, 1.0)
"""``[cx, cy, w, h]`` of the whole crop: what an untrained box head predicts
(``vgg_keras.heads.PRIOR_BOX``)."""


def _array(x: Any, xp: ModuleType) -> Tensor:
    """``x`` as an array of ``xp`` (nested lists included)."""
    return np.asarray(x) if xp is np else xp.convert_to_tensor(x)


def encode(yxyx: Tensor, xp: ModuleType = ops) -> Tensor:
    """``[ymin, xmin, ymax, xmax]`` -> ``[cx, cy, w, h]`` (last axis)."""
    yxyx = _array(yxyx, xp)
    ymin, xmin, ymax, xmax = yxyx[..., 0], yxyx[..., 1], yxyx[..., 2], yxyx[..., 3]
    return xp.stack([(xmin + xmax) / 2, (ymin + ymax) / 2, xmax - xmin, ymax - ymin], axis=-1)


def decode(cxcywh: Tensor, xp: ModuleType = ops) -> Tensor:
    """``[cx, cy, w, h]`` -> ``[ymin, xmin, ymax, xmax]`` (last axis)."""
    cxcywh = _array(cxcywh, xp)
    cx, cy, w, h = cxcywh[..., 0], cxcywh[..., 1], cxcywh[..., 2], cxcywh[..., 3]
    return xp.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)


def flip(yxyx: Tensor, xp: ModuleType = ops) -> Tensor:
    """Boxes of the horizontally mirrored image: x -> 1 - x (xmin and xmax swap)."""
    yxyx = _array(yxyx, xp)
    ymin, xmin, ymax, xmax = yxyx[..., 0], yxyx[..., 1], yxyx[..., 2], yxyx[..., 3]
    return xp.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=-1)


def to_crop(yxyx: Tensor, rescaled: Tensor, offset: Tensor, crop: Tensor | float,
            xp: ModuleType = ops) -> Tensor:
    """Image-normalised boxes -> relative to a ``crop`` (pixels) at ``offset`` ``[..., 2]``
    (y, x, pixels) of the image rescaled to ``rescaled`` ``[..., 2]``; not clipped (a box
    reaching out of the crop leaves [0, 1]). Rescaling maps the whole image onto the whole
    rescaled image, so image fractions are fractions of the rescaled image."""
    ymin, xmin, ymax, xmax = yxyx[..., 0], yxyx[..., 1], yxyx[..., 2], yxyx[..., 3]
    height, width, top, left = rescaled[..., 0], rescaled[..., 1], offset[..., 0], offset[..., 1]
    return xp.stack([(ymin * height - top) / crop, (xmin * width - left) / crop,
                     (ymax * height - top) / crop, (xmax * width - left) / crop], axis=-1)


def from_crop(yxyx: Tensor, rescaled: Tensor, offset: Tensor, crop: Tensor | float,
              xp: ModuleType = ops) -> Tensor:
    """The inverse of :func:`to_crop`: boxes relative to the crop -> normalised to the image
    (a point at fraction ``v`` of the crop is ``offset + crop * v`` pixels of the rescaled
    image)."""
    ymin, xmin, ymax, xmax = yxyx[..., 0], yxyx[..., 1], yxyx[..., 2], yxyx[..., 3]
    height, width, top, left = rescaled[..., 0], rescaled[..., 1], offset[..., 0], offset[..., 1]
    return xp.stack([(top + crop * ymin) / height, (left + crop * xmin) / width,
                     (top + crop * ymax) / height, (left + crop * xmax) / width], axis=-1)


def area(yxyx: Tensor, xp: ModuleType = np) -> Tensor:
    """Area of ``[ymin, xmin, ymax, xmax]`` boxes; degenerate boxes have area 0. With numpy
    (the default) in float64."""
    if xp is np:
        yxyx = np.asarray(yxyx, dtype=np.float64)
    return (xp.maximum(yxyx[..., 2] - yxyx[..., 0], 0.0)
            * xp.maximum(yxyx[..., 3] - yxyx[..., 1], 0.0))


def paired_iou(a: Tensor, b: Tensor, xp: ModuleType = ops) -> Tensor:
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


def iou(box: ArrayLike, others: ArrayLike) -> np.ndarray:
    """Intersection over union of ``box`` (4,) or boxes (N, 4) against ``others`` (M, 4).

    Returns (M,) for one box, (N, M) for several. Degenerate boxes have IoU 0 with anything.
    """
    box = np.asarray(box, dtype=np.float64)
    others = np.asarray(others, dtype=np.float64).reshape(-1, 4)
    result = paired_iou(box.reshape(-1, 4)[:, None, :], others[None, :, :], xp=np)
    return result[0] if box.ndim == 1 else result


def localization_correct(box: ArrayLike, ground_truth: ArrayLike, threshold: float = 0.5) -> bool:
    """The ILSVRC criterion: IoU with any ground-truth box of the class exceeds ``threshold``."""
    ground_truth = np.asarray(ground_truth).reshape(-1, 4)
    if len(ground_truth) == 0:
        return False
    return bool(np.max(iou(box, ground_truth)) > threshold)


# ----------------------------------------------------------------------------------------------
# Greedy merging of protocol 2's predictions (numpy)

IOU_THRESHOLD = 0.5
""":func:`greedy_merge`'s default: the two most overlapping boxes merge while their IoU is above
it (the ILSVRC criterion's own 0.5)."""

OVERFEAT_THRESHOLD = -0.1
""":func:`overfeat_merge`'s default: the best-matching pair merges while its
:func:`match_score` is at most it, that is while the area the two boxes share exceeds the
distance between their centres by a tenth of the image's area. Chosen on the embedded data's
validation split (``bench/merging.py``: top-5 localisation error flat within 0.5 point from
-0.2 to 0.05, rising from 0.1 on) and confirmed on its test split. Boxes covering less than a
tenth of the image never merge at this threshold (the best-rated one wins alone); concentric
boxes that share enough area merge whatever their IoU. The neutral 0 (the centres no farther
apart than the shared area: IoU 0.5 for two half-image squares shifted along one axis) merges
more."""


def match_score(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """OverFeat's match score (Sermanet et al. 2014, section 4.3) of yxyx boxes ``a`` (N, 4)
    and ``b`` (M, 4), as an (N, M) array; lower is more alike.

    ``score = distance between the centres - intersection area``, with the coordinates as
    fractions of the image's height and width (as protocol 2's boxes are): the distance is in
    units of the image's side, the area in units of the image's area, so the score does not
    depend on the test scale or the image's size in pixels, and boxes from several scales and
    localizers compare directly. OverFeat's text calls it the sum of the two; its code is not
    public. The intersection enters with a minus sign because sharing more area makes two boxes
    more alike: added as it stands, it would merge disjoint boxes before overlapping ones.
    The score lies in [-1, sqrt(2)]: identical boxes score minus their area, disjoint boxes
    score their (positive) centre distance.

    >>> match_score([[0, 0, .5, .5]], [[0, 0, .5, .5], [0, .1, .5, .6], [.5, .5, 1, 1]])
    array([[-0.25      , -0.1       ,  0.70710678]])
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    dy = (a[..., 0] + a[..., 2] - b[..., 0] - b[..., 2]) / 2
    dx = (a[..., 1] + a[..., 3] - b[..., 1] - b[..., 3]) / 2
    height = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    width = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    return np.hypot(dy, dx) - np.maximum(height, 0.0) * np.maximum(width, 0.0)


def _merge_greedily(boxes: ArrayLike, scores: ArrayLike,
                    affinity: Callable[[np.ndarray, np.ndarray], ArrayLike],
                    merges: Callable[[float], bool]) -> tuple[np.ndarray, np.ndarray]:
    """The greedy loop both criteria share.

    ``affinity(a, b)``: the (N, M) symmetric pair values of mean boxes, higher for more alike
    pairs; ``merges(value)``: whether the best pair merges. The pair values are computed once
    and only the merged box's row is recomputed after a merge (a few hundred boxes take
    milliseconds). The most alike pair (the first in row order on ties) merges into the lower
    index: its box is the mean of all the predictions merged into it, its score their sum.
    """
    sums = np.array(boxes, dtype=np.float64).reshape(-1, 4)
    rated = np.array(scores, dtype=np.float64).reshape(-1)
    if len(rated) != len(sums):
        raise ValueError(f"{len(sums)} boxes but {len(rated)} scores.")
    counts = np.ones(len(sums))
    alive = np.ones(len(sums), dtype=bool)
    if len(sums) > 1:
        pairs = np.array(affinity(sums, sums), dtype=np.float64)
        np.fill_diagonal(pairs, -np.inf)
        while True:
            i, j = np.unravel_index(np.argmax(pairs), pairs.shape)
            if not np.isfinite(pairs[i, j]) or not merges(pairs[i, j]):
                break
            i, j = min(i, j), max(i, j)
            sums[i] += sums[j]
            counts[i] += counts[j]
            rated[i] += rated[j]
            alive[j] = False
            row = np.asarray(affinity(sums[i:i + 1] / counts[i], sums / counts[:, None]),
                             dtype=np.float64).reshape(-1)
            row[~alive] = -np.inf
            row[i] = -np.inf
            pairs[i, :] = pairs[:, i] = row
            pairs[j, :] = pairs[:, j] = -np.inf
    merged = sums[alive] / counts[alive, None]
    rated = rated[alive]
    order = np.argsort(-rated, kind="stable")
    return merged[order], rated[order]


def greedy_merge(boxes: ArrayLike, scores: ArrayLike, *,
                 threshold: float = IOU_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """Greedy merging of box predictions by IoU (``merge="iou"``).

    Repeatedly takes the two most overlapping predictions (highest IoU) and, while their IoU is
    above ``threshold``, replaces them by one box whose coordinates are the average of all the
    predictions merged into it, rated by the sum of their scores (the classification net's
    confidence). Returns ``(boxes, scores)`` sorted by decreasing score.

    >>> greedy_merge([[0, 0, .5, .5], [0, 0, .5, .6], [.6, .6, 1, 1]], [0.5, 0.3, 0.1])
    (array([[0.  , 0.  , 0.5 , 0.55], [0.6 , 0.6 , 1.  , 1.  ]]), array([0.8, 0.1]))
    """
    return _merge_greedily(boxes, scores, iou, lambda best: best > threshold)


def overfeat_merge(boxes: ArrayLike, scores: ArrayLike, *,
                   threshold: float = OVERFEAT_THRESHOLD) -> tuple[np.ndarray, np.ndarray]:
    """OverFeat's greedy merging (Sermanet et al. 2014, section 4.3; ``merge="overfeat"``).

    Repeatedly takes the pair of predictions with the lowest :func:`match_score` (centre
    distance minus intersection, in units of the image) and stops when that score exceeds
    ``threshold``; otherwise replaces the pair by one box whose coordinates are the average of
    all the predictions merged into it (OverFeat's ``box_merge`` averages the pair's
    coordinates; counting every merged prediction makes the box independent of the order of
    the merges), rated by the sum of their scores. Returns ``(boxes, scores)`` sorted by
    decreasing score.

    >>> overfeat_merge([[0, 0, .6, .6], [0, .1, .6, .7], [.6, .6, 1, 1]], [0.5, 0.3, 0.1])
    (array([[0.  , 0.05, 0.6 , 0.65], [0.6 , 0.6 , 1.  , 1.  ]]), array([0.8, 0.1]))
    """
    return _merge_greedily(boxes, scores, lambda a, b: -match_score(a, b),
                           lambda best: -best <= threshold)


MERGES = {"overfeat": overfeat_merge, "iou": greedy_merge}
"""Protocol 2's merging criteria by name."""

MERGE_THRESHOLDS = {"overfeat": OVERFEAT_THRESHOLD, "iou": IOU_THRESHOLD}
"""Each criterion's default threshold."""

DEFAULT_MERGE = "overfeat"
"""Protocol 2's criterion unless told otherwise (``--merge``)."""


def merge_boxes(boxes: ArrayLike, scores: ArrayLike, *, merge: str = DEFAULT_MERGE,
                threshold: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Merge box predictions by the criterion named ``merge`` (:data:`MERGES`) at
    ``threshold`` (default: the criterion's own, :data:`MERGE_THRESHOLDS`).

    >>> concentric = [[.1, .1, .9, .9], [.3, .3, .7, .7]]     # IoU 0.25, match score -0.16
    >>> merge_boxes(concentric, [0.5, 0.3], merge="iou")
    (array([[0.1, 0.1, 0.9, 0.9], [0.3, 0.3, 0.7, 0.7]]), array([0.5, 0.3]))
    >>> merge_boxes(concentric, [0.5, 0.3], merge="overfeat")
    (array([[0.2, 0.2, 0.8, 0.8]]), array([0.8]))
    """
    if merge not in MERGES:
        raise ValueError(f"merge must be one of {', '.join(MERGES)}, got {merge!r}.")
    if threshold is None:
        threshold = MERGE_THRESHOLDS[merge]
    return MERGES[merge](boxes, scores, threshold=threshold)
