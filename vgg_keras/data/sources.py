"""Where examples come from: the embedded TFDS dataset, any TFDS dataset, or a directory: a
class-folder tree, images with PASCAL-VOC XML boxes, or ImageNet as downloaded (the Kaggle
localization challenge, or the ILSVRC2012 archives unpacked; see :mod:`.imagenet`), without TFDS.

Every source yields the same example, a dict:

* ``"image"``: ``tf.string``, the encoded file (JPEG, PNG, GIF or BMP; CMYK, grayscale and
  RGBA files included): decoding is left to the pipeline so that it can decode only the window
  a crop needs.
* ``"label"``: ``tf.int32`` scalar, the class index into ``info(dataset).class_names``.
* ``"boxes"``: ``tf.float32`` ``[N, 4]``, ``[ymin, xmin, ymax, xmax]`` normalised to [0, 1] as
  TFDS stores them; ``N == 0`` where the source has no boxes.
* ``"filename"``: ``tf.string``, the file's path relative to the source ("" if unknown), for logs.

>>> ds = load("vgg_shapes", "train", data_dir="/tmp/tfds")   # builds once, in seconds
>>> info(ds).class_names[:3]
('circle', 'square', 'triangle')
>>> ds = load("~/data/flowers", "train[:90%]")                 # a class-folder tree
>>> ds = load("/data/imagenet-object-localization-challenge", "validation")
>>> info(ds).source, info(ds).num_classes, info(ds).has_boxes
('imagenet-loc', 1000, True)

Directories, by what they hold (the first that applies):

* ImageNet, either layout (:func:`.imagenet.detect`): labels number the sorted wnids.
* XML files (in ``Annotations/``, ``Annotation/``, beside the images, or ``annotations=``):
  VOC, one label an image (its first object's class) and that class's boxes.
* Otherwise class folders: ``ROOT/<class>/*.jpg``, or ``ROOT/train/<class>``, ``ROOT/val/...``.

Files that cannot be used are found *before* training, when the file list is built: each image
is opened with PIL (and by default decoded at 1/8 scale, which reads every byte of a JPEG at a
fraction of the cost), and every skipped file is counted by reason and named in the log. The
results are cached on disk (:mod:`.listing_cache`; ``$VGG_KERAS_CACHE``, default
``~/.cache/vgg_keras/listings``), so the next listing decodes only new or changed files;
``info(ds).listing`` says how many files were probed and how many results reused. A class with
no usable image, a single class, or ground truth that does not match the images is an error
naming the files, before training.
"""

import collections
import concurrent.futures
import dataclasses
import logging
import os
import re
import xml.etree.ElementTree as ElementTree
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from ..progress import progress
from . import embedded, imagenet, listing_cache
from .errors import SplitNotFoundError

log = logging.getLogger("vgg_keras.data")

EMBEDDED_NAME = "vgg_shapes"
"""TFDS name of the embedded dataset; ``tfds.load(EMBEDDED_NAME)`` works once this is imported."""

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
"""File endings (any case) taken as images in directory sources."""

TF_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "MPO")
"""PIL formats that ``tf.io`` decodes (MPO is a JPEG with extra frames, as cameras write)."""

ANNOTATION_DIRS = ("Annotations", "Annotation")
"""Folder names searched for VOC XML files (VOC uses the first, ILSVRC's bbox archives the
second)."""

SPLIT_DIRS = {
    "train": ("train",),
    "validation": ("validation", "val", "valid"),
    "test": ("test",),
}

# "name", "name/config", "name:1.0.0", "name/config:1.*.*": anything else is meant as a path.
_TFDS_NAME = re.compile(r"[a-z][a-z0-9_]*(/[A-Za-z0-9_.-]+)?(:[0-9*]+(\.[0-9*]+){0,2})?")

MAX_NAMED = 20
"""Skipped files named at WARNING level per reason; the rest go to DEBUG (all are counted)."""


# ----------------------------------------------------------------------------------------------
# The embedded dataset as a TFDS builder.


@dataclasses.dataclass(eq=False)
class VggShapesConfig(tfds.core.BuilderConfig):
    """Size and seed of the embedded dataset (see :mod:`vgg_keras.data.embedded`)."""

    num_train: int = 3000
    num_validation: int = 500
    num_test: int = 500
    seed: int = 0


def shapes_config(num_train=3000, num_validation=500, num_test=500, seed=0):
    """A config of the embedded dataset at any size; its name encodes the numbers, so every size
    is stored (and built once) in its own folder.

    >>> builder = tfds.builder("vgg_shapes", config=shapes_config(200, 50, 50), data_dir=tmp)
    """
    name = f"n{num_train}_{num_validation}_{num_test}_s{seed}"
    return VggShapesConfig(
        name=name, description=f"{num_train}/{num_validation}/{num_test} images, seed {seed}",
        num_train=num_train, num_validation=num_validation, num_test=num_test, seed=seed,
    )


