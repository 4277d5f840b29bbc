"""Errors of the data sources that callers tell apart.

>>> try:
...     validation = load(path, "validation")
... except SplitNotFoundError:                    # no validation split: hold out some of train
...     validation = load(path, "train[:5%]")
"""


class SplitNotFoundError(ValueError):
    """The source has no such split (its message names the split). Any other ValueError from
    ``load`` is a problem with the data itself, which holding out a slice would not fix."""
