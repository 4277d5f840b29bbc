#!/usr/bin/env python
"""Train a VGG localisation net (paper Appendix A), or evaluate saved ones by both protocols.

    python train_loc.py --init-from runs/cls-d-s256/model.keras --regression pcr --finetune all
    python train_loc.py --init-from runs/cls_a/model.keras --arch A --width 0.25 --crop 64 \\
        --scale 72:96 --regression scr --finetune fc --epochs 10 --batch-size 32
    python train_loc.py --evaluate runs/loc-pcr/model.keras runs/loc-pcr-384/model.keras \\
        --classifier runs/cls-d-s256/model.keras --eval-scales 256 384
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter hides progress

from vgg_keras.cli import common_parser, run_command  # noqa: E402

EXTRA = ("evaluate", "eval_output")


def main(argv=None):
    parser = common_parser(__doc__.strip().splitlines()[0], default_lr=1e-3)
    group = parser.add_argument_group("localisation")
    group.add_argument("--regression", choices=("scr", "pcr"), default="pcr",
                       help="single-class (4 outputs) or per-class (4 x C outputs) box regression")
    group.add_argument("--finetune", choices=("all", "fc"), default="all",
                       help="fine-tune every layer, or only fc6, fc7 and the new fc8_box")
    group.add_argument("--classifier", metavar="CLS_MODEL", nargs="+", default=None,
                       help="classification model(s) whose class scores rate protocol 2's boxes "
                            "(default when training: --init-from, if it is a classifier)")
    group.add_argument("--eval-scales", type=int, nargs="+", default=None,
                       help="test scales Q for protocol 2 (protocol 1 uses the first; default: "
                            "the paper's single scale for --scale)")
    group.add_argument("--eval-split", default=None,
                       help="split the evaluation reads, e.g. test or 'validation[:100]' "
                            "(default: the validation examples, held out by --val-fraction "
                            "when the source has no validation split)")
    group.add_argument("--eval-output", default=None, help="write Tables 8/9 as JSON (--evaluate)")
    args = parser.parse_args(argv)

    from vgg_keras.localization import evaluate_saved, train_localizer
    from vgg_keras.train import test_scale

    if args.evaluate:
        return run_command(parser.prog, args, lambda: evaluate_saved(
            args.evaluate, classifiers=args.classifier or (), data=args.data,
            data_dir=args.data_dir, scales=args.eval_scales or [test_scale(args.scale)],
            batch_size=args.eval_batch_size, val_fraction=args.val_fraction,
            split=args.eval_split, output=args.eval_output))
    options = {k: v for k, v in vars(args).items() if k not in EXTRA}
    if options["classifier"]:
        if len(options["classifier"]) > 1:
            parser.error("training rates protocol 2 by one --classifier; give several with "
                         "--evaluate")
        options["classifier"] = options["classifier"][0]
    return run_command(parser.prog, args, lambda: train_localizer(**options))


if __name__ == "__main__":
    sys.exit(main())