class VggShapes(tfds.core.GeneratorBasedBuilder):
    """Ten procedurally drawn shapes, one per image, with its bounding box; no download.

    Configs: ``default`` (3000 train / 500 validation / 500 test images), ``small`` (1000 /
    200 / 200) and ``large`` (20000 / 2000 / 2000); any other size via :func:`shapes_config`.
    """

    # TFDS 4.9.10 locates a builder's code through `importlib_resources`, a package it only
    # declares for Python < 3.9 (so it is missing on 3.11): give the path directly.
    code_path = epath.Path(__file__)

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        VggShapesConfig(name="default", description="3000/500/500 images, seed 0"),
        VggShapesConfig(name="small", description="1000/200/200 images, seed 0",
                        num_train=1000, num_validation=200, num_test=200),
        VggShapesConfig(name="large", description="20000/2000/2000 images, seed 0",
                        num_train=20000, num_validation=2000, num_test=2000),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        names = list(embedded.CLASS_NAMES)
        return self.dataset_info_from_configs(
            description=(
                "Procedurally drawn shapes (vgg_keras): one object per image over a cluttered "
                "background, random colour, size, aspect, rotation and position; shorter "
                f"side {embedded.MIN_SIDE}-{embedded.MAX_SIDE} px, aspect up to "
                f"{embedded.MAX_ASPECT}, JPEG."
            ),
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(names=names),
                "objects": tfds.features.Sequence({
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=names),
                }),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.num_train),
            "validation": self._generate_examples("validation", config.num_validation),
            "test": self._generate_examples("test", config.num_test),
        }

    def _generate_examples(self, split, count):
        seed = self.builder_config.seed
        # Drawing is numpy and PIL, which release the GIL: threads use every core, and
        # pool.map keeps the order, so the output does not depend on the thread count.
        with concurrent.futures.ThreadPoolExecutor(min(8, 2 * (os.cpu_count() or 1))) as pool:
            made = pool.map(lambda i: embedded.make_example(seed, split, i), range(count))
            yield from self._encode_examples(split, made)

    def _encode_examples(self, split, made):
        for index, (jpeg, label, box, _) in enumerate(made):
            file_name = f"{split}_{index:06d}.jpg"
            yield file_name, {
                "image": jpeg,
                "label": label,
                "objects": [{"bbox": tfds.features.BBox(*[float(v) for v in box]),
                             "label": label}],
                "file_name": file_name,
            }


# ----------------------------------------------------------------------------------------------
# What a loaded dataset knows about itself.


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
    class_names: tuple
    num_examples: int
    has_boxes: bool
    skipped: dict = dataclasses.field(default_factory=dict)
    box_problems: dict = dataclasses.field(default_factory=dict)
    descriptions: tuple = ()
    # Directory sources: files probed now and probe results reused from the listing cache.
    listing: dict = dataclasses.field(default_factory=dict, compare=False)
    # Rebuilds the examples in an order drawn from a tf.int64 key (one epoch), reading files
    # after shuffling their names; see pipelines.train_pipeline.
    epoch_source: object = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def num_classes(self):
        return len(self.class_names)

    @property
    def num_skipped(self):
        return sum(len(files) for files in self.skipped.values())


def info(dataset):
    """The :class:`DatasetInfo` (class names, num_classes, sizes, skips) of a dataset.

    ``dataset`` is what :func:`load` returned (a ``tf.data.Dataset``), or a name or path, which
    is loaded first.

    >>> info(load("vgg_shapes", "train")).num_classes
    10
    """
    if isinstance(dataset, (str, os.PathLike)):
        dataset = load(dataset)
    meta = getattr(dataset, "_vgg_info", None)
    if meta is None:
        raise ValueError(
            "info() needs the dataset returned by vgg_keras.data.load (its metadata does not "
            "survive dataset.map/take/...); call info() on that dataset, or pass the name."
        )
    return meta


def attach_info(dataset, meta):
    dataset._vgg_info = meta  # tf.data.Dataset objects accept plain attributes
    return dataset


def _element(image, label, boxes, filename):
    return {
        "image": image,
        "label": tf.cast(label, tf.int32),
        "boxes": tf.reshape(tf.cast(boxes, tf.float32), (-1, 4)),
        "filename": filename,
    }


# ----------------------------------------------------------------------------------------------
# load()


