"""Directory trees as lists of files: walking, split folders and slices, label maps, and where
the XML files are. Paths only: no file is opened here but a label map (no PIL, no TensorFlow).

:func:`split_files` walks one split of a tree once; the VOC source (does the split have XML
files?) and the class-folder source both start from it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, overload

from ..errors import SplitNotFoundError

if TYPE_CHECKING:
    from ..._typing import PathLike
    from .base import Request

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
"""File endings (any case) taken as images in directory sources."""

ANNOTATION_DIRS = ("Annotations", "Annotation")
"""Folder names searched for VOC XML files (VOC uses the first, ILSVRC's bbox archives the
second)."""

SPLIT_DIRS = {
    "train": ("train",),
    "validation": ("validation", "val", "valid"),
    "test": ("test",),
}


def is_image_file(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def is_xml_file(name: str) -> bool:
    return name.lower().endswith(".xml")


def stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def walk_files(root: str, keep: Callable[[str], bool],
               exclude: Iterable[str] = ()) -> list[str]:
    """Sorted paths under ``root`` whose base name passes ``keep``, skipping ``exclude`` dirs
    and hidden ones.

    Only regular files are listed (a FIFO, socket or device named like an image would block or
    fail the reader); a directory link is followed once, so a link back up the tree lists
    nothing twice; a name that is not valid UTF-8 (which TensorFlow cannot open) is skipped.
    Each kind of skip is logged once, with its count and the first few paths.
    """
    found, seen = [], set()
    skipped: dict[str, list[str]] = {kind: [] for kind in _SKIPS}
    exclude = {os.path.normpath(path) for path in exclude}
    stack = [root]
    while stack:
        directory = stack.pop()
        try:
            info = os.stat(directory)
            if (info.st_dev, info.st_ino) in seen:
                skipped["loop"].append(directory)
                continue
            seen.add((info.st_dev, info.st_ino))
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            if directory == root:
                raise
            skipped["unreadable"].append(f"{directory} ({error.strerror or error})")
            continue
        subdirs = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                path = os.path.normpath(entry.path)
                if not entry.name.startswith(".") and path not in exclude:
                    subdirs.append(entry.path)
            elif keep(entry.name):
                if not _is_utf8(entry.name):
                    skipped["name"].append(repr(os.fsencode(entry.path)))
                elif not _is_regular(entry):
                    skipped["special"].append(entry.path)
                else:
                    found.append(entry.path)
        stack.extend(reversed(subdirs))   # depth first, in name order, as os.walk goes
    for kind, paths in skipped.items():
        if paths:
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            log.warning("%s: skipped %d %s: %s", root, len(paths), _SKIPS[kind], shown)
    return found


_SKIPS = {
    "special": "file(s) that are not regular files (FIFO, socket, device or dangling link)",
    "name": "file(s) whose name is not valid UTF-8 (rename them to read them)",
    "loop": "directory link(s) back to a folder already listed (a loop)",
    "unreadable": "folder(s) that cannot be read",
}


def _is_utf8(name):
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:   # os.fsdecode turned undecodable bytes into surrogates
        return False
    return True


def _is_regular(entry):
    try:
        return entry.is_file()   # follows a link; False for FIFOs, sockets, devices
    except OSError:
        return False


def walk_images_and_xml(root: str,
                        exclude: Iterable[str] = ()) -> tuple[list[str], list[str]]:
    """``(images, xml files)`` under ``root``, from one walk of the (possibly huge) tree."""
    files = walk_files(root, lambda f: is_image_file(f) or is_xml_file(f), exclude)
    return ([p for p in files if is_image_file(os.path.basename(p))],
            [p for p in files if is_xml_file(os.path.basename(p))])


def relative(path: str, prefix: str) -> str:
    """``path`` relative to ``prefix`` (a folder ending with a separator)."""
    # Listed paths start with the folder that was walked: slicing costs far less than
    # os.path.relpath (about 15 us a path, 20 s for ImageNet's 1.28M).
    return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, prefix)


def top_folder(path: str, prefix: str) -> str | None:
    """The first folder of ``path`` below ``prefix`` (ending with a separator), or None."""
    parts = relative(path, prefix).split(os.sep, 1)
    return parts[0] if len(parts) == 2 else None


# ----------------------------------------------------------------------------------------------
# Splits: "train", "validation[:10%]", ... as folders and slices.


def split_name_and_slice(split: str) -> tuple[str, str | None, str | None]:
    match = re.fullmatch(r"\s*(\w+)\s*(?:\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?\s*", split)
    if not match:
        raise ValueError(f"Cannot read split {split!r}; use e.g. 'train' or 'train[:90%]'.")
    return match.group(1), match.group(2), match.group(3)


def find_split_root(root: str, name: str) -> str:
    aliases = SPLIT_DIRS.get(name, (name,))
    for alias in aliases:
        candidate = os.path.join(root, alias)
        if os.path.isdir(candidate):
            return candidate
    has_split_dirs = any(os.path.isdir(os.path.join(root, a))
                         for names in SPLIT_DIRS.values() for a in names)
    if name == "train" and not has_split_dirs:
        return root  # a plain tree is all "train"; hold out a slice for validation
    raise SplitNotFoundError(
        f"{root!r} has no {'/'.join(aliases)} sub-directory for split {name!r}. A directory "
        f"without split folders is all 'train': hold out a slice, e.g. split='train[90%:]'."
    )


def is_split_dir(base: str, root: str, name: str) -> bool:
    return os.path.normpath(base) == os.path.normpath(root) and any(
        name == alias for aliases in SPLIT_DIRS.values() for alias in aliases)


def _slice_bound(text, total):
    if text is None:
        return None
    if text.endswith("%"):
        return int(round(int(text[:-1]) * total / 100.0))
    return int(text)


def apply_slice(paths: list[str], start: str | None, stop: str | None,
                base: str | None = None) -> list[str]:
    """Slice ``paths`` in the order of a hash of each path relative to ``base``: a class-mixed
    order that stays the same when the dataset is moved or copied (a resumed run, or another
    machine, gets the same split)."""
    if start is None and stop is None:
        return paths

    def key(path):
        relative = os.path.relpath(path, base) if base else path
        return zlib.crc32(relative.replace(os.sep, "/").encode()), relative

    ordered = sorted(paths, key=key)
    chosen = set(ordered[_slice_bound(start, len(ordered)):_slice_bound(stop, len(ordered))])
    return [p for p in paths if p in chosen]


def require_images(listed: Sequence[str], split_folder: str) -> None:
    """An error naming the folder if the walk found no image file."""
    if not listed:
        raise ValueError(
            f"No image files ({', '.join(IMAGE_EXTENSIONS)}) under {split_folder!r}.")


def sliced(listed: list[str], split: str, split_folder: str, start: str | None,
           stop: str | None) -> list[str]:
    """The images of ``split``'s slice; an error naming the folder if there are none."""
    require_images(listed, split_folder)
    images = apply_slice(listed, start, stop, base=split_folder)
    if not images:
        raise ValueError(f"Split {split!r} of {split_folder!r} selects no images.")
    return images


