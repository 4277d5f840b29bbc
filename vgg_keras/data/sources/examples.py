"""The example every source yields, and the datasets built from listed files; epochs shuffled
by a tensor key (:func:`keyed_index`, :func:`keyed_permutation`, :func:`block_shuffle`).

An example is ``{"image": encoded bytes, "label": int32, "boxes": float32 [N, 4] normalised
[ymin, xmin, ymax, xmax], "filename": string}`` (see :mod:`vgg_keras.data.sources`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import tensorflow as tf

from .files import relative

if TYPE_CHECKING:
    from .base import DatasetInfo


def element(image: tf.Tensor, label: tf.Tensor | int, boxes: tf.Tensor,
            filename: tf.Tensor | str) -> dict[str, tf.Tensor]:
    """One example, the same dict from every source."""
    return {
        "image": image,
        "label": tf.cast(label, tf.int32),
        "boxes": tf.reshape(tf.cast(boxes, tf.float32), (-1, 4)),
        "filename": filename,
    }


def keyed_permutation(key: tf.Tensor | int, size: tf.Tensor | int,
                      block: tf.Tensor | int = 0) -> tf.Tensor:
    """A permutation of ``range(size)`` drawn from an int64 ``key`` that may be symbolic (the
    epoch key inside ``flat_map``); ``block`` tells apart the permutations of one key.

    ``Dataset.shuffle`` takes its seed as a Python int, so every source shuffles an epoch
    through this instead: the order is a pure function of ``(key, block)``.
    """
    seed = tf.stack([tf.cast(key, tf.int64), tf.cast(block, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(size), seed=seed)


_FEISTEL_ROUNDS = 4


def _feistel_shape(size):
    """``(size, half, mask)``: each half of the smallest even number of bits holding ``size``."""
    size = tf.cast(size, tf.int64)
    bits = tf.cast(tf.math.ceil(tf.math.log(tf.cast(tf.maximum(size, 2), tf.float64)) /
                                tf.math.log(tf.constant(2.0, tf.float64))), tf.int64)
    half = tf.maximum((bits + 1) // 2, 1)
    return size, half, tf.bitwise.left_shift(tf.constant(1, tf.int64), half) - 1


def _round_value(key, round_, right, mask):
    """The Feistel round function: a keyed random value in [0, mask] for the half ``right``."""
    seed = tf.random.experimental.stateless_fold_in(
        tf.stack([key, tf.constant(round_, tf.int64)]), right)
    return tf.random.stateless_uniform([], seed, minval=0, maxval=mask + 1, dtype=tf.int64)


def _feistel(x, half, mask, round_function):
    """Four Feistel rounds over the bits of ``x`` (a scalar or a vector), cycle-walking until
    the result is below the size the caller checks for."""
    left, right = tf.bitwise.right_shift(x, half), tf.bitwise.bitwise_and(x, mask)
    for round_ in range(_FEISTEL_ROUNDS):
        left, right = right, tf.bitwise.bitwise_xor(left, round_function(round_, right))
    return tf.bitwise.bitwise_or(tf.bitwise.left_shift(left, half), right)


def keyed_index(key: tf.Tensor | int, position: tf.Tensor | int,
                size: tf.Tensor | int) -> tf.Tensor:
    """Where ``position`` of an epoch goes in a keyed permutation of ``range(size)``: a
    bijection of [0, size) drawn from ``key``, computed one position at a time (a four-round
    Feistel network over the smallest even number of bits that holds ``size``, cycle-walking
    past ``size``), so that any position is found without the whole permutation: what lets
    tf.data service workers take any part of an epoch (:mod:`vgg_keras.data.service`).
    :func:`keyed_order` gives every position at once, faster.

    >>> sorted(int(keyed_index(7, position, 5)) for position in range(5))
    [0, 1, 2, 3, 4]
    """
    size, half, mask = _feistel_shape(size)
    key = tf.cast(key, tf.int64)

    def encrypt(x):
        return _feistel(x, half, mask, lambda round_, right: _round_value(key, round_, right, mask))

    x = encrypt(tf.cast(position, tf.int64))
    (x,) = tf.while_loop(lambda x: x >= size, lambda x: (encrypt(x),), (x,))
    return x


def keyed_order(key: tf.Tensor | int, size: tf.Tensor | int) -> tf.Tensor:
    """``[keyed_index(key, p, size) for p in range(size)]``, computed at once: each round's
    function tabulated over its ``2**half`` inputs (about the square root of ``size``), then
    every position encrypted together. What the training pipeline reads an epoch by.

    >>> keyed_order(7, 5).numpy().tolist() == [int(keyed_index(7, p, 5)) for p in range(5)]
    True
    """
    size, half, mask = _feistel_shape(size)
    key = tf.cast(key, tf.int64)
    rights = tf.range(mask + 1, dtype=tf.int64)
    tables = [tf.map_fn(lambda right, r=round_: _round_value(key, r, right, mask), rights,
                        fn_output_signature=tf.int64) for round_ in range(_FEISTEL_ROUNDS)]

    def encrypt(x):
        return _feistel(x, half, mask, lambda round_, right: tf.gather(tables[round_], right))

    order = encrypt(tf.range(size, dtype=tf.int64))
    (order,) = tf.while_loop(lambda x: tf.reduce_any(x >= size),
                             lambda x: (tf.where(x >= size, encrypt(x), x),), (order,))
    return order


def filter_positions(examples: tf.data.Dataset,
                     keep: Callable[[tf.Tensor], tf.Tensor] | None = None) -> tf.data.Dataset:
    """``(position, example)`` pairs whose position ``keep`` accepts (all when None): one
    process's share of an epoch (see ``train_pipeline``'s ``shard``)."""
    if keep is None:
        return examples
    return examples.filter(lambda position, example: keep(position))


def block_shuffle(dataset: tf.data.Dataset, key: tf.Tensor | int,
                  block_size: int) -> tf.data.Dataset:
    """Shuffle ``dataset`` (of dicts) within consecutive blocks of ``block_size`` examples, each
    block permuted by :func:`keyed_permutation` of ``(key, block number)``.

    Components that are not scalars (boxes) travel serialized, because unbatching a zero-sized
    component crashes TensorFlow 2.21.
    """
    spec = dataset.element_spec

    def pack(example):
        return {k: tf.io.serialize_tensor(v) if spec[k].shape.rank else v
                for k, v in example.items()}

    def permute(index, block):
        size = tf.shape(next(iter(block.values())))[0]
        order = keyed_permutation(key, size, index)
        return {k: tf.gather(v, order) for k, v in block.items()}

    def unpack(example):
        return {k: tf.ensure_shape(tf.io.parse_tensor(v, spec[k].dtype), spec[k].shape)
                if spec[k].shape.rank else v for k, v in example.items()}

    blocks = dataset.map(pack).batch(block_size).enumerate().map(permute)
    return blocks.unbatch().map(unpack)


@dataclasses.dataclass
class Record:
    """One listed image file: its path, class index and boxes."""

    path: str
    label: int
    boxes: np.ndarray  # [N, 4] normalised, float32


def records_dataset(records: Sequence[Record], root: str,
                    meta: DatasetInfo) -> tf.data.Dataset:
    """A dataset reading the listed files, in order; ``meta.example_at(key, position)`` (set
    here) reads the example at ``position`` of the epoch keyed ``key``, a keyed order of the
    files found one position at a time (so names are shuffled, not bytes, and a process or a
    tf.data service worker reads only the positions it makes)."""
    paths = tf.constant([r.path for r in records])
    prefix = os.path.join(root, "")
    relative_paths = tf.constant([relative(r.path, prefix) for r in records])
    labels = tf.constant(np.array([r.label for r in records], np.int32))
    boxes = tf.RaggedTensor.from_row_lengths(
        np.concatenate([r.boxes for r in records]).reshape(-1, 4).astype(np.float32),
        np.array([len(r.boxes) for r in records], np.int64),
    )

    def read(index):
        return element(tf.io.read_file(paths[index]), labels[index], boxes[index],
                       relative_paths[index])

    def example_at(key, position, order=None):
        # Shuffling indices (not bytes) makes a full shuffle cheap at any dataset size, and
        # finding each position's file alone lets any worker take any part of an epoch;
        # ``order`` (keyed_order's, computed once an epoch) finds it faster.
        if order is not None:
            return read(tf.gather(order, position))
        return read(keyed_index(key, position, len(records)))

    def epoch_order(key):
        return keyed_order(key, len(records))

    meta.example_at = example_at
    meta.epoch_order = epoch_order
    return tf.data.Dataset.range(len(records)).map(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
