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

import contextlib
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import Any

from .options import (
    ClassificationConfig, LocalizationConfig, build_parser, from_args, test_scale,
)
from .cluster import (
    JAX_ABORT, ClusterError, PeerLostError, leave_after_error, lost_peer_message, multi_process,
    place,
)
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


SUPERVISED_ENV = "VGG_KERAS_SUPERVISED_AS"
"""Set in the child of :func:`supervise`, to the command's name."""


def supervise(module: str, argv: Sequence[str] | None, prog: str,
              config: ClassificationConfig | LocalizationConfig) -> int | None:
    """Run a command of a process other than 0 of a multi-process job (on Linux) as a child,
    its stderr through this process: when process 0, which holds JAX's coordination service,
    dies, JAX ends every other process at once with its own abort and a C++ stack dump, which
    this replaces by the package's message and exit status 3. None where not needed."""
    try:
        processes = place(config.num_processes, config.process_id)
    except ClusterError:   # said when the job starts
        return None
    if processes.index == 0 or os.environ.get(SUPERVISED_ENV) or sys.platform != "linux":
        return None
    command = [sys.executable, "-m", module, *(sys.argv[1:] if argv is None else argv)]
    child = subprocess.Popen(command, env={**os.environ, SUPERVISED_ENV: prog},
                             stderr=subprocess.PIPE, preexec_fn=_end_with_parent)
    aborted = False
    assert child.stderr is not None
    with contextlib.suppress(KeyboardInterrupt):   # Ctrl-C reaches the child too; it decides
        for line in child.stderr:
            aborted = aborted or JAX_ABORT in line
            if not aborted:
                sys.stderr.buffer.write(line)
                sys.stderr.buffer.flush()
    code = child.wait()
    if aborted:
        print(f"{prog}: {lost_peer_message(processes, None, 'process 0 stopped answering')}",
              file=sys.stderr)
        return 3
    return code if code >= 0 else 128 - code


def _end_with_parent():
    """In the child: be killed with the supervising process (``kill -9`` of the command ends
    the training process, as without a supervisor)."""
    import ctypes
    import signal

    ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def train_cls(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """train_cls.py: train a classifier, or ``--evaluate`` saved ones (several: fusion)."""
    parser = build_parser(ClassificationConfig, CLS_DESCRIPTION)
    parser.prog = os.environ.get(SUPERVISED_ENV) or prog or parser.prog
    config = from_args(ClassificationConfig, parser.parse_args(argv))
    supervised = supervise("vgg_keras.train_cls", argv, parser.prog, config)
    if supervised is not None:
        return supervised
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
    parser.prog = os.environ.get(SUPERVISED_ENV) or prog or parser.prog
    config = from_args(LocalizationConfig, parser.parse_args(argv))
    supervised = supervise("vgg_keras.train_loc", argv, parser.prog, config)
    if supervised is not None:
        return supervised
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
