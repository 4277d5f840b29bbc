"""The paper's two localisation test protocols (Appendix A.2) and their tables.

* protocol 1 (Table 8): the ground-truth class's box predicted from the central crop, an error
  when its IoU with every ground-truth box is at most 0.5;
* protocol 2 (Table 9): the net applied densely to the whole image at one or more scales, a box
  per location (per class for PCR), OverFeat's greedy merging rated by the classification net's
  class scores, top-5 classes with one box each, ILSVRC top-5 localisation error. The merging
  criterion is OverFeat's match score or IoU (``merge``, :data:`vgg_keras.boxes.MERGES`).

:func:`protocol1_per_image` and :func:`protocol2_per_image` yield each image's result (its
boxes, ground truth, IoU or guesses, and whether it is right); :func:`protocol1` and
:func:`protocol2` average them into the tables' errors, and the run report draws them.

With an untrained 32-pixel net (a trained one comes from train_loc.py):

>>> from vgg_keras.data import load
>>> from vgg_keras.models import build_localizer, build_vgg
>>> classifier = build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125, init="glorot")
>>> localizer = build_localizer(classifier, regression="pcr")
>>> val = load("vgg_shapes/small", "validation[:8]")
>>> print(format_table8([run_protocol1(localizer, val, scale=36)]))
Protocol 1 (central crop, ground-truth class): localisation error (%)
<BLANKLINE>
| model | fine-tuned layers | regression | error | mean IoU | images |
|---|---|---|---|---|---|
| ... | ? | PCR | ... | ... | 8 |
>>> print(format_table9([run_protocol2(localizer, classifier, val, scales=[36, 48], merge=m)
...                      for m in ("overfeat", "iou")]))
Protocol 2 (dense, greedy merging): localisation error (%)
<BLANKLINE>
| localizer(s) | classifier(s) | test scale(s) Q | merging | top-1 loc | ... | images |
|---|---|---|---|---|---|---|---|
| ... | ... | 36,48 | overfeat -0.1 | ... | 8 |
| ... | ... | 36,48 | iou 0.5 | ... | 8 |
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from .. import boxes as B
from ..evaluate import dense_scores, forward, known_total, protocol_batches, softmax, track
from ..heads import regression_of
from ..models import to_dense
from ..progress import progress

if TYPE_CHECKING:
    import tensorflow as tf

    from ..evaluate import Batches

log = logging.getLogger(__name__)


def _class_boxes(predictions, regression_classes):
    """``(..., 4 C)`` or ``(..., 4)`` outputs -> ``(..., C or 1, 4)`` cx/cy/w/h boxes."""
    predictions = np.asarray(predictions, dtype=np.float64)
    per = regression_classes or 1
    return predictions.reshape(predictions.shape[:-1] + (per, 4))


def _check_labels(labels, num_classes):
    labels = np.asarray(labels).reshape(-1)
    bad = labels[(labels < 0) | (labels >= num_classes)]
    if bad.size:
        raise ValueError(f"Class id {int(bad[0])} is beyond the head's {num_classes} classes "
                         "(is this the data the model was trained on?).")
    return labels.astype(int)


def _valid_boxes(gt, count):
    """The real (not padding, not degenerate) ground-truth boxes of one image."""
    gt = np.asarray(gt, dtype=np.float64).reshape(-1, 4)[: int(count)]
    keep = (gt[:, 2] > gt[:, 0]) & (gt[:, 3] > gt[:, 1])
    return gt[keep]


# ----------------------------------------------------------------------------------------------
# Protocol 1


@dataclass(frozen=True)
class Protocol1Image:
    """One image's result under protocol 1 (boxes ``[ymin, xmin, ymax, xmax]`` relative to the
    central crop). An image without a usable ground-truth box is ``skipped``: no IoU (NaN), not
    right, and counted in neither the error nor the mean IoU."""

    image: np.ndarray
    """The central crop ``(c, c, 3)`` the localizer saw."""
    label: int
    ground_truth: np.ndarray
    """``(M, 4)``: the image's usable ground-truth boxes (``(0, 4)`` when skipped)."""
    box: np.ndarray
    """``(4,)``: the predicted box of the ground-truth class (PCR) or the single one (SCR)."""
    iou: float
    """The predicted box's highest IoU with a ground-truth box."""
    right: bool
    """Whether that IoU exceeds the threshold."""

    @property
    def skipped(self) -> bool:
        """No usable ground-truth box: the image is not rated."""
        return len(self.ground_truth) == 0


