"""What a trained network does on a few images, for the run report and the notebooks: the
training crops it saw, its guesses and mistakes on validation crops, dense heat maps, the
classes it confuses, and the protocols' boxes image by image. Each returns arrays;
:mod:`vgg_keras.figures` draws them.

>>> import numpy as np
>>> matrix = confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 2, 1, 1]), 3)
>>> matrix.tolist(), most_confused(matrix, count=2)
([[1, 0, 0], [0, 1, 1], [0, 1, 0]], [1, 2])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from . import data as vdata
from .boxes import DEFAULT_MERGE
from .evaluate import dense_scores, forward, protocol_batches, softmax
from .localization.protocols import protocol1_per_image, protocol2_per_image
from .models import to_dense

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from ._typing import Scale
    from .localization.protocols import Protocol1Image, Protocol2Image

CONFUSED_CLASSES = 8


def _numpy(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))


def run_examples(config: dict[str, Any]) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """``(train, report)`` examples of a run's data (its ``config.json``), split as the run
    split them: the pictures of predictions use the examples the run reported on."""
    splits = vdata.run_splits(config.get("data"), val_fraction=config.get("val_fraction", 0.05),
                              data_dir=config.get("data_dir"), report=config.get("eval_split"))
    return splits.train, splits.report


def training_crops(train: tf.data.Dataset, *, scale: Scale, crop: int, seed: int = 0,
                   flip: bool = True, color_shift: bool = True, boxes: bool = False,
                   count: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """One training batch as the network saw it: ``(images, labels, boxes or None)``.

    The run's scale, crop, seed, flips and colour shift, augmented on the host (the run may have
    done flips and colour on the device: the same distributions). ``boxes`` (a localizer run):
    the training box of each crop, ``[ymin, xmin, ymax, xmax]`` relative to it, NaN where the
    crop cut every box away.
    """
    batches = vdata.train_pipeline(train, scale=scale, crop=crop, batch_size=count, seed=seed,
                                   flip=flip, color_shift=color_shift, boxes=boxes)
    element = next(iter(batches), None)
    if element is None:
        raise ValueError(f"fewer than {count} training images: no batch to show")
    images = _numpy(element[0])
    if not boxes:
        return images, _numpy(element[1]).astype(int), None
    target, weight = element[1], element[2]
    box = _numpy(target["box"]).astype(np.float64)
    box[_numpy(weight["box"]) == 0] = np.nan
    return images, _numpy(target["label"]).astype(int), box


def classify_validation(model: keras.Model, val: tf.data.Dataset, *, test_scale: int, crop: int,
                        keep: int = 16, mistakes: int = 8, limit: int = 1000,
                        batch_size: int = 16) -> dict[str, Any]:
    """The classifier on the central crops of up to ``limit`` validation images (test scale
    ``test_scale``, no flip). Returns ``{"labels", "posteriors"}`` of every image seen, and the
    crops, labels and posteriors of the first ``keep`` images (``"first"``) and of the first
    ``mistakes`` wrong ones (``"mistakes"``)."""
    batches = vdata.eval_pipeline(val, test_scale=test_scale, mode="center", crop=crop,
                                  batch_size=batch_size)
    labels: list[np.ndarray] = []
    posteriors: list[np.ndarray] = []
    first: list[tuple] = []
    wrong: list[tuple] = []
    for images, batch_labels in batches:
        images = _numpy(images)
        batch_labels = _numpy(batch_labels).astype(int).reshape(-1)
        probs = softmax(forward(model, images))
        labels.append(batch_labels)
        posteriors.append(probs)
        for item in zip(images, batch_labels, probs):   # (crop, label, posterior)
            if len(first) < keep:
                first.append(item)
            if np.argmax(item[2]) != item[1] and len(wrong) < mistakes:
                wrong.append(item)
        if sum(map(len, labels)) >= limit:
            break
    if not labels:
        raise ValueError("no validation image to classify")

    def stack(items):
        return {key: np.asarray([item[i] for item in items])
                for i, key in enumerate(("images", "labels", "posteriors"))}

    return {"labels": np.concatenate(labels)[:limit],
            "posteriors": np.concatenate(posteriors)[:limit], "first": stack(first),
            "mistakes": stack(wrong)}


def heat_maps(model: keras.Model, val: tf.data.Dataset, *, test_scale: int,
              count: int = 4) -> list[tuple[np.ndarray, int, int, np.ndarray]]:
    """Dense evaluation of ``count`` whole validation images at test scale ``test_scale``: a list of
    ``(image, label, predicted class, probability map of that class)``; the prediction is the
    dense protocol's (soft-max of the spatially averaged score map, no flip)."""
    dense = to_dense(model)
    found = []
    for image, label in vdata.eval_pipeline(val, test_scale=test_scale, mode="dense").take(count):
        image = _numpy(image).astype("float32")
        score_maps, posteriors = dense_scores(dense, image, flip=False)   # one pass
        predicted = int(np.argmax(posteriors[0]))
        found.append((image[0], int(_numpy(label).reshape(-1)[0]), predicted,
                      softmax(score_maps[0])[..., predicted]))
    return found


