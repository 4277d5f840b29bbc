"""Localisation (paper Appendix A): box regression loss, training, and both test protocols.

A localizer (:func:`vgg_keras.models.build_localizer`) predicts ``[cx, cy, w, h]`` relative to
its input crop: one box (single-class regression, SCR) or one per class (per-class regression,
PCR). It is trained with a Euclidean loss on the box of the ground-truth class only, and
evaluated by

* protocol 1 (Table 8): the ground-truth class's box predicted from the central crop, an error
  when its IoU with every ground-truth box is at most 0.5;
* protocol 2 (Table 9): the net applied densely to the whole image at one or more scales, a box
  per location (per class for PCR), OverFeat's greedy merging rated by the classification net's
  class scores, top-5 classes with one box each, ILSVRC top-5 localisation error.

Targets are packed for Keras into one ``(B, 5)`` tensor ``[cx, cy, w, h, class]`` (see
:func:`pack_targets`), so that a plain one-output model can be compiled with
:class:`BoxRegressionLoss`, :class:`BoxAccuracy` and :class:`BoxL2`.

>>> from vgg_keras.localization import train_localizer
>>> summary = train_localizer(init_from="runs/cls_a/model.keras", regression="pcr", crop=64,
...                           scale=(72, 96), epochs=10, batch_size=32, run_dir="runs/loc_a")

This module imports only keras and numpy at the top (tf.data is imported where data is read).
"""

import json
import logging
import time
from pathlib import Path

import keras
import numpy as np
from keras import ops

from . import boxes as B
from .augment import training_augmentation
from .classification import (
    DEFAULTS as CLS_DEFAULTS, fit_verbosity, keep_best, load_validation, make_optimizer,
    start_run,
)
from .evaluate import softmax
from .models import (
    BOX_LAYER, REGRESSIONS, arch_of, build_localizer, is_localizer, load_vgg, to_dense,
)
from .train import apply_weight_decay, fit_resumable, test_scale, with_training_augmentation

log = logging.getLogger(__name__)

FINETUNE = ("all", "fc")
FC_LAYERS = ("fc6", "fc7", BOX_LAYER)
"""Layers trained with ``finetune="fc"`` (the paper's "first two FC layers", plus the new one)."""


# ----------------------------------------------------------------------------------------------
# Loss and metric


def _select_class_box(y_pred, labels, num_classes):
    """``(B, 4)``: the ground-truth class's box from PCR outputs ``(B, 4 C)``; SCR as is.

    ``take_along_axis`` (a gather) gives exactly zero gradient to the other classes' outputs,
    and never reads them, so even NaN there cannot leak into the loss.
    """
    if num_classes is None:
        return y_pred
    per_class = ops.reshape(y_pred, (-1, num_classes, 4))
    index = ops.reshape(ops.cast(labels, "int32"), (-1, 1, 1))
    index = ops.broadcast_to(index, (ops.shape(per_class)[0], 1, 4))
    return ops.take_along_axis(per_class, index, axis=1)[:, 0, :]


def _check_outputs(y_pred, num_classes):
    expected = 4 * num_classes if num_classes else 4
    width = y_pred.shape[-1]
    if width is not None and width != expected:
        raise ValueError(
            f"The localizer has {width} outputs but the loss expects {expected} "
            f"({'PCR with ' + str(num_classes) + ' classes' if num_classes else 'SCR'}).")


