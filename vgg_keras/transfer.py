"""Image descriptors for transfer learning (paper Appendix B).

The paper uses D and E as fixed feature extractors: the last FC layer is dropped, the net is
applied densely to the whole image at several scales Q, the FC7 map is global-average-pooled,
averaged with the horizontally flipped image, and the result L2-normalised. A linear classifier
trained on these descriptors gave 89.7 mAP on VOC-2007.

>>> import numpy as np
>>> from vgg_keras import build_vgg
>>> model = build_vgg("D", weights="vgg16-397923af.pth")          # doctest: +SKIP
>>> model = build_vgg("D", 10, input_shape=(64, 64, 3), width=0.125)   # or your own trained net
>>> images = np.random.default_rng(0).uniform(0, 255, (3, 80, 100, 3))  # RGB in [0, 255]
>>> x = features(model, images, scales=(64, 96))      # the paper's scales: (256, 384, 512)
>>> x.shape, np.linalg.norm(x, axis=1).round(3)       # (N, fc7 units), unit L2 norm
((3, 512), array([1., 1., 1.], dtype=float32))

Model code: ``keras`` and ``keras.ops`` only, so it runs on every backend.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import keras
import numpy as np
from keras import ops

from .evaluate import compiles_per_shape, dense_forward
from .models import to_dense
from .progress import progress
from .transforms import rescaled_size

if TYPE_CHECKING:
    from ._typing import Tensor

COMBINE = ("average", "stack")


def feature_extractor(model: keras.Model, layer: str = "fc7") -> keras.Model:
    """The dense (fully convolutional) form of ``model`` cut after ``layer``: any image at
    least the model's input size -> a ``(N, h, w, units)`` map of that layer's activations.

    >>> from vgg_keras import build_vgg
    >>> extractor = feature_extractor(build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25))
    >>> tuple(extractor(keras.ops.zeros((1, 96, 128, 3))).shape)
    (1, 2, 3, 1024)
    """
    # A model without a fixed input size is already dense (to_dense or feature_extractor).
    dense = model if model.input_shape[1] is None else to_dense(model)
    names = [sub.name for sub in dense.layers]
    if layer not in names:
        raise ValueError(f"{model.name} has no layer {layer!r}; its layers are {names}.")
    return keras.Model(dense.input, dense.get_layer(layer).output, name=f"{model.name}_{layer}")


def _pooled(extractor, images, flip):
    images = ops.convert_to_numpy(images)
    pooled = dense_forward(extractor, images).mean(axis=(1, 2))
    if flip:
        pooled = 0.5 * (pooled + dense_forward(extractor, images[:, :, ::-1]).mean(axis=(1, 2)))
    return pooled


def _l2_normalize(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def features(model: keras.Model, images: np.ndarray | Sequence[np.ndarray] | Tensor,
             scales: int | Sequence[int] = (256, 384, 512), *, layer: str = "fc7",
             flip: bool = True, combine: str = "average", batch_size: int = 16) -> np.ndarray:
    """Appendix B descriptors of ``images``: ``(N, units)`` float32 rows of unit L2 norm.

    For each scale Q each image is rescaled isotropically (shorter side Q, bilinear, as the
    input pipeline does), passed densely through the net up to ``layer`` and the map averaged
    over space and over the image and its mirror. The scales are then averaged
    (``combine="average"``) or concatenated (``"stack"``, the paper's other option; ``(N, S *
    units)``) and each row L2-normalised. The paper used FC7 of D and E at Q in {256, 384,
    512}. A progress bar per scale ("features Q=256") counts the images on stderr;
    ``vgg_keras.progress.set_quiet()`` silences it.

    Args:
        model: a classification model (``build_vgg`` with the top, trained or imported), or an
            extractor from :func:`feature_extractor` (reuse one across calls to avoid
            rebuilding the dense net).
        images: RGB in [0, 255]: an array ``(N, H, W, 3)``, or a list of ``(H, W, 3)`` arrays of
            different sizes (those of one size share forward passes; on JAX, which compiles
            for each shape, each image goes alone, padded to the next multiple of 32 pixels
            as dense evaluation pads it, so that the sizes of a bucket share one compile).
        scales: test scales Q; each must be at least the model's crop size.
        layer: ``"fc7"`` (default), ``"fc6"``, or any layer of the dense net.
        flip: average with the horizontally flipped image.
        combine: "average" or "stack" over scales.
        batch_size: images per forward pass.

    >>> from vgg_keras import build_vgg
    >>> model = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25, init="glorot")
    >>> features(model, np.zeros((2, 80, 100, 3), "float32"), scales=(64, 96)).shape
    (2, 1024)
    >>> photos = [np.zeros((80, 100, 3)), np.zeros((120, 90, 3))]     # sizes may differ
    >>> features(model, photos, scales=64, combine="stack").shape
    (2, 1024)
    """
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}, got {combine!r}.")
    scales = _checked_scales(scales, model.input_shape[1])
    extractor = feature_extractor(model, layer)
    groups, positions = _image_groups(images, batch_size)
    order = np.argsort(positions, kind="stable")   # the rows back in the images' order
    per_scale = [_pooled_at_scale(extractor, groups, q, flip)[order] for q in scales]
    if combine == "average":
        combined = np.mean(per_scale, axis=0)
    else:
        combined = np.concatenate(per_scale, axis=-1)
    return _l2_normalize(combined).astype("float32")


def _checked_scales(scales: int | Sequence[int], crop: int | None) -> list[int]:
    scales = [int(q) for q in np.atleast_1d(scales)]
    if not scales:
        raise ValueError("scales must name at least one test scale Q.")
    for q in scales:
        if crop is not None and q < crop:
            raise ValueError(f"Test scale {q} is smaller than the model's {crop}-pixel input; "
                             f"the dense net needs images at least that big.")
    return scales


def _image_groups(images: np.ndarray | Sequence[np.ndarray] | Tensor,
                  batch_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``(groups, positions)``: the forward passes' inputs, float32, and each row's index in
    ``images``. An ``(N, H, W, 3)`` array goes in batches of ``batch_size``; a list's images
    are grouped by size into batches of up to ``batch_size`` (one image a batch where the
    backend compiles for each shape), since a pass per image costs mostly call overhead."""
    if isinstance(images, np.ndarray) or keras.ops.is_tensor(images):
        images = np.asarray(images, dtype="float32")
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"images must be (N, H, W, 3) or a list of (H, W, 3) arrays, got "
                             f"shape {images.shape}.")
        groups = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
        return _nonempty(groups), np.arange(len(images))
    by_size: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
    for index, image in enumerate(images):
        image = np.asarray(image, dtype="float32")
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"images[{index}] must be (H, W, 3), got shape {image.shape}.")
        by_size.setdefault(image.shape, []).append((index, image))
    per_pass = 1 if compiles_per_shape() else batch_size
    groups = []
    positions: list[int] = []
    for same_size in by_size.values():
        for start in range(0, len(same_size), per_pass):
            chunk = same_size[start:start + per_pass]
            groups.append(np.stack([image for _, image in chunk]))
            positions.extend(index for index, _ in chunk)
    return _nonempty(groups), np.asarray(positions)


def _nonempty(groups):
    if not groups:
        raise ValueError("images is empty.")
    return groups


def _pooled_at_scale(extractor, groups, q, flip):
    """``(N, units)`` float64: every image rescaled to shorter side ``q`` (bilinear, as the input
    pipeline rescales) and its (flip-averaged) pooled map."""
    rows = []
    # Counted in images (a group is a batch, or one image of a list): the same unit for both
    # kinds of input.
    count = sum(len(group) for group in groups)
    with progress(None, f"features Q={q}", total=count, unit="img") as bar:
        for group in groups:
            size = tuple(int(v) for v in rescaled_size(np.array(group.shape[1:3], float), q))
            resized = ops.image.resize(group, size, interpolation="bilinear")
            rows.append(ops.convert_to_numpy(_pooled(extractor, resized, flip)))
            bar.update(len(group))
    return np.concatenate(rows).astype("float64")
