"""Checking listed image files before training: each is opened with PIL (by default decoded at
1/8 scale), the results cached on disk (:mod:`~vgg_keras.data.listing_cache`), every skipped
file counted by reason and named in the log; then :func:`finish` makes the dataset and its
:class:`~.base.DatasetInfo`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from PIL import Image

from ...configs import MAX_IMAGE_PIXELS
from ...progress import progress
from .. import listing_cache
from .base import DatasetInfo
from .examples import records_dataset

if TYPE_CHECKING:
    import tensorflow as tf

    from ..._typing import PathLike
    from .examples import Record

Probed = tuple[int, int, str]
"""What a usable file's probe found: ``(height, width, PIL format)``."""

log = logging.getLogger("vgg_keras.data")

TF_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "MPO")
"""PIL formats that ``tf.io`` decodes (MPO is a JPEG with extra frames, as cameras write)."""

MAX_NAMED = 20
"""Skipped files named at WARNING level per reason; the rest go to DEBUG (all are counted)."""


class Skips:
    """Counts skipped files by reason; names the first few at WARNING, all at DEBUG."""

    def __init__(self) -> None:
        self.files: dict[str, list[str]] = collections.defaultdict(list)
        self.boxes: collections.Counter[str] = collections.Counter()

    def skip(self, reason: str, path: str, detail: str = "") -> None:
        self.files[reason].append(path)
        level = logging.WARNING if len(self.files[reason]) <= MAX_NAMED else logging.DEBUG
        log.log(level, "skipping %s: %s%s", path, reason, f" ({detail})" if detail else "")

    def box(self, reason: str, path: PathLike, detail: str = "") -> None:
        self.boxes[reason] += 1
        level = logging.WARNING if self.boxes[reason] <= MAX_NAMED else logging.DEBUG
        log.log(level, "%s: %s%s", path, reason, f" ({detail})" if detail else "")

    def summary(self, where: str, kept: int) -> None:
        if self.files:
            counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(self.files.items()))
            log.warning("%s: kept %d images, skipped %d (%s)", where, kept,
                        sum(len(v) for v in self.files.values()), counts)
        if self.boxes:
            counts = ", ".join(f"{v} {k}" for k, v in sorted(self.boxes.items()))
            log.warning("%s: box problems: %s", where, counts)


def probe_image(path: PathLike, validate: str = "decode") -> tuple[str | None, Any]:
    """Check that an image file can be used: ``(None, (height, width, format))`` or
    ``(reason, detail)``.

    ``validate="decode"`` decodes the whole file (JPEGs at 1/8 scale, which still reads every
    byte, so a truncated or corrupt file fails here and not mid-epoch).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "photo.JPEG")
    >>> Image.new("RGB", (500, 375)).save(path, "PNG")
    >>> probe_image(path)           # a PNG named .JPEG is fine: the pipeline sniffs bytes
    (None, (375, 500, 'PNG'))
    >>> os.truncate(path, 100)                                   # cut short
    >>> probe_image(path)
    ('corrupt image', ...)
    """
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
            if fmt not in TF_FORMATS:
                return "unsupported format", f"{fmt}; convert it to JPEG or PNG"
            if width * height > MAX_IMAGE_PIXELS:
                return "image too large", (f"{width}x{height} is {width * height / 1e6:.0f} "
                                           f"megapixels, over the {MAX_IMAGE_PIXELS / 1e6:.0f} "
                                           "a run reads; shrink it")
            if validate == "decode":
                if fmt in ("JPEG", "MPO"):
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
    except Image.DecompressionBombError as error:
        return "image too large", str(error)
    except (OSError, ValueError, SyntaxError, Image.UnidentifiedImageError) as error:
        return "corrupt image", f"{type(error).__name__}: {error}"
    if width < 1 or height < 1:
        return "empty image", f"{width}x{height}"
    return None, (height, width, fmt)


def header_size(path: PathLike) -> tuple[int, int]:
    """``(height, width)`` from the file's header (for files not probed: ``validate="none"``)."""
    with Image.open(path) as image:
        return image.size[1], image.size[0]


