"""vgg_keras: the complete VGG (Simonyan & Zisserman, ICLR 2015) in Keras 3.

>>> import vgg_keras
>>> model = vgg_keras.build_vgg("D")                # 138,357,544 weights, logits for 1000 classes
>>> dense = vgg_keras.to_dense(model)               # any image >= 224 -> class score map

Model code uses only ``keras``; ``vgg_keras.data`` (tf.data, TFDS) imports TensorFlow.
"""

from .configs import CONFIGS
from .layers import InputNormalization, LocalResponseNormalization, MinimumSpatialSize
from .models import build_localizer, build_vgg, preinitialize, to_dense

__version__ = "0.1.0"

__all__ = [
    "CONFIGS",
    "InputNormalization",
    "LocalResponseNormalization",
    "MinimumSpatialSize",
    "build_localizer",
    "build_vgg",
    "preinitialize",
    "to_dense",
]
