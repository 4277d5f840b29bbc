"""The paper's training and test protocols as tf.data pipelines over :func:`~.sources.load`.

Training (Section 3.1): per image, S drawn uniformly from ``[Smin, Smax]`` (or fixed), isotropic
rescale to shorter side S and one random ``crop x crop`` patch, decoded from only the window of
the file it needs; random horizontal flip; AlexNet PCA colour shift. Evaluation (Section 3.2):
rescale to Q, then the central crop, the whole image (dense) or the 5 x 5 x 2 multi-crop set.
Images leave as RGB float32 in [0, 255]; the model subtracts the mean itself.

>>> import vgg_keras.data
>>> ds = vgg_keras.data.load("vgg_shapes", "train")
>>> train = train_pipeline(ds, scale=(72, 96), crop=64, batch_size=32, seed=0)
>>> images, labels = next(iter(train))
>>> images.shape, images.dtype.name, labels.shape, labels.dtype.name
(TensorShape([32, 64, 64, 3]), 'float32', TensorShape([32]), 'int32')
>>> val = eval_pipeline(vgg_keras.data.load("vgg_shapes", "validation"), test_scale=84, crop=64)
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from collections.abc import Sequence
from typing import TYPE_CHECKING

import tensorflow as tf

from .. import augment
from ..configs import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC
from ..transforms import MULTICROP_GRID
from . import ops
from . import service as data_service
from .placement import Placement
from .sources import attach_info, block_shuffle, filter_positions

if TYPE_CHECKING:
    from .._typing import Scale

MODES = ("center", "dense", "multicrop")


def _check_scale(scale, crop, what):
    if isinstance(scale, (tuple, list)):
        if len(scale) != 2 or any(int(s) != s for s in scale) or scale[0] > scale[1]:
            raise ValueError(f"{what} must be an int S or a pair (Smin, Smax); got {scale}.")
        low = int(scale[0])
        scale = (int(scale[0]), int(scale[1]))
    elif isinstance(scale, (int, float)) and int(scale) == scale:
        low = scale = int(scale)
    else:
        raise ValueError(f"{what} must be an int S or a pair (Smin, Smax); got {scale!r}.")
    if crop is not None and low < crop:
        raise ValueError(
            f"{what}={scale} is smaller than crop={crop}: the paper's crops are cut from images "
            f"whose shorter side is at least the crop (S >= 224 for 224 crops)."
        )
    return scale


def _check_batch_size(batch_size):
    if batch_size is None or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    return int(batch_size)


def _meta(dataset):
    return getattr(dataset, "_vgg_info", None)


def _check_elements(dataset, need_boxes):
    spec = dataset.element_spec
    if not isinstance(spec, dict) or "image" not in spec or "label" not in spec:
        raise ValueError(
            "The pipelines take the examples of vgg_keras.data.load: dicts with 'image' "
            f"(encoded bytes), 'label' and 'boxes'; got {spec}."
        )
    if need_boxes:
        meta = _meta(dataset)
        if (meta is not None and not meta.has_boxes) or "boxes" not in spec:
            name = meta.name if meta is not None else "this dataset"
            raise ValueError(
                f"boxes=True needs a source with bounding boxes; {name} has none (use the "
                "embedded dataset, a TFDS dataset with objects/bbox, or a VOC-XML directory)."
            )


def _epoch_keys(seed, repeat, initial_epoch):
    """One int64 key per epoch.

    With ``repeat`` (the resumable stream), epoch e's key is a stateless function of (seed, e),
    so a run resumed at ``initial_epoch=e`` gets exactly the batches it would have had, however
    often the dataset object was iterated (``tf.distribute`` iterates it more than once).
    Without it, each pass over the dataset draws the next number of ``Dataset.random(seed)``'s
    per-iteration sequence, so ``fit(epochs=N)`` on the finite dataset sees N different epochs.
    """
    if repeat:
        return tf.data.Dataset.range(initial_epoch, _NEVER).map(lambda e: _epoch_key(seed, e))
    if initial_epoch:
        raise ValueError("initial_epoch needs repeat=True (a resumable, endless stream).")
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)


def _epoch_key(seed, epoch):
    """Epoch ``epoch``'s int64 key: a stateless function of (seed, epoch)."""
    folded = tf.random.experimental.stateless_fold_in(tf.constant([seed, 0], tf.int64), epoch)
    return folded[0] ^ folded[1]