def heat_scene(model: keras.Model, val: tf.data.Dataset, *, test_scale: int,
               tiles: int = 4) -> tuple[np.ndarray, list[int], np.ndarray]:
    """The first ``tiles`` (4) validation images of different classes, each the central Q x Q
    square of the image rescaled to Q = ``test_scale``, side by side in a 2 x 2 scene, and the
    soft-max of the dense score map over it: ``(scene, classes, probabilities (rows, cols,
    C))``. A map with several locations per image, even where a lone image at Q gives one."""
    chosen: list[np.ndarray] = []
    classes: list[int] = []
    for images, labels in vdata.eval_pipeline(val, test_scale=test_scale, mode="center",
                                              crop=test_scale, batch_size=32).take(8):
        for image, label in zip(_numpy(images), _numpy(labels).astype(int).reshape(-1)):
            if int(label) not in classes and len(chosen) < tiles:
                chosen.append(image)
                classes.append(int(label))
        if len(chosen) == tiles:
            break
    if not chosen:
        raise ValueError("no validation image to make a scene of")
    chosen += chosen[:1] * (tiles - len(chosen))   # fewer classes than tiles among the first
    half = tiles // 2
    scene = np.concatenate([np.concatenate(chosen[:half], axis=1),
                            np.concatenate(chosen[half:2 * half], axis=1)], axis=0)
    scores = forward(to_dense(model), scene[None].astype("float32"))[0]
    return scene, classes, softmax(scores)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray,
                     num_classes: int) -> np.ndarray:
    """Counts: rows the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predictions, int)), 1)
    return matrix


def most_confused(matrix: np.ndarray, count: int = CONFUSED_CLASSES) -> list[int]:
    """The ``count`` classes involved in most errors (wrong as the truth or as the guess), in
    class order; [] when there is no error."""
    off = matrix - np.diag(np.diag(matrix))
    involvement = off.sum(axis=0) + off.sum(axis=1)
    order = [int(c) for c in np.argsort(-involvement, kind="stable") if involvement[c] > 0]
    return sorted(order[:count])


def protocol1_boxes(localizer: keras.Model, val: tf.data.Dataset, *, test_scale: int,
                    count: int = 16) -> list[Protocol1Image]:
    """Protocol 1's results on the central crops (test scale ``test_scale``) of the first ``count``
    validation images, those without a usable ground-truth box left out."""
    batches = protocol_batches(val.take(count), "center", test_scale, localizer.input_shape[1],
                               count, boxes=True)
    return [r for r in protocol1_per_image(localizer, batches, total=count,
                                           progress_label=f"report: protocol 1 Q={test_scale}")
            if not r.skipped]


def protocol2_boxes(localizer: keras.Model, classifier: keras.Model, val: tf.data.Dataset, *,
                    test_scale: int, count: int = 8, merge: str = DEFAULT_MERGE,
                    merge_threshold: float | None = None) -> list[Protocol2Image]:
    """Protocol 2's results at one test scale, without the flip, on the first ``count`` whole
    validation images, those without a usable ground-truth box left out."""
    results = protocol2_per_image(
        localizer, classifier,
        lambda q: protocol_batches(val.take(count), "dense", q, boxes=True).as_numpy_iterator(),
        scales=[test_scale], flip=False, merge=merge, merge_threshold=merge_threshold, total=count,
        progress_label=f"report: protocol 2 Q={test_scale}")
    return [r for r in results if not r.skipped]
