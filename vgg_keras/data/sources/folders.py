"""Class folders: ``ROOT/<class>/*.jpg``, or ``ROOT/train/<class>``, ``ROOT/val/...``; any
directory no other source reads. Labels number the class folders of every split, sorted."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Source
from .examples import Record
from .files import (
    ANNOTATION_DIRS, SPLIT_DIRS, check_two_classes, is_split_dir, read_label_map, split_files,
    top_folder,
)
from .probe import Listing, Skips, finish

if TYPE_CHECKING:
    import tensorflow as tf

    from .base import DatasetInfo, Request


class FolderSource(Source):
    """A directory of class folders (registered last among directories: it matches any)."""

    name = "folder"

    def matches(self, request: Request) -> bool:
        return request.is_dir

    def load(self, request: Request, *, label_map: Any = None, validate: str = "decode",
             **_: Any) -> tuple[tf.data.Dataset, DatasetInfo]:
        split = split_files(request)
        names, mapping, descriptions = read_label_map(label_map)
        listing = Listing(request.root, request.split, split.split_root, validate, split.listed)
        records, class_names = folder_records(listing, split.images, names, mapping)
        return finish(listing, "folder", class_names, records, descriptions=descriptions,
                      has_boxes=False)


def folder_records(listing: Listing, images: Iterable[str], names: Sequence[str] | None,
                   mapping: Mapping[str, int] | None) -> tuple[list[Record], Sequence[str]]:
    """``(records, class names)`` of the usable ``images`` in a class folder."""
    if names is None:
        names = class_folders(listing.root, listing.split_root)
        mapping = {n: i for i, n in enumerate(names)}
    assert mapping is not None, "a label map's names come with their labels (read_label_map)"
    check_two_classes(names, listing.split_root)
    candidates = folder_candidates(listing.split_root, images, mapping, listing.skips)
    good = listing.probe([p for p, _ in candidates])
    empty = np.zeros((0, 4), np.float32)
    records = [Record(p, label, empty) for p, label in candidates if p in good]
    check_class_folders(listing, candidates, records, names)
    return records, names


def class_folders(root: str, split_root: str) -> list[str]:
    """The class folders of every split, sorted, so that train and validation labels agree."""
    found: set[str] = set()
    for base in {split_root, *[os.path.join(root, a) for v in SPLIT_DIRS.values() for a in v]}:
        if os.path.isdir(base):
            found.update(d for d in os.listdir(base)
                         if os.path.isdir(os.path.join(base, d)) and not d.startswith(".")
                         and d not in ANNOTATION_DIRS and not is_split_dir(base, root, d))
    if not found:
        raise ValueError(f"{split_root!r} has images but no class sub-directories.")
    return sorted(found)


def folder_candidates(split_root: str, images: Iterable[str], mapping: Mapping[str, int],
                      skips: Skips) -> list[tuple[str, int]]:
    """``[(path, label)]`` of the images in a known class folder; the others skipped."""
    prefix = os.path.join(split_root, "")
    candidates = []
    for image in images:
        folder = top_folder(image, prefix)
        if folder is None:
            skips.skip("not in a class folder", image)
        elif folder not in mapping:
            skips.skip("unknown class", image, repr(folder))
        else:
            candidates.append((image, mapping[folder]))
    return candidates


def check_class_folders(listing: Listing, candidates: Sequence[tuple[str, int]],
                        records: Sequence[Record], names: Sequence[str]) -> None:
    """A class folder of this split without a usable image is an error naming it: the model
    would get an output for a class it never sees. (A slice that happens to leave a class out
    is fine, and nothing usable at all is reported by :func:`~.probe.finish` with the skip
    counts.)"""
    if not records:
        return
    prefix = os.path.join(listing.split_root, "")
    listed = collections.Counter(top_folder(p, prefix) for p in listing.listed)
    tried = collections.Counter(names[label] for _, label in candidates)
    kept = collections.Counter(names[record.label] for record in records)
    problems = []
    for name in names:
        if not os.path.isdir(os.path.join(listing.split_root, name)):
            continue  # a class of another split, or of the label map
        if not listed[name]:
            problems.append(f"{name!r} (no image files)")
        elif tried[name] and not kept[name]:
            problems.append(f"{name!r} ({tried[name]} files, none decodable)")
    if problems:
        raise ValueError(
            f"Class folders under {listing.split_root!r} without a usable image: "
            f"{', '.join(problems)}. A class needs examples: add images, or remove the folder "
            "(the skipped files are named in the log).")