_NEVER = 2**62
"""An epoch count no run reaches: the resumable stream is endless in practice."""


def _example_seed(key, index, stream):
    """A stateless seed for one random draw (``stream``) of example ``index`` of an epoch."""
    return tf.random.experimental.stateless_fold_in(tf.stack([key, index]), stream)


def _ignore_errors(dataset):
    # Files are validated when listed (sources.probe_image); this only guards against a file
    # that changed since, or a decoder stricter than PIL, so that an epoch never dies. TF logs
    # each error it skips.
    return dataset.ignore_errors(log_warning=True)


def train_pipeline(dataset: tf.data.Dataset, *, scale: Scale = (256, 512), crop: int = 224,
                   batch_size: int, flip: bool = True, color_shift: bool = True,
                   boxes: bool = False, seed: int | None = None,
                   placement: Placement | None = None,
                   repeat: bool = False, initial_epoch: int = 0,
                   eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
                   eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC,
                   drop_remainder: bool = True,
                   steps_per_epoch: int | None = None,
                   shard: tuple[int, int] = (0, 1),
                   service: str | None = None,
                   service_job: str | None = None) -> tf.data.Dataset:
    """Training batches by the paper's recipe, ready for ``model.fit``.

    Args:
        dataset: what :func:`vgg_keras.data.load` returned (shuffled by reading its file list
            in a new order each epoch), or any dataset of such examples (shuffled through a
            buffer).
        scale: S (single-scale training) or ``(Smin, Smax)`` (scale jittering, S drawn per
            image uniformly from the integers in that range). At least ``crop``.
        crop: side of the square crop (224 in the paper).
        batch_size: examples per batch.
        flip: random horizontal flip, probability 1/2.
        color_shift: AlexNet PCA colour shift, alpha ~ N(0, 0.1), with ``eigval``/``eigvec``
            (ImageNet's by default; :func:`compute_statistics` gives a dataset's own).
        boxes: also return one box per example (see Returns).
        seed: the same seed gives the same batches (order, S, crops, flips, colours); None
            draws one. Epoch ``e`` is a pure function of ``(seed, e)``: the ``e``-th pass
            over the returned dataset, or with ``repeat`` the ``e``-th epoch of the stream.
        placement: where each step runs (:class:`vgg_keras.data.Placement`; all on the host
            by default). ``Placement(augment="device")`` leaves the flip and the colour shift
            to Keras layers placed before the model (``vgg_keras.augment.training_augmentation``,
            attached to the result as ``.augmentation``), so that they run on the
            accelerator; with ``boxes=True`` the flip stays on the host (boxes follow it).
            ``Placement(resample="device")`` also leaves the bilinear
            resampling of the crops to the device: the host decodes the window each crop
            reads and hands it over as uint8 in a fixed ``bucket x bucket``
            (:func:`vgg_keras.data.ops.decode_window`), with where the crop samples it and the
            flip; ``vgg_keras.augment.WindowCrop``, first in ``.augmentation`` (then a
            Functional model taking the windows' dict: build the trainer with
            ``vgg_keras.fitting.with_training_augmentation(model, train.augmentation)``),
            resamples them batched in the training step. The crops are the host path's
            (within 0.5 grey levels; float rounding except for the rare window larger than
            the bucket, cropped on the host and rounded to uint8).
        repeat: an endless stream of epochs (for ``fit(steps_per_epoch=...)``), starting at
            epoch ``initial_epoch``: a resumed run gets exactly the batches it would have had.
        drop_remainder: drop the last incomplete batch of each epoch.
        steps_per_epoch: end each epoch after this many batches (``fit(steps_per_epoch=...)``
            with fewer steps than a full pass), so that ``initial_epoch`` stays aligned with
            Keras's epochs. Must not exceed the batches in one pass.
        shard: ``(index, count)``: this process's share when ``count`` processes train
            together (:mod:`vgg_keras.cluster`). ``batch_size`` stays the global batch; this
            process reads, decodes and returns only its ``batch_size // count`` examples of
            each, the ``index``-th slice, so the processes' batches side by side are the one
            process's batch, example for example (every draw is keyed by the example's place
            in the epoch, not by which process makes it), whole global batches only. A file
            that fails to decode (files are checked when listed, so only one changed since)
            is skipped by its process alone and shifts that process's later examples.
        service: a tf.data service dispatcher's address (``"grpc://host:5050"`` or
            ``"host:5050"``; :mod:`vgg_keras.data.service` starts one and its workers): the
            reading, decoding, cropping and host augmentation run on its workers, which share
            every epoch out between them, each example exactly once and made as here (its
            draws keyed by its place in the epoch). The order in which examples arrive, and so
            the batches they fall into, follows the workers' pace; without ``repeat``, the
            stream is one epoch, ``initial_epoch``'s (as the resumable stream has it). Directory
            sources only
            (any worker must be able to read any one example); the files must be at the same
            paths on the workers.
        service_job: the service's job name: the processes of one run share it (and so share
            out the examples); a fresh one when None.

    Returns:
        A ``tf.data.Dataset`` of ``(images, labels)``: float32 ``(B, crop, crop, 3)`` RGB in
        [0, 255] (a colour-shifted value can be clipped at 0 or 255) and int32 ``(B,)``. With
        ``resample="device"``, ``images`` is ``{"windows": uint8 (B, bucket, bucket, 3),
        "geometry": float32 (B, 6)}``.
        With ``boxes=True``: ``(images, {"label": (B,), "box": (B, 4)}, {"label": (B,),
        "box": (B,)})``: ``box`` is the box the crop keeps most of, ``[ymin, xmin, ymax, xmax]``
        relative to the crop and clipped to it; the third element is Keras sample weights,
        1 where a box is present and 0 where the crop cut every box away (that example's
        ``box`` is then [0, 0, 0, 0], to be masked by the weight, never learnt from).

    >>> from vgg_keras.data import load
    >>> train = train_pipeline(load("vgg_shapes"), scale=(72, 96), crop=64, batch_size=32,
    ...                        seed=0)                    # model.fit(train, epochs=...)
    >>> boxed = train_pipeline(load("vgg_shapes"), scale=(72, 96), crop=64, batch_size=8,
    ...                        boxes=True, seed=0)
    >>> images, targets, weights = next(iter(boxed))
    >>> sorted(targets), targets["box"].shape, weights["box"].shape
    (['box', 'label'], TensorShape([8, 4]), TensorShape([8]))
    """
    scale, batch_size, steps_per_epoch = _check_train_args(
        dataset, scale, crop, batch_size, boxes, steps_per_epoch)
    shard = _check_shard(shard, batch_size)
    seed = secrets.randbits(31) if seed is None else int(seed)
    eigval, eigvec = tuple(float(v) for v in eigval), tuple(tuple(map(float, r)) for r in eigvec)
    placement = _with_boxes(placement or Placement(), boxes)
    bucket = placement.window_bucket(crop)
    transform = _train_transform(
        scale, crop, boxes=boxes, flip=flip and placement.host_flips,
        color_shift=color_shift and placement.host_shifts_colour, eigval=eigval, eigvec=eigvec,
        bucket=bucket)
    if service:
        batches = _service_epochs(dataset, transform, seed, batch_size, drop_remainder,
                                  steps_per_epoch, repeat, initial_epoch, shard, service,
                                  service_job or f"vgg_keras-{secrets.token_hex(8)}", bucket)
    else:
        batches = _train_epochs(dataset, transform, seed, batch_size, drop_remainder,
                                steps_per_epoch, repeat, initial_epoch, shard, bucket)
    if not placement.host_shifts_colour:
        batches.augmentation = augment.training_augmentation(
            flip=flip and placement.device_flips, color_shift=color_shift, seed=seed,
            eigval=eigval, eigvec=eigvec, windows=bucket, crop=crop if bucket else None)
    return batches


