"""Per-image TensorFlow functions the pipelines are composed of: decoding, the paper's isotropic
rescaling and crops, boxes following them, and the AlexNet colour shift.

Geometry convention (the one of ``tf.image.resize`` and ``keras.ops.image.affine_transform``):
pixel ``i`` of an image covers ``[i, i + 1)`` and its centre is ``i + 0.5``. Rescaling an
``H x W`` image so that its shorter side is ``S`` gives ``H' x W'`` (:func:`rescaled_size`),
and pixel ``i`` of the rescaled image samples the source at ``(i + 0.5) * H / H' - 0.5``
(bilinear, clamped at the border). A crop at ``offset`` of the rescaled image is therefore a
single affine resampling of the source, which :func:`decode_rescale_crop` applies to only the
window of the file the crop needs, decoded with ``tf.io.decode_and_crop_jpeg`` for JPEGs. The
result equals rescaling the whole image and cropping it, without decoding or resizing the rest.

Boxes are ``[ymin, xmin, ymax, xmax]`` normalised to the image: they are unchanged by isotropic
rescaling and follow a crop by :func:`crop_boxes` and a flip by :func:`flip_boxes`.

The formulas the device layers (:mod:`vgg_keras.augment`) and the serving graph share with this
module are written once, in :mod:`vgg_keras.transforms` (rescaled size, crop positions and
samples, colour shift) and :mod:`vgg_keras.boxes` (boxes); here they run on TensorFlow tensors,
whatever Keras's backend.

>>> jpeg_bytes = tf.io.encode_jpeg(tf.zeros([375, 500, 3], tf.uint8))
>>> crop, rescaled, offset = decode_rescale_crop(jpeg_bytes, 256, 224, center_offset)
>>> crop.shape, rescaled.numpy(), offset.numpy()
(TensorShape([224, 224, 3]), array([256, 341], dtype=int32), array([16, 58], dtype=int32))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import tensorflow as tf

from .. import boxes as B
from .. import transforms
from ..configs import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC

_JPEG_MAGIC = b"\xff\xd8\xff"

OffsetFn = Callable[[tf.Tensor, int], tf.Tensor]
"""Where a crop goes: ``offset_fn(rescaled size [2], crop) -> top-left corner [y, x]``."""


# ----------------------------------------------------------------------------------------------
# Decoding.


def is_jpeg(image_bytes: tf.Tensor | bytes) -> tf.Tensor:
    """True for JPEG bytes, whatever the file was called (PNGs named .JPEG exist in ImageNet)."""
    return tf.equal(tf.strings.substr(image_bytes, 0, 3), _JPEG_MAGIC)


def _decode_other(image_bytes: tf.Tensor | bytes) -> tf.Tensor:
    """PNG, GIF (first frame) or BMP to ``uint8 [H, W, 3]``."""
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False, dtype=tf.uint8)
    image.set_shape([None, None, 3])
    return image


def decode(image_bytes: tf.Tensor | bytes) -> tf.Tensor:
    """Decode JPEG (RGB, grayscale or CMYK), PNG (with or without alpha, palette, 16-bit), GIF
    (first frame) or BMP to ``uint8 [H, W, 3]`` RGB. Alpha is dropped, gray is replicated.

    >>> import io
    >>> from PIL import Image
    >>> cmyk = io.BytesIO()
    >>> Image.new("CMYK", (500, 375), (0, 255, 255, 0)).save(cmyk, "JPEG")   # red, in ink
    >>> image = decode(cmyk.getvalue())
    >>> image.shape, image[0, 0].numpy()
    (TensorShape([375, 500, 3]), array([255,   0,   0], dtype=uint8))
    >>> decode(tf.io.encode_png(tf.zeros([30, 40, 1], tf.uint8))).shape     # gray PNG
    TensorShape([30, 40, 3])
    """
    image = tf.cond(is_jpeg(image_bytes), lambda: tf.io.decode_jpeg(image_bytes, channels=3),
                    lambda: _decode_other(image_bytes))
    image.set_shape([None, None, 3])
    return image


# ----------------------------------------------------------------------------------------------
# Geometry of the paper's rescaling and crops.


def rescaled_size(size: tf.Tensor | Sequence[int], scale: tf.Tensor | int) -> tf.Tensor:
    """``[H', W']`` of an image of ``size`` rescaled isotropically so its shorter side is
    ``scale``; the longer side is rounded to the nearest pixel (never below 1).

    >>> rescaled_size([375, 500], 256).numpy()
    array([256, 341], dtype=int32)
    """
    rescaled = transforms.rescaled_size(tf.cast(size, tf.float64), tf.cast(scale, tf.float64),
                                        xp=tf)
    return tf.cast(rescaled, tf.int32)


def sample_scale(seed: tf.Tensor, scale: int | tuple[int, int] | tf.Tensor) -> tf.Tensor:
    """The training scale S: ``scale`` itself if an int, else an integer drawn uniformly from
    ``[scale[0], scale[1]]`` (both ends included) with the stateless ``seed``."""
    # tf.is_tensor does not narrow the type: a tuple never reaches .shape.
    if isinstance(scale, (int, float)) or (
            tf.is_tensor(scale) and scale.shape.rank == 0):  # type: ignore[union-attr]
        return tf.cast(scale, tf.int32)
    low, high = scale
    return tf.random.stateless_uniform([], seed, minval=int(low), maxval=int(high) + 1,
                                       dtype=tf.int32)


def sample_offset(seed: tf.Tensor, rescaled: tf.Tensor, crop: int | tf.Tensor) -> tf.Tensor:
    """Top-left corner ``[y, x]`` of a crop drawn uniformly over all integer positions inside
    an image of size ``rescaled`` (``floor(u * (H' - crop + 1))``, u uniform in [0, 1))."""
    u = tf.random.stateless_uniform([2], seed)
    offset = transforms.random_offset(u, tf.cast(rescaled, tf.float32), tf.cast(crop, tf.float32),
                                      xp=tf)
    return tf.cast(offset, tf.int32)


center_offset = transforms.center_offset
"""Top-left corner of the central crop (rounded down on odd margins): an ``offset_fn``."""


def grid_offsets(rescaled: tf.Tensor, crop: int, n: int = 5) -> tf.Tensor:
    """``[n * n, 2]`` top-left corners of the paper's regular n x n grid of crops: corners,
    edges and centre included, positions rounded to whole pixels, row-major."""
    room = tf.cast(rescaled - crop, tf.float32)
    steps = tf.linspace(0.0, 1.0, n)
    ys = tf.cast(tf.round(steps * room[0]), tf.int32)
    xs = tf.cast(tf.round(steps * room[1]), tf.int32)
    grid_y, grid_x = tf.meshgrid(ys, xs, indexing="ij")
    return tf.reshape(tf.stack([grid_y, grid_x], axis=-1), [-1, 2])


def _source_coordinate(index, size, rescaled):
    """Where output pixel centre ``index`` of a rescaled axis samples the source axis."""
    return (tf.cast(index, tf.float64) + 0.5) * tf.cast(size, tf.float64) / tf.cast(
        rescaled, tf.float64) - 0.5


def crop_window(size: tf.Tensor, rescaled: tf.Tensor, offset: tf.Tensor,
                crop: int | tf.Tensor) -> tf.Tensor:
    """The smallest source window ``[y, x, height, width]`` (int32) holding every source pixel
    that the bilinear samples of a ``crop`` at ``offset`` of the rescaled image read."""
    first = _source_coordinate(offset, size, rescaled)
    last = _source_coordinate(offset + crop - 1, size, rescaled)
    upper = tf.cast(size - 1, tf.float64)
    # One spare pixel on each side: libjpeg's chroma upsampling replicates the edge of a cropped
    # window, so a window's first and last columns can differ from a whole-image decode.
    start = tf.cast(tf.floor(tf.clip_by_value(first - 1.0, 0.0, upper)), tf.int32)
    stop = tf.cast(tf.math.ceil(tf.clip_by_value(last + 1.0, 0.0, upper)), tf.int32)
    return tf.concat([start, stop - start + 1], axis=0)


def crop_samples(size: tf.Tensor, rescaled: tf.Tensor, offset: tf.Tensor,
                 crop: int | tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Where a ``crop`` at ``offset`` of the rescaled image samples the source: ``(first, step)``
    (float64 ``[2]`` each, (y, x)): crop pixel ``i`` reads source coordinate
    ``first + i * step``. The same numbers drive ``vgg_keras.augment.RandomScaleCrop``."""
    return transforms.crop_samples(tf.cast(size, tf.float64), tf.cast(rescaled, tf.float64),
                                   tf.cast(offset, tf.float64))


def _edge_pad(image):
    # Replicate the border by one pixel (concat: tf.pad's SYMMETRIC mode is far slower).
    image = tf.concat([image[:1], image, image[-1:]], axis=0)
    return tf.concat([image[:, :1], image, image[:, -1:]], axis=1)


def resample(window: tf.Tensor, first: tf.Tensor, step: tf.Tensor, crop: int,
             flip: bool | tf.Tensor = False) -> tf.Tensor:
    """Bilinear samples ``window[first + i * step]`` for ``i < crop`` on both axes, clamped at
    the border as ``tf.image.resize`` does: float32 ``[crop, crop, 3]``, mirrored left-right
    when the boolean ``flip`` is True.

    ``tf.image.crop_and_resize`` samples linearly between its box ends, which is exactly this
    grid; it reads uint8 directly, and mirrors for free when the box's x ends are swapped. It
    fills samples outside the image with a constant, so when a sample falls outside
    (upscaling, at the image border) the window gets a replicated edge.
    """
    size = tf.cast(tf.shape(window)[:2], tf.float64)
    last = first + (crop - 1) * step
    outside = tf.reduce_any(first < 0.0) | tf.reduce_any(last > size - 1.0)
    window, first, size = tf.cond(
        outside, lambda: (_edge_pad(window), first + 1.0, size + 2.0),
        lambda: (window, first, size))
    last = first + (crop - 1) * step
    span = tf.maximum(size - 1.0, 1.0)
    box = tf.cast(tf.concat([first / span, last / span], axis=0), tf.float32)
    box = tf.where(flip, tf.gather(box, [0, 3, 2, 1]), box)
    return tf.image.crop_and_resize(window[None], box[None], [0], [crop, crop],
                                    method="bilinear")[0]


def rescale(image: tf.Tensor, scale: int | tf.Tensor) -> tf.Tensor:
    """Rescale isotropically so the shorter side is ``scale`` (bilinear); float32.

    >>> rescale(tf.zeros([375, 500, 3], tf.uint8), 256).shape
    TensorShape([256, 341, 3])
    """
    size = rescaled_size(tf.shape(image)[:2], scale)
    return tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")


def crop_geometry(size: tf.Tensor, scale: int | tf.Tensor, crop: int,
                  offset_fn: OffsetFn) -> tuple[tf.Tensor, ...]:
    """Where a ``crop`` cut at ``offset_fn`` from an image of ``size`` rescaled to ``scale``
    comes from: ``(rescaled size, offset in it, window [y, x, h, w] of the source to read,
    first sample and step in window coordinates)`` for :func:`resample`."""
    rescaled = rescaled_size(size, scale)
    offset = offset_fn(rescaled, crop)
    window = crop_window(size, rescaled, offset, crop)
    first, step = crop_samples(size, rescaled, offset, crop)
    return rescaled, offset, window, first - tf.cast(window[:2], tf.float64), step


def decode_rescale_crop(image_bytes: tf.Tensor | bytes, scale: int | tf.Tensor, crop: int,
                        offset_fn: OffsetFn,
                        flip: bool | tf.Tensor = False) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Rescale an encoded image to shorter side ``scale`` and cut a ``crop x crop`` patch at
    ``offset_fn(rescaled_size, crop)``, decoding only the source window the patch reads;
    mirror it when the boolean ``flip`` is True (at no cost: it is the same sampling).

    Returns ``(patch float32 [crop, crop, 3] in [0, 255], rescaled size [2], offset [2])``;
    the patch equals ``rescale(decode(image_bytes), scale)`` cropped at ``offset``.

    >>> pixels = tf.random.stateless_uniform([375, 500, 3], [0, 1], maxval=256, dtype=tf.int32)
    >>> data = tf.io.encode_png(tf.cast(pixels, tf.uint8))
    >>> patch, rescaled, offset = decode_rescale_crop(data, 256, 224, center_offset)
    >>> rescaled.numpy(), offset.numpy()
    (array([256, 341], dtype=int32), array([16, 58], dtype=int32))
    >>> whole = rescale(decode(data), 256)[16:16 + 224, 58:58 + 224]     # the slow way
    >>> float(tf.reduce_max(tf.abs(patch - whole))) < 0.05    # the same, to float rounding
    True
    """

    def from_source(size, read_window):
        rescaled, offset, window, first, step = crop_geometry(size, scale, crop, offset_fn)
        return resample(read_window(window), first, step, crop, flip), rescaled, offset

    patch, rescaled, offset = _from_encoded(image_bytes, from_source)
    patch.set_shape([crop, crop, 3])
    return patch, rescaled, offset


def _from_encoded(image_bytes, make):
    """``make(size, read_window)`` on an encoded image, where ``read_window([y, x, h, w])``
    gives those pixels: a JPEG decodes only that window, other formats are decoded whole."""

    def jpeg():
        size = tf.image.extract_jpeg_shape(image_bytes)[:2]
        return make(size, lambda w: tf.io.decode_and_crop_jpeg(image_bytes, w, channels=3))

    def other():
        image = _decode_other(image_bytes)
        return make(tf.shape(image)[:2],
                    lambda w: tf.slice(image, [w[0], w[1], 0], [w[2], w[3], 3]))

    return tf.cond(is_jpeg(image_bytes), jpeg, other)


def decode_window(image_bytes: tf.Tensor | bytes, scale: int | tf.Tensor, crop: int,
                  offset_fn: OffsetFn, flip: bool | tf.Tensor = False,
                  bucket: int | None = None) -> tuple[tf.Tensor, ...]:
    """The host's share of :func:`decode_rescale_crop` when the accelerator resamples: decode
    only the source window the crop reads, as uint8 that fits a ``bucket x bucket`` square
    (:func:`vgg_keras.transforms.window_bucket` by default; the pipelines pad it there as they
    batch, which costs less than padding each image), with where the crop samples it
    (:data:`vgg_keras.transforms.WINDOW_GEOMETRY`, the flip included).
    ``vgg_keras.augment.WindowCrop`` then makes the crop, batched, in the training step.

    A window larger than the bucket (an image shrunk by more than about 1.5) is resampled here
    instead and handed over as the crop itself, rounded to uint8 (within 0.5 grey levels), with
    the identity geometry.

    Returns ``(window uint8 [h, w, 3] with h, w <= bucket, geometry float32 [6], rescaled size
    [2], offset [2])``.

    >>> pixels = tf.random.stateless_uniform([375, 500, 3], [0, 1], maxval=256, dtype=tf.int32)
    >>> data = tf.io.encode_png(tf.cast(pixels, tf.uint8))
    >>> window, geometry, rescaled, offset = decode_window(data, 256, 224, center_offset)
    >>> window.shape, window.dtype.name          # only the pixels the crop reads
    (TensorShape([331, 331, 3]), 'uint8')
    >>> [round(float(v), 3) for v in geometry]   # first y, x; step y, x; height, width
    [1.67, 1.277, 1.465, 1.466, 331.0, 331.0]
    """
    bucket = transforms.window_bucket(crop) if bucket is None else int(bucket)
    if bucket < crop:
        raise ValueError(f"The window bucket ({bucket}) must hold at least the crop ({crop}).")

    def from_source(size, read_window):
        rescaled, offset, window, first, step = crop_geometry(size, scale, crop, offset_fn)

        def whole_window():
            # Mirroring reads the columns from the other end: no pixel moves on the host.
            first_x = tf.where(flip, first[1] + (crop - 1) * step[1], first[1])
            step_x = tf.where(flip, -step[1], step[1])
            geometry = tf.stack([first[0], first_x, step[0], step_x,
                                 *tf.unstack(tf.cast(window[2:], tf.float64))])
            return read_window(window), geometry

        def crop_on_host():
            patch = resample(read_window(window), first, step, crop, flip)
            identity = tf.constant([0.0, 0.0, 1.0, 1.0, crop, crop], tf.float64)
            return tf.cast(tf.round(tf.clip_by_value(patch, 0.0, 255.0)), tf.uint8), identity

        pixels, geometry = tf.cond(tf.reduce_all(window[2:] <= bucket), whole_window,
                                   crop_on_host)
        return pixels, tf.cast(geometry, tf.float32), rescaled, offset

    window, geometry, rescaled, offset = _from_encoded(image_bytes, from_source)
    window.set_shape([None, None, 3])
    geometry.set_shape([len(transforms.WINDOW_GEOMETRY)])
    return window, geometry, rescaled, offset


def rescaled_crops(image: tf.Tensor, offsets: tf.Tensor, crop: int) -> tf.Tensor:
    """``[len(offsets), crop, crop, 3]`` patches of an (already rescaled) image, pixel-exact."""
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    offsets = tf.cast(offsets, tf.float32)
    # crop_and_resize samples y1 * (H - 1) ... y2 * (H - 1): whole-pixel boxes copy pixels.
    boxes = tf.concat([offsets, offsets + crop - 1], axis=1) / tf.tile(
        tf.maximum(size - 1, 1.0), [2])
    return tf.image.crop_and_resize(
        tf.cast(image, tf.float32)[None], boxes, tf.zeros([tf.shape(offsets)[0]], tf.int32),
        [crop, crop], method="bilinear",
    )


# ----------------------------------------------------------------------------------------------
# Boxes.


def crop_boxes(boxes: tf.Tensor, rescaled: tf.Tensor, offset: tf.Tensor,
               crop: int) -> tf.Tensor:
    """Image-normalised ``boxes [N, 4]`` relative to a ``crop`` at ``offset`` of the image
    rescaled to ``rescaled``; not clipped (a box reaching out of the crop leaves [0, 1])."""
    return B.to_crop(tf.cast(boxes, tf.float32), tf.cast(rescaled, tf.float32),
                     tf.cast(offset, tf.float32), float(crop), xp=tf)


def flip_boxes(boxes: tf.Tensor) -> tf.Tensor:
    """Boxes of the horizontally flipped image: x -> 1 - x (xmin and xmax swap)."""
    return B.flip(boxes, xp=tf)


def clip_boxes(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Boxes clipped to [0, 1] and their remaining areas (0 for boxes cut away entirely)."""
    clipped = tf.clip_by_value(boxes, 0.0, 1.0)
    return clipped, B.area(clipped, xp=tf)


def best_box(boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The box the crop keeps best: ``(clipped box [4], present)`` where the chosen box has the
    largest area left inside the crop; ``present`` is False when no box is left at all (the
    box is then all zeros and must be masked out, e.g. by a zero sample weight)."""
    clipped, area = clip_boxes(tf.reshape(boxes, [-1, 4]))
    present = tf.reduce_any(area > 0.0)
    index = tf.argmax(tf.concat([area, [-1.0]], axis=0), output_type=tf.int32)
    box = tf.where(present, tf.gather(tf.concat([clipped, tf.zeros([1, 4])], 0), index),
                   tf.zeros([4]))
    return box, present


# ----------------------------------------------------------------------------------------------
# Photometric augmentation on the host (the Keras layers in vgg_keras.augment do the same on
# the accelerator).


def pca_color_shift(seed: tf.Tensor, stddev: float = 0.1,
                    eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
                    eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC,
                    value_range: float = 255.0) -> tf.Tensor:
    """Krizhevsky et al.'s colour shift ``value_range * eigvec @ (alpha * eigval)``, alpha ~
    N(0, stddev) per component: a ``[3]`` RGB offset to add to every pixel of one image.

    The eigen decomposition is of RGB in [0, 1] (as the usual ImageNet constants), hence the
    ``value_range`` factor for images in [0, 255]. Its covariance is
    ``value_range**2 * eigvec @ diag((stddev * eigval)**2) @ eigvec.T``.
    """
    alpha = tf.random.stateless_normal([3], seed, stddev=stddev)
    return transforms.pca_shift(alpha, tf.constant(eigval, tf.float32),
                                tf.constant(eigvec, tf.float32), value_range, xp=tf)