def load(name_or_path=EMBEDDED_NAME, split="train", *, data_dir=None, manual_dir=None,
         label_map=None, annotations=None, validate="decode", shuffle_buffer=4096):
    """Load a split of a dataset as a ``tf.data.Dataset`` of examples (see the module docstring).

    Args:
        name_or_path: the embedded dataset's name (``"vgg_shapes"``, or ``"vgg_shapes/small"``
            and other configs), any TFDS name (``"imagenet2012"`` with ``manual_dir``), or a
            directory: an image folder with one sub-directory per class, images with VOC
            XML files beside them or in an ``Annotations/`` (VOC) or ``Annotation/`` (ILSVRC)
            folder, or ImageNet as downloaded (the Kaggle localization challenge folder, or
            the ILSVRC2012 archives unpacked with the devkit; see :mod:`.imagenet`). A
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

    Returns:
        A ``tf.data.Dataset``; :func:`info` on it gives the class names and counts.

    Raises:
        FileNotFoundError: a path that does not exist; ImageNet validation images without
            their ground-truth file.
        ValueError: a source with no usable examples, or a split it does not have (only then
            does the message name a split); fewer than two classes, a class folder without a
            usable image, a ground-truth file that does not match the images.
    """
    if validate not in ("decode", "header", "none"):
        raise ValueError(f"validate must be 'decode', 'header' or 'none', got {validate!r}.")
    text = os.fspath(name_or_path)
    expanded = os.path.expanduser(text)
    if os.path.isdir(expanded):
        return _load_directory(expanded, split, label_map=label_map, annotations=annotations,
                               validate=validate)
    if os.path.exists(expanded):
        raise ValueError(f"{text!r} is a file; load() takes a directory or a dataset name.")
    if not _TFDS_NAME.fullmatch(text):  # "/x", "./x", "~/x", "x\\y", ...: meant as a path
        shown = f" ({os.path.abspath(expanded)})" if expanded != os.path.abspath(text) else ""
        raise FileNotFoundError(f"No such directory: {text!r}{shown}.")
    return _load_tfds(text, split, data_dir=data_dir, manual_dir=manual_dir,
                      shuffle_buffer=shuffle_buffer)


def keyed_permutation(key, size, block=0):
    """A permutation of ``range(size)`` drawn from an int64 ``key`` that may be symbolic (the
    epoch key inside ``flat_map``); ``block`` tells apart the permutations of one key.

    ``Dataset.shuffle`` takes its seed as a Python int, so every source shuffles an epoch
    through this instead: the order is a pure function of ``(key, block)``.
    """
    seed = tf.stack([tf.cast(key, tf.int64), tf.cast(block, tf.int64)])
    return tf.random.experimental.stateless_shuffle(tf.range(size), seed=seed)


def block_shuffle(dataset, key, block_size):
    """Shuffle ``dataset`` (of dicts) within consecutive blocks of ``block_size`` examples, each
    block permuted by :func:`keyed_permutation` of ``(key, block number)``.

    Components that are not scalars (boxes) travel serialized, because unbatching a zero-sized
    component crashes TensorFlow 2.21.
    """
    spec = dataset.element_spec

    def pack(example):
        return {k: tf.io.serialize_tensor(v) if spec[k].shape.rank else v
                for k, v in example.items()}

    def permute(index, block):
        size = tf.shape(next(iter(block.values())))[0]
        order = keyed_permutation(key, size, index)
        return {k: tf.gather(v, order) for k, v in block.items()}

    def unpack(example):
        return {k: tf.ensure_shape(tf.io.parse_tensor(v, spec[k].dtype), spec[k].shape)
                if spec[k].shape.rank else v for k, v in example.items()}

    blocks = dataset.map(pack).batch(block_size).enumerate().map(permute)
    return blocks.unbatch().map(unpack)


def _tfds_builder(name, data_dir, manual_dir):
    """The TFDS builder of ``name``, prepared (built or downloaded on first use)."""
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir) if manual_dir else None
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        if "/" in name:  # "data/flowers": a relative path, unless "data" were a TFDS name
            raise FileNotFoundError(
                f"No such directory: {name!r} ({os.path.abspath(name)}); nor is "
                f"{name.split('/')[0]!r} a TFDS dataset.") from error
        raise ValueError(
            f"{name!r} is neither an existing directory nor a TFDS dataset name "
            f"(the embedded dataset is {EMBEDDED_NAME!r})."
        ) from error
    try:
        builder.download_and_prepare(download_config=download_config)
    except AssertionError as error:  # TFDS reports missing manual files this way
        raise ValueError(f"Cannot prepare {name!r}: {error}") from error
    return builder


