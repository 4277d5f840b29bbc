"""The sources :func:`load` consults, in order, and :func:`load` and :func:`info` themselves.

A new kind of dataset is a :class:`~.base.Source` in its own module, registered here (or by
its user) with :func:`register_source`; ``before=`` puts it ahead of a kind that would match
first (``"folder"`` matches any directory).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .base import Request, attach_info, attached_info
from .folders import FolderSource
from .imagenet import ImageNetSource
from .tfds import TfdsSource
from .vgg_shapes import EMBEDDED_NAME
from .voc import VocSource

if TYPE_CHECKING:
    import tensorflow as tf

    from ..._typing import PathLike
    from .base import DatasetInfo, Source

VALIDATE_MODES = ("decode", "header", "none")

SOURCES: list[Source] = []
"""The registered sources, in the order :func:`load` asks them."""


def register_source(source: Source, *, before: str | None = None) -> Source:
    """Add ``source`` (a :class:`~.base.Source`) to those :func:`load` consults: last, or just
    before the one named ``before``.

    >>> from vgg_keras.data.sources import Source, TfdsSource
    >>> class Alias(Source):                  # reads "shapes" as the embedded dataset
    ...     name = "alias"
    ...     def matches(self, request):
    ...         return request.text == "shapes"
    ...     def load(self, request, **options):
    ...         return TfdsSource().load(Request("vgg_shapes", request.split, options), **options)
    >>> alias = register_source(Alias(), before="tfds")   # TFDS would look for "shapes"
    >>> [source.name for source in SOURCES]
    ['imagenet', 'voc', 'folder', 'alias', 'tfds']
    >>> info(load("shapes", "validation")).num_examples
    500
    >>> SOURCES.remove(alias)
    """
    if not source.name or any(s.name == source.name for s in SOURCES):
        raise ValueError(f"A source needs a name not yet registered, got {source.name!r}.")
    names = [s.name for s in SOURCES]
    if before is not None and before not in names:
        raise ValueError(f"No registered source {before!r} (registered: {names}).")
    SOURCES.insert(names.index(before) if before is not None else len(SOURCES), source)
    return source


# The first that matches reads: an ImageNet tree is also a tree of class folders (and may hold
# XML files), and any directory is read as class folders; a TFDS name is no existing path.
register_source(ImageNetSource())
register_source(VocSource())
register_source(FolderSource())
register_source(TfdsSource())


def find_source(request: Request) -> Source:
    """The first registered source that matches ``request`` (a :class:`~.base.Request`)."""
    for source in SOURCES:
        if source.matches(request):
            return source
    text = request.text
    if request.is_dir:
        raise ValueError(f"No registered source reads the directory {text!r}.")
    if os.path.exists(request.path):
        raise ValueError(f"{text!r} is a file; load() takes a directory or a dataset name.")
    # Neither a directory nor a TFDS name ("/x", "./x", "~/x", "x\\y", ...): meant as a path.
    expanded = request.path
    shown = f" ({os.path.abspath(expanded)})" if expanded != os.path.abspath(text) else ""
    raise FileNotFoundError(f"No such directory: {text!r}{shown}.")


def load(name_or_path: PathLike = EMBEDDED_NAME, split: str = "train", *,
         data_dir: str | None = None, manual_dir: str | None = None,
         label_map: Any = None, annotations: str | None = None, validate: str = "decode",
         shuffle_buffer: int = 4096,
         with_info: bool = False) -> tf.data.Dataset | tuple[tf.data.Dataset, DatasetInfo]:
    """Load a split of a dataset as a ``tf.data.Dataset`` of examples (see
    :mod:`vgg_keras.data.sources`), read by the first registered source (:data:`SOURCES`)
    that matches ``name_or_path``.

    Args:
        name_or_path: the embedded dataset's name (``"vgg_shapes"``, or ``"vgg_shapes/small"``
            and other configs), any TFDS name (``"imagenet2012"`` with ``manual_dir``), or a
            directory: an image folder with one sub-directory per class, images with VOC
            XML files beside them or in an ``Annotations/`` (VOC) or ``Annotation/`` (ILSVRC)
            folder, or ImageNet as downloaded (the Kaggle localization challenge folder, or
            the ILSVRC2012 archives unpacked with the devkit; see :mod:`vgg_keras.data.imagenet`). A
            directory with ``train/`` and ``val/`` (or ``validation/``) sub-folders is split by
            them. A string starting with ``/``, ``.`` or ``~``, or a relative path whose first
            part is no TFDS name, is a path.
        split: ``"train"``, ``"validation"``, ``"test"``, with TFDS slicing such as
            ``"train[:90%]"`` (directories too: files are assigned by a hash of their path,
            so a slice mixes all classes and is the same on every run).
        data_dir: TFDS data directory (default: TFDS's, ``~/tensorflow_datasets`` or
            ``$TFDS_DATA_DIR``); the embedded dataset is built there on first use.
        manual_dir: where the manually downloaded archives are (``imagenet2012``).
        label_map: directory sources: the classes, as a list of names (label = index), a dict
            name -> label, or a file with one name per line (``"n01440764 tench, ..."``
            style lines keep the first word as the name and the rest as its description).
            Folders or objects of other classes are skipped and counted. Default: every
            class found under ``name_or_path``, sorted, so all splits agree.
        annotations: directory sources: the folder holding the XML files, if elsewhere
            (ImageNet: the box XMLs of the split loaded, e.g. ``bbox/val``).
        validate: directory sources: ``"decode"`` decodes every image once at 1/8 scale when
            listing (finds truncated and corrupt files), ``"header"`` only reads headers,
            ``"none"`` trusts the files. The results are cached on disk, per file (path, size,
            modification time) and mode, in ``$VGG_KERAS_CACHE`` (default
            ``~/.cache/vgg_keras/listings``).
        shuffle_buffer: examples held when a TFDS source is shuffled for training.
        with_info: also return the dataset's :class:`~.base.DatasetInfo`, as ``tfds.load``.

    Returns:
        A ``tf.data.Dataset``; :func:`info` on it gives the class names and counts. With
        ``with_info=True``, ``(dataset, info)``.

    Raises:
        FileNotFoundError: a path that does not exist; ImageNet validation images without
            their ground-truth file.
        ValueError: a source with no usable examples, or a split it does not have (only then
            does the message name a split); fewer than two classes, a class folder without a
            usable image, a ground-truth file that does not match the images.
    """
    if validate not in VALIDATE_MODES:
        raise ValueError(f"validate must be 'decode', 'header' or 'none', got {validate!r}.")
    options = dict(data_dir=data_dir, manual_dir=manual_dir, label_map=label_map,
                   annotations=annotations, validate=validate, shuffle_buffer=shuffle_buffer)
    request = Request(name_or_path, split, options)
    dataset, meta = find_source(request).load(request, **options)
    attach_info(dataset, meta)
    return (dataset, meta) if with_info else dataset


def info(dataset: tf.data.Dataset | PathLike) -> DatasetInfo:
    """The :class:`~.base.DatasetInfo` (class names, num_classes, sizes, skips) of a dataset.

    ``dataset`` is what :func:`load` returned (a ``tf.data.Dataset``), or a name or path, which
    is loaded first.

    >>> info(load("vgg_shapes", "train")).num_classes
    10
    """
    if isinstance(dataset, (str, os.PathLike)):
        dataset = load(dataset)
    meta = attached_info(dataset)
    if meta is None:
        raise ValueError(
            "info() needs the dataset returned by vgg_keras.data.load (its metadata does not "
            "survive dataset.map/take/...); call info() on that dataset, or pass the name."
        )
    return meta