def _with_boxes(placement, boxes):
    """``placement`` for examples with or without boxes (boxes keep the flip on the host)."""
    if not isinstance(placement, Placement):
        raise TypeError(f"placement must be a vgg_keras.data.Placement, got {placement!r}.")
    return placement if placement.boxes == boxes else replace(placement, boxes=boxes)


def _check_train_args(dataset, scale, crop, batch_size, boxes, steps_per_epoch):
    """``(scale, batch_size, steps_per_epoch)`` checked, in this order."""
    scale = _check_scale(scale, crop, "scale")
    batch_size = _check_batch_size(batch_size)
    _check_elements(dataset, boxes)
    if steps_per_epoch is None:
        return scale, batch_size, None
    steps_per_epoch = _check_batch_size(steps_per_epoch)
    meta = _meta(dataset)
    if meta is not None and steps_per_epoch > meta.num_examples // batch_size:
        raise ValueError(
            f"steps_per_epoch={steps_per_epoch} batches of {batch_size} is more than one pass "
            f"over the {meta.num_examples} examples of {meta.name!r} "
            f"({meta.num_examples // batch_size} batches).")
    return scale, batch_size, steps_per_epoch


def _train_transform(scale, crop, *, boxes, flip, color_shift, eigval, eigvec, bucket=None):
    """``transform(epoch key, index, example)``: one training example by the paper's recipe,
    every random draw a stateless function of (key, index, draw); with a ``bucket``, its
    window and geometry for the device to crop (:func:`ops.decode_window`)."""

    def transform(key, index, example):
        size = ops.sample_scale(_example_seed(key, index, 1), scale)
        position = _example_seed(key, index, 2)
        mirrored = tf.random.stateless_uniform([], _example_seed(key, index, 3)) < 0.5
        mirrored = tf.logical_and(mirrored, flip)
        place = lambda r, c: ops.sample_offset(position, r, c)   # noqa: E731
        if bucket is None:
            image, rescaled, offset = ops.decode_rescale_crop(example["image"], size, crop,
                                                              place, flip=mirrored)
        else:
            windows, geometry, rescaled, offset = ops.decode_window(
                example["image"], size, crop, place, flip=mirrored, bucket=bucket)
            image = {"windows": windows, "geometry": geometry}
        if color_shift:
            shift = ops.pca_color_shift(_example_seed(key, index, 4), 0.1, eigval, eigvec)
            image = tf.clip_by_value(image + shift, 0.0, 255.0)
        label = tf.cast(example["label"], tf.int32)
        if not boxes:
            return image, label
        return (image, *_kept_box(example["boxes"], rescaled, offset, crop, mirrored, label))

    return transform