def _load_tfds(name, split, *, data_dir, manual_dir, shuffle_buffer):
    builder = _tfds_builder(name, data_dir, manual_dir)
    features = builder.info.features
    if "image" not in features:
        raise ValueError(f"TFDS dataset {name!r} has no 'image' feature.")
    if not isinstance(features["image"], tfds.features.Image):
        raise ValueError(f"The 'image' feature of {name!r} is not a tfds.features.Image.")
    label_feature, box_key = _tfds_label_and_boxes(name, features)
    class_names = tuple(label_feature.names)
    decoders = {"image": tfds.decode.SkipDecoding()}  # the pipeline decodes (and crops)

    def to_element(example):
        if "label" in features:
            label = example["label"]
        else:  # detection datasets: the first object's class
            label = example["objects"]["label"][0]
        if box_key:
            boxes = example["objects"][box_key]
            if "label" in features and "label" in example["objects"]:
                boxes = tf.boolean_mask(boxes, example["objects"]["label"] == label)
        else:
            boxes = tf.zeros((0, 4), tf.float32)
        filename = example.get("file_name", tf.constant(""))
        if filename.dtype != tf.string:
            filename = tf.strings.as_string(filename)
        return _element(example["image"], label, boxes, filename)

    try:
        dataset = builder.as_dataset(split=split, decoders=decoders,
                                     read_config=tfds.ReadConfig(try_autocache=False))
    except (ValueError, KeyError) as error:  # unknown split names
        raise SplitNotFoundError(f"{name!r} has no split {split!r}: {error}") from error
    if "label" not in features:  # the first object labels the image: images need one
        dataset = dataset.filter(lambda example: tf.size(example["objects"]["label"]) > 0)
    dataset = dataset.map(to_element, num_parallel_calls=tf.data.AUTOTUNE)
    num_examples = int(dataset.cardinality())
    if num_examples < 0:  # filtered: TFDS's count (images without objects included)
        num_examples = builder.info.splits[split].num_examples
    if num_examples == 0:
        raise ValueError(f"{name!r} split {split!r} is empty.")
    records = dataset

    def epoch_source(key):
        # TFDS wrote its examples in a shuffled order; blocks of them are reshuffled per epoch.
        return block_shuffle(records, key, shuffle_buffer)

    source = "embedded" if builder.name == EMBEDDED_NAME else "tfds"
    meta = DatasetInfo(
        name=name, split=split, source=source, class_names=class_names,
        num_examples=num_examples, has_boxes=bool(box_key),
        epoch_source=epoch_source,
    )
    return attach_info(dataset, meta)


def _tfds_label_and_boxes(name, features):
    objects = features["objects"] if "objects" in features else None
    box_key = None
    if objects is not None:
        for key in ("bbox", "boxes", "box"):
            if key in objects.feature:
                box_key = key
                break
    if "label" in features and isinstance(features["label"], tfds.features.ClassLabel):
        return features["label"], box_key
    if objects is not None and "label" in objects.feature:
        return objects.feature["label"], box_key
    raise ValueError(
        f"TFDS dataset {name!r} has no ClassLabel 'label' feature (nor objects/label)."
    )


# ----------------------------------------------------------------------------------------------
# Directory sources.


@dataclasses.dataclass
class _Record:
    path: str
    label: int
    boxes: np.ndarray  # [N, 4] normalised, float32


class _Skips:
    """Counts skipped files by reason; names the first few at WARNING, all at DEBUG."""

    def __init__(self):
        self.files = collections.defaultdict(list)
        self.boxes = collections.Counter()

    def skip(self, reason, path, detail=""):
        self.files[reason].append(path)
        level = logging.WARNING if len(self.files[reason]) <= MAX_NAMED else logging.DEBUG
        log.log(level, "skipping %s: %s%s", path, reason, f" ({detail})" if detail else "")

    def box(self, reason, path, detail=""):
        self.boxes[reason] += 1
        level = logging.WARNING if self.boxes[reason] <= MAX_NAMED else logging.DEBUG
        log.log(level, "%s: %s%s", path, reason, f" ({detail})" if detail else "")

    def summary(self, where, kept):
        if self.files:
            counts = ", ".join(f"{len(v)} {k}" for k, v in sorted(self.files.items()))
            log.warning("%s: kept %d images, skipped %d (%s)", where, kept,
                        sum(len(v) for v in self.files.values()), counts)
        if self.boxes:
            counts = ", ".join(f"{v} {k}" for k, v in sorted(self.boxes.items()))
            log.warning("%s: box problems: %s", where, counts)


def _is_image_file(name):
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _walk_files(root, keep, exclude=()):
    """Sorted paths under ``root`` whose base name passes ``keep``, skipping ``exclude`` dirs."""
    found = []
    exclude = {os.path.normpath(path) for path in exclude}
    for directory, subdirs, files in os.walk(root, followlinks=True):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".")
                            and os.path.normpath(os.path.join(directory, d)) not in exclude)
        found.extend(os.path.join(directory, f) for f in sorted(files) if keep(f))
    return found


def _split_name_and_slice(split):
    match = re.fullmatch(r"\s*(\w+)\s*(?:\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?\s*", split)
    if not match:
        raise ValueError(f"Cannot read split {split!r}; use e.g. 'train' or 'train[:90%]'.")
    return match.group(1), match.group(2), match.group(3)


def _split_root(root, name):
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


def _slice_bound(text, total):
    if text is None:
        return None
    if text.endswith("%"):
        return int(round(int(text[:-1]) * total / 100.0))
    return int(text)


