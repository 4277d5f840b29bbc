"""Which examples a run trains on, picks its epochs with, and reports on.

A source with a validation split gives it; one without (a class-folder tree) holds out a stable,
class-mixed ``val_fraction`` of its training split.

>>> train, val = load_splits("~/data/flowers", val_fraction=0.1)
>>> val = evaluation_examples("~/data/flowers", val_fraction=0.1)   # without listing train
"""

import logging

from .errors import SplitNotFoundError
from .sources import EMBEDDED_NAME, load

log = logging.getLogger(__name__)


def load_splits(data, *, val_fraction, data_dir=None):
    """Training and validation examples of a source (``None``: the embedded dataset), holding
    out ``val_fraction`` of the training split when the source has no validation split."""
    name = data or EMBEDDED_NAME
    try:
        val = load(name, "validation", data_dir=data_dir)
    except SplitNotFoundError:
        percent = max(1, int(round(100 * val_fraction)))
        log.info("%s has no validation split; holding out %d%% of train", name, percent)
        return (load(name, f"train[{percent}%:]", data_dir=data_dir),
                load(name, f"train[:{percent}%]", data_dir=data_dir))
    return load(name, "train", data_dir=data_dir), val


def evaluation_examples(data, *, split=None, val_fraction=0.05, data_dir=None):
    """The examples an evaluation reads: ``split`` when given, else the validation examples of
    :func:`load_splits`, without listing the training split when the source has its own
    validation split (ImageNet's 1.28M files)."""
    name = data or EMBEDDED_NAME
    try:
        return load(name, split or "validation", data_dir=data_dir)
    except SplitNotFoundError:
        if split:
            raise
        return load_splits(data, val_fraction=val_fraction, data_dir=data_dir)[1]
