"""Probe results of listed image files, kept on disk, so that listing a large directory again
decodes only the files that are new or changed since the last run.

One JSON file per listed folder, named by a hash of (root, split folder, validate mode), in
``$VGG_KERAS_CACHE`` (default ``~/.cache/vgg_keras/listings``). An entry is reused while its
file keeps its size and modification time (ns); a failed probe is kept too (its reason), so a
later run still names and counts the file it skips. Files no longer listed are forgotten when
the cache is written (atomically: a temporary file, then ``os.replace``). A cache that cannot be
read is ignored, and one that cannot be written is not kept: both with a warning, never an error.

>>> import os, tempfile
>>> root = tempfile.mkdtemp()
>>> os.mkdir(os.path.join(root, "train"))
>>> paths = [os.path.join(root, "train", name) for name in ("a.jpg", "b.jpg")]
>>> for path in paths:
...     open(path, "wb").close()                # two image files (empty here)
>>> cache = ProbeCache.open(root, os.path.join(root, "train"), "decode")
>>> known, todo = cache.lookup(paths)       # {path: result}, [(path, stamp)] to probe
>>> len(known), len(todo)
(0, 2)
>>> for path, stamp in todo:                # what vgg_keras.data.sources.probe_image found
...     cache.store(path, stamp, (None, (375, 500, "JPEG")))
>>> cache.save(listed=paths)
>>> again = ProbeCache.open(root, os.path.join(root, "train"), "decode")   # the next listing
>>> known, todo = again.lookup(paths)
>>> known[paths[0]], todo, again.stats()
((None, (375, 500, 'JPEG')), [], {'probed': 0, 'cached': 2})
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._typing import PathLike

log = logging.getLogger("vgg_keras.data")

ENV_VAR = "VGG_KERAS_CACHE"
"""Environment variable naming the folder of the listing caches."""

FORMAT = 2
"""Bumped when what a probe accepts changes (2: the pixel limit), so older results are redone."""


def cache_dir() -> str:
    """``$VGG_KERAS_CACHE``, or ``~/.cache/vgg_keras/listings``.

    >>> os.environ["VGG_KERAS_CACHE"] = "~/scratch/listings"
    >>> cache_dir() == os.path.expanduser("~/scratch/listings")
    True
    """
    value = os.environ.get(ENV_VAR)
    if value:
        return os.path.expanduser(value)
    return os.path.join(os.path.expanduser("~"), ".cache", "vgg_keras", "listings")


class ProbeCache:
    """The cached probe results of the files under one split folder (see the module docstring).

    Entries are keyed by the path relative to the split folder, whose absolute path is part of
    the cache's key (and file name), with ``[size, mtime_ns, reason or None, detail]``.
    """

    def __init__(self, path: str, key: list[Any], split_root: str,
                 entries: dict[str, list[Any]]) -> None:
        self.path = path
        self.key = key
        # Listed paths start with the split folder as it was given: cutting the prefix is
        # much cheaper than os.path.relpath on a million files.
        self._prefix = os.path.join(split_root, "")
        self._entries = entries
        self._dirty = False
        self.probed = 0
        self.cached = 0

    @classmethod
    def open(cls, root: PathLike, split_root: str, validate: str) -> ProbeCache:
        """The cache of ``split_root`` under ``root`` probed with ``validate`` (read if any)."""
        key = [FORMAT, os.path.abspath(root), os.path.abspath(split_root), validate]
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:24]
        path = os.path.join(cache_dir(), f"{digest}.json")
        return cls(path, key, split_root, _read(path, key))

    def _relative(self, path: str) -> str:
        if path.startswith(self._prefix):
            return path[len(self._prefix):]
        return os.path.relpath(path, self._prefix)

    def lookup(self, paths: Iterable[str]) -> tuple[
            dict[str, tuple[str | None, Any]], list[tuple[str, list[int] | None]]]:
        """``({path: (reason, detail)}, [(path, stamp)])``: the results still valid, and the
        files to probe (new, changed, or unreadable by ``stat``: stamp None)."""
        known: dict[str, tuple[str | None, Any]] = {}
        todo: list[tuple[str, list[int] | None]] = []
        for path in paths:
            try:
                status = os.stat(path)
            except OSError:
                todo.append((path, None))  # the probe names the problem
                continue
            stamp = [status.st_size, status.st_mtime_ns]
            entry = self._entries.get(self._relative(path))
            if entry is not None and entry[:2] == stamp:
                reason, detail = entry[2], entry[3]
                known[path] = (reason, tuple(detail) if reason is None else detail)
            else:
                todo.append((path, stamp))
        self.cached += len(known)
        return known, todo

    def store(self, path: str, stamp: list[int] | None,
              result: tuple[str | None, Any]) -> None:
        """Keep the probe ``result`` of ``path`` as it was at ``stamp``."""
        self.probed += 1
        if stamp is not None:
            reason, detail = result
            self._entries[self._relative(path)] = [*stamp, reason, detail]
            self._dirty = True

    def save(self, listed: Iterable[str]) -> None:
        """Write the entries of the ``listed`` files (every file of the split folder, sliced
        or not), if anything changed; the others are forgotten."""
        keep = {self._relative(p) for p in listed}
        forgotten = [k for k in self._entries if k not in keep]
        for relative in forgotten:
            del self._entries[relative]
        if not (self._dirty or forgotten):
            return
        directory = os.path.dirname(self.path)
        try:
            os.makedirs(directory, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    json.dump({"key": self.key, "entries": self._entries}, out,
                              separators=(",", ":"))
                os.replace(temporary, self.path)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError as error:
            log.warning("cannot write the listing cache %s (%s); the next run probes the "
                        "files again (set %s to a writable folder)", self.path, error, ENV_VAR)
            return
        self._dirty = False

    def stats(self) -> dict[str, int]:
        """``{"probed": files probed now, "cached": results reused}``."""
        return {"probed": self.probed, "cached": self.cached}


def _read(path, key):
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        log.warning("ignoring the unreadable listing cache %s (%s)", path, error)
        return {}
    if not isinstance(content, dict) or content.get("key") != key:
        log.warning("ignoring the listing cache %s: it is not this folder's", path)
        return {}
    entries = content.get("entries")
    if not isinstance(entries, dict) or not all(_valid(v) for v in entries.values()):
        log.warning("ignoring the malformed listing cache %s", path)
        return {}
    return entries


def _valid(entry):
    # [size, mtime_ns, None, [height, width, format]] or [size, mtime_ns, reason, detail]
    return (isinstance(entry, list) and len(entry) == 4
            and (isinstance(entry[3], list) if entry[2] is None else isinstance(entry[2], str)))