def _apply_slice(paths, start, stop):
    """Slice ``paths`` in the order of a hash of each path: a stable, class-mixed order."""
    if start is None and stop is None:
        return paths
    ordered = sorted(paths, key=lambda p: (zlib.crc32(p.encode()), p))
    chosen = set(ordered[_slice_bound(start, len(ordered)):_slice_bound(stop, len(ordered))])
    return [p for p in paths if p in chosen]


def _read_label_map(label_map):
    """``(names, {name: label}, descriptions)`` from a list, dict or file (see ``load``)."""
    descriptions = ()
    if isinstance(label_map, (str, os.PathLike)):
        names, descriptions = [], []
        with open(os.path.expanduser(label_map), encoding="utf-8") as handle:
            for line in handle:
                parts = line.strip().split(maxsplit=1)
                if parts:
                    names.append(parts[0])
                    descriptions.append(parts[1] if len(parts) > 1 else parts[0])
        label_map, descriptions = names, tuple(descriptions)
    if isinstance(label_map, dict):
        mapping = {str(k): int(v) for k, v in label_map.items()}
        size = max(mapping.values()) + 1 if mapping else 0
        names = [None] * size
        for name, label in mapping.items():
            names[label] = name
        names = [n if n is not None else f"class_{i}" for i, n in enumerate(names)]
    else:
        names = [str(n) for n in label_map]
        if len(set(names)) != len(names):
            raise ValueError("label_map has repeated class names.")
        mapping = {n: i for i, n in enumerate(names)}
    if not mapping:
        raise ValueError("label_map is empty.")
    return tuple(names), mapping, descriptions


def probe_image(path, validate="decode"):
    """Check that an image file can be used: ``(None, (height, width, format))`` or
    ``(reason, detail)``.

    ``validate="decode"`` decodes the whole file (JPEGs at 1/8 scale, which still reads every
    byte, so a truncated or corrupt file fails here and not mid-epoch).

    >>> probe_image("photo.JPEG")        # a PNG named .JPEG is fine: the pipeline sniffs bytes
    (None, (375, 500, 'PNG'))
    """
    try:
        with Image.open(path) as image:
            fmt, (width, height) = image.format, image.size
            if fmt not in TF_FORMATS:
                return "unsupported format", f"{fmt}; convert it to JPEG or PNG"
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


def _probe_all(paths, validate, skips, cache=None, where=""):
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
    good = {}
    for path in paths:  # in listing order, cached or not, so every run logs the same
        reason, detail = known[path]
        if reason is None:
            good[path] = detail
        else:
            skips.skip(reason, path, detail)
    return good


@dataclasses.dataclass
class _Listing:
    """One split of a directory being listed: where it is, how its files are validated (their
    probes cached on disk), and what was skipped."""

    root: str
    split: str
    split_root: str
    validate: str
    listed: list  # every image of the split folder, before slicing
    skips: _Skips = dataclasses.field(default_factory=_Skips)
    cache: object = None

    def __post_init__(self):
        if self.validate != "none":
            self.cache = listing_cache.ProbeCache.open(self.root, self.split_root, self.validate)

    def probe(self, paths):
        """:func:`_probe_all` of ``paths``; the cache is written at once (an error raised
        later about the data must not cost the next run its probes)."""
        good = _probe_all(paths, self.validate, self.skips, self.cache, self.split_root)
        if self.cache is not None:
            self.cache.save(self.listed)
        return good

    def stats(self):
        return self.cache.stats() if self.cache is not None else {"probed": 0, "cached": 0}


def _find_annotation_dirs(root, split_root, annotations):
    if annotations is not None:
        annotations = os.path.expanduser(os.fspath(annotations))
        if not os.path.isdir(annotations):
            raise FileNotFoundError(f"No such annotation directory: {annotations!r}.")
        return [annotations]
    dirs = []
    for base in dict.fromkeys((split_root, root)):
        for name in ANNOTATION_DIRS:
            candidate = os.path.join(base, name)
            if os.path.isdir(candidate):
                dirs.append(candidate)
    return dirs


def _is_xml_file(name):
    return name.lower().endswith(".xml")


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _index_xml(dirs, split_root, beside):
    """{file stem: xml path} for the XML files in ``dirs`` (first) and ``beside`` the images
    (already listed by the walk that found the images)."""
    index = {}
    for directory in dirs:
        exclude = dirs if directory == split_root else ()
        for path in _walk_files(directory, _is_xml_file, exclude):
            index.setdefault(_stem(path), path)
    for path in beside:
        index.setdefault(_stem(path), path)
    return index


def _xml_number(node, tag):
    return float(node.find(tag).text.strip())


