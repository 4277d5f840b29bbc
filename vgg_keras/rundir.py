"""A run directory belongs to one run of one configuration.

:class:`RunDirectory` is what a training run holds while it works: the directory (created, or a
clear error when it cannot be written), an exclusive lock (a second command on the same
directory is refused and told who holds it; the lock dies with its process, ``kill -9``
included), the check that a resumed run has the configuration the directory was started with,
``config.json``, and ``train.log``, where the package's log messages go as well as to the
terminal.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "quick")
>>> with RunDirectory(path, {"arch": "A", "lr": 3e-4, "epochs": 20}) as run:
...     run.write_config({"classes": ["cat", "dog"]})
...     with RunDirectory(path, {"arch": "A", "lr": 3e-4, "epochs": 20}):   # a second command
...         pass
Traceback (most recent call last):
...
vgg_keras.rundir.RunDirectoryError: The run directory ... is in use by process ...
>>> sorted(os.listdir(path))
['config.json', 'run.lock', 'train.log']
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import logging
import os
import re
import socket
import sys
import time
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._typing import PathLike, Scale

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
HISTORY_FILE = "history.csv"
SUMMARY_FILE = "summary.json"
LOG_FILE = "train.log"
LOCK_FILE = "run.lock"
STATE_PATH = Path("checkpoints") / "state.json"

OWN_FILES = frozenset({LOCK_FILE, LOG_FILE})
"""What a run writes before ``config.json``: a folder holding only these is a run that stopped
early, and may be taken again."""

CHECKPOINT_WEIGHTS = re.compile(r"(last|best)-e\d{4,}(\.tmp)?\.weights\.h5")
"""The weight files the checkpoint writes, and the only ones it ever deletes."""


def checkpoint_files(run_dir: PathLike, which: str | None = None) -> list[Path]:
    """The checkpoint's weight files in ``run_dir/checkpoints`` (only ``"last"`` or ``"best"``
    ones when ``which`` says), by name: the newest epoch last."""
    folder = Path(run_dir) / STATE_PATH.parent
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if CHECKPOINT_WEIGHTS.fullmatch(p.name)
                  and (which is None or p.name.startswith(which + "-")))


class RunDirectoryError(RuntimeError):
    """The run directory cannot be used: not writable, in use, or another configuration's."""


def damaged_checkpoint(run_dir: PathLike, path: PathLike, reason: str) -> RunDirectoryError:
    """The error for a checkpoint file of ``run_dir`` that cannot be resumed from."""
    return RunDirectoryError(
        f"{path}: the checkpoint of {run_dir} is damaged ({reason}), so the run cannot "
        f"resume. Nothing was changed. Restore the file, or move {run_dir} away (its "
        "model.keras, if any, is the finished run's) and start afresh.")


def check_state_kept(run_dir: PathLike) -> None:
    """Refuse a run directory holding the weights of a whole checkpoint whose state file is
    lost: it is never trained over from scratch. (Weights of a first epoch that failed to save
    are no checkpoint; the cleanup replaces them.)"""
    orphans = checkpoint_files(run_dir, "last")
    if orphans and not (Path(run_dir) / STATE_PATH).exists():
        raise damaged_checkpoint(run_dir, Path(run_dir) / STATE_PATH,
                                 f"missing, but {orphans[-1].name} is there")


class UnfinishedWrite(OSError):
    """A checkpoint write failed inside HDF5 (the disk filled, a file-size limit), which keeps
    the half-written file open: the process must end at once, since the interpreter's normal
    exit would crash in HDF5's cleanup."""


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def flag(option: str) -> str:
    """The command-line spelling of an option: ``val_fraction`` -> ``--val-fraction``."""
    return "--" + option.replace("_", "-")


def as_json(value: Any) -> Any:
    """``value`` as it reads back from ``config.json`` (tuples become lists, paths strings)."""
    return json.loads(json.dumps(value, default=str))


