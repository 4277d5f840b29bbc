"""The paper's image transforms, each written once for the three places that apply them: the
host pipeline (``vgg_keras.data.ops``, TensorFlow), the device augmentation layers
(``vgg_keras.augment``, ``keras.ops``) and the serving graph (``vgg_keras.export``, through
``data.ops``), plus ``vgg_keras.transfer`` (numpy).

Each function is plain arithmetic on its arguments, or takes the array namespace ``xp`` that
provides the few operations it needs (``numpy``, ``tensorflow`` or ``keras.ops``, which spell
``minimum``, ``maximum``, ``round``, ``floor``, ``matmul`` and ``transpose`` alike). The
callers cast: TensorFlow mixes no dtypes, so they hand over one float type.

Geometry convention (that of ``tf.image.resize`` and ``keras.ops.image.affine_transform``):
pixel ``i`` covers ``[i, i + 1)``, its centre is ``i + 0.5``. Boxes follow these transforms
through :mod:`vgg_keras.boxes`.

>>> rescaled_size(np.array([375.0, 500.0]), 256)
array([256., 341.])
>>> center_offset(np.array([256, 341]), 224)
array([16, 58])
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ._typing import Scale, Tensor

MULTICROP_GRID = 5
"""The paper's multi-crop grid: 5 x 5 positions, each also flipped."""

MULTICROP_CROPS = 2 * MULTICROP_GRID ** 2
"""Crops per image and scale of multi-crop evaluation: 50."""


def test_scale(scale: Scale) -> int:
    """The paper's single test scale Q for a training scale: S, or the middle of [Smin, Smax]
    (rounded down).

    >>> test_scale((256, 512))
    384
    """
    if isinstance(scale, (tuple, list)):
        return (int(scale[0]) + int(scale[1])) // 2
    return scale


def rescaled_size(size: Tensor, scale: Tensor | float, xp: ModuleType = np) -> Tensor:
    """``[..., 2]`` (H', W') of images of ``size`` ``[..., 2]`` (H, W) rescaled isotropically so
    that the shorter side is ``scale``; the longer side is rounded to the nearest pixel (half to
    even) and never below 1. Floats of ``size``'s type; ``scale`` broadcasts against ``[...,
    1]``, e.g. one S per image of a batch as ``(B, 1)``.
    """
    shorter = xp.minimum(size[..., 0:1], size[..., 1:2])
    # size * scale / shorter side is exactly ``scale`` on the shorter side after rounding.
    return xp.maximum(xp.round(size * scale / shorter), 1.0)


def center_offset(rescaled: Tensor, crop: Tensor | int) -> Tensor:
    """Top-left corner ``[y, x]`` of the central ``crop`` of an image of size ``rescaled``
    (rounded down on odd margins)."""
    return (rescaled - crop) // 2


def random_offset(u: Tensor, rescaled: Tensor, crop: Tensor | int,
                  xp: ModuleType = np) -> Tensor:
    """Top-left corner of a crop drawn uniformly over the integer positions of an image of size
    ``rescaled``, from ``u`` uniform in [0, 1) (one per axis): ``floor(u * (H' - crop + 1))``,
    at most ``H' - crop`` (floats)."""
    room = rescaled - crop
    return xp.minimum(xp.floor(u * (room + 1)), room)


def crop_samples(size: Tensor, rescaled: Tensor, offset: Tensor) -> tuple[Tensor, Tensor]:
    """Where a crop at ``offset`` of an image of ``size`` rescaled to ``rescaled`` samples the
    source: ``(first, step)``, crop pixel ``i`` reading source coordinate ``first + i * step``
    (bilinear, pixel centres)."""
    step = size / rescaled
    return (offset + 0.5) * step - 0.5, step


def pca_shift(alpha: Tensor, eigval: Tensor, eigvec: Tensor, value_range: float = 255.0,
              xp: ModuleType = np) -> Tensor:
    """Krizhevsky et al.'s colour shift ``value_range * eigvec @ (alpha * eigval)``: ``[..., 3]``
    RGB offsets for draws ``alpha`` ``[..., 3]`` (one per image), with ``eigval`` ``[3]`` and
    ``eigvec`` ``[3, 3]`` (columns) arrays of ``xp``.

    The eigen decomposition is of RGB in [0, 1] (as the usual ImageNet constants), hence the
    ``value_range`` factor for images in [0, 255]. With ``alpha ~ N(0, stddev)`` the shift has
    covariance ``value_range**2 * eigvec @ diag((stddev * eigval)**2) @ eigvec.T``.
    """
    # eigvec @ w as a batched matmul over w[..., None]: what tf.linalg.matvec computes.
    return value_range * xp.matmul(eigvec, (alpha * eigval)[..., None])[..., 0]


WINDOW_GEOMETRY = ("first_y", "first_x", "step_y", "step_x", "height", "width")
"""What the host hands over with each decoded window when the accelerator resamples the crop
(``train_pipeline(placement=Placement(resample="device"))``): crop pixel ``(i, j)`` is the bilinear
sample of the window at ``(first_y + i * step_y, first_x + j * step_x)``, clamped to the window's
own ``height x width`` (the rest of the fixed-size bucket is padding). A flip is a negative
``step_x`` starting from the other edge."""


def window_bucket(crop: int) -> int:
    """Side of the fixed uint8 bucket the host hands each decoded window over in: the window a
    ``crop`` reads when the image is shrunk by up to 1.5 (shorter side at most 1.5 S; most of
    ImageNet at S >= 256), plus the spare pixels. A larger window is resampled on the host
    instead and handed over as the crop itself.

    >>> window_bucket(224)
    340
    """
    return crop * 3 // 2 + 4
