"""Layers the paper needs that Keras does not have, written with ``keras.ops`` only.

All three are serializable (``get_config``, registered under the ``vgg_keras`` package), so models
that contain them load with ``keras.saving.load_model(path, safe_mode=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras
from keras import ops

from .configs import IMAGENET_MEAN_RGB, LRN_PARAMS

if TYPE_CHECKING:
    from ._typing import Shape, Tensor


@keras.saving.register_keras_serializable(package="vgg_keras")
class InputNormalization(keras.layers.Layer):
    """Turns RGB images in [0, 255] into what the network's weights expect.

    ``y = (reorder(x) - mean) / std``, where ``reorder`` optionally flips RGB to BGR
    (Caffe/keras.applications weights) and ``std`` is only applied when given (torchvision
    weights). ``mean`` and ``std`` are on the 0-255 scale, in the network's channel order.
    They are stored as non-trainable weights, so a saved model carries its own preprocessing.

    >>> layer = InputNormalization()          # the paper: subtract ImageNet's mean RGB
    >>> pixel = keras.ops.convert_to_tensor([[[[123.68, 116.779, 103.939]]]])   # the mean
    >>> keras.ops.convert_to_numpy(layer(pixel)).ravel()
    array([0., 0., 0.], dtype=float32)
    >>> caffe = InputNormalization(channel_order="bgr", mean=(103.939, 116.779, 123.68))
    >>> keras.ops.convert_to_numpy(caffe(pixel)).ravel()     # RGB in, BGR minus mean out
    array([0., 0., 0.], dtype=float32)
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN_RGB,
                 std: Sequence[float] | None = None, channel_order: str = "rgb",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(f"channel_order must be 'rgb' or 'bgr', got {channel_order!r}.")
        self.mean = [float(v) for v in mean]
        self.std = None if std is None else [float(v) for v in std]
        if self.std is not None and any(v <= 0 for v in self.std):
            raise ValueError(f"std must be positive, got {self.std}.")
        self.channel_order = channel_order

    def build(self, input_shape: Shape) -> None:
        channels = input_shape[-1]
        if channels is not None and channels != len(self.mean):
            raise ValueError(
                f"InputNormalization has {len(self.mean)} mean values but the input has "
                f"{channels} channels."
            )
        self.mean_values = self.add_weight(
            name="mean", shape=(len(self.mean),), trainable=False,
            initializer=keras.initializers.Constant(self.mean),
        )
        if self.std is not None:
            self.std_values = self.add_weight(
                name="std", shape=(len(self.std),), trainable=False,
                initializer=keras.initializers.Constant(self.std),
            )

    def call(self, inputs: Tensor) -> Tensor:
        x = ops.cast(inputs, self.compute_dtype)
        if self.channel_order == "bgr":
            x = ops.flip(x, axis=-1)
        x = x - ops.cast(self.mean_values, self.compute_dtype)
        if self.std is not None:
            x = x / ops.cast(self.std_values, self.compute_dtype)
        return x

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(mean=self.mean, std=self.std, channel_order=self.channel_order)
        return config


@keras.saving.register_keras_serializable(package="vgg_keras")
class LocalResponseNormalization(keras.layers.Layer):
    """Across-channel LRN with Caffe's semantics (Krizhevsky et al. 2012), channels last.

    ``b_c = a_c / (k + alpha / size * sum_{c' in window(c)} a_{c'}^2) ** beta``, the window
    being ``size`` channels centred on ``c`` and cut at the edges. Caffe divides ``alpha`` by
    the window size; ``tf.nn.local_response_normalization`` does not, which is why this layer
    exists instead of a wrapper around it.

    >>> lrn = LocalResponseNormalization()    # size=5, k=2, alpha=1e-4, beta=0.75
    >>> tuple(lrn(keras.ops.ones((1, 4, 4, 64))).shape)
    (1, 4, 4, 64)
    """

    def __init__(self, size: int = int(LRN_PARAMS["size"]), k: float = LRN_PARAMS["k"],
                 alpha: float = LRN_PARAMS["alpha"], beta: float = LRN_PARAMS["beta"],
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if size < 1:
            raise ValueError(f"LRN size must be at least 1, got {size}.")
        self.size = int(size)
        self.k = float(k)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs: Tensor) -> Tensor:
        channels = inputs.shape[-1]
        before = (self.size - 1) // 2
        after = self.size - 1 - before
        squared = ops.square(inputs)
        padding = [[0, 0]] * (len(inputs.shape) - 1) + [[before, after]]
        padded = ops.pad(squared, padding)
        # A sum of shifted slices: size is 5, so this beats a convolution over channels.
        window_sum = padded[..., 0:channels]
        for offset in range(1, self.size):
            window_sum = window_sum + padded[..., offset:offset + channels]
        scale = self.k + (self.alpha / self.size) * window_sum
        return inputs / ops.power(scale, self.beta)

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(size=self.size, k=self.k, alpha=self.alpha, beta=self.beta)
        return config


@keras.saving.register_keras_serializable(package="vgg_keras")
class MinimumSpatialSize(keras.layers.Layer):
    """Identity that rejects images smaller than ``(height, width)`` with a clear error.

    The dense (fully convolutional) form of a model needs at least the crop it was trained on;
    without this check a smaller image fails deep inside a convolution with a shape error.
    """

    def __init__(self, height: int, width: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.height = int(height)
        self.width = int(width)

    def _check(self, shape: Shape) -> None:
        height, width = shape[1], shape[2]
        if (height is not None and height < self.height) or (
            width is not None and width < self.width
        ):
            raise ValueError(
                f"Dense evaluation needs images of at least {self.height}x{self.width} pixels "
                f"(the crop this model was built for); got {height}x{width}."
            )

    def call(self, inputs: Tensor) -> Tensor:
        self._check(inputs.shape)
        return inputs

    def compute_output_shape(self, input_shape: Shape) -> Shape:
        self._check(input_shape)
        return input_shape

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(height=self.height, width=self.width)
        return config