def parse_voc_xml(path, mapping, image_size, skips, origin=1):
    """The usable objects of one VOC/ILSVRC XML file: ``[(class name, [ymin, xmin, ymax, xmax])]``
    normalised to [0, 1], in file order.

    VOC coordinates are 1-based pixel indices; like TFDS's ``voc`` we take ``(v - 1) / size``
    (``origin=1``). ILSVRC's are ``v / size`` (``origin=0``, as TensorFlow's ImageNet
    ``process_bounding_boxes.py``). The size is the XML's ``<size>`` (the boxes were drawn on
    it) or, when that is missing or broken, the image's own. Boxes reaching outside the image
    are clipped; inverted (xmin > xmax or ymin > ymax), zero-area, unreadable boxes and unknown
    classes are dropped. Each case is counted in ``skips`` and named in the log.

    >>> parse_voc_xml("Annotations/img0.xml", {"dog": 0}, (60, 80), _Skips())
    [('dog', array([0.1, 0.125, 0.5, 0.5], dtype=float32))]
    """
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        skips.box("unreadable annotation", path, str(error))
        return None
    height, width = image_size
    size = root.find("size")
    try:
        xml_width, xml_height = _xml_number(size, "width"), _xml_number(size, "height")
        if xml_width > 0 and xml_height > 0:
            width, height = xml_width, xml_height
    except (AttributeError, ValueError, TypeError):
        pass
    objects = []
    for obj in root.iter("object"):
        name_node = obj.find("name")
        name = name_node.text.strip() if name_node is not None and name_node.text else ""
        if mapping is not None and name not in mapping:
            skips.box("unknown class", path, repr(name))
            continue
        try:
            bndbox = obj.find("bndbox")
            corners = [_xml_number(bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, ValueError, TypeError):
            skips.box("unreadable box", path)
            continue
        box = _normalised_box(corners, (height, width), origin, skips, path)
        if box is not None:
            objects.append((name, box))
    return objects


def _normalised_box(corners, size, origin, skips, where):
    """``[ymin, xmin, ymax, xmax]`` in [0, 1] of pixel ``corners`` ``(xmin, ymin, xmax, ymax)``
    counted from ``origin``, clipped to the image; None for a box that cannot be used. Both
    cases are counted in ``skips``."""
    xmin, ymin, xmax, ymax = corners
    height, width = size
    if xmin > xmax or ymin > ymax:
        skips.box("inverted box", where, f"x {xmin}..{xmax}, y {ymin}..{ymax}")
        return None
    box = np.array([(ymin - origin) / height, (xmin - origin) / width,
                    (ymax - origin) / height, (xmax - origin) / width])
    clipped = np.clip(box, 0.0, 1.0)
    if not np.allclose(clipped, box):
        skips.box("box clipped to the image", where)
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        skips.box("zero-area box", where)
        return None
    return clipped.astype(np.float32)


def _load_directory(path, split, *, label_map, annotations, validate):
    root = os.path.normpath(path)
    layout = imagenet.detect(root)
    if layout is not None:
        return _load_imagenet(layout, root, split, label_map=label_map,
                              annotations=annotations, validate=validate)
    name, start, stop = _split_name_and_slice(split)
    split_root = _split_root(root, name)
    annotation_dirs = _find_annotation_dirs(root, split_root, annotations)
    # One walk of the (possibly huge) image tree finds the images and the XML files beside them.
    files = _walk_files(split_root, lambda f: _is_image_file(f) or _is_xml_file(f),
                        exclude=annotation_dirs)
    listed = [p for p in files if _is_image_file(os.path.basename(p))]
    xml_index = _index_xml(annotation_dirs, split_root,
                           [p for p in files if _is_xml_file(os.path.basename(p))])
    images = _sliced(listed, split, split_root, start, stop)
    names, mapping, descriptions = (None, None, ())
    if label_map is not None:
        names, mapping, descriptions = _read_label_map(label_map)
    listing = _Listing(root, split, split_root, validate, listed)
    if xml_index:
        records, names = _voc_records(root, images, xml_index, names, mapping, listing)
        source = "voc"
    else:
        records, names = _folder_records(listing, images, names, mapping)
        source = "folder"
    return _finish(listing, source, names, records, descriptions=descriptions,
                   has_boxes=source == "voc")


def _sliced(listed, split, split_root, start, stop):
    if not listed:
        raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) under {split_root!r}.")
    images = _apply_slice(listed, start, stop)
    if not images:
        raise ValueError(f"Split {split!r} of {split_root!r} selects no images.")
    return images


def _finish(listing, source, names, records, *, descriptions, has_boxes):
    """Log what a directory split holds and what was skipped; its dataset and info."""
    skips, where = listing.skips, f"{listing.root} [{listing.split}]"
    skips.summary(where, len(records))
    if not records:
        raise ValueError(
            f"No usable images in {where}: skipped "
            + ", ".join(f"{len(v)} {k}" for k, v in skips.files.items())
            + ". See the log for the files."
        )
    stats = listing.stats()
    if stats["cached"]:
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
    return _records_dataset(records, listing.root, meta)


