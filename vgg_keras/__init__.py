"""vgg_keras: the complete VGG (Simonyan & Zisserman, ICLR 2015) in Keras 3.

>>> import numpy as np
>>> import vgg_keras
>>> # build_vgg("D") is the paper's D: 138,357,544 weights, logits for 1000 classes
>>> model = vgg_keras.build_vgg("D", 10, input_shape=(64, 64, 3), width=0.125)
>>> dense = vgg_keras.to_dense(model)               # any image >= 64 -> class score map
>>> tuple(dense(np.zeros((1, 96, 128, 3))).shape)
(1, 2, 3, 10)
>>> images = np.random.default_rng(0).uniform(0, 255, (2, 80, 100, 3))
>>> vgg_keras.features(model, images, scales=(64, 96)).shape   # Appendix B transfer descriptors
(2, 512)
>>> vgg_keras.export(model, "served/vgg_d")          # SavedModel taking JPEG/PNG bytes
'served/vgg_d'
>>> vgg16 = vgg_keras.vgg16(weights="imagenet")   # fetched once, then cached  # doctest: +SKIP

Model code uses only ``keras``; ``vgg_keras.data`` (tf.data, TFDS) imports TensorFlow.
"""

from .configs import CONFIGS
from .layers import InputNormalization, LocalResponseNormalization, MinimumSpatialSize
from .export import export
from .models import (
    arch_of, build_localizer, build_vgg, load_vgg, preinitialize, scale_to_unit_output, to_dense,
    vgg11, vgg11_lrn, vgg13, vgg16, vgg16_1x1, vgg19,
)
from .transfer import features
from . import transfer

__version__ = "0.1.0"

__all__ = [
    "CONFIGS",
    "arch_of",
    "load_vgg",
    "vgg11",
    "vgg11_lrn",
    "vgg13",
    "vgg16",
    "vgg16_1x1",
    "vgg19",
    "InputNormalization",
    "LocalResponseNormalization",
    "MinimumSpatialSize",
    "build_localizer",
    "export",
    "features",
    "build_vgg",
    "preinitialize",
    "scale_to_unit_output",
    "to_dense",
    "transfer",
]