# ----------------------------------------------------------------------------------------------
# Classes and annotation files.


@overload
def read_label_map(label_map: None) -> tuple[None, None, tuple[str, ...]]: ...
@overload
def read_label_map(
        label_map: Sequence[str] | dict[str, int] | PathLike,
) -> tuple[tuple[str, ...], dict[str, int], tuple[str, ...]]: ...
def read_label_map(
        label_map: Sequence[str] | dict[str, int] | PathLike | None,
) -> tuple[tuple[str, ...] | None, dict[str, int] | None, tuple[str, ...]]:
    """``(names, {name: label}, descriptions)`` from a list, dict or file (see ``load``);
    ``(None, None, ())`` for None (the classes are then the ones found)."""
    if label_map is None:
        return None, None, ()
    descriptions: tuple[str, ...] = ()
    if isinstance(label_map, (str, os.PathLike)):
        label_map, descriptions = _read_label_file(label_map)
    if isinstance(label_map, dict):
        mapping = {str(k): int(v) for k, v in label_map.items()}
        size = max(mapping.values()) + 1 if mapping else 0
        labelled: list[str | None] = [None] * size
        for name, label in mapping.items():
            labelled[label] = name
        names = [n if n is not None else f"class_{i}" for i, n in enumerate(labelled)]
    else:
        names = [str(n) for n in label_map]
        if len(set(names)) != len(names):
            raise ValueError("label_map has repeated class names.")
        mapping = {n: i for i, n in enumerate(names)}
    if not mapping:
        raise ValueError("label_map is empty.")
    return tuple(names), mapping, descriptions


