"""vgg_keras: the complete VGG (Simonyan & Zisserman, ICLR 2015) in Keras 3.

>>> import vgg_keras
>>> model = vgg_keras.build_vgg("D")                # 138,357,544 weights, logits for 1000 classes
>>> dense = vgg_keras.to_dense(model)               # any image >= 224 -> class score map
>>> vgg16 = vgg_keras.vgg16(weights="vgg16-397923af.pth")   # a torchvision or Keras file
>>> vgg_keras.features(vgg16, images)                # Appendix B transfer descriptors
>>> vgg_keras.export(model, "served/vgg_d")          # SavedModel taking JPEG/PNG bytes

Model code uses only ``keras``; ``vgg_keras.data`` (tf.data, TFDS) imports TensorFlow.
"""

from .configs import CONFIGS
from .layers import InputNormalization, LocalResponseNormalization, MinimumSpatialSize
from .export import export
from .models import (
    arch_of, build_localizer, build_vgg, load_vgg, preinitialize, to_dense, vgg11, vgg11_lrn,
    vgg13, vgg16, vgg16_1x1, vgg19,
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
    "to_dense",
    "transfer",
]