def configuration_changes(recorded: Mapping[str, Any],
                          current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``[(option, recorded value, current value)]`` for every option whose value differs."""
    recorded, current = as_json(recorded), as_json(current)
    return [(key, recorded.get(key), current.get(key))
            for key in sorted(set(recorded) | set(current))
            if recorded.get(key) != current.get(key)]


class RunDirectory(contextlib.AbstractContextManager):
    """Create, lock and check ``path`` for a run with the options ``config``.

    Raises :class:`RunDirectoryError` when the directory cannot be created or written, when
    another process holds it, or when it holds a started run (a finished epoch) whose
    ``config.json`` differs from ``config`` in an option outside ``resumable``: the options
    that may change when a run resumes, which the run's configuration declares
    (:meth:`vgg_keras.options.RunConfig.resumable`); every other one shapes the weights.
    """

    def __init__(self, path: PathLike, config: Mapping[str, Any], *,
                 resumable: Collection[str] = frozenset()) -> None:
        self.path = Path(path)
        self.config = dict(config)
        self.resumable = resumable
        self._lock: IO[str] | None = None
        self._handler: logging.Handler | None = None

    def __enter__(self) -> RunDirectory:
        self._check_ownership()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.path / LOCK_FILE, "a+")
        except OSError as error:
            raise RunDirectoryError(
                f"Cannot write to the run directory {self.path}: {error.strerror or error}. "
                "Choose a writable location with --run-dir.") from error
        self._acquire()
        try:
            self._check_config()
            check_state_kept(self.path)
            self._handler = _attach_log_file(self.path / LOG_FILE)
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        if self._handler is not None:
            logging.getLogger("vgg_keras").removeHandler(self._handler)
            self._handler.close()
        self._release()
        return False

    @property
    def started(self) -> bool:
        """Whether an epoch of this directory's run has finished: there is a checkpoint, or
        weights of one whose state file is lost."""
        return (self.path / STATE_PATH).exists() or bool(checkpoint_files(self.path, "last"))

    def write_config(self, extra: Mapping[str, Any] | None = None) -> None:
        """Write ``config.json``: the options, plus ``extra`` (e.g. the class names)."""
        record = as_json({**self.config, **(extra or {})})
        old = self._recorded()
        if self.started and old is not None and extra:
            # The data must be the data the run started with (same classes, same order).
            changed = [c for c in configuration_changes(
                {k: old.get(k) for k in extra}, extra)]
            if changed:
                raise RunDirectoryError(self._refusal(changed))
        tmp = self.path / (CONFIG_FILE + ".tmp")
        tmp.write_text(json.dumps(record, indent=1))
        os.replace(tmp, self.path / CONFIG_FILE)

    # -- internals ----------------------------------------------------------------------------
    def _check_ownership(self):
        """A folder with content but no ``config.json`` is not a run of ours: refused, so that
        nothing in it is overwritten or deleted."""
        if not self.path.is_dir() or (self.path / CONFIG_FILE).exists():
            return
        try:
            foreign = sorted(p.name for p in self.path.iterdir() if p.name not in OWN_FILES)
        except OSError:
            return   # unreadable: the lock below reports it
        if foreign:
            shown = ", ".join(foreign[:5]) + (" ..." if len(foreign) > 5 else "")
            raise RunDirectoryError(
                f"{self.path} holds files no run wrote ({shown}) and no {CONFIG_FILE}: it is "
                "not a run directory, and a run there could overwrite or delete them. Give "
                "--run-dir a new or empty folder, or the directory of a run to resume.")

    def _acquire(self):
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.seek(0)
            holder = self._lock.read().strip() or "another process"
            self._lock.close()
            self._lock = None
            raise RunDirectoryError(
                f"The run directory {self.path} is in use by {holder}. Wait for that run to "
                "finish (or stop it), or use another --run-dir.") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"process {os.getpid()} on {socket.gethostname()}, started "
                         f"{time.strftime('%Y-%m-%d %H:%M:%S')} ({' '.join(sys.argv)})\n")
        self._lock.flush()

    def _release(self):
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def _recorded(self):
        path = self.path / CONFIG_FILE
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise RunDirectoryError(f"{path} cannot be read ({error}); it belongs to the run "
                                    "in that directory. Use another --run-dir.") from error

    def _check_config(self):
        recorded = self._recorded()
        if recorded is None or not self.started:
            return
        keys = set(self.config)
        changes = configuration_changes({k: v for k, v in recorded.items() if k in keys},
                                        self.config)
        fixed = [c for c in changes if c[0] not in self.resumable]
        if fixed:
            raise RunDirectoryError(self._refusal(fixed))
        for option, before, now in changes:
            log.info("Resuming with %s %s (was %s)", flag(option), now, before)

    def _refusal(self, changes):
        lines = "; ".join(f"{flag(option)} {now} (the run has {before})"
                          for option, before, now in changes)
        return (f"The run directory {self.path} holds a run of another configuration: {lines}. "
                f"Run with the same flags to resume it, use another --run-dir for the new "
                f"configuration, or delete {self.path} to start afresh.")


def _attach_log_file(path):
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("vgg_keras")
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > logging.INFO:
        logger.setLevel(logging.INFO)
    return handler


class _TerminalHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is when a message comes (notebooks and test captures
    replace it)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


@contextlib.contextmanager
def terminal_logging() -> Iterator[logging.Handler]:
    """Within it, the package's INFO messages (splits, skipped files, resuming, learning-rate
    drops) go to standard output, as the scripts run; a root handler that TensorFlow's
    libraries install does not print them a second time.

    >>> with terminal_logging():
    ...     logging.getLogger("vgg_keras.run").info("3000 training images, 10 classes")
    3000 training images, 10 classes
    """
    logger = logging.getLogger("vgg_keras")
    handler = _TerminalHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


# -- reading a run directory, as a view of it does --------------------------------------------

def read_json(path: PathLike) -> Any:
    """A JSON file's content, or None when it is missing."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it is not a file the run "
                         "wrote whole.") from error