def _kept_box(boxes, rescaled, offset, crop, mirrored, label):
    """The targets and sample weights of a crop's best box (see ``train_pipeline``)."""
    kept = ops.crop_boxes(boxes, rescaled, offset, crop)
    kept = tf.cond(mirrored, lambda: ops.flip_boxes(kept), lambda: kept)
    box, present = ops.best_box(kept)
    return {"label": label, "box": box}, {
        "label": tf.ones([], tf.float32), "box": tf.cast(present, tf.float32)}


def _check_shard(shard, batch_size):
    index, count = (int(v) for v in shard)
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"shard must be (index, count) with 0 <= index < count, got {shard}.")
    if batch_size % count:
        raise ValueError(f"The batch of {batch_size} cannot be split evenly between {count} "
                         "processes; choose a batch size that is a multiple of their number.")
    return index, count


def _train_epochs(dataset, transform, seed, batch_size, drop_remainder, steps_per_epoch, repeat,
                  initial_epoch, shard=(0, 1), bucket=None):
    """The epochs' batches: each epoch's examples in an order drawn from its key, transformed,
    batched per epoch (so epoch e holds the same batches however it is reached); with a
    ``shard``, this process's slice of each batch."""
    meta = _meta(dataset)
    if meta is not None and meta.epoch_source is not None:
        epoch_source = meta.epoch_source
    else:
        def epoch_source(key, keep=None):
            return filter_positions(block_shuffle(dataset, key, 4096).enumerate(), keep)

    index, count = shard
    share = batch_size // count
    keep = None if count == 1 else (lambda position: position % batch_size // share == index)
    if count > 1 and steps_per_epoch is None:
        # Every process must make as many batches: whole global batches only.
        if meta is None:
            raise ValueError("shard needs steps_per_epoch for a dataset of unknown size.")
        steps_per_epoch = meta.num_examples // batch_size

    def epoch_examples(key):
        if meta is not None and meta.example_at is not None:
            # Files found by position: one map reads and transforms each, a stage fewer.
            order = meta.epoch_order(key)
            positions = tf.data.Dataset.range(meta.num_examples)
            positions = positions if keep is None else positions.filter(keep)
            return positions.map(lambda i: transform(key, i, meta.example_at(key, i, order)),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return epoch_source(key, keep).map(lambda i, ex: transform(key, i, ex),
                                           num_parallel_calls=tf.data.AUTOTUNE,
                                           deterministic=True)

    def epoch_batches(key):
        examples = _ignore_errors(epoch_examples(key))
        batches = _batch(examples, share, drop_remainder=drop_remainder, bucket=bucket)
        return batches if steps_per_epoch is None else batches.take(steps_per_epoch)

    batches = _epoch_keys(seed, repeat, initial_epoch).flat_map(epoch_batches)
    batches = batches.prefetch(tf.data.AUTOTUNE)
    if meta is not None:
        attach_info(batches, meta)  # info() works on the batches too
    return batches


def _batch(examples, size, *, drop_remainder=False, bucket=None, padding_values=None):
    """Batches of ``size`` examples ``(image, ...)``; with a ``bucket``, each image's window
    padded to ``bucket x bucket`` as it is batched, so that every batch has one shape (the
    training step compiles once); other components padded to the longest in the batch."""
    if bucket is None and padding_values is None:
        return examples.batch(size, drop_remainder=drop_remainder)
    shapes = tf.nest.map_structure(lambda spec: spec.shape, examples.element_spec)
    if bucket is not None:
        shapes = (dict(shapes[0], windows=tf.TensorShape([bucket, bucket, 3])), *shapes[1:])
    return examples.padded_batch(size, padded_shapes=shapes, padding_values=padding_values,
                                 drop_remainder=drop_remainder)


def shard_batches(batches: tf.data.Dataset, shard: tuple[int, int]) -> tf.data.Dataset:
    """This process's slice of each batch of ``(inputs, targets[, sample_weights])``, when
    ``count`` processes evaluate together (``shard = (index, count)``).

    A batch whose size ``count`` does not divide (the last one) is padded with examples of
    sample weight 0, so that every process gets as many and the weighted metrics are those of
    the batch itself. Every process computes the whole batch: for selection batches, not for
    the training stream (:func:`train_pipeline` with ``shard`` reads only its share).

    >>> batches = tf.data.Dataset.from_tensor_slices((tf.range(5.0), tf.range(5))).batch(5)
    >>> [w.numpy().tolist() for _, _, w in shard_batches(batches, (1, 2))]
    [[1.0, 1.0, 0.0]]
    """
    index, count = (int(v) for v in shard)
    if count == 1:
        return batches

    def take_share(*element):
        if len(element) == 2:
            element = (*element, tf.ones_like(tf.nest.flatten(element[1])[0], tf.float32))
        size = tf.shape(tf.nest.flatten(element)[0])[0]
        part = -(-size // count)

        def slice_of(tensor):
            padding = [[0, part * count - size]] + [[0, 0]] * (len(tensor.shape) - 1)
            return tf.pad(tensor, padding)[index * part:(index + 1) * part]

        return tf.nest.map_structure(slice_of, element)

    return batches.map(take_share)


def _service_epochs(dataset, transform, seed, batch_size, drop_remainder, steps_per_epoch, repeat,
                    initial_epoch, shard, address, job_name, bucket=None):
    """The epochs' batches with the examples made by tf.data service workers: the stream of
    (epoch, position) pairs, from ``initial_epoch`` on, is what the dispatcher shares out
    (dynamic sharding), each worker reading and transforming the examples it is given."""
    meta = _meta(dataset)
    if meta is None or meta.example_at is None:
        name = meta.name if meta is not None else "this dataset"
        raise ValueError(
            f"A tf.data service (--data-service) reads image directories, whose files any "
            f"worker can read one at a time; {name} is not one (TFDS datasets and in-memory "
            "datasets are read by the training process itself).")
    size = meta.num_examples

    def example(counter):
        epoch, position = counter // size, counter % size
        key = _epoch_key(seed, epoch)
        return transform(key, position, meta.example_at(key, position))

    last = _NEVER if repeat else (initial_epoch + 1) * size
    examples = _ignore_errors(tf.data.Dataset.range(initial_epoch * size, last).map(
        example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False))
    examples = data_service.distribute(examples, address, job_name=job_name)
    share = batch_size // shard[1]
    batches = _batch(examples, share, drop_remainder=drop_remainder, bucket=bucket)
    if steps_per_epoch is not None and not repeat:
        batches = batches.take(steps_per_epoch)
    batches = batches.prefetch(tf.data.AUTOTUNE)
    return attach_info(batches, meta)


def eval_pipeline(dataset: tf.data.Dataset, *, test_scale: int, mode: str = "center",
                  crop: int = 224, batch_size: int | None = None,
                  boxes: bool = False, resample_on: str = "host",
                  bucket: int | None = None) -> tf.data.Dataset:
    """Test batches by the paper's protocols at test scale Q = ``test_scale``, in the dataset's
    order.

    Modes and what each batch is:

    * ``"center"``: ``(images (B, crop, crop, 3), labels (B,))``, the central crop of each
      image rescaled to shorter side Q (``batch_size`` default 32).
    * ``"dense"``: ``(images (1, H', W', 3), labels (1,))``, one whole image rescaled to shorter
      side Q per batch (sizes differ, so images cannot share a batch without padding, which
      would change the averaged score map). Feed it to ``vgg_keras.to_dense(model)``, average
      the score map spatially, and for flip averaging also feed ``images[:, :, ::-1]``.
      ``batch_size`` must be None or 1.
    * ``"multicrop"``: ``(images (B * 50, crop, crop, 3), labels (B,))``: for each of B images
      (``batch_size`` default 1), its 50 crops: the 5 x 5 grid (corners, edges and centre,
      row-major) and then the same 25 mirrored. ``model.predict`` on it gives ``(N * 50, C)``;
      ``reshape(-1, 50, C)`` and average the soft-max over axis 1.

    Args:
        dataset: examples from :func:`vgg_keras.data.load`.
        test_scale: Q, the shorter side after rescaling (at least ``crop`` for center/multicrop).
        mode: "center", "dense" or "multicrop".
        crop: crop side for center and multicrop.
        batch_size: see the modes.
        boxes: ``"center"`` and ``"dense"`` only: labels become ``{"label": (B,), "boxes":
            (B, M, 4), "num_boxes": (B,)}`` with every ground-truth box, rows past
            ``num_boxes`` filled with -1. Center: relative to the crop and not clipped (IoU
            with a box predicted on the crop is then the IoU in the image); dense: relative to
            the image.
        resample_on, bucket: ``"center"`` only: ``"device"`` hands over the decoded windows
            as :func:`train_pipeline` does (``images`` is then its dict), for a trainer that
            crops them (selection during ``fit``).

    >>> from vgg_keras.data import load
    >>> val = eval_pipeline(load("vgg_shapes", "validation[:40]"), test_scale=84, crop=64)
    >>> [tuple(images.shape) for images, labels in val]       # model.evaluate(val)
    [(32, 64, 64, 3), (8, 64, 64, 3)]
    >>> dense = eval_pipeline(load("vgg_shapes", "validation[:2]"), test_scale=84, mode="dense")
    >>> [tuple(images.shape) for images, labels in dense]     # whole images, shorter side Q
    [(1, ..., 84, 3), (1, 84, ..., 3)]
    >>> crops = eval_pipeline(load("vgg_shapes", "validation[:2]"), test_scale=84, crop=64,
    ...                       mode="multicrop")
    >>> [(images.shape[0], labels.shape[0]) for images, labels in crops]   # 50 crops an image
    [(50, 1), (50, 1)]
    """
    test_scale, batch_size = _check_eval_args(dataset, test_scale, mode, crop, batch_size, boxes)
    if resample_on != "host" and mode != "center":
        raise ValueError(f"resample_on={resample_on!r} is for the 'center' mode.")
    bucket = Placement(resample=resample_on,
                       bucket=bucket if resample_on == "device" else None).window_bucket(crop)
    transform = _eval_transform(mode, test_scale, crop, boxes, bucket)
    examples = _ignore_errors(dataset.map(transform, num_parallel_calls=tf.data.AUTOTUNE,
                                          deterministic=True))
    if boxes:
        image_padding = 0.0 if bucket is None else {"windows": tf.constant(0, tf.uint8),
                                                    "geometry": 0.0}
        padding = (image_padding, {"label": 0, "boxes": -1.0, "num_boxes": 0})
        batches = _batch(examples, batch_size, bucket=bucket, padding_values=padding)
    else:
        batches = _batch(examples, batch_size, bucket=bucket)
    if mode == "multicrop":
        batches = batches.map(
            lambda images, labels: (tf.reshape(images, [-1, crop, crop, 3]), labels))
    batches = batches.prefetch(tf.data.AUTOTUNE)
    meta = _meta(dataset)
    return batches if meta is None else attach_info(batches, meta)


def _check_eval_args(dataset, scale, mode, crop, batch_size, boxes):
    """``(scale, batch_size)`` checked, the batch size defaulted by mode."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    scale = _check_scale(scale, None if mode == "dense" else crop, "scale")
    if isinstance(scale, tuple):
        raise ValueError(
            f"eval_pipeline takes one test scale Q, got {scale}; for several scales run it once "
            "per Q and average the soft-max outputs (the paper's multi-scale evaluation)."
        )
    _check_elements(dataset, boxes)
    if boxes and mode == "multicrop":
        raise ValueError("boxes=True is for the 'center' and 'dense' modes.")
    if mode == "dense":
        if batch_size not in (None, 1):
            raise ValueError(
                "Dense evaluation batches one whole image at a time (sizes differ); give "
                f"batch_size=None or 1, got {batch_size}."
            )
        batch_size = 1
    elif batch_size is None:
        batch_size = 32 if mode == "center" else 1
    return scale, _check_batch_size(batch_size)


def _eval_transform(mode, scale, crop, boxes, bucket=None):
    """The per-example function of ``eval_pipeline`` for ``mode``: ``example -> (images,
    targets)``."""

    def targets(example, rescaled=None, offset=None):
        label = tf.cast(example["label"], tf.int32)
        if not boxes:
            return label
        found = example["boxes"]
        if mode == "center":
            found = ops.crop_boxes(found, rescaled, offset, crop)
        return {"label": label, "boxes": found, "num_boxes": tf.shape(found)[0]}

    def center(example):
        if bucket is None:
            image, rescaled, offset = ops.decode_rescale_crop(
                example["image"], scale, crop, ops.center_offset)
        else:
            windows, geometry, rescaled, offset = ops.decode_window(
                example["image"], scale, crop, ops.center_offset, bucket=bucket)
            image = {"windows": windows, "geometry": geometry}
        return image, targets(example, rescaled, offset)

    def dense(example):
        image = ops.rescale(ops.decode(example["image"]), scale)
        return image, targets(example)

    def multicrop(example):
        image = ops.rescale(ops.decode(example["image"]), scale)
        offsets = ops.grid_offsets(tf.shape(image)[:2], crop, MULTICROP_GRID)
        crops = ops.rescaled_crops(image, offsets, crop)
        return tf.concat([crops, tf.reverse(crops, axis=[2])], axis=0), targets(example)

    return {"center": center, "dense": dense, "multicrop": multicrop}[mode]
