"""The localizer's training objective (paper Appendix A): the Euclidean box loss on the
ground-truth class's box, the IoU > 0.5 accuracy and the plain box L2 as metrics, and the packing
of targets into one ``(B, 5)`` tensor ``[cx, cy, w, h, class]`` (see :func:`pack_targets`), so
that a plain one-output model compiles with :class:`BoxRegressionLoss`, :class:`BoxAccuracy`
and :class:`BoxL2`.

>>> import numpy as np
>>> from vgg_keras import build_localizer, build_vgg
>>> classifier = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125)
>>> model = build_localizer(classifier, regression="pcr")          # 4 x 10 outputs
>>> model.compile("sgd", BoxRegressionLoss(num_classes=10), [BoxAccuracy(10), BoxL2(10)])
>>> y, weight = pack_targets([3], [[0.2, 0.1, 0.6, 0.5]], num_classes=10)   # class 3, yxyx
>>> y.numpy().round(3), weight.numpy()                                     # [cx, cy, w, h, c]
(array([[0.3, 0.4, 0.4, 0.4, 3. ]], dtype=float32), array([1.], dtype=float32))
>>> predicted = np.zeros((1, 40), "float32")
>>> predicted[0, 12:16] = [0.3, 0.4, 0.4, 0.4]       # class 3's box right, the others ignored
>>> loss = BoxRegressionLoss(num_classes=10)           # 0.5 * squared distance
>>> round(float(loss(y, predicted)), 6)
0.0
>>> predicted[0, 12] = 0.4                            # cx off by 0.1
>>> round(float(loss(y, predicted)), 6)
0.005
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from .. import boxes as B

if TYPE_CHECKING:
    import tensorflow as tf

    from .._typing import Tensor


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

    def __init__(self, num_classes: int | None = None, name: str = "box_l2",
                 reduction: str = "sum_over_batch_size", dtype: Any = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.num_classes = None if num_classes is None else int(num_classes)

    def call(self, y_true: Tensor, y_pred: Tensor) -> Tensor:
        _check_outputs(y_pred, self.num_classes)
        y_true = ops.cast(y_true, "float32")
        y_pred = ops.cast(y_pred, "float32")
        predicted = _select_class_box(y_pred, y_true[:, 4], self.num_classes)
        return 0.5 * ops.sum(ops.square(predicted - y_true[:, :4]), axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="vgg_keras")
class BoxAccuracy(keras.metrics.MeanMetricWrapper):
    """Share of examples whose ground-truth class's box has IoU > ``threshold`` with the target
    box (protocol 1's criterion against the one packed box; 1 - this is the error)."""

    def __init__(self, num_classes: int | None = None, threshold: float = 0.5,
                 name: str = "box_accuracy", dtype: Any = None) -> None:
        self.num_classes = None if num_classes is None else int(num_classes)
        self.threshold = float(threshold)

        def correct(y_true, y_pred):
            y_true = ops.cast(y_true, "float32")
            predicted = _select_class_box(ops.cast(y_pred, "float32"), y_true[:, 4],
                                          self.num_classes)
            overlap = B.paired_iou(B.decode(predicted), B.decode(y_true[:, :4]))
            return ops.cast(overlap > self.threshold, "float32")

        super().__init__(correct, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "threshold": self.threshold, "name": self.name,
                "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="vgg_keras")
class BoxL2(keras.metrics.MeanMetricWrapper):
    """The box regression loss alone (:class:`BoxRegressionLoss`, without the weight decay that
    Keras adds to ``loss`` and ``val_loss``): what the localizer's schedule watches."""

    def __init__(self, num_classes: int | None = None, name: str = "box_l2",
                 dtype: Any = None) -> None:
        self.num_classes = None if num_classes is None else int(num_classes)
        loss = BoxRegressionLoss(self.num_classes)
        super().__init__(loss.call, name=name, dtype=dtype)

    def get_config(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}


MONITOR = ("val_box_l2", "min")
"""What the learning-rate schedule and the best checkpoint follow during localizer training.

Not ``val_box_accuracy``: that is a step function, exactly 0 until the first box passes IoU 0.5,
and on such a plateau the schedule divided the rate by 10 every ``lr_patience`` epochs and kept
the first epoch as "best" however far the boxes had moved since (an FC-only PCR run
ended with the weights of its epoch 1, mean IoU 0.0003)."""


# ----------------------------------------------------------------------------------------------
# Targets


def pack_targets(labels: tf.Tensor | Sequence[int], box_yxyx: tf.Tensor | Sequence[Sequence[float]],
                 weight: tf.Tensor | None = None, *,
                 num_classes: int | None = None) -> tuple[tf.Tensor, tf.Tensor]:
    """tf.data mapping: ``(label (B,), box yxyx (B, 4))`` -> ``y (B, 5)`` ``[cx, cy, w, h,
    class]`` and sample weights ``(B,)``.

    A box of zero area (degenerate, or cut away by the crop) gets weight 0: it is never learnt
    from. A class id outside ``[0, num_classes)`` stops the pipeline with a clear error (the
    PCR head has no outputs for it).
    """
    # TensorFlow here only: targets are packed in tf.data; the loss and metrics above run on
    # any backend without it.
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
    y = tf.concat([B.encode(box_yxyx, xp=tf), tf.cast(labels, tf.float32)[:, None]], axis=-1)
    return y, weight


def _train_batches(batches, num_classes):
    """``train_pipeline(boxes=True)`` batches -> ``(images, y (B, 5), weights (B,))``."""
    return batches.map(lambda images, labels, weights: (images, *pack_targets(
        labels["label"], labels["box"], weights["box"], num_classes=num_classes)))


def _eval_batches(batches, num_classes):
    """``eval_pipeline(mode="center", boxes=True)`` batches -> packed targets with the first
    ground-truth box (for monitoring during training; protocol 1 uses all of them)."""
    import tensorflow as tf  # tf.data only, as pack_targets

    def pack(images, labels):
        # A batch whose images have no box at all (held-out ImageNet training images often have
        # none) has no box column: pad one, which num_boxes == 0 gives zero weight.
        boxes = tf.pad(labels["boxes"], [[0, 0], [0, 1], [0, 0]], constant_values=-1.0)
        first = boxes[:, 0, :]
        weight = tf.cast(labels["num_boxes"] > 0, tf.float32)
        return (images, *pack_targets(labels["label"], first, weight, num_classes=num_classes))

    return batches.map(pack)


