"""What every source shares: :class:`DatasetInfo`, the :class:`Source` interface and the
:class:`Request` it is handed, and how a dataset carries its info. No TensorFlow here.

A source kind is a :class:`Source`: ``matches(request)`` says whether it reads what
:func:`~.registry.load` was given, ``load(request, **options)`` returns ``(dataset, info)``.
:mod:`.registry` consults the registered sources in order.
"""

from __future__ import annotations

import abc
import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    import tensorflow as tf

    from ..._typing import PathLike

T = TypeVar("T")


@dataclasses.dataclass
class DatasetInfo:
    """What :func:`info` returns for a loaded dataset.

    ``skipped`` maps a reason ("corrupt image", "missing annotation", ...) to the files skipped
    for it; ``box_problems`` counts boxes that were clipped or dropped, by reason. ``listing``
    (directories) counts the files probed now and the probe results reused from the cache,
    ``{"probed": 12, "cached": 1281155}``; ``descriptions`` are the classes' human names where
    known (ImageNet, a label map file).
    """

    name: str
    split: str
    source: str  # "tfds", "embedded", "voc", "folder", "imagenet-loc" or "ilsvrc2012"
    class_names: tuple[str, ...]
    num_examples: int
    has_boxes: bool
    skipped: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    box_problems: dict[str, int] = dataclasses.field(default_factory=dict)
    descriptions: tuple[str, ...] = ()
    # Directory sources: files probed now and probe results reused from the listing cache.
    listing: dict[str, int] = dataclasses.field(default_factory=dict, compare=False)
    # (key, keep) -> the (position, example) pairs of one epoch in an order drawn from a tf.int64
    # key, only the positions keep accepts (None: all), for sources that read in order (TFDS);
    # see pipelines.train_pipeline.
    epoch_source: Callable[..., tf.data.Dataset] | None = dataclasses.field(
        default=None, repr=False, compare=False)
    # (key, position) -> the example at that position of the epoch keyed key, for sources that
    # can read any one example (directories): what the training pipeline and tf.data service
    # workers call.
    example_at: Callable[..., dict] | None = dataclasses.field(
        default=None, repr=False, compare=False)
    # key -> the file index of every position of the epoch keyed key (a tensor), which
    # example_at(key, position, order) reads from: one computation an epoch, not one a position.
    epoch_order: Callable[..., tf.Tensor] | None = dataclasses.field(
        default=None, repr=False, compare=False)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_skipped(self) -> int:
        return sum(len(files) for files in self.skipped.values())


def attach_info(dataset: tf.data.Dataset, meta: DatasetInfo) -> tf.data.Dataset:
    """Attach ``meta`` (a :class:`DatasetInfo`) to ``dataset`` for ``info()``; returns it."""
    dataset._vgg_info = meta  # tf.data.Dataset objects accept plain attributes
    return dataset


def attached_info(dataset: tf.data.Dataset) -> DatasetInfo | None:
    """The :class:`DatasetInfo` attached to ``dataset``, or None (it does not survive map...)."""
    return getattr(dataset, "_vgg_info", None)


class Request:
    """What ``load()`` was asked for, as the sources see it.

    ``text`` is ``name_or_path`` as given, ``path`` the same with ``~`` expanded, ``root`` its
    normalised form, ``is_dir`` whether it is a directory; ``split`` is the split as given
    (``"train[:90%]"``) and ``options`` the keyword options of ``load()``.
    """

    def __init__(self, name_or_path: PathLike, split: str, options: dict[str, Any]) -> None:
        self.text = os.fspath(name_or_path)
        self.path = os.path.expanduser(self.text)
        self.root = os.path.normpath(self.path)
        self.is_dir = os.path.isdir(self.path)
        self.split = split
        self.options = dict(options)
        self._memo: dict[str, Any] = {}

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()``, once per request: work a source's ``matches`` and ``load`` share (a
        directory walk, an ImageNet layout) is done once."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class Source(abc.ABC):
    """One kind of dataset that ``load()`` reads (class folders, VOC, ImageNet, TFDS, ...).

    Subclasses set :attr:`name` and implement :meth:`matches` and :meth:`load`; an instance is
    registered with :func:`~.registry.register_source`.
    """

    name: str = ""
    """The kind's name in the registry (``register_source(..., before=name)``)."""

    @abc.abstractmethod
    def matches(self, request: Request) -> bool:
        """Whether this source reads ``request`` (a :class:`Request`). The first registered
        source that matches loads it, so a fallback (any directory) is registered last."""

    @abc.abstractmethod
    def load(self, request: Request, **options: Any) -> tuple[tf.data.Dataset, DatasetInfo]:
        """``(tf.data.Dataset, DatasetInfo)`` of ``request.split``. ``options`` are every
        keyword option of ``load()``: declare those used, and take the rest as ``**_``."""
