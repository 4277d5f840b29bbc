"""Errors of the data sources that callers tell apart.

>>> import os, tempfile
>>> from PIL import Image
>>> from vgg_keras.data import info, load
>>> path = tempfile.mkdtemp()                     # class folders, no train/ and val/ folders
>>> for name in ("cat", "dog"):
...     os.mkdir(os.path.join(path, name))
...     for i in range(10):
...         Image.new("RGB", (48, 32), (25 * i, 0, 0)).save(f"{path}/{name}/{i}.png")
>>> try:
...     validation = load(path, "validation")
... except SplitNotFoundError:                    # no validation split: hold out some of train
...     validation = load(path, "train[:10%]")
>>> info(validation).num_examples
2
"""


class SplitNotFoundError(ValueError):
    """The source has no such split (its message names the split). Any other ValueError from
    ``load`` is a problem with the data itself, which holding out a slice would not fix."""


class UnlabelledSplitError(SplitNotFoundError):
    """The source has the split but not its labels (ImageNet's test images): nothing to train
    or evaluate on, so a run's choice of splits passes over it."""
