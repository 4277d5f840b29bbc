"""ImageNet on disk without TFDS: which of the two common layouts a directory holds, its classes,
and the labels and boxes of its validation images.

Pure listing: the standard library, and scipy to read the devkit's ``meta.mat`` as torchvision
does. It returns paths, wnids and pixel boxes; :mod:`vgg_keras.data.sources.imagenet` turns
them into examples (probing the files, parsing the box XMLs, counting what it skips).

``imagenet-loc``, the ImageNet Object Localization Challenge download (Kaggle); ``ROOT`` may
also be given as ``ROOT/ILSVRC`` or ``ROOT/ILSVRC/Data/CLS-LOC``::

    ROOT/LOC_synset_mapping.txt                      n01440764 tench, Tinca tinca
    ROOT/LOC_val_solution.csv                        ImageId,PredictionString
    ROOT/ILSVRC/Data/CLS-LOC/train/<wnid>/<wnid>_N.JPEG
    ROOT/ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG
    ROOT/ILSVRC/Data/CLS-LOC/test/...                unlabelled: refused
    ROOT/ILSVRC/Annotations/CLS-LOC/train/<wnid>/<wnid>_N.xml    (about 40% of train images)

``ilsvrc2012``, the ILSVRC2012 archives unpacked under ``ROOT``::

    ROOT/train/<wnid>/<wnid>_N.JPEG                  ILSVRC2012_img_train.tar (and its tars)
    ROOT/val/ILSVRC2012_val_00000001.JPEG            ILSVRC2012_img_val.tar; flat, or sorted
                                                     into <wnid>/ folders (then no devkit needed)
    ROOT/ILSVRC2012_devkit_t12/data/meta.mat         ILSVRC2012_devkit_t12.tar.gz: the folder it
    ROOT/ILSVRC2012_devkit_t12/data/ILSVRC2012_validation_ground_truth.txt
                                                     unpacks to, or the archive itself, in ROOT
                                                     or in any folder directly under ROOT
    ROOT/bbox/train/<wnid>/<wnid>_N.xml              ILSVRC2012_bbox_train_v2.tar.gz
    ROOT/bbox/val/ILSVRC2012_val_00000001.xml        ILSVRC2012_bbox_val_v3.tgz
                                                     (XML files beside the images count too)

In both, labels number the wnids in sorted order (as Keras, TFDS and torchvision do), not in
the devkit's ILSVRC2012_ID order; box coordinates are pixels, ``v / size`` once normalised.

>>> import os
>>> layout = detect("/data/imagenet")                                # doctest: +SKIP
>>> layout.kind, len(layout.synsets)                                 # doctest: +SKIP
('ilsvrc2012', 1000)
>>> val = layout.split_dir("validation")                             # doctest: +SKIP
>>> images = [os.path.join(val, n) for n in sorted(os.listdir(val))]  # doctest: +SKIP
>>> labels = split_labels(layout, "validation", images)              # doctest: +SKIP
>>> labels[images[0]]                     # (wnid, pixel boxes or None)  # doctest: +SKIP
('n01751748', None)
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import re
import tarfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .._typing import PathLike

import numpy as np
import scipy.io

from .errors import SplitNotFoundError, UnlabelledSplitError

LOC = "imagenet-loc"
ILSVRC2012 = "ilsvrc2012"
DEVKIT = "ILSVRC2012_devkit_t12"
META = "data/meta.mat"
GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
LOC_SYNSETS = "LOC_synset_mapping.txt"
LOC_SOLUTION = "LOC_val_solution.csv"
SPLITS = {"train": "train", "validation": "val", "val": "val", "valid": "val", "test": "test"}
"""Split names :func:`vgg_keras.data.load` accepts -> the layouts' folder names."""

WNID = re.compile(r"n\d{8}")
_VAL_NAME = re.compile(r"ILSVRC2012_val_(\d+)")