def _read_label_file(path: PathLike) -> tuple[list[str], tuple[str, ...]]:
    """``(names, descriptions)`` of a file with lines ``"name[ description]"``."""
    names, descriptions = [], []
    with open(os.path.expanduser(path), encoding="utf-8") as handle:
        for line in handle:
            parts = line.strip().split(maxsplit=1)
            if parts:
                names.append(parts[0])
                descriptions.append(parts[1] if len(parts) > 1 else parts[0])
    return names, tuple(descriptions)


def check_two_classes(names: Sequence[str], where: str) -> None:
    if len(names) < 2:
        raise ValueError(
            f"{where!r} has {len(names)} class ({', '.join(map(repr, names)) or 'none'}): "
            "classification needs at least two classes, one sub-directory of images each.")


def find_annotation_dirs(root: str, split_folder: str,
                         annotations: PathLike | None) -> list[str]:
    """``[annotations]`` if given, else the ``Annotations/``-like folders of the split or root."""
    if annotations is not None:
        annotations = os.path.expanduser(os.fspath(annotations))
        if not os.path.isdir(annotations):
            raise FileNotFoundError(f"No such annotation directory: {annotations!r}.")
        return [annotations]
    dirs = []
    for base in dict.fromkeys((split_folder, root)):
        for name in ANNOTATION_DIRS:
            candidate = os.path.join(base, name)
            if os.path.isdir(candidate):
                dirs.append(candidate)
    return dirs


def index_xml(dirs: list[str], split_folder: str, beside: Iterable[str]) -> dict[str, str]:
    """{file stem: xml path} for the XML files in ``dirs`` (first) and ``beside`` the images
    (already listed by the walk that found the images)."""
    index: dict[str, str] = {}
    for directory in dirs:
        exclude = dirs if directory == split_folder else ()
        for path in walk_files(directory, is_xml_file, exclude):
            index.setdefault(stem(path), path)
    for path in beside:
        index.setdefault(stem(path), path)
    return index


# ----------------------------------------------------------------------------------------------
# One split of a tree, walked once.


@dataclasses.dataclass
class SplitFiles:
    """The files of one split of a directory tree (not yet probed)."""

    split_root: str  # the split's folder (the root itself for a plain tree's "train")
    listed: list     # every image under it, before slicing
    images: list     # the images of the slice asked for
    xml_index: dict  # {file stem: XML file}, from the annotation folders and beside the images


def list_split(root: str, split: str, annotations: PathLike | None = None) -> SplitFiles:
    """The :class:`SplitFiles` of ``split`` (``"train[:90%]"``) of the tree at ``root``."""
    name, start, stop = split_name_and_slice(split)
    folder = find_split_root(root, name)
    annotation_dirs = find_annotation_dirs(root, folder, annotations)
    listed, xml_files = walk_images_and_xml(folder, exclude=annotation_dirs)
    xml_index = index_xml(annotation_dirs, folder, xml_files)
    images = sliced(listed, split, folder, start, stop)
    return SplitFiles(folder, listed, images, xml_index)


def split_files(request: Request) -> SplitFiles:
    """:func:`list_split` of a :class:`~.base.Request` for a directory, once per request."""
    return request.memo("split files", lambda: list_split(
        request.root, request.split, request.options.get("annotations")))