def read_history(path: PathLike) -> list[dict[str, float]]:
    """``history.csv`` as a list of dicts of floats (empty cells dropped); [] when missing."""
    if not Path(path).exists():
        return []
    with open(path, newline="") as handle:
        return [{key: float(text) for key, text in row.items() if _is_number(text)}
                for row in csv.DictReader(handle)]


def _is_number(text):
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def run_scale(config: Mapping[str, Any]) -> Scale:
    """The training scale S of a ``config.json``: an int, or a (Smin, Smax) tuple."""
    scale = config.get("scale", 256)
    return (int(scale[0]), int(scale[1])) if isinstance(scale, (list, tuple)) else int(scale)


def is_localizer_run(config: Mapping[str, Any]) -> bool:
    """Whether ``config.json`` is train_loc.py's (it has the regression option)."""
    return "regression" in config


def rating_classifier_path(config: Mapping[str, Any],
                           run_dir: PathLike | None = None) -> str | None:
    """The classifier a localizer run names (``--classifier``, else ``--init-from``), or None.

    A relative path is relative to where the run was started; when it is not found from here,
    that directory is worked out from ``run_dir`` and the ``run_dir`` config.json recorded
    (``/work/runs/loc`` recorded as ``runs/loc`` was started in ``/work``)."""
    paths = config.get("classifier")
    if isinstance(paths, str):
        paths = [paths]
    path = (paths or [None])[0] or config.get("init_from")
    if not path or Path(path).is_absolute() or Path(path).exists() or run_dir is None:
        return path
    recorded = Path(config.get("run_dir") or "")
    actual = Path(run_dir).resolve()
    if recorded.parts and not recorded.is_absolute() and \
            actual.parts[-len(recorded.parts):] == recorded.parts:
        started_in = Path(*actual.parts[:-len(recorded.parts)])
        if (started_in / path).exists():
            return str(started_in / path)
    return path