@dataclasses.dataclass
class Layout:
    """An ImageNet directory: what :func:`detect` found."""

    kind: str  # LOC or ILSVRC2012
    root: str  # the folder holding the layout
    synsets: dict[str, str]  # wnid -> description ("" unknown), sorted by wnid
    split_dirs: dict[str, str]  # "train" / "val" / "test" -> image folder, those present
    box_dirs: dict[str, str]  # "train" / "val" -> folder of box XML files, those present
    solution: str | None = None  # imagenet-loc: LOC_val_solution.csv, if present
    devkit: str | None = None  # ilsvrc2012: the devkit folder or archive, if found
    ids: dict[int, str] = dataclasses.field(default_factory=dict)  # ILSVRC2012_ID -> wnid

    def split_dir(self, split: str) -> str:
        """The image folder of ``split``: a :class:`SplitNotFoundError` when there is none, a
        ValueError for the unlabelled test images.

        >>> import os, tempfile
        >>> root = tempfile.mkdtemp()             # ILSVRC2012_img_*.tar unpacked, in small
        >>> os.makedirs(os.path.join(root, "train", "n01440764"))
        >>> os.makedirs(os.path.join(root, "val"))
        >>> open(os.path.join(root, "val", "ILSVRC2012_val_00000001.JPEG"), "wb").close()
        >>> layout = detect(root)
        >>> layout.kind, layout.synsets
        ('ilsvrc2012', {'n01440764': ''})
        >>> layout.split_dir("validation") == os.path.join(root, "val")
        True
        >>> layout.split_dir("test")
        Traceback (most recent call last):
        ...
        vgg_keras.data.errors.SplitNotFoundError: ... has no folder for split 'test'; it has
        train, val.
        """
        folder = self.split_dirs.get(SPLITS.get(split, split))
        if folder is None:
            raise SplitNotFoundError(
                f"{self.root!r} ({self.kind}) has no folder for split {split!r}; it has "
                f"{', '.join(sorted(self.split_dirs)) or 'none'}.")
        if SPLITS.get(split) == "test":
            raise UnlabelledSplitError(
                f"{folder!r} holds ImageNet's test images, whose labels are not public; "
                "vgg_keras trains and evaluates on labelled images: use 'validation'.")
        return folder


def detect(root: str) -> Layout | None:
    """The :class:`Layout` of ImageNet under ``root``, or None for any other directory (a few
    stats; a class-folder tree whose classes are wnids stays a plain class-folder tree unless
    it has a devkit, a flat ``val/`` of ILSVRC2012 files or a ``bbox/`` folder).

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()                     # the Kaggle download, in small
    >>> os.makedirs(os.path.join(root, "ILSVRC", "Data", "CLS-LOC", "val"))
    >>> with open(os.path.join(root, "LOC_synset_mapping.txt"), "w") as file:
    ...     print("n01440764 tench, Tinca tinca", file=file)
    >>> detect(root).kind, detect(os.path.join(root, "ILSVRC")).kind
    ('imagenet-loc', 'imagenet-loc')
    >>> detect(tempfile.mkdtemp()) is None            # any other directory
    True
    """
    top = _loc_top(root)
    if top is not None:
        return _loc_layout(top)
    train = os.path.join(root, "train")
    if not (os.path.isdir(train) and _wnid_folders(train, first=True)):
        return None
    devkit = _find_devkit(root)
    if devkit or _has_flat_val(os.path.join(root, "val")) or os.path.isdir(
            os.path.join(root, "bbox")):
        return _ilsvrc2012_layout(root, devkit)
    return None


def _loc_top(root):
    candidates = [root]
    parts = os.path.normpath(root).split(os.sep)
    if parts[-1:] == ["ILSVRC"]:
        candidates.append(os.path.normpath(os.path.join(root, os.pardir)))
    if parts[-3:] == ["ILSVRC", "Data", "CLS-LOC"]:
        candidates.append(os.path.normpath(os.path.join(root, *[os.pardir] * 3)))
    for top in candidates:
        if os.path.isfile(os.path.join(top, LOC_SYNSETS)) and os.path.isdir(
                os.path.join(top, "ILSVRC", "Data", "CLS-LOC")):
            return top
    return None


def _present(folders):
    return {name: path for name, path in folders.items() if os.path.isdir(path)}


def _loc_layout(top):
    data = os.path.join(top, "ILSVRC", "Data", "CLS-LOC")
    solution = os.path.join(top, LOC_SOLUTION)
    return Layout(
        kind=LOC, root=top, synsets=read_synset_list(os.path.join(top, LOC_SYNSETS)),
        split_dirs=_present({s: os.path.join(data, s) for s in ("train", "val", "test")}),
        # Validation boxes come from LOC_val_solution.csv, which also holds the labels.
        box_dirs=_present({"train": os.path.join(top, "ILSVRC", "Annotations", "CLS-LOC",
                                                 "train")}),
        solution=solution if os.path.isfile(solution) else None,
    )