def protocol1_per_image(localizer: keras.Model, batches: Batches, *, threshold: float = 0.5,
                        progress_label: str | None = None,
                        total: int | None = None) -> Iterator[Protocol1Image]:
    """Protocol 1's result for each image of ``batches``, in order, skipped ones included
    (arguments as :func:`protocol1`'s; it averages these).

    >>> from vgg_keras.data import eval_pipeline, load
    >>> from vgg_keras.models import build_localizer, build_vgg
    >>> localizer = build_localizer(build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125),
    ...                             regression="scr")
    >>> val = load("vgg_shapes/small", "validation[:2]")
    >>> results = protocol1_per_image(localizer, eval_pipeline(val, test_scale=36, crop=32,
    ...                                                        mode="center", boxes=True))
    >>> [(r.label, r.image.shape, r.box.shape, 0 <= r.iou <= 1) for r in results]
    [(..., (32, 32, 3), (4,), True), (..., (32, 32, 3), (4,), True)]
    """
    _, classes = regression_of(localizer)
    bar_label = progress_label or f"protocol 1 {localizer.name}"
    for images, labels in track(batches, bar_label, total):
        images = np.asarray(images, dtype="float32")
        per_class = _class_boxes(forward(localizer, images), classes)
        label = np.asarray(labels["label"]).reshape(-1)
        if classes:
            label = _check_labels(label, classes)
        for i in range(len(label)):
            gt = _valid_boxes(labels["boxes"][i], labels["num_boxes"][i])
            box = np.asarray(B.decode(per_class[i, label[i] if classes else 0], xp=np))
            best = float(np.max(B.iou(box, gt))) if len(gt) else float("nan")
            yield Protocol1Image(images[i], int(label[i]), gt, box, best,
                                 bool(len(gt)) and best > threshold)


def protocol1(localizer: keras.Model, batches: Batches, *, threshold: float = 0.5,
              progress_label: str | None = None, total: int | None = None) -> dict[str, Any]:
    """Protocol 1 (paper Table 8): the ground-truth class's box from the central crop.

    ``batches`` yields ``(images (B, c, c, 3), {"label", "boxes" (B, M, 4), "num_boxes"})`` as
    ``eval_pipeline(mode="center", boxes=True)`` makes them (boxes relative to the crop,
    unclipped). An image is wrong unless the predicted box has IoU > ``threshold`` with one of
    its ground-truth boxes. Images without a usable ground-truth box (none, or only degenerate
    ones) are skipped and counted.

    A progress bar named ``progress_label`` (default "protocol 1" and the model's name) counts the
    images on stderr, out of ``total`` or the dataset's size when ``batches`` is an
    ``eval_pipeline`` dataset (see :func:`vgg_keras.evaluate.track`).

    Returns ``{"error": %, "images": n, "skipped": n, "mean_iou": ...}``: the averages of
    :func:`protocol1_per_image`'s results.

    >>> from vgg_keras.data import eval_pipeline, load
    >>> from vgg_keras.models import build_localizer, build_vgg
    >>> localizer = build_localizer(build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125),
    ...                             regression="scr")
    >>> val = load("vgg_shapes/small", "validation[:4]")
    >>> protocol1(localizer, eval_pipeline(val, test_scale=36, crop=32, mode="center", boxes=True))
    {'error': ..., 'images': 4, 'skipped': 0, 'mean_iou': ...}
    """
    wrong = seen = skipped = 0
    ious = []
    for result in protocol1_per_image(localizer, batches, threshold=threshold,
                                      progress_label=progress_label, total=total):
        if result.skipped:
            skipped += 1
            continue
        ious.append(result.iou)
        seen += 1
        wrong += not result.right
    if skipped:
        log.warning("protocol 1: skipped %d image(s) without a usable ground-truth box", skipped)
    if not seen:
        raise ValueError("Protocol 1: no image with a usable ground-truth box to evaluate.")
    return {"error": 100.0 * wrong / seen, "images": seen, "skipped": skipped,
            "mean_iou": float(np.mean(ious))}


