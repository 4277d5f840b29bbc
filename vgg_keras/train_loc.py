"""``python -m vgg_keras.train_loc``: the same command as train_loc.py and vgg-train-loc."""

import sys

from .cli import train_loc

if __name__ == "__main__":
    sys.exit(train_loc(prog="python -m vgg_keras.train_loc"))