def _ilsvrc2012_layout(root, devkit):
    split_dirs = _present({s: os.path.join(root, s) for s in ("train", "val", "test")})
    if devkit is not None:
        ids, synsets = read_meta(devkit)
    else:  # the classes are the wnid folders (train, and val when sorted into folders)
        ids = {}
        synsets = {w: "" for s in ("train", "val") if s in split_dirs
                   for w in _wnid_folders(split_dirs[s])}
    return Layout(
        kind=ILSVRC2012, root=root, synsets=dict(sorted(synsets.items())),
        split_dirs=split_dirs,
        box_dirs=_present({s: os.path.join(root, "bbox", s) for s in ("train", "val")}),
        devkit=devkit, ids=ids,
    )


def _wnid_folders(folder, first=False):
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if WNID.fullmatch(entry.name) and entry.is_dir():
                found.append(entry.name)
                if first:
                    break
    return found


def _has_flat_val(folder):
    if not os.path.isdir(folder):
        return False
    with os.scandir(folder) as entries:
        return any(_VAL_NAME.match(entry.name) for entry in entries)


def _find_devkit(root):
    """The devkit folder (holding data/meta.mat) or archive in ``root`` or a folder directly
    under it; the image folders are not searched (one listdir of ``root``, a few stats)."""
    bases = [root] + sorted(
        os.path.join(root, d) for d in os.listdir(root)
        if d not in SPLITS.values() and os.path.isdir(os.path.join(root, d)))
    for base in bases:
        folder = os.path.join(base, DEVKIT)
        if os.path.isfile(os.path.join(folder, *META.split("/"))):
            return folder
        if os.path.isfile(folder + ".tar.gz"):
            return folder + ".tar.gz"
    return None


def _devkit_read(devkit, member):
    """The bytes of ``member`` ("data/meta.mat") of a devkit folder or .tar.gz archive."""
    if os.path.isdir(devkit):
        with open(os.path.join(devkit, *member.split("/")), "rb") as handle:
            return handle.read()
    try:
        with tarfile.open(devkit) as archive:
            return archive.extractfile(f"{DEVKIT}/{member}").read()
    except KeyError:
        raise FileNotFoundError(f"{devkit!r} has no {DEVKIT}/{member}.") from None
    except tarfile.TarError as error:
        raise ValueError(f"Cannot read the archive {devkit!r}: {error}") from error


def read_meta(devkit: str) -> tuple[dict[int, str], dict[str, str]]:
    """``({ILSVRC2012_ID: wnid}, {wnid: words})`` of the 1000 leaf synsets in the devkit's
    ``meta.mat`` (``num_children == 0``; the others are WordNet ancestors).

    >>> ids, synsets = read_meta("ILSVRC2012_devkit_t12.tar.gz")     # doctest: +SKIP
    >>> ids[1], synsets["n01440764"]                                  # doctest: +SKIP
    ('n02119789', 'tench, Tinca tinca')
    """
    where = f"{devkit}/{META}" if os.path.isdir(devkit) else f"{devkit} ({DEVKIT}/{META})"
    try:
        table = scipy.io.loadmat(io.BytesIO(_devkit_read(devkit, META)), squeeze_me=True)
        rows = np.atleast_1d(table["synsets"])
        leaves = [(int(i), str(w), str(words)) for i, w, words, n in zip(
            rows["ILSVRC2012_ID"], rows["WNID"], rows["words"], rows["num_children"])
            if int(n) == 0]
    except (KeyError, IndexError, ValueError, TypeError, NotImplementedError) as error:
        raise ValueError(f"Cannot read the synsets of {where}: {type(error).__name__}: "
                         f"{error}") from error
    return {i: w for i, w, _ in leaves}, {w: words for _, w, words in leaves}