def probe_all(paths: Sequence[str], validate: str, skips: Skips,
              cache: listing_cache.ProbeCache | None = None,
              where: str = "") -> dict[str, Probed | None]:
    """Probe ``paths`` in threads (PIL releases the GIL while decoding), reusing the results
    ``cache`` (a :class:`~.listing_cache.ProbeCache`) holds for unchanged files; keep the good
    ones, count and name the others."""
    if validate == "none":
        return {path: None for path in paths}
    known, todo = cache.lookup(paths) if cache is not None else ({}, [(p, None) for p in paths])
    if todo:
        workers = min(16, 2 * (os.cpu_count() or 1))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = pool.map(lambda item: probe_image(item[0], validate), todo)
            label = f"validating {len(todo)} files under {where}"
            # The bar first in zip: it must see the end of its iterator to finish and close.
            for result, (path, stamp) in zip(progress(results, label, len(todo), "file"), todo):
                known[path] = result
                if cache is not None:
                    cache.store(path, stamp, result)
    good: dict[str, Probed | None] = {}
    for path in paths:  # in listing order, cached or not, so every run logs the same
        reason, detail = known[path]
        if reason is None:
            good[path] = detail
        else:
            skips.skip(reason, path, detail)
    return good


@dataclasses.dataclass
class Listing:
    """One split of a directory being listed: where it is, how its files are validated (their
    probes cached on disk), and what was skipped."""

    root: str
    split: str
    split_root: str
    validate: str
    listed: list  # every image of the split folder, before slicing
    skips: Skips = dataclasses.field(default_factory=Skips)
    cache: listing_cache.ProbeCache | None = None

    def __post_init__(self) -> None:
        if self.validate != "none":
            self.cache = listing_cache.ProbeCache.open(self.root, self.split_root, self.validate)

    def probe(self, paths: Sequence[str]) -> dict[str, Probed | None]:
        """``{path: (height, width, format) or None}`` of the usable ``paths``
        (:func:`probe_all`); the cache is written at once (an error raised later about the
        data must not cost the next run its probes)."""
        good = probe_all(paths, self.validate, self.skips, self.cache, self.split_root)
        if self.cache is not None:
            self.cache.save(self.listed)
        return good

    def size(self, good: Mapping[str, Probed | None], path: str) -> tuple[int, int]:
        """``(height, width)`` of a file :meth:`probe` kept (its header if it was not probed)."""
        probed = good[path]
        return probed[:2] if probed else header_size(path)

    def stats(self) -> dict[str, int]:
        return self.cache.stats() if self.cache is not None else {"probed": 0, "cached": 0}


def finish(listing: Listing, source: str, names: Sequence[str], records: Sequence[Record], *,
           descriptions: tuple[str, ...], has_boxes: bool) -> tuple[tf.data.Dataset, DatasetInfo]:
    """Log what a directory split holds and what was skipped; ``(dataset, DatasetInfo)``."""
    skips, where = listing.skips, f"{listing.root} [{listing.split}]"
    skips.summary(where, len(records))
    if not records:
        raise ValueError(
            f"No usable images in {where}: skipped "
            + ", ".join(f"{len(v)} {k}" for k, v in skips.files.items())
            + ". See the log for the files."
        )
    stats = listing.stats()
    if stats["cached"] and listing.cache is not None:
        log.info("%s: reused %d cached probes, probed %d files (%s)", where, stats["cached"],
                 stats["probed"], listing.cache.path)
    log.info("%s: %d images, %d classes (%d skipped)", where, len(records), len(names),
             sum(len(v) for v in skips.files.values()))
    meta = DatasetInfo(
        name=listing.root, split=listing.split, source=source, class_names=tuple(names),
        num_examples=len(records), has_boxes=has_boxes,
        skipped={k: list(v) for k, v in skips.files.items()}, box_problems=dict(skips.boxes),
        descriptions=descriptions, listing=stats,
    )
    return records_dataset(records, listing.root, meta), meta
