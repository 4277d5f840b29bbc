"""``python -m vgg_keras.train_cls``: the same command as train_cls.py and vgg-train-cls."""

import sys

from .cli import train_cls

if __name__ == "__main__":
    sys.exit(train_cls(prog="python -m vgg_keras.train_cls"))