def read_synset_list(path: PathLike) -> dict[str, str]:
    """``{wnid: description}`` from lines such as ``n01440764 tench, Tinca tinca``, sorted.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "LOC_synset_mapping.txt")
    >>> with open(path, "w") as file:
    ...     print("n01443537 goldfish, Carassius auratus", file=file)
    ...     print("n01440764 tench, Tinca tinca", file=file)
    >>> read_synset_list(path)
    {'n01440764': 'tench, Tinca tinca', 'n01443537': 'goldfish, Carassius auratus'}
    """
    synsets = {}
    with open(path, encoding="utf-8") as handle:
        for line, text in enumerate(handle, start=1):
            parts = text.strip().split(maxsplit=1)
            if not parts:
                continue
            if not WNID.fullmatch(parts[0]):
                raise ValueError(f"{path}, line {line}: expected 'wnid description', got "
                                 f"{text.strip()!r}.")
            synsets[parts[0]] = parts[1] if len(parts) > 1 else ""
    return dict(sorted(synsets.items()))


def split_labels(layout: Layout, split: str, images: Sequence[str],
                 ) -> dict[str, tuple[str, list[tuple[float, ...]] | None]] | None:
    """How the ``images`` of ``split`` are labelled: None when by their wnid folder (train; a
    validation folder sorted into wnid folders when there is no ground truth), else
    ``{path: (wnid, pixel boxes [(xmin, ymin, xmax, ymax)] of that wnid, or None)}`` from the
    ground truth, checked against the images (a mismatch is a ValueError naming both).

    >>> import os, tempfile
    >>> root = tempfile.mkdtemp()                     # the Kaggle download, in small
    >>> val = os.path.join(root, "ILSVRC", "Data", "CLS-LOC", "val")
    >>> os.makedirs(val)
    >>> images = [os.path.join(val, "ILSVRC2012_val_00000001.JPEG")]
    >>> open(images[0], "wb").close()
    >>> with open(os.path.join(root, "LOC_synset_mapping.txt"), "w") as file:
    ...     print("n01440764 tench, Tinca tinca", file=file)
    >>> with open(os.path.join(root, "LOC_val_solution.csv"), "w") as file:
    ...     print("ImageId,PredictionString", file=file)
    ...     print("ILSVRC2012_val_00000001,n01440764 10 20 110 220", file=file)
    >>> split_labels(detect(root), "validation", images)
    {'...ILSVRC2012_val_00000001.JPEG': ('n01440764', [(10.0, 20.0, 110.0, 220.0)])}
    >>> split_labels(detect(root), "train", images) is None      # labelled by their folders
    True
    """
    if SPLITS.get(split, split) == "train":
        return None
    if layout.kind == LOC:
        return _loc_labels(layout, images)
    if layout.devkit is None:
        if all(WNID.fullmatch(os.path.basename(os.path.dirname(p))) for p in images):
            return None
        raise FileNotFoundError(
            f"No {DEVKIT} folder or {DEVKIT}.tar.gz in {layout.root!r} or a folder directly "
            f"under it: its {GROUND_TRUTH} holds the labels of the validation images.")
    return _devkit_labels(layout, images)


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _loc_labels(layout, images):
    if layout.solution is None:
        raise FileNotFoundError(
            f"{os.path.join(layout.root, LOC_SOLUTION)!r} is missing: it holds the labels of "
            "the validation images (download it with the rest of the challenge's files).")
    rows = read_loc_solution(layout.solution, layout.synsets)
    by_stem = {_stem(p): p for p in images}
    _check_same_images(layout.solution, set(rows), by_stem, layout.split_dirs["val"])
    labels = {}
    for image_id, groups in rows.items():
        wnid = groups[0][0]  # the first object names the image's class
        labels[by_stem[image_id]] = (wnid, [g[1:] for g in groups if g[0] == wnid])
    return labels


