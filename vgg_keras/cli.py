"""Command-line flags shared by train_cls.py and train_loc.py, with the paper's defaults."""

import argparse
import sys

from .configs import CONFIGS
from .progress import set_quiet
from .rundir import RunDirectoryError, terminal_logging
from .train import TrainingDiverged, parse_scale

PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def _scale(text):
    try:
        return parse_scale(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(kind):
    def check(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return check


def _non_negative_float(text):
    value = _positive(float)(text) if text not in ("0", "0.0") else 0.0
    return value


def _fraction(text):
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


def _dropout(text):
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _arch(text):
    key = text.upper()
    if key not in CONFIGS:
        raise argparse.ArgumentTypeError(f"unknown configuration {text!r}; choose from "
                                         f"{', '.join(CONFIGS)}")
    return key


def common_parser(description, *, default_lr, default_arch="D"):
    """The flags every training script takes; each default is the paper's."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model = parser.add_argument_group("model")
    model.add_argument("--arch", type=_arch, default=default_arch,
                       help=f"configuration of Table 1: {', '.join(CONFIGS)}")
    model.add_argument("--width", type=_positive(float), default=1.0,
                       help="multiplier on every channel count (1.0 is the paper; 0.25 for "
                            "quick CPU experiments)")
    model.add_argument("--dropout", type=_dropout, default=0.5,
                       help="dropout rate after fc6 and fc7")
    model.add_argument("--init", choices=("paper", "glorot"), default="paper",
                       help="random initialisation: N(0, 0.01) as in the paper, or Glorot "
                            "uniform, which the authors later found trains without pre-init")
    model.add_argument("--init-from", metavar="PATH", default=None,
                       help="a .keras model to start from: a trained A for the paper's "
                            "pre-initialisation of a deeper net, or a model of the same "
                            "configuration to fine-tune")
    data = parser.add_argument_group("data")
    data.add_argument("--data", default=None,
                      help="the embedded dataset (default), a TFDS name such as imagenet2012, "
                           "or a directory of images (class folders, or VOC XML annotations)")
    data.add_argument("--data-dir", default=None,
                      help="where TFDS datasets are (or are built); for imagenet2012 the "
                           "manual download directory goes in DATA_DIR/downloads/manual")
    data.add_argument("--scale", type=_scale, default=parse_scale("256"),
                      help="training scale S: 256 or 384 (single-scale), or SMIN:SMAX for "
                           "scale jittering, e.g. 256:512")
    data.add_argument("--crop", type=_positive(int), default=224,
                      help="side of the square random crop fed to the network")
    data.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                      help="random horizontal flips of the training crops")
    data.add_argument("--color-shift", action=argparse.BooleanOptionalAction, default=True,
                      help="AlexNet PCA colour shift of the training crops")
    data.add_argument("--val-fraction", type=_fraction, default=0.05,
                      help="share of the training data held out for validation when the "
                           "source has no validation split")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=_positive(int), default=74,
                     help="epochs (370K iterations of 256 on ImageNet)")
    opt.add_argument("--steps-per-epoch", type=_positive(int), default=None,
                     help="batches per epoch (default: one pass over the training data)")
    opt.add_argument("--batch-size", type=_positive(int), default=256, help="mini-batch size")
    opt.add_argument("--accumulate", type=_positive(int), default=1,
                     help="accumulate gradients over N batches before each update, so that "
                          "--batch-size 32 --accumulate 8 trains with the paper's batch of 256")
    opt.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                     help="sgd is the paper's (with --momentum); adam leaves chance sooner in "
                          "short CPU experiments (then --lr 3e-4 works well)")
    opt.add_argument("--lr", type=_positive(float), default=default_lr,
                     help="initial learning rate")
    opt.add_argument("--momentum", type=_non_negative_float, default=0.9, help="SGD momentum")
    opt.add_argument("--weight-decay", type=_non_negative_float, default=5e-4,
                     help="L2 weight decay with Caffe's semantics (decay * w added to the "
                          "gradient of every kernel)")
    opt.add_argument("--lr-patience", type=_positive(int), default=2,
                     help="epochs without validation improvement before the learning rate is "
                          "divided by 10")
    opt.add_argument("--lr-drops", type=int, default=3,
                     help="how many times the learning rate may be divided by 10")
    run = parser.add_argument_group("run")
    run.add_argument("--precision", choices=PRECISIONS, default="float32",
                     help="Keras dtype policy")
    run.add_argument("--jit", action="store_true", help="compile the training step with XLA")
    run.add_argument("--distribute", choices=("auto", "none", "mirrored", "multiworker"),
                     default="auto",
                     help="data parallelism: auto picks MultiWorkerMirroredStrategy when "
                          "TF_CONFIG names several workers, MirroredStrategy over several GPUs, "
                          "keras.distribution.DataParallel on JAX")
    run.add_argument("--seed", type=int, default=0, help="seed for weights and data order")
    run.add_argument("--run-dir", default=None,
                     help="where checkpoints, logs, history, exports and summary.json go; "
                          "running again with the same directory resumes (default: "
                          "runs/<task>-<arch>-<scale>)")
    run.add_argument("--evaluate", nargs="+", metavar="MODEL", default=None,
                     help="evaluate saved models instead of training (several: fusion): .keras "
                          "files, or weight files build_vgg reads (torchvision .pth, "
                          "keras.applications .h5)")
    run.add_argument("--eval-batch-size", type=_positive(int), default=32,
                     help="batch size for center-crop evaluation")
    run.add_argument("--verbose", choices=("auto", "0", "1", "2"), default="auto",
                     help="Keras progress output")
    run.add_argument("--quiet", action="store_true",
                     help="no progress bars (file validation, evaluation, features) and one "
                          "line per epoch; log messages still go to the terminal and train.log")
    return parser


def run_command(prog, args, work):
    """Run ``work()`` as a command does: the package's log messages on the terminal, progress
    as ``--quiet`` says, and an error message with a non-zero exit status (2 for bad input,
    1 for a diverged run) instead of a traceback for the errors a user can fix."""
    set_quiet(args.quiet)
    try:
        with terminal_logging():
            work()
    except TrainingDiverged as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
    except (ValueError, OSError, RunDirectoryError, ImportError, NotImplementedError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    return 0
