#!/usr/bin/env python
"""Train a VGG classifier by the paper's recipe, or evaluate saved ones.

    python train_cls.py --arch D                        # the paper's D on the embedded data
    python train_cls.py --arch D --scale 256:512 --init-from runs/cls-d-s384/model.keras
    python train_cls.py --evaluate runs/cls-d-s256/model.keras --eval-scales 224 256 288
    python train_cls.py --evaluate vgg16-397923af.pth --data /path/to/ILSVRC --eval-scales 256
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides progress

from vgg_keras.cli import common_parser, run_command  # noqa: E402

EXTRA = ("evaluate", "eval_scales", "no_eval_flip", "eval_output")


def main(argv=None):
    parser = common_parser(__doc__.strip().splitlines()[0], default_lr=1e-2)
    group = parser.add_argument_group("evaluation")
    group.add_argument("--eval-scales", type=int, nargs="+", default=None,
                       help="test scales Q (default: the paper's single scale for --scale, "
                            "S or (Smin+Smax)/2)")
    group.add_argument("--eval-methods", nargs="+", choices=("center", "dense", "multicrop"),
                       default=["center", "dense"],
                       help="test protocols, for --evaluate and for the evaluation after "
                            "training (whose first one gives summary.json's top-1/top-5 error); "
                            "dense and multicrop together also report their combination")
    group.add_argument("--no-eval-flip", action="store_true",
                       help="do not average the soft-max of the horizontally flipped image")
    group.add_argument("--eval-output", default=None, help="write the evaluation rows as JSON")
    args = parser.parse_args(argv)

    from vgg_keras.classification import evaluate_saved, train_classifier
    from vgg_keras.train import test_scale

    if args.evaluate:
        return run_command(parser.prog, args, lambda: evaluate_saved(
            args.evaluate, data=args.data, data_dir=args.data_dir,
            scales=args.eval_scales or [test_scale(args.scale)], methods=args.eval_methods,
            flip=not args.no_eval_flip, batch_size=args.eval_batch_size,
            val_fraction=args.val_fraction, output=args.eval_output))
    options = {k: v for k, v in vars(args).items() if k not in EXTRA}
    return run_command(parser.prog, args, lambda: train_classifier(**options))


if __name__ == "__main__":
    sys.exit(main())
