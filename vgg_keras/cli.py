"""The two commands, train_cls.py and train_loc.py: parse the flags that the task's typed
configuration declares (:mod:`vgg_keras.options`), then train or evaluate, with the package's log
messages on the terminal and a clear error, not a traceback, for what a user can fix.

>>> from vgg_keras.cli import train_cls
>>> train_cls(["--arch", "A", "--width", "0.25", "--crop", "64",
...            "--scale", "72:96"])                   # trains for minutes  # doctest: +SKIP
0
>>> train_cls(["--crop", "64", "--scale", "48"])     # S below the crop: a message on stderr
2
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .options import (
    ClassificationConfig, LocalizationConfig, build_parser, from_args, test_scale,
)
from .cluster import PeerLostError, leave_after_error, multi_process
from .progress import set_quiet
from .rundir import RunDirectoryError, TrainingDiverged, UnfinishedWrite, terminal_logging

CLS_DESCRIPTION = "Train a VGG classifier by the paper's recipe, or evaluate saved ones."
LOC_DESCRIPTION = ("Train a VGG localisation net (paper Appendix A), or evaluate saved ones by "
                   "both protocols.")


def run_command(prog: str, quiet: bool, work: Callable[[], Any]) -> int:
    """Run ``work()`` as a command does: the package's log messages on the terminal, progress
    as ``--quiet`` says, and an error message with a non-zero exit status (2 for bad input,
    1 for a diverged run, 3 for a multi-process job that lost a process) instead of a traceback
    for the errors a user can fix."""
    set_quiet(quiet)
    code, at_once = 0, False
    try:
        with terminal_logging():
            work()
    except TrainingDiverged as error:
        print(f"{prog}: {error}", file=sys.stderr)
        code = 1
    except PeerLostError as error:
        print(f"{prog}: {error}", file=sys.stderr)
        code = 3
    except (ValueError, OSError, RunDirectoryError, ImportError, NotImplementedError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        code = 2
        at_once = isinstance(error, UnfinishedWrite)
    except BaseException:
        if multi_process():
            traceback.print_exc()  # then end at once (see leave_after_error)
            leave_after_error(1)
        raise
    leave_after_error(code, at_once=at_once)
    return code


def train_cls(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """train_cls.py: train a classifier, or ``--evaluate`` saved ones (several: fusion)."""
    parser = build_parser(ClassificationConfig, CLS_DESCRIPTION)
    if prog:
        parser.prog = prog
    config = from_args(ClassificationConfig, parser.parse_args(argv))
    # The task module brings TensorFlow; imported after the flags, so --help answers at once.
    from . import classification

    def work():
        if not config.evaluate:
            return classification.train_classifier(**config.to_dict())
        return classification.evaluate_saved(
            config.evaluate, data=config.data, data_dir=config.data_dir,
            scales=config.eval_scales, scale=config.scale, methods=config.eval_methods,
            flip=not config.no_eval_flip,
            batch_size=config.eval_batch_size, split=config.eval_split,
            val_fraction=config.val_fraction, output=config.eval_output, arch=config.arch)

    return run_command(parser.prog, config.quiet, work)


def train_loc(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """train_loc.py: train a localizer, or ``--evaluate`` saved ones by both protocols."""
    parser = build_parser(LocalizationConfig, LOC_DESCRIPTION)
    if prog:
        parser.prog = prog
    config = from_args(LocalizationConfig, parser.parse_args(argv))
    from .localization import training as localization  # after the flags, as in train_cls

    def work():
        if not config.evaluate:
            return localization.train_localizer(**config.to_dict())
        return localization.evaluate_saved(
            config.evaluate, classifiers=config.classifier or (), data=config.data,
            data_dir=config.data_dir,
            scales=config.eval_scales or [test_scale(config.scale)],
            batch_size=config.eval_batch_size, val_fraction=config.val_fraction,
            split=config.eval_split, output=config.eval_output, merge=config.merge,
            merge_threshold=config.merge_threshold, arch=config.arch)

    return run_command(parser.prog, config.quiet, work)