# ----------------------------------------------------------------------------------------------
# Protocol 2


Predictions = list[tuple[np.ndarray, np.ndarray]]
"""Per (localizer, scale) of one image: ``(boxes (N, K, 4), rates (N, C))``, as
:func:`localize_image` takes them."""

Protocol2Outputs = tuple[int, np.ndarray, Predictions | None, np.ndarray | None]
"""One image's ``(label, ground truth (M, 4), predictions, posterior (C,))`` before merging."""

STRIDE = 32
"""Pixels between neighbouring locations of the dense output (five 2x2 poolings)."""


def dense_boxes(box_map: np.ndarray, image_size: Sequence[int], crop: int, *,
                stride: int = STRIDE) -> np.ndarray:
    """Boxes of a dense localizer's output map in image coordinates.

    ``box_map`` is ``(h, w, K, 4)`` ``[cx, cy, w, h]`` boxes, each relative to the window
    of the crop the location sees (top-left at ``(stride * i, stride * j)`` pixels of the
    rescaled image, side ``crop``). Returns ``(h, w, K, 4)`` ``[ymin, xmin, ymax, xmax]``
    normalised by the image's ``(height, width)``.
    """
    box_map = np.asarray(box_map, dtype=np.float64)
    rows, cols = box_map.shape[:2]
    top = (stride * np.arange(rows, dtype=np.float64))[:, None, None]
    left = (stride * np.arange(cols, dtype=np.float64))[None, :, None]
    windows = np.stack(np.broadcast_arrays(top, left), axis=-1)   # (h, w, 1, 2) window corners
    return B.from_crop(B.decode(box_map, xp=np), np.asarray(image_size), windows, crop, xp=np)


def localize_image(predictions: Predictions, posteriors: np.ndarray, *, top: int = 5,
                   merge: str = B.DEFAULT_MERGE,
                   merge_threshold: float | None = None) -> list[tuple[int, np.ndarray]]:
    """The top-``top`` classes of one image, each with one box (protocol 2's decision).

    ``predictions`` is a list over (localizer, scale) of ``(boxes, rates)``: ``boxes`` ``(N,
    K, 4)`` yxyx boxes of N locations for K = C classes (PCR) or K = 1 (SCR, shared by all
    classes); ``rates`` ``(N, C)`` the classification net's class scores at those locations.
    ``posteriors`` ``(C,)`` ranks the classes. For each of the top classes the union of its
    boxes is merged greedily by the criterion ``merge`` ("overfeat" or "iou", see
    :func:`vgg_keras.boxes.merge_boxes`) at ``merge_threshold`` (default: the criterion's
    own), and the merged box with the highest summed score wins.

    Returns a list of ``(class, box yxyx)``.

    >>> near, near2, far = [0.1, 0.1, 0.5, 0.5], [0.1, 0.2, 0.5, 0.6], [0.6, 0.6, 0.9, 0.9]
    >>> boxes = np.array([[near], [near2], [far]])        # SCR: 3 locations, 1 box each
    >>> rates = np.array([[0.5, 0.5], [0.5, 0.5], [0.1, 0.9]])
    >>> localize_image([(boxes, rates)], np.array([0.3, 0.7]), merge="iou")   # IoU 0.6 > 0.5
    [(1, array([0.1 , 0.15, 0.5 , 0.55])), (0, array([0.1 , 0.15, 0.5 , 0.55]))]
    >>> localize_image([(boxes, rates)], np.array([0.3, 0.7]), merge="iou", merge_threshold=0.7)
    [(1, array([0.6, 0.6, 0.9, 0.9])), (0, array([0.1, 0.1, 0.5, 0.5]))]
    """
    order = np.argsort(-np.asarray(posteriors), kind="stable")[:top]
    guesses = []
    for c in order:
        all_boxes, all_rates = [], []
        for boxes, rates in predictions:
            boxes = np.asarray(boxes).reshape(len(rates), -1, 4)
            all_boxes.append(boxes[:, c if boxes.shape[1] > 1 else 0])
            all_rates.append(np.asarray(rates)[:, c])
        merged, _ = B.merge_boxes(np.concatenate(all_boxes), np.concatenate(all_rates),
                                  merge=merge, threshold=merge_threshold)
        guesses.append((int(c), merged[0]))
    return guesses