def _folder_records(listing, images, names, mapping):
    if names is None:
        names = _class_folders(listing.root, listing.split_root)
        mapping = {n: i for i, n in enumerate(names)}
    _check_two_classes(names, listing.split_root)
    candidates = _folder_candidates(listing.split_root, images, mapping, listing.skips)
    good = listing.probe([p for p, _ in candidates])
    empty = np.zeros((0, 4), np.float32)
    records = [_Record(p, label, empty) for p, label in candidates if p in good]
    _check_class_folders(listing, candidates, records, names)
    return records, names


def _class_folders(root, split_root):
    """The class folders of every split, sorted, so that train and validation labels agree."""
    found = set()
    for base in {split_root, *[os.path.join(root, a) for v in SPLIT_DIRS.values() for a in v]}:
        if os.path.isdir(base):
            found.update(d for d in os.listdir(base)
                         if os.path.isdir(os.path.join(base, d)) and not d.startswith(".")
                         and d not in ANNOTATION_DIRS and not _is_split_dir(base, root, d))
    if not found:
        raise ValueError(f"{split_root!r} has images but no class sub-directories.")
    return sorted(found)


def _check_two_classes(names, where):
    if len(names) < 2:
        raise ValueError(
            f"{where!r} has {len(names)} class ({', '.join(map(repr, names)) or 'none'}): "
            "classification needs at least two classes, one sub-directory of images each.")


def _relative(path, prefix):
    """``path`` relative to ``prefix`` (a folder ending with a separator)."""
    # Listed paths start with the folder that was walked: slicing costs far less than
    # os.path.relpath (about 15 us a path, 20 s for ImageNet's 1.28M).
    return path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, prefix)


def _top_folder(path, prefix):
    """The first folder of ``path`` below ``prefix`` (ending with a separator), or None."""
    parts = _relative(path, prefix).split(os.sep, 1)
    return parts[0] if len(parts) == 2 else None


def _folder_candidates(split_root, images, mapping, skips):
    """``[(path, label)]`` of the images in a known class folder; the others skipped."""
    prefix = os.path.join(split_root, "")
    candidates = []
    for image in images:
        folder = _top_folder(image, prefix)
        if folder is None:
            skips.skip("not in a class folder", image)
        elif folder not in mapping:
            skips.skip("unknown class", image, repr(folder))
        else:
            candidates.append((image, mapping[folder]))
    return candidates


def _check_class_folders(listing, candidates, records, names):
    """A class folder of this split without a usable image is an error naming it: the model
    would get an output for a class it never sees. (A slice that happens to leave a class out
    is fine, and nothing usable at all is reported by :func:`_finish` with the skip counts.)"""
    if not records:
        return
    prefix = os.path.join(listing.split_root, "")
    listed = collections.Counter(_top_folder(p, prefix) for p in listing.listed)
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


def _is_split_dir(base, root, name):
    return os.path.normpath(base) == os.path.normpath(root) and any(
        name == alias for aliases in SPLIT_DIRS.values() for alias in aliases)


def _voc_records(root, images, xml_index, names, mapping, listing):
    skips = listing.skips
    with_xml = []
    for image in images:
        xml = xml_index.get(_stem(image))
        if xml is None:
            skips.skip("missing annotation", image)
        else:
            with_xml.append((image, xml))
    probed = listing.probe([p for p, _ in with_xml])
    parsed = []
    for image, xml in with_xml:
        if image not in probed:
            continue
        size = probed[image][:2] if probed[image] else _header_size(image)
        objects = parse_voc_xml(xml, mapping, size, skips)
        if objects is None:
            skips.skip("unreadable annotation", image, xml)
        elif not objects:
            skips.skip("no usable box", image, xml)
        else:
            parsed.append((image, objects))
    if names is None:
        # Classes from every XML under the root, so that every split numbers them the same.
        names = sorted({name for _, objects in parsed for name, _ in objects}
                       | _all_xml_names(root, xml_index))
        mapping = {n: i for i, n in enumerate(names)}
    records = []
    for image, objects in parsed:
        # One label per image (ILSVRC: every object has the image's synset). With several
        # classes (VOC) the first object's class labels the image and keeps its boxes.
        first = objects[0][0]
        boxes = np.stack([box for name, box in objects if name == first]).astype(np.float32)
        records.append(_Record(image, mapping[first], boxes))
    return records, names


def _header_size(path):
    with Image.open(path) as image:
        return image.size[1], image.size[0]


def _all_xml_names(root, xml_index):
    """Object names of the XML files under ``root`` that no split image refers to (cheap regex)."""
    names = set()
    seen = set(xml_index.values())
    for path in _walk_files(root, lambda f: f.lower().endswith(".xml")):
        if path in seen:
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        names.update(n.strip() for n in re.findall(r"<object>.*?<name>(.*?)</name>", text, re.S))
    return names


# ----------------------------------------------------------------------------------------------
# ImageNet directories (the layouts are described in vgg_keras.data.imagenet).


