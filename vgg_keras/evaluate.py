"""The paper's test protocols (Section 3.2) and its error metrics.

Every protocol reduces to soft-max posteriors per image, which are then averaged: over the
original and flipped image, over the 50 crops of a scale, over scales, over dense and multi-crop,
over models (fusion). Errors are top-1 and top-5 as in Tables 3-6.

:data:`PROTOCOLS` is the one registry of the protocols: for each name ("center", "dense",
"multicrop") the ``eval_pipeline`` mode, how many images a batch holds and how a batch becomes
posteriors. :func:`protocol_batches` gives a protocol's batches, :func:`collect_posteriors` its
posteriors; the tasks and the notebooks read both.

Each protocol pass shows a progress bar on stderr ("dense Q=384", images done out of the
dataset's size when it is known); ``vgg_keras.progress.set_quiet()`` silences them.

>>> from vgg_keras import build_vgg
>>> from vgg_keras.data import load
>>> model = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125)   # untrained: at chance
>>> val = load("vgg_shapes", "validation[:8]")
>>> results = evaluate_classifier(model, lambda q, m: protocol_batches(val, m, q, crop=64),
...                               scales=(64, 96), methods=("center", "dense"))
>>> print(format_table(results))
top-1 / top-5 error (%)
<BLANKLINE>
| model(s) | test scale(s) | method | top-1 | top-5 |
|---|---|---|---|---|
| vgg_a | 64 | center | ... | ... |
| vgg_a | 96 | center | ... | ... |
| vgg_a | 64,96 | center | ... | ... |
| vgg_a | 64 | dense | ... | ... |
| vgg_a | 96 | dense | ... | ... |
| vgg_a | 64,96 | dense | ... | ... |
"""

from __future__ import annotations

import json
import logging
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from .layers import MinimumSpatialSize
from .models import to_dense
from .progress import progress
from .transforms import MULTICROP_CROPS

if TYPE_CHECKING:
    import tensorflow as tf

    from ._typing import PathLike, Tensor

Batches = Iterable[tuple[Any, Any]]
"""``(images, labels)`` pairs: an ``eval_pipeline`` dataset, its ``as_numpy_iterator()``, or
any iterable of numpy arrays."""

log = logging.getLogger(__name__)


def softmax(logits: Tensor) -> np.ndarray:
    """Numerically stable soft-max over the last axis, in float64 numpy."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def topk_error(posteriors: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of images whose label is not among the ``k`` highest-scoring classes.

    Ties are broken against the label (a constant score never counts as correct).

    >>> topk_error(np.array([[0.1, 0.7, 0.2]]), np.array([2]), 1)
    1.0
    >>> topk_error(np.array([[0.1, 0.7, 0.2]]), np.array([2]), 2)
    0.0
    """
    posteriors = np.asarray(posteriors)
    labels = np.asarray(labels).astype(int)
    k = min(k, posteriors.shape[-1])
    true_score = posteriors[np.arange(len(labels)), labels]
    higher = (posteriors > true_score[:, None]).sum(axis=1)
    ties = (posteriors == true_score[:, None]).sum(axis=1) - 1
    return float(np.mean(higher + ties >= k))


