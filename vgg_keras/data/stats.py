"""A dataset's own mean RGB and RGB principal components, for a model trained on it.

The paper subtracts the training set's mean RGB, and the colour shift follows the principal
components of the training set's RGB pixels; the defaults are ImageNet's
(``vgg_keras.configs``). For another dataset:

>>> import vgg_keras
>>> from vgg_keras.data import load, train_pipeline
>>> ds = load("vgg_shapes", "train")
>>> stats = compute_statistics(ds, max_images=100)          # every image when not limited
>>> model = vgg_keras.build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125,
...                             preprocessing={"mean": stats.mean})
>>> train = train_pipeline(ds, scale=(72, 96), crop=64, batch_size=32,
...                        eigval=stats.eigval, eigvec=stats.eigvec)

or from a shell: ``python -m vgg_keras.data stats vgg_shapes``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import TYPE_CHECKING, Any

import numpy as np
import tensorflow as tf

from ..configs import IMAGENET_MEAN_RGB, IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC
from ..progress import progress
from . import ops

if TYPE_CHECKING:
    from .._typing import PathLike

SAMPLE_IMAGES = 2000
"""Images a run's own statistics are computed from (the first of the training split)."""

SAMPLE_SIDE = 256
"""Shorter side images are reduced to before counting (pixel statistics barely change)."""


@dataclasses.dataclass
class Statistics:
    """Mean RGB on the 0-255 scale; PCA of RGB on the [0, 1] scale (as the ImageNet constants),
    eigenvalues descending, eigenvectors as the columns of ``eigvec`` (sign: first entry <= 0,
    like the published ImageNet ones)."""

    mean: tuple[float, ...]  # R, G, B
    eigval: tuple[float, ...]  # 3
    eigvec: tuple[tuple[float, ...], ...]  # 3 x 3
    num_images: int
    num_pixels: int

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def imagenet(cls) -> Statistics:
        """The ImageNet constants the paper and AlexNet use (no pixel count behind them)."""
        return cls(mean=tuple(IMAGENET_MEAN_RGB), eigval=tuple(IMAGENET_PCA_EIGVAL),
                   eigvec=tuple(tuple(row) for row in IMAGENET_PCA_EIGVEC), num_images=0,
                   num_pixels=0)

    def write(self, path: PathLike) -> None:
        """Save as JSON (atomically: a run killed while writing keeps no half file)."""
        temporary = f"{path}.tmp"
        with open(temporary, "w") as file:
            json.dump(self.as_dict(), file, indent=1)
        os.replace(temporary, path)

    @classmethod
    def read(cls, path: PathLike) -> Statistics:
        """Read what :meth:`write` or ``python -m vgg_keras.data stats`` wrote; a ValueError
        naming the file for anything else."""
        path = os.path.expanduser(os.fspath(path))
        try:
            with open(path) as file:
                values = json.load(file)
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as error:
            raise ValueError(f"{path}: not a statistics JSON file ({error}).") from None
        try:
            mean = tuple(float(v) for v in values["mean"])
            eigval = tuple(float(v) for v in values["eigval"])
            eigvec = tuple(tuple(float(v) for v in row) for row in values["eigvec"])
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path}: a statistics file needs 'mean' (3 values, 0-255), "
                             f"'eigval' (3) and 'eigvec' (3x3); {type(error).__name__}: "
                             f"{error}.") from None
        if len(mean) != 3 or len(eigval) != 3 or [len(r) for r in eigvec] != [3, 3, 3]:
            raise ValueError(f"{path}: 'mean' and 'eigval' need 3 values and 'eigvec' 3x3.")
        return cls(mean, eigval, eigvec, int(values.get("num_images", 0)),
                   int(values.get("num_pixels", 0)))


def compute_statistics(dataset: tf.data.Dataset, *, max_images: int | None = None,
                       max_side: int | None = None) -> Statistics:
    """Mean and RGB PCA over every pixel of (the first ``max_images``) images of ``dataset``.

    ``max_side`` rescales images whose shorter side is larger (bilinear) before counting, to
    save time on large photographs; pixel statistics barely depend on resolution.

    >>> from vgg_keras.data import load
    >>> stats = compute_statistics(load("vgg_shapes", "train"), max_images=200, max_side=64)
    >>> stats.num_images, len(stats.mean), stats.eigval[0] > stats.eigval[1] > stats.eigval[2]
    (200, 3, True)
    """
    if max_images is not None:
        dataset = dataset.take(int(max_images))

    def moments(example):
        image = ops.decode(example["image"])
        if max_side is not None:
            size = tf.shape(image)[:2]
            image = tf.cond(tf.reduce_min(size) > max_side,
                            lambda: tf.cast(tf.round(ops.rescale(image, max_side)), tf.uint8),
                            lambda: image)
        pixels = tf.reshape(tf.cast(image, tf.float64) / 255.0, [-1, 3])
        return tf.cast(tf.shape(pixels)[0], tf.float64), tf.reduce_sum(pixels, 0), tf.matmul(
            pixels, pixels, transpose_a=True)

    expected = int(dataset.cardinality())  # -1 infinite, -2 unknown (filtered)
    count, total, outer, images = 0.0, np.zeros(3), np.zeros((3, 3)), 0
    sums = dataset.map(moments, num_parallel_calls=tf.data.AUTOTUNE).ignore_errors(
        log_warning=True).as_numpy_iterator()
    for n, s, o in progress(sums, "statistics", total=expected if expected >= 0 else None,
                            unit="image"):
        count, total, outer, images = count + n, total + s, outer + o, images + 1
    if images == 0:
        raise ValueError("compute_statistics: the dataset has no decodable images.")
    mean = total / count
    covariance = outer / count - np.outer(mean, mean)
    eigval, eigvec = np.linalg.eigh(covariance)
    order = np.argsort(eigval)[::-1]
    eigval, eigvec = np.maximum(eigval[order], 0.0), eigvec[:, order]
    eigvec = eigvec * np.where(eigvec[0] > 0, -1.0, 1.0)  # a fixed sign for each vector
    return Statistics(
        mean=tuple(float(v) for v in mean * 255.0),
        eigval=tuple(float(v) for v in eigval),
        eigvec=tuple(tuple(float(v) for v in row) for row in eigvec),
        num_images=images, num_pixels=int(count),
    )
