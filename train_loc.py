#!/usr/bin/env python
"""Train a VGG localisation net (paper Appendix A), or evaluate saved ones by both protocols.

    python train_loc.py --init-from runs/cls-d-s256/model.keras --regression pcr --finetune all
    python train_loc.py --init-from runs/cls_a/model.keras --arch A --width 0.25 --crop 64 \\
        --scale 72:96 --regression scr --finetune fc --epochs 10 --batch-size 32
    python train_loc.py --evaluate runs/loc-pcr/model.keras runs/loc-pcr-384/model.keras \\
        --classifier runs/cls-d-s256/model.keras --eval-scales 256 384

Every flag, its default and its help come from vgg_keras.options.LocalizationConfig.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides progress

from vgg_keras.cli import train_loc  # noqa: E402


def main(argv=None):
    return train_loc(argv, prog="train_loc.py")


if __name__ == "__main__":
    sys.exit(main())