@keras.saving.register_keras_serializable(package="vgg_keras")
class BoxRegressionLoss(keras.losses.Loss):
    """Euclidean loss ``0.5 * ||box_pred - box_true||^2`` on ``[cx, cy, w, h]``.

    ``y_true`` is ``(B, 5)``: the box and the ground-truth class (:func:`pack_targets`).
    With ``num_classes`` (PCR), ``y_pred`` is ``(B, 4 C)`` and only the ground-truth class's 4
    outputs are penalised (a masked loss: the other outputs get exactly zero gradient); without
    it (SCR), ``y_pred`` is ``(B, 4)``. Examples with sample weight 0 (the crop kept no box) do
    not count.
    """

    def __init__(self, num_classes=None, name="box_l2", reduction="sum_over_batch_size",
                 dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.num_classes = None if num_classes is None else int(num_classes)

    def call(self, y_true, y_pred):
        _check_outputs(y_pred, self.num_classes)
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        predicted = _select_class_box(y_pred, y_true[:, 4], self.num_classes)
        return 0.5 * ops.sum(ops.square(predicted - y_true[:, :4]), axis=-1)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def _iou_cxcywh(a, b):
    a, b = B.decode(a), B.decode(b)
    top = ops.maximum(a[:, 0], b[:, 0])
    left = ops.maximum(a[:, 1], b[:, 1])
    bottom = ops.minimum(a[:, 2], b[:, 2])
    right = ops.minimum(a[:, 3], b[:, 3])
    inter = ops.maximum(bottom - top, 0.0) * ops.maximum(right - left, 0.0)

    def area(x):
        return ops.maximum(x[:, 2] - x[:, 0], 0.0) * ops.maximum(x[:, 3] - x[:, 1], 0.0)

    union = area(a) + area(b) - inter
    return ops.where(union > 0, inter / ops.where(union > 0, union, 1.0), 0.0)


@keras.saving.register_keras_serializable(package="vgg_keras")
class BoxAccuracy(keras.metrics.MeanMetricWrapper):
    """Share of examples whose ground-truth class's box has IoU > ``threshold`` with the target
    box (protocol 1's criterion against the one packed box; 1 - this is the error)."""

    def __init__(self, num_classes=None, threshold=0.5, name="box_accuracy", dtype=None):
        self.num_classes = None if num_classes is None else int(num_classes)
        self.threshold = float(threshold)

        def correct(y_true, y_pred):
            y_true = ops.cast(y_true, "float32")
            predicted = _select_class_box(ops.cast(y_pred, "float32"), y_true[:, 4],
                                          self.num_classes)
            return ops.cast(_iou_cxcywh(predicted, y_true[:, :4]) > self.threshold, "float32")

        super().__init__(correct, name=name, dtype=dtype)

    def get_config(self):
        return {"num_classes": self.num_classes, "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="vgg_keras")
class BoxL2(keras.metrics.MeanMetricWrapper):
    """The box regression loss alone (:class:`BoxRegressionLoss`, without the weight decay that
    Keras adds to ``loss`` and ``val_loss``): what the localizer's schedule watches."""

    def __init__(self, num_classes=None, name="box_l2", dtype=None):
        self.num_classes = None if num_classes is None else int(num_classes)
        loss = BoxRegressionLoss(self.num_classes)
        super().__init__(loss.call, name=name, dtype=dtype)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}


MONITOR = ("val_box_l2", "min")
"""What the learning-rate schedule and the best checkpoint follow during localizer training.

Not ``val_box_accuracy``: that is a step function, exactly 0 until the first box passes IoU 0.5,
and on such a plateau the schedule divided the rate by 10 every ``lr_patience`` epochs and kept
the first epoch as "best" however far the boxes had moved since (issue #6: an FC-only PCR run
ended with the weights of its epoch 1, mean IoU 0.0003)."""


# ----------------------------------------------------------------------------------------------
# Targets


def pack_targets(labels, box_yxyx, weight=None, *, num_classes=None):
    """tf.data mapping: ``(label (B,), box yxyx (B, 4))`` -> ``y (B, 5)`` ``[cx, cy, w, h,
    class]`` and sample weights ``(B,)``.

    A box of zero area (degenerate, or cut away by the crop) gets weight 0: it is never learnt
    from. A class id outside ``[0, num_classes)`` stops the pipeline with a clear error (the
    PCR head has no outputs for it).
    """
    import tensorflow as tf

    labels = tf.cast(labels, tf.int32)
    box_yxyx = tf.cast(box_yxyx, tf.float32)
    if num_classes is not None:
        tf.debugging.assert_non_negative(labels, message="negative class id in the labels")
        tf.debugging.assert_less(
            labels, tf.constant(int(num_classes), tf.int32),
            message=f"class id beyond the localizer's head ({num_classes} classes)")
    valid = tf.logical_and(box_yxyx[:, 2] > box_yxyx[:, 0], box_yxyx[:, 3] > box_yxyx[:, 1])
    weight = tf.ones_like(labels, tf.float32) if weight is None else tf.cast(weight, tf.float32)
    weight = weight * tf.cast(valid, tf.float32)
    y = tf.concat([B.encode(box_yxyx), tf.cast(labels, tf.float32)[:, None]], axis=-1)
    return y, weight


def _train_batches(batches, num_classes):
    """``train_pipeline(boxes=True)`` batches -> ``(images, y (B, 5), weights (B,))``."""
    return batches.map(lambda images, labels, weights: (images, *pack_targets(
        labels["label"], labels["box"], weights["box"], num_classes=num_classes)))


def _eval_batches(batches, num_classes):
    """``eval_pipeline(mode="center", boxes=True)`` batches -> packed targets with the first
    ground-truth box (for monitoring during training; protocol 1 uses all of them)."""
    import tensorflow as tf

    def pack(images, labels):
        first = labels["boxes"][:, 0, :]
        weight = tf.cast(labels["num_boxes"] > 0, tf.float32)
        return (images, *pack_targets(labels["label"], first, weight, num_classes=num_classes))

    return batches.map(pack)


# ----------------------------------------------------------------------------------------------
# Describing a localizer


def regression_of(localizer, num_classes=None):
    """``("scr", None)`` or ``("pcr", C)`` from the width of the localizer's output."""
    units = localizer.output_shape[-1]
    if units == 4:
        return "scr", None  # (PCR for one class is the same net)
    if units % 4:
        raise ValueError(f"{localizer.name} has {units} outputs: not 4 (SCR) or 4 x C (PCR).")
    if num_classes is not None and units != 4 * num_classes:
        raise ValueError(f"{localizer.name} predicts boxes for {units // 4} classes but the data "
                         f"(or classifier) has {num_classes}.")
    return "pcr", units // 4


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


def protocol1(localizer, batches, *, threshold=0.5, progress_label=None, total=None):
    """Protocol 1 (paper Table 8): the ground-truth class's box from the central crop.

    ``batches`` yields ``(images (B, c, c, 3), {"label", "boxes" (B, M, 4), "num_boxes"})`` as
    ``eval_pipeline(mode="center", boxes=True)`` makes them (boxes relative to the crop,
    unclipped). An image is wrong unless the predicted box has IoU > ``threshold`` with one of
    its ground-truth boxes. Images without a usable ground-truth box (none, or only degenerate
    ones) are skipped and counted.

    A progress bar named ``progress_label`` (default "protocol 1" and the model's name) counts the
    images on stderr, out of ``total`` or the dataset's size when ``batches`` is an
    ``eval_pipeline`` dataset (see :func:`vgg_keras.evaluate.track`).

    Returns ``{"error": %, "images": n, "skipped": n, "mean_iou": ...}``.

    >>> protocol1(localizer, eval_pipeline(val, scale=256, mode="center", boxes=True))
    {'error': 41.2, 'images': 500, 'skipped': 0, 'mean_iou': 0.55}
    """
    from .evaluate import track

    regression, classes = regression_of(localizer)
    wrong = seen = skipped = 0
    ious = []
    bar_label = progress_label or f"protocol 1 {localizer.name}"
    for images, labels in track(batches, bar_label, total):
        predictions = keras.ops.convert_to_numpy(
            localizer(np.asarray(images, dtype="float32"), training=False))
        per_class = _class_boxes(predictions, classes)
        label = np.asarray(labels["label"]).reshape(-1)
        if classes:
            label = _check_labels(label, classes)
        for i in range(len(label)):
            gt = _valid_boxes(labels["boxes"][i], labels["num_boxes"][i])
            if not len(gt):
                skipped += 1
                continue
            box = per_class[i, label[i] if classes else 0]
            best = float(np.max(B.iou(np.asarray(B.decode(box)), gt)))
            ious.append(best)
            seen += 1
            wrong += best <= threshold
    if skipped:
        log.warning("protocol 1: skipped %d image(s) without a usable ground-truth box", skipped)
    if not seen:
        raise ValueError("Protocol 1: no image with a usable ground-truth box to evaluate.")
    return {"error": 100.0 * wrong / seen, "images": seen, "skipped": skipped,
            "mean_iou": float(np.mean(ious))}


# ----------------------------------------------------------------------------------------------
# Protocol 2


STRIDE = 32
"""Pixels between neighbouring locations of the dense output (five 2x2 poolings)."""


def dense_boxes(box_map, image_size, crop, *, stride=STRIDE):
    """Boxes of a dense localizer's output map in image coordinates.

    ``box_map`` is ``(h, w, K, 4)`` ``[cx, cy, w, h]`` boxes, each relative to the window
    of the crop the location sees (top-left at ``(stride * i, stride * j)`` pixels of the
    rescaled image, side ``crop``). Returns ``(h, w, K, 4)`` ``[ymin, xmin, ymax, xmax]``
    normalised by the image's ``(height, width)``.
    """
    box_map = np.asarray(box_map, dtype=np.float64)
    height, width = image_size
    rows, cols = box_map.shape[:2]
    top = (stride * np.arange(rows, dtype=np.float64))[:, None, None]
    left = (stride * np.arange(cols, dtype=np.float64))[None, :, None]
    cx, cy, w, h = (box_map[..., k] for k in range(4))
    return np.stack([(top + crop * (cy - h / 2)) / height, (left + crop * (cx - w / 2)) / width,
                     (top + crop * (cy + h / 2)) / height, (left + crop * (cx + w / 2)) / width],
                    axis=-1)


def localize_image(predictions, posteriors, *, top=5, merge_threshold=0.5):
    """The top-``top`` classes of one image, each with one box (protocol 2's decision).

    ``predictions`` is a list over (localizer, scale) of ``(boxes, rates)``: ``boxes`` ``(N,
    K, 4)`` yxyx boxes of N locations for K = C classes (PCR) or K = 1 (SCR, shared by all
    classes); ``rates`` ``(N, C)`` the classification net's class scores at those locations.
    ``posteriors`` ``(C,)`` ranks the classes. For each of the top classes the union of its
    boxes is merged greedily (OverFeat), and the merged box with the highest summed score wins.

    Returns a list of ``(class, box yxyx)``.
    """
    order = np.argsort(-np.asarray(posteriors), kind="stable")[:top]
    guesses = []
    for c in order:
        all_boxes, all_rates = [], []
        for boxes, rates in predictions:
            boxes = np.asarray(boxes).reshape(len(rates), -1, 4)
            all_boxes.append(boxes[:, c if boxes.shape[1] > 1 else 0])
            all_rates.append(np.asarray(rates)[:, c])
        merged, scores = B.greedy_merge(np.concatenate(all_boxes), np.concatenate(all_rates),
                                        threshold=merge_threshold)
        guesses.append((int(c), merged[0]))
    return guesses


def localization_errors(guesses, label, ground_truth, threshold=0.5):
    """ILSVRC top-1 and top-5 localisation errors (0 or 1) of one image's ranked guesses."""
    hits = [c == label and B.localization_correct(box, ground_truth, threshold)
            for c, box in guesses]
    return {"top1": float(not any(hits[:1])), "top5": float(not any(hits[:5]))}


def _image_rates(score_map, locations):
    """Class scores per localizer location: the classifier's soft-max at the same location when
    its map matches the localizer's, else the image's (spatially averaged) posterior."""
    if score_map.shape[:2] == locations:
        return softmax(score_map).reshape(-1, score_map.shape[-1])
    mean = softmax(score_map.mean(axis=(0, 1)))
    return np.broadcast_to(mean, (locations[0] * locations[1], mean.shape[-1]))


def protocol2(localizers, classifiers, make_batches, *, scales, top=5, flip=True,
              merge_threshold=0.5, threshold=0.5, progress_label=None, total=None):
    """Protocol 2 (paper Table 9): dense localisation at ``scales``, greedy merging rated by
    the classification net(s), top-5 classes each with one box, ILSVRC localisation error.

    ``localizers`` and ``classifiers`` are models (one or several each; several localizers:
    the union of their boxes is merged; several classifiers: their posteriors are averaged).
    ``make_batches(scale)`` yields ``(image (1, H, W, 3), {"label", "boxes" (1, M, 4),
    "num_boxes"})`` as ``eval_pipeline(mode="dense", boxes=True)`` makes them (boxes relative
    to the image), in the same order for every scale. Class posteriors are the dense
    protocol's (mean of the spatially averaged soft-max over scales, with the flipped image).

    A progress bar named ``progress_label`` (default "protocol 2 Q=" and the scales) counts
    the images on stderr, out of ``total`` or the size of the first scale's dataset when it is an
    ``eval_pipeline`` dataset (or its ``as_numpy_iterator()``).

    Returns ``{"top1_loc": %, "top5_loc": %, "top1_cls": %, "top5_cls": %, "images",
    "skipped"}``.

    >>> protocol2(localizer, classifier, lambda q: eval_pipeline(
    ...     val, scale=q, mode="dense", boxes=True).as_numpy_iterator(), scales=[256, 384])
    {'top1_loc': 52.0, 'top5_loc': 40.4, 'top1_cls': 30.2, 'top5_cls': 9.8, ...}
    """
    from .evaluate import known_total
    from .progress import progress

    if isinstance(localizers, keras.Model):
        localizers = [localizers]
    if isinstance(classifiers, keras.Model):
        classifiers = [classifiers]
    num_classes = classifiers[0].output_shape[-1]
    for c in classifiers:
        if c.output_shape[-1] != num_classes:
            raise ValueError("The classifiers predict different numbers of classes.")
    specs = [regression_of(loc, num_classes) for loc in localizers]
    dense_locs = [to_dense(loc) for loc in localizers]
    crops = [loc.input_shape[1] for loc in localizers]
    dense_cls = [to_dense(c) for c in classifiers]
    sources = [make_batches(q) for q in scales]
    if total is None:
        total = known_total(sources[0])[0]   # dense batches hold one image: either unit
    streams = [iter(source) for source in sources]
    totals = {"top1_loc": 0.0, "top5_loc": 0.0, "top1_cls": 0.0, "top5_cls": 0.0}
    seen = skipped = 0

    def aligned():
        """One image at every scale per step, until a stream ends."""
        while True:
            items = [next(stream, None) for stream in streams]
            if any(item is None for item in items):
                return
            yield items

    # One bar for the images, whatever the number of scales (their streams advance together).
    bar_label = progress_label or f"protocol 2 Q={','.join(map(str, scales))}"
    for items in progress(aligned(), bar_label, total=total, unit="img"):
        labels = items[0][1]
        label = int(_check_labels(labels["label"], num_classes)[0])
        gt = _valid_boxes(labels["boxes"][0], labels["num_boxes"][0])
        if not len(gt):
            skipped += 1
            continue
        predictions, posteriors = [], []
        for image, _ in items:
            image = np.asarray(image, dtype="float32")
            size = image.shape[1:3]
            maps = []
            for dense in dense_cls:
                score_map = keras.ops.convert_to_numpy(dense(image, training=False))[0]
                post = softmax(score_map.mean(axis=(0, 1)))
                if flip:
                    flipped = keras.ops.convert_to_numpy(dense(image[:, :, ::-1], training=False))
                    post = 0.5 * (post + softmax(flipped[0].mean(axis=(0, 1))))
                posteriors.append(post)
                maps.append(score_map)
            for dense, crop, (_, classes) in zip(dense_locs, crops, specs):
                box_map = keras.ops.convert_to_numpy(dense(image, training=False))[0]
                box_map = _class_boxes(box_map, classes)
                yxyx = dense_boxes(box_map, size, crop)
                locations = box_map.shape[:2]
                rates = np.mean([_image_rates(m, locations) for m in maps], axis=0)
                predictions.append((yxyx.reshape(-1, yxyx.shape[2], 4), rates))
        posterior = np.mean(posteriors, axis=0)
        guesses = localize_image(predictions, posterior, top=top,
                                 merge_threshold=merge_threshold)
        result = localization_errors(guesses, label, gt, threshold)
        totals["top1_loc"] += result["top1"]
        totals["top5_loc"] += result["top5"]
        ranked = [c for c, _ in guesses]
        totals["top1_cls"] += float(ranked[0] != label)
        totals["top5_cls"] += float(label not in ranked[:5])
        seen += 1
    if skipped:
        log.warning("protocol 2: skipped %d image(s) without a usable ground-truth box", skipped)
    if not seen:
        raise ValueError("Protocol 2: no image with a usable ground-truth box to evaluate.")
    return {**{k: 100.0 * v / seen for k, v in totals.items()}, "images": seen,
            "skipped": skipped}


# ----------------------------------------------------------------------------------------------
# Tables


def format_table8(rows, title="Protocol 1 (central crop, ground-truth class): localisation "
                              "error (%)"):
    """Rows ``{"model", "finetune", "regression", "error", ...}`` as the paper's Table 8."""
    lines = [title, "", "| model | fine-tuned layers | regression | error | mean IoU | images |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r.get('finetune', '?')} | {r['regression'].upper()} | "
                     f"{r['error']:.1f} | {r['mean_iou']:.3f} | {r['images']} |")
    return "\n".join(lines)


def format_table9(rows, title="Protocol 2 (dense, greedy merging): localisation error (%)"):
    """Rows ``{"models", "scales", "top1_loc", "top5_loc", ...}`` as the paper's Table 9."""
    lines = [title, "", "| localizer(s) | classifier(s) | test scale(s) Q | top-1 loc | "
                        "top-5 loc | top-5 cls | images |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {' + '.join(r['models'])} | {' + '.join(r['classifiers'])} | "
                     f"{','.join(str(s) for s in r['scales'])} | {r['top1_loc']:.1f} | "
                     f"{r['top5_loc']:.1f} | {r['top5_cls']:.1f} | {r['images']} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# Running the protocols on data


def run_protocol1(localizer, examples, *, scale, crop=None, batch_size=32):
    from . import data as vdata
    from .evaluate import known_total

    crop = crop or localizer.input_shape[1]
    batches = vdata.eval_pipeline(examples, scale=scale, mode="center", crop=crop,
                                  batch_size=batch_size, boxes=True)
    result = protocol1(localizer, batches, total=known_total(examples)[0],
                       progress_label=f"protocol 1 Q={scale} {localizer.name}")
    regression, _ = regression_of(localizer)
    return {"model": localizer.name, "regression": regression, "scales": [scale], **result}


def run_protocol2(localizers, classifiers, examples, *, scales):
    from . import data as vdata
    from .evaluate import known_total

    def make_batches(q):
        return vdata.eval_pipeline(examples, scale=q, mode="dense", boxes=True).as_numpy_iterator()

    localizers = [localizers] if isinstance(localizers, keras.Model) else list(localizers)
    classifiers = [classifiers] if isinstance(classifiers, keras.Model) else list(classifiers)
    result = protocol2(localizers, classifiers, make_batches, scales=list(scales),
                       total=known_total(examples)[0])
    return {"models": [m.name for m in localizers], "classifiers": [c.name for c in classifiers],
            "scales": list(scales), **result}


def evaluate_saved(paths, *, classifiers=(), data=None, data_dir=None, scales=None,
                   split=None, val_fraction=0.05, batch_size=32, output=None):
    """Protocol 1 for each saved localizer, protocol 2 (union of all of them) when classifier
    paths are given; prints Tables 8 and 9 and optionally writes them as JSON."""
    from . import data as vdata

    localizers = [load_vgg(p, kind="localizer") for p in paths]
    classifier_models = [load_vgg(p, kind="classifier") for p in classifiers]
    if split is None:
        examples = load_validation(data, val_fraction=val_fraction, data_dir=data_dir)
    else:
        examples = vdata.load(data or vdata.EMBEDDED_NAME, split, data_dir=data_dir)
    crop = localizers[0].input_shape[1]
    scales = list(scales or [crop])
    table8 = [run_protocol1(loc, examples, scale=scales[0], batch_size=batch_size)
              for loc in localizers]
    print(format_table8(table8))
    report = {"protocol1": table8}
    if classifier_models:
        table9 = [run_protocol2(localizers, classifier_models, examples, scales=[q])
                  for q in scales]
        if len(scales) > 1:
            table9.append(run_protocol2(localizers, classifier_models, examples, scales=scales))
        print()
        print(format_table9(table9))
        report["protocol2"] = table9
    if output:
        Path(output).write_text(json.dumps(report, indent=1))
    return report


# ----------------------------------------------------------------------------------------------
# Training


DEFAULTS = {**CLS_DEFAULTS, "lr": 1e-3, "regression": "pcr", "finetune": "all",
            "classifier": None, "eval_scales": None, "eval_split": None}
"""train_loc.py's options: train_cls.py's, learning rate 1e-3, and the localisation ones."""


def freeze_for_finetune(localizer, finetune):
    """``finetune="fc"``: only fc6, fc7 and ``fc8_box`` stay trainable; ``"all"``: every layer."""
    if finetune not in FINETUNE:
        raise ValueError(f"finetune must be one of {FINETUNE}, got {finetune!r}.")
    for layer in localizer.layers:
        layer.trainable = finetune == "all" or layer.name in FC_LAYERS or not layer.weights
    return localizer


def compile_localizer(model, optimizer, *, trainer=None, jit_compile=False):
    """Compile ``trainer`` (default ``model``) with the box loss and the metrics for
    ``model``'s head (SCR or PCR)."""
    _, classes = regression_of(model)
    (trainer or model).compile(optimizer=optimizer, loss=BoxRegressionLoss(classes),
                               metrics=[BoxAccuracy(classes), BoxL2(classes)],
                               jit_compile=jit_compile)


def train_localizer(**options):
    """Train a localizer as in the paper's Appendix A and evaluate it; returns ``summary.json``.

    Options are those of ``train_loc.py``: the classification options (see
    ``vgg_keras.classification.DEFAULTS``) with ``lr`` 1e-3, plus ``regression`` ("scr"/
    "pcr"), ``finetune`` ("all"/"fc"), ``classifier`` (a ``.keras`` classifier whose class
    scores rate protocol 2's boxes; default ``init_from`` when that is a classifier) and
    ``eval_scales``, ``eval_split`` (what the final evaluation reads, default the validation
    examples, e.g. ``"validation[:50]"``). ``init_from`` is a classifier (conv and fc6/fc7
    copied; fc8_box new, its kernel random and its bias the whole crop, ``PRIOR_BOX``)
    or a localizer of the same shapes (continued); without it ``arch`` is built from scratch.
    The schedule and the kept checkpoint follow the validation box loss (:data:`MONITOR`).
    The run directory resumes.
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"Unknown options: {', '.join(sorted(unknown))}")
    o = {**DEFAULTS, **options}
    o["regression"] = str(o["regression"]).lower()
    if o["regression"] not in REGRESSIONS:
        raise ValueError(f"regression must be one of {REGRESSIONS}, got {o['regression']!r}.")
    if o["finetune"] not in FINETUNE:
        raise ValueError(f"finetune must be one of {FINETUNE}, got {o['finetune']!r}.")
    # Read before the run directory is taken: a wrong file is refused before anything changes.
    source = load_vgg(o["init_from"]) if o["init_from"] else None
    with start_run(o, f"loc-{o['regression']}") as (run_dir, scope, replicas, train_examples,
                                                     val_examples, meta):
        if not meta.has_boxes:
            raise ValueError(f"{meta.name} has no bounding boxes; localisation needs a source "
                             "with boxes (the embedded dataset, a directory with VOC XML, or "
                             "an ImageNet directory with its box annotations).")
        model, trainer = _build_localizer(o, source, meta, scope)
        state, seconds = _fit_localizer(o, trainer, model, run_dir, replicas, train_examples,
                                        val_examples, meta)
        return _finish_localizer(o, model, source, run_dir, state, seconds, val_examples, meta)


def _localizer_from(o, source, meta):
    """The localizer to train: from the ``--init-from`` classifier, continued from the
    ``--init-from`` localizer, or built from scratch."""
    if source is not None and not is_localizer(source):
        if source.input_shape[1:3] != (o["crop"], o["crop"]):
            raise ValueError(f"The classifier {o['init_from']} takes "
                             f"{source.input_shape[1:3]} crops but --crop is {o['crop']}.")
        classes = source.get_layer("fc8").units
        if meta.num_classes > classes:
            raise ValueError(
                f"The data has {meta.num_classes} classes but the classifier's head has "
                f"{classes}: class ids beyond the head cannot be localised per class.")
        model = build_localizer(source, regression=o["regression"], init=o["init"])
        log.info("Localizer %s: conv and FC layers from %s, %s (%d outputs, %s) random, starting "
                 "at the whole-crop box.", model.name, o["init_from"], BOX_LAYER,
                 model.output_shape[-1], o["regression"].upper())
        return model
    model = build_localizer(o["arch"], meta.num_classes, regression=o["regression"],
                            input_shape=(o["crop"], o["crop"], 3), width=o["width"],
                            dropout=o["dropout"], init=o["init"])
    if source is None:
        log.info("Training %s from scratch (random %s initialisation, no --init-from; the paper "
                 "starts from a trained classifier).", model.name, o["init"])
        return model
    if [tuple(w.shape) for w in source.weights] != [tuple(w.shape) for w in model.weights]:
        raise ValueError(f"{o['init_from']} is a localizer of other shapes than {model.name} "
                         "(arch, width, crop, regression, classes).")
    model.set_weights(source.get_weights())
    log.info("Initialised every layer from the localizer %s.", o["init_from"])
    return model


def _build_localizer(o, source, meta, scope):
    keras.utils.set_random_seed(o["seed"])  # here: loading data may have drawn random numbers
    with scope:
        model = _localizer_from(o, source, meta)
        _, classes = regression_of(model)
        if classes is not None and meta.num_classes > classes:
            raise ValueError(f"The data has {meta.num_classes} classes but the localizer's head "
                             f"predicts boxes for {classes}.")
        freeze_for_finetune(model, o["finetune"])
        if o["finetune"] == "fc":
            log.info("Fine-tuning %s only; the conv layers are frozen.", ", ".join(FC_LAYERS))
        trainer = with_training_augmentation(model, training_augmentation(
            flip=False, color_shift=o["color_shift"], seed=o["seed"]))
        apply_weight_decay(model, o["weight_decay"])
        compile_localizer(
            model, make_optimizer(o["optimizer"], o["lr"], o["momentum"], o["accumulate"]),
            trainer=trainer, jit_compile=bool(o["jit"]))
    return model, trainer


def _fit_localizer(o, trainer, model, run_dir, replicas, train_examples, val_examples, meta):
    from . import data as vdata

    _, classes = regression_of(model)
    steps = o["steps_per_epoch"] or max(1, meta.num_examples // o["batch_size"])

    def train_data(start_epoch):
        # Horizontal flips happen here, on the host, because the box must follow them.
        return _train_batches(vdata.train_pipeline(
            train_examples, scale=o["scale"], crop=o["crop"], batch_size=o["batch_size"],
            flip=o["flip"], color_shift=o["color_shift"], boxes=True, seed=o["seed"],
            augment_on="device", repeat=True, initial_epoch=start_epoch,
            steps_per_epoch=steps), classes)

    val_steps = -(-vdata.info(val_examples).num_examples // o["eval_batch_size"])
    val_data = _eval_batches(vdata.eval_pipeline(
        val_examples, scale=test_scale(o["scale"]), mode="center", crop=o["crop"],
        batch_size=o["eval_batch_size"], boxes=True), classes).repeat()
    log.info("%d training images, %d classes, %d steps of %d per epoch, %d replica(s); run "
             "directory %s", meta.num_examples, meta.num_classes, steps, o["batch_size"],
             replicas, run_dir)
    started = time.time()
    state = fit_resumable(
        trainer, train_data, epochs=o["epochs"], steps_per_epoch=steps, run_dir=run_dir,
        validation_data=val_data, validation_steps=val_steps, monitor=MONITOR[0],
        mode=MONITOR[1], patience=o["lr_patience"], max_drops=o["lr_drops"], target_model=model,
        verbose=fit_verbosity(o))
    return state, time.time() - started


def _finish_localizer(o, model, source, run_dir, state, seconds, val_examples, meta):
    from . import data as vdata

    scale, q = o["scale"], test_scale(o["scale"])
    eval_scales = list(o["eval_scales"] or [q])
    keep_best(model, run_dir)
    for layer in model.layers:
        layer.trainable = True  # the saved model is a plain network
    model.save(run_dir / "model.keras")
    classifier = _rating_classifier(o, source)
    if o["export"] and keras.backend.backend() == "tensorflow":
        # Serving SavedModel (vgg_keras.export): image files in; with a classifier of the same
        # crop, its top-5 classes and each one's box out.
        from .export import export

        rater = classifier
        if rater is not None and rater.input_shape[1:3] != model.input_shape[1:3]:
            rater = None
        export(model, run_dir / "saved_model", scale=q, classifier=rater)

    eval_examples = val_examples
    if o["eval_split"]:
        eval_examples = vdata.load(o["data"] or vdata.EMBEDDED_NAME, o["eval_split"],
                                   data_dir=o["data_dir"])
    row = run_protocol1(model, eval_examples, scale=q, batch_size=o["eval_batch_size"])
    row["finetune"] = o["finetune"] if o["init_from"] else "all (from scratch)"
    log.info("%s", format_table8([row], title=f"validation, {model.name}, S={scale}: protocol 1 "
                                               "localisation error (%)"))
    summary = {
        "model": str(run_dir / "model.keras"), "arch": arch_of(model),
        "regression": o["regression"], "finetune": row["finetune"], "init_from": o["init_from"],
        "scale": scale, "test_scale": q, "epochs": state["epoch"],
        "best_epoch": state.get("best_epoch"), "protocol1": row, "protocol1_error": row["error"],
        "seconds": round(seconds, 1), "train_images": meta.num_examples,
        "classes": meta.num_classes,
    }
    if classifier is not None:
        rows = [run_protocol2(model, classifier, eval_examples, scales=[s]) for s in eval_scales]
        if len(eval_scales) > 1:
            rows.append(run_protocol2(model, classifier, eval_examples, scales=eval_scales))
        log.info("%s", format_table9(rows, title=f"validation, {model.name} rated by "
                                                 f"{classifier.name}: protocol 2 localisation "
                                                 "error (%)"))
        summary["protocol2"] = rows
        summary["protocol2_top5_error"] = rows[-1]["top5_loc"]
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    log.info("protocol-1 localisation error %.1f%% (mean IoU %.3f) on %d images; summary in %s",
             row["error"], row["mean_iou"], row["images"], run_dir / "summary.json")
    return summary


def _rating_classifier(o, source):
    """The classifier that rates protocol 2's boxes: ``--classifier``, else the ``--init-from``
    classifier (still as loaded: ``build_localizer`` trained a copy of it), else none."""
    if o["classifier"]:
        if o["classifier"] == o["init_from"] and source is not None:
            return source
        return load_vgg(o["classifier"], kind="classifier")
    if source is not None and not is_localizer(source):
        return source
    return None
