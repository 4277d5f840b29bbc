"""The paper's augmentation as batched Keras layers that run inside the training step, on the
accelerator, on every backend (``keras`` and ``keras.ops`` only; no TensorFlow import).

* :class:`RandomHorizontalFlip`: mirror each image with probability 1/2 (boxes follow).
* :class:`PCAColorShift`: Krizhevsky et al.'s colour shift along the RGB principal components.
* :class:`RandomScaleCrop`: scale jittering and the random crop for images already decoded to
  one size (in-memory arrays), as one per-image affine resampling
  (``keras.ops.image.affine_transform``) that draws S and the crop position exactly as the
  host pipeline (:mod:`vgg_keras.data`) does.
* :class:`WindowCrop`: the crop from the uint8 window the host decoded
  (``train_pipeline(placement=Placement(resample="device"))``, the scripts'
  default), the exact bilinear resampling of the host path as gathers of rows and columns; the
  flip is in its geometry.

All are active only when called with ``training=True`` (``model.fit``); at inference the flip
and colour shift are the identity and :class:`RandomScaleCrop` takes the central crop at the
paper's single test scale ``Q = (Smin + Smax) / 2``. Each is seeded through a
``keras.random.SeedGenerator`` and serialisable, and computes in float32 whatever the global
precision policy, because images are in [0, 255]. The formulas they share with the host pipeline
(rescaled size, crop positions and samples, colour shift, box flip) are written once, in
:mod:`vgg_keras.transforms` and :mod:`vgg_keras.boxes`.

How a training script composes them (the pipeline hands over geometry only, the model's first
layers do the photometric work; ``Placement(augment="device")`` makes the pipeline leave it):

>>> import keras
>>> import vgg_keras.data
>>> from vgg_keras import build_vgg
>>> model = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125)
>>> ds = vgg_keras.data.load("vgg_shapes", "train")
>>> train = vgg_keras.data.train_pipeline(ds, scale=(72, 96), crop=64, batch_size=32, seed=1,
...     placement=vgg_keras.data.Placement(augment="device"))
>>> augmentation = training_augmentation(flip=True, color_shift=True, seed=1)
>>> trainer = keras.Sequential([augmentation, model])      # compile and fit this; save `model`
>>> images, labels = next(iter(train))                     # crops, not yet flipped or shifted
>>> tuple(trainer(images, training=True).shape)
(32, 10)

``train.augmentation`` is the same ``training_augmentation`` that ``train_pipeline`` made for
the flags and seed it was given.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from . import boxes as B
from . import transforms
from .configs import IMAGENET_PCA_EIGVAL, IMAGENET_PCA_EIGVEC

if TYPE_CHECKING:
    from ._typing import Scale, Shape, Tensor


def _float32_by_default(kwargs):
    # Images are in [0, 255]: half precision would round colour shifts and sample positions.
    kwargs.setdefault("dtype", "float32")
    return kwargs


def _images_and_boxes(inputs):
    if isinstance(inputs, dict):
        return inputs["images"], inputs.get("boxes")
    return inputs, None


@keras.saving.register_keras_serializable(package="vgg_keras")
class RandomHorizontalFlip(keras.layers.Layer):
    """Mirror each image of a batch left-right with probability ``probability``.

    Takes images ``(B, H, W, C)``, or a dict ``{"images": ..., "boxes": (B, 4) or (B, N, 4)}``
    with boxes ``[ymin, xmin, ymax, xmax]`` normalised to the image, which are flipped with
    their images and returned in a dict of the same form.

    >>> images = keras.random.uniform((8, 32, 32, 3), 0, 255, seed=0)
    >>> flip = RandomHorizontalFlip(seed=0)
    >>> flipped = flip(images, training=True)        # about half of them mirrored
    >>> flip(images) is images                        # inference: unchanged
    True
    >>> mirror = RandomHorizontalFlip(probability=1.0)
    >>> boxes = keras.ops.convert_to_tensor([[0.1, 0.2, 0.5, 0.4]])
    >>> out = mirror({"images": images[:1], "boxes": boxes}, training=True)
    >>> keras.ops.convert_to_numpy(out["boxes"]).round(3)    # x -> 1 - x
    array([[0.1, 0.6, 0.5, 0.8]], dtype=float32)
    """

    def __init__(self, probability: float = 0.5, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**_float32_by_default(kwargs))
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {probability}.")
        self.probability = float(probability)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Tensor | dict[str, Tensor],
             training: bool | None = None) -> Tensor | dict[str, Tensor]:
        if not training:
            return inputs
        images, boxes = _images_and_boxes(inputs)
        batch = ops.shape(images)[0]
        flip = keras.random.uniform((batch,), seed=self.seed_generator) < self.probability
        images = ops.where(ops.reshape(flip, (-1, 1, 1, 1)), ops.flip(images, axis=2), images)
        if boxes is None:
            return images
        mirrored = B.flip(boxes, xp=ops)
        mask = ops.reshape(flip, (-1,) + (1,) * (len(boxes.shape) - 1))
        return {**inputs, "images": images, "boxes": ops.where(mask, mirrored, boxes)}

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(probability=self.probability, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="vgg_keras")
class PCAColorShift(keras.layers.Layer):
    """AlexNet's colour augmentation: add ``value_range * eigvec @ (alpha * eigval)`` to every
    pixel of an image, with ``alpha ~ N(0, stddev)`` drawn per image and component.

    ``eigval``/``eigvec`` (columns) are the principal components of the training set's RGB
    pixels on a [0, 1] scale (ImageNet's by default; ``vgg_keras.data.compute_statistics``
    gives a dataset's own); images are RGB in [0, ``value_range``]. The shift of one image has
    covariance ``value_range**2 * eigvec @ diag((stddev * eigval)**2) @ eigvec.T``. Results are
    clipped to [0, value_range] (``clip=False`` keeps them exact).

    >>> images = keras.ops.full((2, 4, 4, 3), 128.0)
    >>> shift = PCAColorShift(seed=0)
    >>> shifted = keras.ops.convert_to_numpy(shift(images, training=True))
    >>> bool((shifted == shifted[:, :1, :1]).all())     # one RGB offset for a whole image
    True
    >>> shift(images) is images                          # inference: unchanged
    True
    """

    def __init__(self, stddev: float = 0.1, eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
                 eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC,
                 value_range: float = 255.0, clip: bool = True, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**_float32_by_default(kwargs))
        self.stddev = float(stddev)
        self.eigval = [float(v) for v in eigval]
        self.eigvec = [[float(v) for v in row] for row in eigvec]
        if len(self.eigval) != 3 or len(self.eigvec) != 3 or any(len(r) != 3 for r in self.eigvec):
            raise ValueError("eigval must have 3 values and eigvec be 3x3 (columns = vectors).")
        self.value_range = float(value_range)
        self.clip = bool(clip)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        if not training:
            return inputs
        images = ops.cast(inputs, self.compute_dtype)
        batch = ops.shape(images)[0]
        alpha = keras.random.normal((batch, 3), stddev=self.stddev, seed=self.seed_generator)
        shift = transforms.pca_shift(  # (B, 3)
            alpha, ops.convert_to_tensor(self.eigval, self.compute_dtype),
            ops.convert_to_tensor(self.eigvec, self.compute_dtype), self.value_range, xp=ops)
        images = images + ops.reshape(shift, (-1, 1, 1, 3))
        if self.clip:
            images = ops.clip(images, 0.0, self.value_range)
        return images

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(stddev=self.stddev, eigval=self.eigval, eigvec=self.eigvec,
                      value_range=self.value_range, clip=self.clip, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="vgg_keras")
class RandomScaleCrop(keras.layers.Layer):
    """Scale jittering and the random crop, batched on the device, for same-size images.

    Per image: S is drawn uniformly from the integers ``[scale[0], scale[1]]`` (or is
    ``scale``), the image is rescaled isotropically to shorter side S (``H' x W'``, rounded),
    and a ``crop x crop`` window is placed uniformly over the integer positions of the
    rescaled image (``floor(u * (H' - crop + 1))``). Rescale and crop are one bilinear
    ``keras.ops.image.affine_transform`` with the pixel-centre convention of ``tf.image.resize``
    and clamped borders: the same draws and the same pixels as ``vgg_keras.data``'s host path.

    Inference (``training`` false): the central crop at the paper's test scale
    ``Q = (Smin + Smax) // 2`` (:func:`vgg_keras.transforms.test_scale`).

    >>> layer = RandomScaleCrop(scale=(72, 96), crop=64, seed=0)
    >>> tuple(layer(keras.ops.zeros((8, 120, 160, 3)), training=True).shape)
    (8, 64, 64, 3)
    >>> scale, rescaled, offsets = layer.sample(1, 120, 160, training=False)   # Q = 84
    >>> keras.ops.convert_to_numpy(rescaled), keras.ops.convert_to_numpy(offsets)
    (array([[ 84., 112.]], dtype=float32), array([[10., 24.]], dtype=float32))
    """

    def __init__(self, scale: Scale = (256, 512), crop: int = 224, seed: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**_float32_by_default(kwargs))
        low, high = (scale, scale) if isinstance(scale, (int, float)) else scale
        if int(low) != low or int(high) != high or not crop <= low <= high:
            raise ValueError(
                f"scale must be an integer S or a range (Smin, Smax) with crop <= Smin <= Smax; "
                f"got scale={scale}, crop={crop}."
            )
        self.scale = (int(low), int(high))
        self.crop = int(crop)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def sample(self, batch: int | Tensor, height: int | Tensor, width: int | Tensor,
               training: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """The draws for a batch: ``(S, rescaled (B, 2), offsets (B, 2))`` as float32 tensors."""
        low, high = self.scale
        if training:
            u = keras.random.uniform((batch, 3), seed=self.seed_generator)
            scale = ops.minimum(ops.floor(u[:, 0] * (high - low + 1)), high - low) + low
        else:
            u = None
            scale = ops.full((batch,), float(transforms.test_scale((low, high))))
        size = ops.cast(ops.stack([height, width]), "float32")
        rescaled = transforms.rescaled_size(size, scale[:, None], xp=ops)
        if training:
            offsets = transforms.random_offset(u[:, 1:], rescaled, self.crop, xp=ops)
        else:
            offsets = transforms.center_offset(rescaled, self.crop)
        return scale, rescaled, offsets

    def call(self, inputs: Tensor, training: bool | None = None) -> Tensor:
        images = ops.cast(inputs, self.compute_dtype)
        shape = ops.shape(images)
        batch, height, width = shape[0], shape[1], shape[2]
        _, rescaled, offsets = self.sample(batch, height, width, training=bool(training))
        size = ops.cast(ops.stack([height, width]), "float32")
        # Source pixels per output pixel and the first sample, (B, 2) each as (y, x).
        start, step = transforms.crop_samples(size[None, :], rescaled, offsets)
        zeros = ops.zeros_like(step[:, 0])
        transform = ops.stack(
            [step[:, 1], zeros, start[:, 1], zeros, step[:, 0], start[:, 0], zeros, zeros], axis=1)
        # affine_transform keeps the input size; pad (replicating the edge, which the clamped
        # sampling would read anyway) when the image is smaller than the crop.
        pad_h = max(0, self.crop - height) if isinstance(height, int) else 0
        pad_w = max(0, self.crop - width) if isinstance(width, int) else 0
        if pad_h:  # ops.pad's "edge" mode is not on every backend: repeat the last row
            images = ops.concatenate([images, ops.repeat(images[:, -1:], pad_h, axis=1)], 1)
        if pad_w:
            images = ops.concatenate([images, ops.repeat(images[:, :, -1:], pad_w, axis=2)], 2)
        out = ops.image.affine_transform(images, transform, interpolation="bilinear",
                                         fill_mode="nearest")
        return out[:, : self.crop, : self.crop, :]

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return (input_shape[0], self.crop, self.crop, input_shape[-1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(scale=list(self.scale), crop=self.crop, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="vgg_keras")
class WindowCrop(keras.layers.Layer):
    """The crop from a decoded window, batched on the device: the accelerator's share of the
    training pipeline when the host hands over only the uint8 window each crop reads
    (``vgg_keras.data.train_pipeline(placement=Placement(resample="device"))``).

    Takes ``{"windows": uint8 (B, P, P, 3), "geometry": (B, 6)}`` (the fields of
    :data:`vgg_keras.transforms.WINDOW_GEOMETRY`) and returns float32 ``(B, crop, crop, 3)``:
    crop pixel ``(i, j)`` is the bilinear sample of its window at ``(first_y + i * step_y,
    first_x + j * step_x)``, clamped to the window's ``height x width``, the pixels the host
    path (``vgg_keras.data.ops.resample``) computes. Each axis is two gathers of whole rows
    (then columns) and a blend: memory traffic of a few crops, no arithmetic to speak of, on
    every backend.

    >>> windows = keras.ops.cast(keras.random.uniform((2, 100, 100, 3), 0, 255, seed=0), "uint8")
    >>> identity = keras.ops.convert_to_tensor([[0.0, 0.0, 1.0, 1.0, 64.0, 64.0]] * 2)
    >>> crops = WindowCrop(64)({"windows": windows, "geometry": identity})
    >>> bool(keras.ops.all(crops == keras.ops.cast(windows[:, :64, :64], "float32")))
    True
    """

    def __init__(self, crop: int = 224, **kwargs: Any) -> None:
        super().__init__(**_float32_by_default(kwargs))
        self.crop = int(crop)

    def _samples(self, first, step, extent):
        """``(low, high, fraction)`` ``(B, crop)`` each: the two source rows (or columns) a
        sample reads and the weight of the second, clamped to the window's ``extent``."""
        index = ops.arange(self.crop, dtype=self.compute_dtype)
        upper = extent[:, None] - 1.0
        coords = ops.minimum(ops.maximum(first[:, None] + index * step[:, None], 0.0), upper)
        low = ops.floor(coords)
        high = ops.minimum(low + 1.0, upper)
        return ops.cast(low, "int32"), ops.cast(high, "int32"), coords - low

    def _resample_rows(self, images, first, step, extent):
        """``(B, P, Q, C)`` -> ``(B, crop, Q, C)``: linear samples along the rows, gathered
        (two rows read per output row)."""
        low, high, fraction = self._samples(first, step, extent)
        rows = ops.shape(images)[1]
        flat = ops.reshape(images, (-1, *images.shape[2:]))
        base = ops.arange(ops.shape(images)[0], dtype="int32")[:, None] * rows

        def gather(at):
            picked = ops.take(flat, ops.reshape(at + base, (-1,)), axis=0)
            return ops.cast(ops.reshape(picked, (-1, self.crop, *images.shape[2:])),
                            self.compute_dtype)

        fraction = fraction[:, :, None, None]
        return gather(low) * (1.0 - fraction) + gather(high) * fraction

    def call(self, inputs: dict[str, Tensor]) -> Tensor:
        geometry = ops.cast(inputs["geometry"], self.compute_dtype)
        rows = self._resample_rows(inputs["windows"], geometry[:, 0], geometry[:, 2],
                                   geometry[:, 4])
        columns = self._resample_rows(ops.transpose(rows, (0, 2, 1, 3)), geometry[:, 1],
                                      geometry[:, 3], geometry[:, 5])
        return ops.transpose(columns, (0, 2, 1, 3))

    def compute_output_shape(self, input_shape: dict[str, Shape]) -> Shape:
        return (input_shape["windows"][0], self.crop, self.crop, input_shape["windows"][-1])

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(crop=self.crop)
        return config


def window_inputs(bucket: int) -> dict[str, keras.KerasTensor]:
    """The symbolic inputs of a model fed windows (:class:`WindowCrop`)."""
    return {"windows": keras.Input((bucket, bucket, 3), dtype="uint8", name="windows"),
            "geometry": keras.Input((len(transforms.WINDOW_GEOMETRY),), name="geometry")}


def _offset_seed(seed, index):
    return None if seed is None else int(seed) + index


def training_augmentation(*, flip: bool = True, color_shift: bool = True,
                          scale: Scale | None = None, crop: int | None = None,
                          windows: int | None = None,
                          seed: int | None = None, stddev: float = 0.1,
                          eigval: Sequence[float] = IMAGENET_PCA_EIGVAL,
                          eigvec: Sequence[Sequence[float]] = IMAGENET_PCA_EIGVEC,
                          name: str = "training_augmentation") -> keras.Model:
    """A ``keras.Sequential`` of the requested augmentations, to place before the model during
    ``fit`` (it is the identity at inference, but there is no need to export it).

    ``scale``/``crop`` add :class:`RandomScaleCrop` first (in-memory images of one size);
    leave them None when the input pipeline already crops. ``windows`` (the bucket side) with
    ``crop`` adds :class:`WindowCrop` first instead, for a pipeline that hands over decoded windows
    (``train_pipeline(placement=Placement(resample="device"))``): the result is then a Functional
    model taking their dict (:func:`window_inputs`), and ``flip`` must be False, because the host
    has flipped by its geometry already.

    >>> from vgg_keras import build_vgg
    >>> model = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125)
    >>> augmentation = training_augmentation(seed=0)                  # flip + colour shift
    >>> trainer = keras.Sequential([augmentation, model])
    >>> in_memory = training_augmentation(scale=(72, 96), crop=64, seed=0)
    >>> [layer.name for layer in in_memory.layers]
    ['scale_crop', 'flip', 'color_shift']
    >>> uncropped = keras.random.uniform((4, 120, 160, 3), 0, 255, seed=0)
    >>> tuple(keras.Sequential([in_memory, model])(uncropped, training=True).shape)
    (4, 10)
    """
    layers = []
    if windows is not None:
        if crop is None or scale is not None or flip:
            raise ValueError("windows takes crop, and neither scale nor flip: the pipeline that "
                             "hands over windows has chosen the crop and flip.")
    elif scale is not None or crop is not None:
        if scale is None or crop is None:
            raise ValueError("Give both scale and crop for the in-memory scale-and-crop layer.")
        layers.append(RandomScaleCrop(scale, crop, seed=_offset_seed(seed, 0), name="scale_crop"))
    if flip:
        layers.append(RandomHorizontalFlip(seed=_offset_seed(seed, 1), name="flip"))
    if color_shift:
        layers.append(PCAColorShift(stddev, eigval, eigvec, seed=_offset_seed(seed, 2),
                                    name="color_shift"))
    if windows is None:
        return keras.Sequential(layers, name=name)
    assert crop is not None  # windows take a crop: checked above
    inputs = window_inputs(windows)
    images = WindowCrop(crop, name="window_crop")(inputs)
    for layer in layers:
        images = layer(images)
    return keras.Model(inputs, images, name=name)


def takes_windows(augmentation: keras.Model) -> bool:
    """Whether ``augmentation`` is fed decoded windows (it starts with :class:`WindowCrop`)."""
    return any(isinstance(layer, WindowCrop) for layer in augmentation.layers)
