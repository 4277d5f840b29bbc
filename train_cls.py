#!/usr/bin/env python
"""Train a VGG classifier by the paper's recipe, or evaluate saved ones.

    python train_cls.py --arch D                        # the paper's D on the embedded data
    python train_cls.py --arch D --scale 256:512 --init-from runs/cls-d-s384/model.keras
    python train_cls.py --evaluate runs/cls-d-s256/model.keras --eval-scales 224 256 288
    python train_cls.py --evaluate vgg16-397923af.pth --data /path/to/ILSVRC --eval-scales 256

Every flag, its default and its help come from vgg_keras.options.ClassificationConfig.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides progress

from vgg_keras.cli import train_cls  # noqa: E402


def main(argv=None):
    return train_cls(argv, prog="train_cls.py")


if __name__ == "__main__":
    sys.exit(main())
