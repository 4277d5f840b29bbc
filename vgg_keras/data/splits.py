"""Which examples a run trains on, chooses its schedule and kept weights with (selection), and
reports on: three disjoint sets, so that the reported error was never looked at while training.

- A source with validation and a labelled test split: select on validation, report on test.
- A source with a validation split only (ImageNet, ``train/`` and ``val/`` folders): select on
  a held-out ``val_fraction`` of train, report on validation.
- A source with one split (a plain class-folder tree): hold out ``val_fraction`` of train for
  selection and another ``val_fraction`` for the report.

Held-out slices are stable and class-mixed (TFDS slicing; directory sources slice by a hash of
each path). ``report=`` names the report split instead, and selection never reads it.

>>> from vgg_keras.data import run_splits
>>> splits = run_splits("vgg_shapes/small", val_fraction=0.05)    # doctest: +SKIP
>>> splits.names                                                    # doctest: +SKIP
{'train': 'train', 'selection': 'validation', 'report': 'test'}
>>> report = evaluation_examples("~/data/flowers", val_fraction=0.1)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from .errors import SplitNotFoundError
from .sources import EMBEDDED_NAME, info, load

if TYPE_CHECKING:
    import tensorflow as tf

log = logging.getLogger(__name__)


@dataclasses.dataclass
class RunSplits:
    """The three sets of a run (``tf.data.Dataset`` of examples, as :func:`load` returns
    them) and the split each was read as (``names``: role -> split string)."""

    train: Any
    selection: Any
    report: Any
    names: dict

    def describe(self) -> dict:
        """``{role: {"split": ..., "images": n}}``, as ``summary.json`` records it."""
        return {role: {"split": self.names[role],
                       "images": info(getattr(self, role)).num_examples}
                for role in ("train", "selection", "report")}


def _percent(val_fraction, slices):
    percent = max(1, int(round(100 * val_fraction)))
    if slices * percent >= 100:
        raise ValueError(
            f"--val-fraction {val_fraction:g} holds out {percent}% of the training data "
            f"{'twice (selection and report)' if slices == 2 else ''}, leaving none to train "
            f"on; use a smaller fraction.")
    return percent


def _split_base(split):
    return split.split("[", 1)[0]


def _labelled(name, split, data_dir):
    """Split ``split`` of ``name`` if the source has it with labels, else None."""
    try:
        dataset = load(name, split, data_dir=data_dir)
    except SplitNotFoundError:
        return None
    if info(dataset).num_examples == 0:
        return None
    first = next(iter(dataset.take(1)), None)
    if first is None or int(first["label"]) < 0:  # TFDS imagenet2012's test labels are -1
        log.info("%s: the %s split has no labels; not reported on", name, split)
        return None
    return dataset


def run_splits(data: str | None, *, val_fraction: float, data_dir: str | None = None,
               report: str | None = None) -> RunSplits:
    """The training, selection and report examples of a source (``None``: the embedded
    dataset); see the module's docstring for which is which."""
    name = data or EMBEDDED_NAME

    def get(split):
        return load(name, split, data_dir=data_dir)

    validation = _labelled(name, "validation", data_dir)
    if report is not None:
        report_examples = get(report)
        test = None
    else:
        test = _labelled(name, "test", data_dir) if validation is not None else None
        report_examples = None
    if validation is not None and (test is not None or (
            report is not None and _split_base(report) != "validation")):
        names = {"train": "train", "selection": "validation", "report": report or "test"}
        splits = RunSplits(get("train"), validation, report_examples or test, names)
    elif validation is not None or report is not None:
        percent = _percent(val_fraction, 1)
        names = {"train": f"train[{percent}%:]", "selection": f"train[:{percent}%]",
                 "report": report or "validation"}
        splits = RunSplits(get(names["train"]), get(names["selection"]),
                           report_examples or validation, names)
    else:
        test = _labelled(name, "test", data_dir)
        if test is not None:
            percent = _percent(val_fraction, 1)
            names = {"train": f"train[{percent}%:]", "selection": f"train[:{percent}%]",
                     "report": "test"}
            splits = RunSplits(get(names["train"]), get(names["selection"]), test, names)
        else:
            percent = _percent(val_fraction, 2)
            names = {"train": f"train[{2 * percent}%:]", "selection": f"train[:{percent}%]",
                     "report": f"train[{percent}%:{2 * percent}%]"}
            splits = RunSplits(get(names["train"]), get(names["selection"]),
                               get(names["report"]), names)
    sizes = splits.describe()
    log.info("%s: training on %s (%d images), choosing epochs and weights on %s (%d), "
             "reporting on %s (%d)", name, *(value for role in ("train", "selection", "report")
                                             for value in sizes[role].values()))
    return splits


def evaluation_examples(data: str | None, *, split: str | None = None, val_fraction: float = 0.05,
                        data_dir: str | None = None) -> tf.data.Dataset:
    """The examples an evaluation reads: ``split`` when given, else the report examples of
    :func:`run_splits`, without listing the training split unless the report is a slice of it
    (ImageNet's 1.28M files are not listed to evaluate on its validation split)."""
    name = data or EMBEDDED_NAME
    if split:
        return load(name, split, data_dir=data_dir)
    validation = _labelled(name, "validation", data_dir)
    test = _labelled(name, "test", data_dir)
    if test is not None:
        return test
    if validation is not None:
        return validation
    percent = _percent(val_fraction, 2)
    return load(name, f"train[{percent}%:{2 * percent}%]", data_dir=data_dir)