def localization_errors(guesses: Sequence[tuple[int, np.ndarray]], label: int,
                        ground_truth: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """ILSVRC top-1 and top-5 localisation errors (0 or 1) of one image's ranked guesses."""
    hits = [c == label and B.localization_correct(box, ground_truth, threshold)
            for c, box in guesses]
    return {"top1": float(not any(hits[:1])), "top5": float(not any(hits[:5]))}


def location_rates(score_map: np.ndarray, locations: tuple[int, int]) -> np.ndarray:
    """Class scores per localizer location: the classifier's soft-max at the same location when
    its map matches the localizer's, else the image's (spatially averaged) posterior."""
    if score_map.shape[:2] == locations:
        return softmax(score_map).reshape(-1, score_map.shape[-1])
    mean = softmax(score_map.mean(axis=(0, 1)))
    return np.broadcast_to(mean, (locations[0] * locations[1], mean.shape[-1]))


@dataclass(frozen=True)
class Protocol2Image:
    """One image's result under protocol 2 (boxes ``[ymin, xmin, ymax, xmax]`` relative to the
    image). An image without a usable ground-truth box is ``skipped``: the nets are not run on
    it (no posterior, guesses or errors)."""

    image: np.ndarray
    """The whole image ``(H, W, 3)`` at the first test scale."""
    label: int
    ground_truth: np.ndarray
    """``(M, 4)``: the image's usable ground-truth boxes (``(0, 4)`` when skipped)."""
    posterior: np.ndarray | None
    """``(C,)``: the class posterior that ranks the guesses."""
    guesses: list[tuple[int, np.ndarray]]
    """The top classes, best first, each with its merged box (:func:`localize_image`)."""
    errors: dict[str, float]
    """``top1_loc``, ``top5_loc``, ``top1_cls``, ``top5_cls``: 1.0 wrong, 0.0 right."""

    @property
    def skipped(self) -> bool:
        """No usable ground-truth box: the image is not rated."""
        return len(self.ground_truth) == 0

    @property
    def right(self) -> bool:
        """Whether the top-1 guess has the right class and a right box (IoU > threshold)."""
        return self.errors.get("top1_loc") == 0.0


def protocol2_per_image(localizers: keras.Model | Sequence[keras.Model],
                        classifiers: keras.Model | Sequence[keras.Model],
                        make_batches: Callable[[int], Batches], *, scales: Sequence[int],
                        top: int = 5, flip: bool = True, merge: str = B.DEFAULT_MERGE,
                        merge_threshold: float | None = None, threshold: float = 0.5,
                        progress_label: str | None = None,
                        total: int | None = None) -> Iterator[Protocol2Image]:
    """Protocol 2's result for each image, in order, skipped ones included (arguments as
    :func:`protocol2`'s; it averages these).

    >>> from vgg_keras.data import eval_pipeline, load
    >>> from vgg_keras.models import build_localizer, build_vgg
    >>> classifier = build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125)
    >>> localizer = build_localizer(classifier, regression="scr")
    >>> val = load("vgg_shapes/small", "validation[:2]")
    >>> results = protocol2_per_image(localizer, classifier, lambda q: eval_pipeline(
    ...     val, test_scale=q, mode="dense", boxes=True).as_numpy_iterator(), scales=[32])
    >>> for r in results:       # images with their shorter side at Q = 32, five guesses each
    ...     print(min(r.image.shape[:2]), r.posterior.shape, len(r.guesses), sorted(r.errors))
    32 (10,) 5 ['top1_cls', 'top1_loc', 'top5_cls', 'top5_loc']
    32 (10,) 5 ['top1_cls', 'top1_loc', 'top5_cls', 'top5_loc']
    """
    for image, label, gt, predictions, posterior in _protocol2_outputs(
            localizers, classifiers, make_batches, scales=scales, flip=flip,
            progress_label=progress_label, total=total):
        if predictions is None:
            yield Protocol2Image(image, label, gt, None, [], {})
            continue
        guesses = localize_image(predictions, posterior, top=top, merge=merge,
                                 merge_threshold=merge_threshold)
        yield Protocol2Image(image, label, gt, posterior, guesses,
                             _image_errors(guesses, label, gt, threshold))


def protocol2(localizers: keras.Model | Sequence[keras.Model],
              classifiers: keras.Model | Sequence[keras.Model],
              make_batches: Callable[[int], Batches], *, scales: Sequence[int], top: int = 5,
              flip: bool = True, merge: str = B.DEFAULT_MERGE,
              merge_threshold: float | None = None, threshold: float = 0.5,
              progress_label: str | None = None, total: int | None = None) -> dict[str, Any]:
    """Protocol 2 (paper Table 9): dense localisation at ``scales``, greedy merging rated by
    the classification net(s), top-5 classes each with one box, ILSVRC localisation error.

    ``localizers`` and ``classifiers`` are models (one or several each; several localizers:
    the union of their boxes is merged; several classifiers: their posteriors are averaged).
    ``make_batches(scale)`` yields ``(image (1, H, W, 3), {"label", "boxes" (1, M, 4),
    "num_boxes"})`` as ``eval_pipeline(mode="dense", boxes=True)`` makes them (boxes relative
    to the image), in the same order for every scale. Class posteriors are the dense
    protocol's (mean of the spatially averaged soft-max over scales, with the flipped image).
    ``merge`` ("overfeat" or "iou") and ``merge_threshold`` (default: the criterion's own)
    choose the greedy merging (:func:`vgg_keras.boxes.merge_boxes`).

    A progress bar named ``progress_label`` (default "protocol 2 Q=" and the scales) counts
    the images on stderr, out of ``total`` or the size of the first scale's dataset when it is an
    ``eval_pipeline`` dataset (or its ``as_numpy_iterator()``).

    Returns ``{"top1_loc": %, "top5_loc": %, "top1_cls": %, "top5_cls": %, "images",
    "skipped"}``: the averages of :func:`protocol2_per_image`'s results.

    >>> from vgg_keras.data import eval_pipeline, load
    >>> from vgg_keras.models import build_localizer, build_vgg
    >>> classifier = build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125)
    >>> localizer = build_localizer(classifier, regression="pcr")
    >>> val = load("vgg_shapes/small", "validation[:4]")
    >>> protocol2(localizer, classifier, lambda q: eval_pipeline(
    ...     val, test_scale=q, mode="dense", boxes=True).as_numpy_iterator(), scales=[32, 48])
    {'top1_loc': ..., 'top5_loc': ..., 'top1_cls': ..., 'top5_cls': ..., 'images': 4, 'skipped': 0}
    """
    totals = {"top1_loc": 0.0, "top5_loc": 0.0, "top1_cls": 0.0, "top5_cls": 0.0}
    seen = skipped = 0
    for result in protocol2_per_image(
            localizers, classifiers, make_batches, scales=scales, top=top, flip=flip,
            merge=merge, merge_threshold=merge_threshold, threshold=threshold,
            progress_label=progress_label, total=total):
        if result.skipped:
            skipped += 1
            continue
        for key in totals:
            totals[key] += result.errors[key]
        seen += 1
    if skipped:
        log.warning("protocol 2: skipped %d image(s) without a usable ground-truth box", skipped)
    if not seen:
        raise ValueError("Protocol 2: no image with a usable ground-truth box to evaluate.")
    return {**{k: 100.0 * v / seen for k, v in totals.items()}, "images": seen,
            "skipped": skipped}


def protocol2_predictions(localizers: keras.Model | Sequence[keras.Model],
                          classifiers: keras.Model | Sequence[keras.Model],
                          make_batches: Callable[[int], Batches], *, scales: Sequence[int],
                          flip: bool = True, progress_label: str | None = None,
                          total: int | None = None) -> Iterator[Protocol2Outputs]:
    """Protocol 2's net outputs, image by image, before any merging: yields ``(label,
    ground_truth (M, 4), predictions, posterior)``, ``predictions`` and ``posterior`` as
    :func:`localize_image` takes them, or both None for an image without a usable ground-truth
    box (the nets are not run on it). Arguments as :func:`protocol2`'s; this is its loop,
    for rating several merging criteria on the same outputs (``bench/merging.py``)."""
    for _, label, gt, predictions, posterior in _protocol2_outputs(
            localizers, classifiers, make_batches, scales=scales, flip=flip,
            progress_label=progress_label, total=total):
        yield label, gt, predictions, posterior


def _protocol2_outputs(localizers, classifiers, make_batches, *, scales, flip, progress_label,
                       total):
    """Protocol 2's loop: ``(image at the first scale, label, ground truth, predictions,
    posterior)`` per image, the last two None where there is no usable ground-truth box."""
    localizers = [localizers] if isinstance(localizers, keras.Model) else list(localizers)
    classifiers = [classifiers] if isinstance(classifiers, keras.Model) else list(classifiers)
    nets = _DenseNets(localizers, classifiers)
    sources = [make_batches(q) for q in scales]
    if total is None:
        total = known_total(sources[0])[0]   # dense batches hold one image: either unit
    # One bar for the images, whatever the number of scales (their streams advance together).
    bar_label = progress_label or f"protocol 2 Q={','.join(map(str, scales))}"
    for items in progress(_aligned(sources), bar_label, total=total, unit="img"):
        image, labels = np.asarray(items[0][0])[0], items[0][1]
        label = int(_check_labels(labels["label"], nets.num_classes)[0])
        gt = _valid_boxes(labels["boxes"][0], labels["num_boxes"][0])
        if not len(gt):
            yield image, label, gt, None, None
            continue
        predictions, posterior = nets.predict([scaled for scaled, _ in items], flip)
        yield image, label, gt, predictions, posterior


def _aligned(sources):
    """One image at every scale per step, until a stream ends."""
    streams = [iter(source) for source in sources]
    while True:
        items = [next(stream, None) for stream in streams]
        if any(item is None for item in items):
            return
        yield items


def _image_errors(guesses, label, ground_truth, threshold):
    """One image's top-1/top-5 localisation and classification errors (0 or 1)."""
    result = localization_errors(guesses, label, ground_truth, threshold)
    ranked = [c for c, _ in guesses]
    return {"top1_loc": result["top1"], "top5_loc": result["top5"],
            "top1_cls": float(ranked[0] != label), "top5_cls": float(label not in ranked[:5])}


class _DenseNets:
    """Protocol 2's nets in dense form: the localizers with their heads and crops, and the
    classifiers, which must agree on the classes."""

    def __init__(self, localizers, classifiers):
        self.num_classes = classifiers[0].output_shape[-1]
        for c in classifiers:
            if c.output_shape[-1] != self.num_classes:
                raise ValueError("The classifiers predict different numbers of classes.")
        self.specs = [regression_of(loc, self.num_classes) for loc in localizers]
        self.localizers = [to_dense(loc) for loc in localizers]
        self.crops = [loc.input_shape[1] for loc in localizers]
        self.classifiers = [to_dense(c) for c in classifiers]

    def predict(self, images, flip):
        """``(predictions, posterior)`` for :func:`localize_image` from one image at every scale
        (``(1, H, W, 3)`` each): per (scale, localizer) its yxyx boxes per location with the
        classifiers' class scores there; the posterior averaged over scales and classifiers."""
        predictions, posteriors = [], []
        for image in images:
            image = np.asarray(image, dtype="float32")
            maps = []
            for dense in self.classifiers:
                score_maps, post = dense_scores(dense, image, flip)
                posteriors.append(post[0])
                maps.append(score_maps[0])
            for dense, crop, (_, classes) in zip(self.localizers, self.crops, self.specs):
                box_map = _class_boxes(forward(dense, image)[0], classes)
                yxyx = dense_boxes(box_map, image.shape[1:3], crop)
                rates = np.mean([location_rates(m, box_map.shape[:2]) for m in maps], axis=0)
                predictions.append((yxyx.reshape(-1, yxyx.shape[2], 4), rates))
        return predictions, np.mean(posteriors, axis=0)


# ----------------------------------------------------------------------------------------------
# Tables


def format_table8(rows: Sequence[dict[str, Any]],
                  title: str = "Protocol 1 (central crop, ground-truth class): localisation "
                               "error (%)") -> str:
    """Rows ``{"model", "finetune", "regression", "error", ...}`` as the paper's Table 8."""
    lines = [title, "", "| model | fine-tuned layers | regression | error | mean IoU | images |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r.get('finetune', '?')} | {r['regression'].upper()} | "
                     f"{r['error']:.1f} | {r['mean_iou']:.3f} | {r['images']} |")
    return "\n".join(lines)


def format_table9(rows: Sequence[dict[str, Any]],
                  title: str = "Protocol 2 (dense, greedy merging): localisation error (%)"
                  ) -> str:
    """Rows ``{"models", "scales", "merge", "merge_threshold", "top1_loc", "top5_loc", ...}``
    as the paper's Table 9, with the merging criterion and its threshold."""
    lines = [title, "", "| localizer(s) | classifier(s) | test scale(s) Q | merging | top-1 loc | "
                        "top-5 loc | top-5 cls | images |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        merging = (f"{r['merge']} {r['merge_threshold']:g}"
                   if r.get("merge_threshold") is not None else r.get("merge", "?"))
        lines.append(f"| {' + '.join(r['models'])} | {' + '.join(r['classifiers'])} | "
                     f"{','.join(str(s) for s in r['scales'])} | {merging} | "
                     f"{r['top1_loc']:.1f} | {r['top5_loc']:.1f} | {r['top5_cls']:.1f} | "
                     f"{r['images']} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Running the protocols on data


def run_protocol1(localizer: keras.Model, examples: tf.data.Dataset, *, scale: int,
                  crop: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    """Protocol 1 on ``examples`` (from ``vgg_keras.data.load``) at test scale ``scale``: a
    Table 8 row."""
    crop = crop or localizer.input_shape[1]
    batches = protocol_batches(examples, "center", scale, crop, batch_size, boxes=True)
    result = protocol1(localizer, batches, total=known_total(examples)[0],
                       progress_label=f"protocol 1 Q={scale} {localizer.name}")
    regression, _ = regression_of(localizer)
    return {"model": localizer.name, "regression": regression, "scales": [scale], **result}


def run_protocol2(localizers: keras.Model | Sequence[keras.Model],
                  classifiers: keras.Model | Sequence[keras.Model], examples: tf.data.Dataset,
                  *, scales: Sequence[int], merge: str = B.DEFAULT_MERGE,
                  merge_threshold: float | None = None) -> dict[str, Any]:
    """Protocol 2 on ``examples`` at test scales ``scales``, merging by ``merge`` at
    ``merge_threshold`` (default: the criterion's own): a Table 9 row, which names both."""

    def make_batches(q):
        return protocol_batches(examples, "dense", q, boxes=True).as_numpy_iterator()

    localizers = [localizers] if isinstance(localizers, keras.Model) else list(localizers)
    classifiers = [classifiers] if isinstance(classifiers, keras.Model) else list(classifiers)
    if merge_threshold is None:
        merge_threshold = B.MERGE_THRESHOLDS.get(merge)   # unknown names: protocol2 says so
    result = protocol2(localizers, classifiers, make_batches, scales=list(scales), merge=merge,
                       merge_threshold=merge_threshold, total=known_total(examples)[0])
    return {"models": [m.name for m in localizers], "classifiers": [c.name for c in classifiers],
            "scales": list(scales), "merge": merge, "merge_threshold": merge_threshold,
            **result}