def read_loc_solution(path: PathLike, synsets: Mapping[str, str],
                      ) -> dict[str, list[tuple[str, float, float, float, float]]]:
    """``{ImageId: [(wnid, xmin, ymin, xmax, ymax)]}`` of ``LOC_val_solution.csv``; a row that
    cannot be read or names a wnid outside ``synsets`` is a ValueError naming its line.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "LOC_val_solution.csv")
    >>> with open(path, "w") as file:
    ...     print("ImageId,PredictionString", file=file)
    ...     print("ILSVRC2012_val_00008726,n02119789 255 142 454 329 n02119789 44 21 322 295",
    ...           file=file)
    >>> synsets = {"n02119789": "kit fox, Vulpes macrotis"}
    >>> read_loc_solution(path, synsets)["ILSVRC2012_val_00008726"]
    [('n02119789', 255.0, 142.0, 454.0, 329.0), ('n02119789', 44.0, 21.0, 322.0, 295.0)]
    """
    rows = {}
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["ImageId", "PredictionString"]:
            raise ValueError(f"{path}: expected the header 'ImageId,PredictionString', got "
                             f"{header!r}.")
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != 2:
                raise ValueError(f"{path}, line {line}: expected 2 fields, got {len(row)}.")
            if row[0] in rows:
                raise ValueError(f"{path}, line {line}: {row[0]!r} is listed twice.")
            rows[row[0]] = _loc_groups(row[1], synsets, f"{path}, line {line}")
    return rows


def _loc_groups(text, synsets, where):
    tokens = text.split()
    if not tokens or len(tokens) % 5:
        raise ValueError(f"{where}: expected groups of 'wnid xmin ymin xmax ymax', got "
                         f"{text!r}.")
    groups = []
    for start in range(0, len(tokens), 5):
        wnid = tokens[start]
        if wnid not in synsets:
            raise ValueError(f"{where}: unknown wnid {wnid!r} (not in {LOC_SYNSETS}).")
        try:
            groups.append((wnid, *(float(v) for v in tokens[start + 1:start + 5])))
        except ValueError:
            raise ValueError(f"{where}: unreadable box {tokens[start:start + 5]}.") from None
    return groups


def _check_same_images(source, labelled, by_stem, folder):
    if labelled == set(by_stem):
        return
    unlabelled = sorted(set(by_stem) - labelled)
    missing = sorted(labelled - set(by_stem))
    parts = [f"{source!r} labels {len(labelled)} images but {folder!r} holds {len(by_stem)}"]
    if missing:
        parts.append(f"no image for {len(missing)}: {', '.join(missing[:5])}")
    if unlabelled:
        parts.append(f"no label for {len(unlabelled)}: {', '.join(unlabelled[:5])}")
    raise ValueError("; ".join(parts) + ". Restore the images, or the ground-truth file.")


def _devkit_labels(layout, images):
    where = (f"{layout.devkit}/{GROUND_TRUTH}" if os.path.isdir(layout.devkit)
             else f"{layout.devkit} ({DEVKIT}/{GROUND_TRUTH})")
    wnids = read_ground_truth(_devkit_read(layout.devkit, GROUND_TRUTH), layout.ids, where)
    by_stem = {}
    for path in images:
        match = _VAL_NAME.fullmatch(_stem(path))
        if match is None:
            raise ValueError(f"{path!r} is not named ILSVRC2012_val_NNNNNNNN, so its line in "
                             f"{where} is unknown.")
        by_stem[f"ILSVRC2012_val_{int(match.group(1)):08d}"] = path
    # Line N labels ILSVRC2012_val_0000000N.
    numbered = {f"ILSVRC2012_val_{n:08d}": w for n, w in enumerate(wnids, start=1)}
    _check_same_images(where, set(numbered), by_stem, layout.split_dirs["val"])
    return {path: (numbered[stem], None) for stem, path in by_stem.items()}


def read_ground_truth(data: bytes, ids: Mapping[int, str], where: str) -> list[str]:
    r"""The wnids of ``ILSVRC2012_validation_ground_truth.txt`` (bytes), one ILSVRC2012_ID a
    line mapped through ``ids``; a line that is not one of its IDs is a ValueError.

    >>> read_ground_truth(b"490\n361\n", {490: "n01751748", 361: "n09193705"}, "gt.txt")
    ['n01751748', 'n09193705']
    """
    wnids = []
    for line, text in enumerate(data.decode("utf-8", "replace").rstrip().splitlines(), 1):
        try:
            number = int(text)
        except ValueError:
            raise ValueError(f"{where}, line {line}: expected an ILSVRC2012_ID, got "
                             f"{text!r}.") from None
        if number not in ids:
            raise ValueError(
                f"{where}, line {line}: ILSVRC2012_ID {number} is out of range: meta.mat "
                f"numbers its {len(ids)} classes {min(ids, default=0)}..{max(ids, default=0)}.")
        wnids.append(ids[number])
    return wnids
