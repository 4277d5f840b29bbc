"""A dataset's own mean RGB and RGB principal components, for a model trained on it.

The paper subtracts the training set's mean RGB, and the colour shift follows the principal
components of the training set's RGB pixels; the defaults are ImageNet's
(``vgg_keras.configs``). For another dataset:

>>> stats = compute_statistics(load("vgg_shapes", "train"))
>>> model = vgg_keras.build_vgg("A", 10, preprocessing={"mean": stats.mean})
>>> train = train_pipeline(ds, ..., eigval=stats.eigval, eigvec=stats.eigvec)

or from a shell: ``python -m vgg_keras.data stats vgg_shapes``.
"""

import dataclasses

import numpy as np
import tensorflow as tf

from ..progress import progress
from . import ops


@dataclasses.dataclass
class Statistics:
    """Mean RGB on the 0-255 scale; PCA of RGB on the [0, 1] scale (as the ImageNet constants),
    eigenvalues descending, eigenvectors as the columns of ``eigvec`` (sign: first entry <= 0,
    like the published ImageNet ones)."""

    mean: tuple
    eigval: tuple
    eigvec: tuple
    num_images: int
    num_pixels: int

    def as_dict(self):
        return dataclasses.asdict(self)


def compute_statistics(dataset, *, max_images=None, max_side=None):
    """Mean and RGB PCA over every pixel of (the first ``max_images``) images of ``dataset``.

    ``max_side`` rescales images whose shorter side is larger (bilinear) before counting, to
    save time on large photographs; pixel statistics barely depend on resolution.

    >>> compute_statistics(load("vgg_shapes", "train"), max_images=500).mean
    (..., ..., ...)
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