def errors(posteriors: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """``{"top1": ..., "top5": ...}`` errors in percent."""
    return {
        "top1": 100.0 * topk_error(posteriors, labels, 1),
        "top5": 100.0 * topk_error(posteriors, labels, 5),
    }


def _to_numpy(x):
    return keras.ops.convert_to_numpy(x)


_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def compiles_per_shape() -> bool:
    """Whether the backend compiles the net again for every input shape (JAX): there, batching
    images of one size into passes of varied batch sizes adds shapes to compile, and one
    image a pass is faster (``bench/evaluation.py``)."""
    return keras.backend.backend() == "jax"


def forward(model: keras.Model, images: Any) -> np.ndarray:
    """``model``'s outputs on ``images`` (inference), as numpy.

    On TensorFlow the call runs as one ``tf.function`` per model that takes any batch and
    image size (``reduce_retracing``): an eager call of a small VGG costs about 0.06 s of
    Python and dispatch whatever the batch, which made dense evaluation, one image a pass,
    12x slower (``bench/evaluation.py``). Other backends call the model as it is.

    >>> from vgg_keras import build_vgg
    >>> model = build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125)
    >>> forward(model, np.zeros((2, 32, 32, 3), "float32")).shape
    (2, 10)
    """
    if keras.backend.backend() != "tensorflow":
        return _float32(_to_numpy(model(images, training=False)))
    compiled = _COMPILED.get(model)
    if compiled is None:
        # The backend is TensorFlow, so it is imported already.
        tf = sys.modules["tensorflow"]
        # The cache must not keep the model alive (nor can it outlive it: its key is the model).
        held: Callable[[], keras.Model] = weakref.ref(model)
        compiled = tf.function(lambda x: held()(x, training=False), reduce_retracing=True)
        _COMPILED[model] = compiled
    return _float32(_to_numpy(compiled(images)))


def _float32(outputs):
    # A mixed-precision net answers in bfloat16, whose numpy means lose about 5%.
    if outputs.dtype.kind in "fV" and outputs.dtype.itemsize < 4:
        return outputs.astype("float32")
    return outputs


DENSE_BUCKET = 32
"""On a backend that compiles for every input shape (JAX), dense evaluation pads each image to
the next multiple of this many pixels in height and width (:func:`padded_dense_forward`), so
that one shape is compiled per bucket instead of one per image size."""


def _valid_extent(layer: keras.layers.Layer, extent: np.ndarray) -> np.ndarray:
    """The (height, width) of the part of ``layer``'s output computed from the image alone,
    given that of its input: a valid convolution or pooling shrinks it, every other layer of a
    dense VGG (same-padded stride-1 convolutions, normalisation, LRN, dropout) keeps it."""
    if isinstance(layer, (keras.layers.Conv2D, keras.layers.MaxPooling2D)):
        window = layer.kernel_size if isinstance(layer, keras.layers.Conv2D) else layer.pool_size
        if layer.padding == "valid":
            return (extent - np.asarray(window)) // np.asarray(layer.strides) + 1
        if tuple(layer.strides) != (1, 1):
            raise ValueError(f"padded_dense_forward: layer {layer.name!r} is same-padded with "
                             f"strides {layer.strides}; its border cannot be masked exactly.")
    return extent


def padded_dense_forward(dense_model: keras.Model, images: np.ndarray,
                         bucket: int = DENSE_BUCKET) -> np.ndarray:
    """``dense_model``'s score maps of equal-sized ``images``, computed on the images padded to
    a multiple of ``bucket`` pixels: equal to ``forward(dense_model, images)`` within float
    rounding, and the same input shape for every image size in a bucket.

    Before every same-padded convolution the input is zeroed outside the part the image alone
    determines, so the kernel sees zeros there, as its own padding would give it; valid
    convolutions and pooling never read beyond the part they keep, and the maps are cropped
    back to it.

    >>> from vgg_keras import build_vgg
    >>> model = build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125, init="glorot")
    >>> dense = to_dense(model)
    >>> image = np.random.default_rng(0).uniform(0, 255, (1, 70, 52, 3)).astype("float32")
    >>> padded = padded_dense_forward(dense, image)       # run at 96 x 64
    >>> padded.shape, bool(np.allclose(padded, forward(dense, image), rtol=1e-4, atol=1e-5))
    ((1, 2, 1, 10), True)
    """
    images = np.asarray(images, dtype="float32")
    count, height, width = images.shape[:3]
    padded_size = -(-np.array([height, width]) // bucket) * bucket
    x = np.zeros((count, *padded_size, images.shape[3]), "float32")
    x[:, :height, :width] = images
    extent = np.array([height, width])
    for layer in dense_model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, MinimumSpatialSize):   # the padded size would pass its check
            layer.compute_output_shape(images.shape)
        if _reads_its_padding(layer):
            rows = np.arange(x.shape[1])[:, None] < extent[0]
            columns = np.arange(x.shape[2])[None, :] < extent[1]
            x = x * keras.ops.convert_to_tensor((rows & columns)[None, :, :, None], x.dtype)
        x = layer(x, training=False)
        extent = _valid_extent(layer, extent)
    return _float32(_to_numpy(x))[:, :extent[0], :extent[1]]


def _reads_its_padding(layer):
    # A same-padded kernel wider than one pixel reads zeros beyond the image's edge; valid
    # convolutions, pooling and per-pixel layers never read beyond the part they keep.
    return (isinstance(layer, keras.layers.Conv2D) and layer.padding == "same"
            and tuple(layer.kernel_size) != (1, 1))


def dense_forward(dense_model: keras.Model, images: np.ndarray) -> np.ndarray:
    """``dense_model``'s score maps of equal-sized ``images``: :func:`forward`, or on a backend
    that compiles for every input shape (JAX) :func:`padded_dense_forward`, which compiles one
    shape per :data:`DENSE_BUCKET`-pixel bucket instead of one per image size."""
    if compiles_per_shape():
        return padded_dense_forward(dense_model, images)
    return forward(dense_model, images)


def dense_posteriors(dense_model: keras.Model, images: np.ndarray,
                     flip: bool = True) -> np.ndarray:
    """Soft-max of the spatially averaged class score map, averaged with the flipped image.

    ``images`` is a batch of equal-sized whole images (N, H, W, 3), RGB in [0, 255].
    """
    return dense_scores(dense_model, images, flip)[1]


def dense_scores(dense_model: keras.Model, images: np.ndarray,
                 flip: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(score maps (N, h, w, C), posteriors (N, C))`` of the dense protocol: the class score
    maps of ``images`` and :func:`dense_posteriors` from them."""
    images = np.asarray(images, dtype="float32")
    count = len(images)
    if flip:   # one forward pass for the images and their mirror images
        images = np.concatenate([images, images[:, :, ::-1]])
    maps = dense_forward(dense_model, images)
    posteriors = softmax(maps.mean(axis=(1, 2)))
    if flip:
        maps, posteriors = maps[:count], 0.5 * (posteriors[:count] + posteriors[count:])
    return maps, posteriors


DENSE_READ_AHEAD = 8
"""Dense evaluation reads this many forward passes' worth of images ahead to find images of
equal size (see :func:`same_size_batches`)."""


def same_size_batches(batches: Iterable[tuple[Any, Any]], pixels: int, *,
                      read_ahead: int = DENSE_READ_AHEAD
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Regroup whole images of any sizes into batches of images of one size.

    Dense evaluation gets one image per batch (sizes differ, and padding would change the
    averaged score map), and a forward pass per image costs mostly the framework's per-call
    overhead on small images. This reads ``read_ahead`` passes' worth of images ahead, groups
    them by (height, width) and yields ``(positions, images (n, H, W, 3), labels (n,))`` with at
    most ``pixels`` pixels in all (at least one image); ``positions`` number the images in the
    order they came, to put results back in that order.

    >>> images = [np.zeros((1, h, 5, 3)) for h in (4, 6, 4, 4)]
    >>> for positions, group, labels in same_size_batches(zip(images, [[0], [1], [2], [3]]), 40):
    ...     print(positions, group.shape, labels)
    [0 2] (2, 4, 5, 3) [0 2]
    [3] (1, 4, 5, 3) [3]
    [1] (1, 6, 5, 3) [1]
    """
    pending: dict[tuple[int, int], list] = {}
    buffered = position = 0

    def flush():
        for (height, width), items in pending.items():
            per_pass = max(1, pixels // (height * width))
            for start in range(0, len(items), per_pass):
                chunk = items[start:start + per_pass]
                yield (np.array([p for p, _, _ in chunk]), np.stack([i for _, i, _ in chunk]),
                       np.array([label for _, _, label in chunk]))
        pending.clear()

    for images, labels in batches:
        if isinstance(labels, dict):   # eval_pipeline's boxes=True labels
            labels = labels["label"]
        for image, label in zip(images, np.asarray(labels).reshape(-1), strict=True):
            pending.setdefault(tuple(image.shape[:2]), []).append((position, image, label))
            position += 1
            buffered += image.shape[0] * image.shape[1]
        if buffered >= read_ahead * pixels:
            yield from flush()
            buffered = 0
    yield from flush()


def crop_posteriors(model: keras.Model, crops: np.ndarray, flip: bool = False) -> np.ndarray:
    """Mean soft-max over a set of crops of one image each: ``crops`` is (N, K, h, w, 3).

    Multi-crop evaluation passes the 50 crops (5x5 grid x 2 flips) of each image as K.
    """
    crops = np.asarray(crops)
    n, k = crops.shape[:2]
    flat = crops.reshape((n * k,) + crops.shape[2:])
    posteriors = softmax(forward(model, flat)).reshape(n, k, -1).mean(axis=1)
    if flip:
        flipped = softmax(forward(model, flat[:, :, ::-1]))
        posteriors = 0.5 * (posteriors + flipped.reshape(n, k, -1).mean(axis=1))
    return posteriors


# ----------------------------------------------------------------------------------------------
# The registry of protocols


def _center_posteriors(model, dense_model, images, labels, flip):
    return crop_posteriors(model, images[:, None], flip=flip), labels


def _dense_posteriors(model, dense_model, images, labels, flip):
    return dense_posteriors(dense_model, images, flip=flip), labels


def _multicrop_posteriors(model, dense_model, images, labels, flip):
    labels = np.asarray(labels).reshape(-1)
    if images.ndim == 4:   # eval_pipeline's flattened (N * K, c, c, 3)
        images = images.reshape((len(labels), -1) + images.shape[1:])
    return crop_posteriors(model, images, flip=False), labels  # flips are among the crops


@dataclass(frozen=True)
class Protocol:
    """One test protocol of Section 3.2.

    ``mode`` is ``vgg_keras.data.eval_pipeline``'s; ``images_per_batch(batch_size)`` how many
    images a batch holds when a forward pass may take about ``batch_size`` crops;
    ``posteriors(model, dense_model, images, labels, flip)`` turns one batch into ``(posteriors
    (N, C), labels (N,))``; ``dense`` says whether it runs the dense net (``to_dense(model)``).
    """

    name: str
    mode: str
    images_per_batch: Callable
    posteriors: Callable
    dense: bool = False


PROTOCOLS = {
    "center": Protocol("center", "center", lambda batch_size: batch_size, _center_posteriors),
    # Images differ in size: one whole image per batch.
    "dense": Protocol("dense", "dense", lambda batch_size: 1, _dense_posteriors, dense=True),
    # Each image is MULTICROP_CROPS crops: as many images as fit batch_size crops, at least one.
    "multicrop": Protocol("multicrop", "multicrop",
                          lambda batch_size: max(1, batch_size // MULTICROP_CROPS),
                          _multicrop_posteriors),
}
"""The protocols by name: center crop, dense (fully convolutional, whole image) and multi-crop
(5 x 5 grid x 2 flips), each with its batching and its posteriors."""

METHODS = tuple(PROTOCOLS)


def protocol(method: str) -> Protocol:
    """The :class:`Protocol` named ``method``, or a ValueError naming :data:`METHODS`."""
    if method not in PROTOCOLS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return PROTOCOLS[method]


def protocol_batches(examples: tf.data.Dataset, method: str, test_scale: int, crop: int = 224,
                     batch_size: int = 32, *, boxes: bool = False) -> tf.data.Dataset:
    """The ``eval_pipeline`` batches of ``examples`` for protocol ``method`` at test scale
    ``test_scale``, batched by the protocol's rule: ``batch_size`` images for "center", one for
    "dense", ``batch_size // 50`` (at least one) for "multicrop", so that a forward pass takes
    about ``batch_size`` crops. ``boxes`` as ``eval_pipeline`` (center and dense).

    >>> from vgg_keras.data import load
    >>> val = load("vgg_shapes", "validation[:4]")
    >>> for method in METHODS:
    ...     images, labels = next(iter(protocol_batches(val, method, 64, crop=64)))
    ...     print(method, tuple(images.shape), tuple(labels.shape))
    center (4, 64, 64, 3) (4,)
    dense (1, ..., ..., 3) (1,)
    multicrop (50, 64, 64, 3) (1,)
    """
    # vgg_keras.data imports TensorFlow, which evaluating numpy batches (the rest of this
    # module) does not need.
    from .data import eval_pipeline

    chosen = protocol(method)
    return eval_pipeline(examples, test_scale=test_scale, mode=chosen.mode, crop=crop,
                         batch_size=chosen.images_per_batch(batch_size), boxes=boxes)


# ----------------------------------------------------------------------------------------------
# Running a protocol


def _labels_in(labels):
    """How many images a batch's labels (an array, or a dict with a ``"label"`` array) cover."""
    if isinstance(labels, dict):
        labels = labels["label"]
    return int(np.size(labels))


def known_total(batches: Batches) -> tuple[int | None, str]:
    """``(total, unit)`` for a progress bar over ``batches``, read without consuming them:
    images (``"img"``) when the number is known, else batches when the dataset knows how many
    it has, else images with no total.

    >>> from vgg_keras.data import eval_pipeline, load
    >>> known_total(eval_pipeline(load("vgg_shapes", "validation"), test_scale=84, crop=64))
    (500, 'img')
    >>> known_total([(np.zeros((2, 8, 8, 3)), np.zeros(2)), (np.zeros((1, 8, 8, 3)), [0])])
    (3, 'img')
    """
    dataset = batches
    tf = sys.modules.get("tensorflow")   # a tf.data.Dataset means TensorFlow is imported
    if tf is not None and isinstance(dataset, tf.data.Dataset):
        # vgg_keras.data imports TensorFlow: here only, where a tf.data dataset shows it is loaded.
        from .data import info

        try:   # vgg_keras.data.eval_pipeline keeps load()'s metadata: the number of images
            return info(dataset).num_examples, "img"
        except ValueError:   # another dataset: no metadata
            pass
        cardinality = int(dataset.cardinality())
        return (cardinality, "batch") if cardinality >= 0 else (None, "img")
    if isinstance(batches, (list, tuple)):
        return sum(_labels_in(labels) for _, labels in batches), "img"
    return None, "img"


def track(batches: Batches, label: str,
          total: int | None = None) -> Iterator[tuple[Any, Any]]:
    """Iterate ``batches`` of ``(images, labels)`` (a ``tf.data.Dataset`` as numpy) while a
    progress bar named ``label`` counts the images on stderr (see :mod:`vgg_keras.progress`).

    The bar's total is ``total`` images if given, else read from ``batches`` when it is an
    ``eval_pipeline`` dataset or a list; otherwise only the
    count and rate show.

    >>> from vgg_keras.data import eval_pipeline, load
    >>> batches = eval_pipeline(load("vgg_shapes", "validation[:40]"), test_scale=72, crop=64)
    >>> for images, labels in track(batches, "center Q=72"):    # "center Q=72: 40/40 img"
    ...     print(images.shape, labels.shape)                    # numpy arrays
    (32, 64, 64, 3) (32,)
    (8, 64, 64, 3) (8,)
    """
    unit = "img"
    if total is None:
        total, unit = known_total(batches)
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(batches, tf.data.Dataset):
        batches = batches.as_numpy_iterator()
    # progress(None, ...) is a bar advanced by hand (tqdm's update), to count images, not
    # batches; `with` closes it, printing the final count, even when the loop stops early.
    with progress(None, label, total=total, unit=unit) as bar:
        for images, labels in batches:
            yield images, labels
            bar.update(_labels_in(labels) if unit == "img" else 1)


def collect_posteriors(model: keras.Model, batches: Batches, method: str, *, flip: bool = True,
                       dense_model: keras.Model | None = None, label: str | None = None,
                       total: int | None = None,
                       batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Run one protocol over an eval pipeline's batches; return (posteriors, labels), in the
    order the images came.

    ``batches`` yields ``(images, labels)`` as ``vgg_keras.data.eval_pipeline`` makes them for
    ``method``: center crops (N, c, c, 3), whole images (N, H, W, 3) for dense, or the crop
    sets of N images for multicrop, (N, K, c, c, 3) or flattened to (N * K, c, c, 3). It may be
    the dataset itself, its ``as_numpy_iterator()`` or any iterable of numpy arrays. Dense
    evaluation regroups the whole images by size (:func:`same_size_batches`) into forward
    passes of about as many pixels as ``batch_size`` crops, the mirror images included (one
    image and its mirror at least; on JAX, which compiles for each shape, exactly that).

    A progress bar named ``label`` (default: the method) counts the images out of ``total``,
    or out of the dataset's size when ``batches`` comes from ``eval_pipeline``.

    >>> from vgg_keras import build_vgg
    >>> from vgg_keras.data import eval_pipeline, load
    >>> model = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125)
    >>> ds = load("vgg_shapes", "validation[:6]")
    >>> posteriors, labels = collect_posteriors(
    ...     model, eval_pipeline(ds, test_scale=72, mode="dense"), "dense", label="dense Q=72")
    >>> posteriors.shape, labels.shape, bool(np.allclose(posteriors.sum(axis=1), 1))
    ((6, 10), (6,), True)
    """
    chosen = protocol(method)
    all_posteriors, all_labels, all_positions = [], [], []
    batches = track(batches, label or method, total)
    groups: Iterable[tuple[np.ndarray | None, Any, Any]]
    if chosen.dense:
        dense_model = dense_model or to_dense(model)
        height, width = model.input_shape[1:3]
        # As many pixels a pass as batch_size crops; the flipped images share the pass.
        pixels = batch_size * height * width // (2 if flip else 1)
        groups = same_size_batches(batches, 0 if compiles_per_shape() else pixels)
    else:
        groups = ((None, images, labels) for images, labels in batches)
    for positions, images, labels in groups:
        images = np.asarray(images, dtype="float32")
        posteriors, labels = chosen.posteriors(model, dense_model, images, labels, flip)
        all_posteriors.append(posteriors)
        all_labels.append(np.asarray(labels).reshape(-1))
        if positions is not None:
            all_positions.append(positions)
    if not all_posteriors:
        raise ValueError("The evaluation data is empty.")
    posteriors, labels = np.concatenate(all_posteriors), np.concatenate(all_labels)
    if all_positions:   # back in the order the images came
        order = np.argsort(np.concatenate(all_positions), kind="stable")
        posteriors, labels = posteriors[order], labels[order]
    return posteriors, labels


def evaluate_classifier(models: keras.Model | Sequence[keras.Model],
                        make_batches: Callable[[int, str], Batches], *, scales: Sequence[int],
                        methods: Sequence[str] = ("dense",), flip: bool = True,
                        total: int | None = None, batch_size: int = 32) -> list[dict[str, Any]]:
    """Evaluate one model or several (fusion) over test scales and methods.

    ``make_batches(scale, method)`` returns an iterable of batches for that scale and method
    (e.g. ``lambda q, m: protocol_batches(ds, m, q, crop=224)``). Each pass
    shows a progress bar ("dense Q=384", and the model's name when several are fused) counting
    images out of ``total``, or out of the dataset's size when the batches come from
    ``eval_pipeline`` (or its ``as_numpy_iterator()``). Dense passes hold about as many
    pixels as ``batch_size`` crops (:func:`collect_posteriors`).

    Returns a list of rows ``{"models", "scales", "method", "top1", "top5"}``: one per
    (scale, method), one per method over all scales (multi-scale), the dense + multi-crop
    combination when both are asked for. With several models, these rows come first for each
    model alone (``"models": [its name]``) and then for the fusion of all of them, as the
    paper's Table 6 lists a combination next to its members, from the same passes. Posteriors
    are averaged exactly as in the paper.
    """
    if isinstance(models, keras.Model):
        models = [models]
    names = [m.name for m in models]
    dense = any(protocol(method).dense for method in methods)
    dense_models = [to_dense(m) if dense else None for m in models]
    store, labels = {}, None
    for scale in scales:
        for method in methods:
            per_model = []
            for model, dense_model in zip(models, dense_models):
                label = f"{method} Q={scale}" + (f" {model.name}" if len(models) > 1 else "")
                posteriors, seen = collect_posteriors(model, make_batches(scale, method), method,
                                                      flip=flip, dense_model=dense_model,
                                                      label=label,
                                                      total=total, batch_size=batch_size)
                if labels is None:
                    labels = seen
                elif not np.array_equal(labels, seen):
                    raise ValueError("The evaluation data came in a different order between runs; "
                                     "the eval pipeline must be deterministic.")
                per_model.append(posteriors)
            store[(scale, method)] = per_model
    members = [([name], {key: runs[i] for key, runs in store.items()})
               for i, name in enumerate(names)] if len(models) > 1 else []
    fusion = (names, {key: np.mean(runs, axis=0) for key, runs in store.items()})
    return [row for member_names, posteriors in [*members, fusion]
            for row in _protocol_rows(member_names, posteriors, labels, scales, methods)]


def _protocol_rows(names, posteriors, labels, scales, methods):
    """The rows of :func:`evaluate_classifier` for one model or one fusion, from its
    posteriors ``{(scale, method): (N, C)}``."""
    def row(selected_scales, method, averaged):
        return {"models": list(names), "scales": list(selected_scales), "method": method,
                "images": int(len(labels)), **errors(averaged, labels)}

    rows = []
    for method in methods:
        rows += [row([scale], method, posteriors[(scale, method)]) for scale in scales]
        if len(scales) > 1:
            rows.append(row(scales, method,
                            np.mean([posteriors[(s, method)] for s in scales], axis=0)))
    if "dense" in methods and "multicrop" in methods:
        rows.append(row(scales, "dense+multicrop", np.mean(
            [posteriors[(s, m)] for s in scales for m in ("dense", "multicrop")], axis=0)))
    return rows


def format_table(rows: Sequence[dict[str, Any]], title: str = "top-1 / top-5 error (%)") -> str:
    """Rows as a markdown table in the layout of the paper's Tables 3-6."""
    lines = [f"{title}", "", "| model(s) | test scale(s) | method | top-1 | top-5 |",
             "|---|---|---|---|---|"]
    for row in rows:
        scales = ",".join(str(s) for s in row["scales"])
        lines.append(f"| {' + '.join(row['models'])} | {scales} | {row['method']} | "
                     f"{row['top1']:.1f} | {row['top5']:.1f} |")
    return "\n".join(lines)


def write_json(rows: Sequence[dict[str, Any]], path: PathLike) -> None:
    with open(path, "w") as handle:
        json.dump(rows, handle, indent=1)
