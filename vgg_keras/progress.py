"""Progress of long loops (file validation, statistics, evaluation protocols, features).

One switch for the whole package: the scripts' ``--quiet`` calls :func:`set_quiet`. On a
terminal the bar redraws in place; in a log file (stderr redirected) it writes a line at most
every 30 seconds, so a night's log stays readable.

>>> from vgg_keras.progress import progress, set_quiet
>>> sum(x for x in progress(range(1000), "summing"))      # a bar on stderr while it sums
499500
>>> set_quiet()                                            # what --quiet does: no bars
>>> sum(progress(range(4), "silent"))
6
>>> set_quiet(False)
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sized

from tqdm import tqdm

_quiet = False

REDIRECTED_INTERVAL = 30.0
"""Seconds between progress lines when stderr is not a terminal."""


def set_quiet(quiet: bool = True) -> None:
    """Silence (or restore) every progress bar of the package."""
    global _quiet
    _quiet = bool(quiet)


def progress(iterable: Iterable | None, label: str, total: int | None = None,
             unit: str = "it") -> tqdm:
    """``iterable``, showing ``label``, a count (out of ``total`` or ``len(iterable)``) and a
    rate on stderr as it is consumed; silent after ``set_quiet()``."""
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    on_terminal = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    return tqdm(iterable, desc=label, total=total, unit=unit, disable=_quiet, leave=True,
                mininterval=0.5 if on_terminal else REDIRECTED_INTERVAL, dynamic_ncols=True)