def _load_imagenet(layout, root, split, *, label_map, annotations, validate):
    name, start, stop = _split_name_and_slice(split)
    split_root = layout.split_dir(name)
    files = _walk_files(split_root, lambda f: _is_image_file(f) or _is_xml_file(f))
    listed = [p for p in files if _is_image_file(os.path.basename(p))]
    if not listed:
        raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) under {split_root!r}.")
    # Checked on every image before slicing: a ground truth that does not match is an error.
    labels = imagenet.split_labels(layout, name, listed)
    names, mapping, descriptions = _imagenet_classes(layout, label_map)
    _check_two_classes(names, root)
    box_dirs = _find_annotation_dirs(root, split_root, annotations) if annotations else [
        layout.box_dirs[k] for k in (imagenet.SPLITS.get(name),) if k in layout.box_dirs]
    xml_index = _index_xml(box_dirs, split_root,
                           [p for p in files if _is_xml_file(os.path.basename(p))])
    images = _sliced(listed, split, split_root, start, stop)
    listing = _Listing(root, split, split_root, validate, listed)
    if labels is None:
        candidates = [(p, label, None) for p, label in
                      _folder_candidates(split_root, images, mapping, listing.skips)]
    else:
        candidates = _truth_candidates(images, labels, mapping, listing.skips)
    records = _imagenet_records(candidates, names, mapping, xml_index, listing)
    if labels is None:
        _check_class_folders(listing, [c[:2] for c in candidates], records, names)
    # The LOC validation ground truth holds boxes for every image.
    has_boxes = bool(xml_index) or (labels is not None and layout.kind == imagenet.LOC)
    return _finish(listing, layout.kind, names, records, descriptions=descriptions,
                   has_boxes=has_boxes)


def _imagenet_classes(layout, label_map):
    """``(names, mapping, descriptions)``: the layout's wnids, sorted, or ``label_map``'s."""
    if label_map is not None:
        names, mapping, descriptions = _read_label_map(label_map)
    else:
        names = tuple(layout.synsets)
        mapping, descriptions = {n: i for i, n in enumerate(names)}, ()
    if not descriptions and any(layout.synsets.values()):
        descriptions = tuple(layout.synsets.get(n) or n for n in names)
    return names, mapping, descriptions


def _truth_candidates(images, labels, mapping, skips):
    """``[(path, label, pixel boxes)]`` of the images labelled by a ground-truth file."""
    candidates = []
    for image in images:
        wnid, pixel_boxes = labels[image]
        if wnid in mapping:
            candidates.append((image, mapping[wnid], pixel_boxes))
        else:  # only with a label_map that leaves the class out
            skips.skip("unknown class", image, repr(wnid))
    return candidates


def _imagenet_records(candidates, names, mapping, xml_index, listing):
    good = listing.probe([c[0] for c in candidates])
    records = []
    for path, label, pixel_boxes in candidates:
        if path not in good:
            continue
        size = good[path][:2] if good[path] else _header_size(path)
        boxes = _imagenet_boxes(path, names[label], pixel_boxes, xml_index, mapping, size,
                                listing.skips)
        records.append(_Record(path, label, boxes))
    return records


def _imagenet_boxes(path, wnid, pixel_boxes, xml_index, mapping, size, skips):
    """The boxes of an image's own class, ``v / size`` as ILSVRC counts: from the ground truth's
    pixel boxes (LOC validation) or the image's XML file; none where it has neither (most
    train images), which leaves it to classification."""
    if pixel_boxes is not None:
        boxes = [_normalised_box(corners, size, 0, skips, path) for corners in pixel_boxes]
    else:
        xml = xml_index.get(_stem(path))
        objects = parse_voc_xml(xml, mapping, size, skips, origin=0) if xml else None
        boxes = [box for name, box in objects or () if name == wnid]
    boxes = [box for box in boxes if box is not None]
    return np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)


def _records_dataset(records, root, meta):
    """A dataset reading the listed files; its ``epoch_source`` shuffles names before reading."""
    paths = tf.constant([r.path for r in records])
    prefix = os.path.join(root, "")
    relative = tf.constant([_relative(r.path, prefix) for r in records])
    labels = tf.constant(np.array([r.label for r in records], np.int32))
    boxes = tf.RaggedTensor.from_row_lengths(
        np.concatenate([r.boxes for r in records]).reshape(-1, 4).astype(np.float32),
        np.array([len(r.boxes) for r in records], np.int64),
    )

    def read(index):
        return _element(tf.io.read_file(paths[index]), labels[index], boxes[index],
                        relative[index])

    def epoch_source(key):
        # Shuffling indices (not bytes) makes a full shuffle cheap at any dataset size.
        order = tf.data.Dataset.from_tensor_slices(keyed_permutation(key, len(records)))
        return order.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)

    meta.epoch_source = epoch_source
    in_order = tf.data.Dataset.range(len(records)).map(
        read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return attach_info(in_order, meta)
