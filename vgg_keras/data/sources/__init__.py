"""Where examples come from: the embedded TFDS dataset, any TFDS dataset, or a directory: a
class-folder tree, images with PASCAL-VOC XML boxes, or ImageNet as downloaded (the Kaggle
localization challenge, or the ILSVRC2012 archives unpacked; see
:mod:`vgg_keras.data.imagenet`), without TFDS.

Every source yields the same example, a dict:

* ``"image"``: ``tf.string``, the encoded file (JPEG, PNG, GIF or BMP; CMYK, grayscale and
  RGBA files included): decoding is left to the pipeline so that it can decode only the window
  a crop needs.
* ``"label"``: ``tf.int32`` scalar, the class index into ``info(dataset).class_names``.
* ``"boxes"``: ``tf.float32`` ``[N, 4]``, ``[ymin, xmin, ymax, xmax]`` normalised to [0, 1] as
  TFDS stores them; ``N == 0`` where the source has no boxes.
* ``"filename"``: ``tf.string``, the file's path relative to the source ("" if unknown), for logs.

>>> ds = load("vgg_shapes", "train")      # built once (in seconds) in the TFDS data_dir
>>> info(ds).class_names[:3]
('circle', 'square', 'triangle')
>>> example = next(iter(ds))
>>> sorted(example), example["boxes"].shape
(['boxes', 'filename', 'image', 'label'], TensorShape([1, 4]))
>>> ds = load("~/data/flowers", "train[:90%]")                 # doctest: +SKIP
>>> ds = load("/data/imagenet-object-localization-challenge", "validation")  # doctest: +SKIP
>>> info(ds).source, info(ds).num_classes, info(ds).has_boxes                 # doctest: +SKIP
('imagenet-loc', 1000, True)

Directories, by what they hold (the first that applies):

* ImageNet, either layout (:func:`vgg_keras.data.imagenet.detect`): labels number the sorted
  wnids.
* XML files (in ``Annotations/``, ``Annotation/``, beside the images, or ``annotations=``):
  VOC, one label an image (its first object's class) and that class's boxes.
* Otherwise class folders: ``ROOT/<class>/*.jpg``, or ``ROOT/train/<class>``, ``ROOT/val/...``.

Files that cannot be used are found *before* training, when the file list is built: each image
is opened with PIL (and by default decoded at 1/8 scale, which reads every byte of a JPEG at a
fraction of the cost), and every skipped file is counted by reason and named in the log. The
results are cached on disk (:mod:`vgg_keras.data.listing_cache`; ``$VGG_KERAS_CACHE``, default
``~/.cache/vgg_keras/listings``), so the next listing decodes only new or changed files;
``info(ds).listing`` says how many files were probed and how many results reused. A class with
no usable image, a single class, or ground truth that does not match the images is an error
naming the files, before training.

One module per kind of source, each a :class:`~.base.Source` (``matches(request)``,
``load(request, **options) -> (dataset, info)``), consulted in order by :func:`load`
(:mod:`.registry`): :mod:`.imagenet`, :mod:`.voc`, :mod:`.folders` (any other directory) and
:mod:`.tfds` (any TFDS name; :mod:`.vgg_shapes` is the embedded dataset's builder). Under them:
:mod:`.base` (:class:`DatasetInfo`, the interface), :mod:`.files` (walking, splits, label
maps), :mod:`.examples` (the example dict, record datasets, keyed shuffling) and
:mod:`.probe` (PIL checks, the listing cache, skip counts). A new kind is one module and one
:func:`register_source` line.
"""

from .base import DatasetInfo, Request, Source, attach_info, attached_info
from .examples import (
    Record, block_shuffle, element, filter_positions, keyed_index, keyed_order, keyed_permutation,
    records_dataset,
)
from .files import ANNOTATION_DIRS, IMAGE_EXTENSIONS, SPLIT_DIRS
from .folders import FolderSource
from .imagenet import ImageNetSource
from .probe import MAX_NAMED, TF_FORMATS, Skips, probe_image
from .registry import SOURCES, find_source, info, load, register_source
from .tfds import TfdsSource
from .vgg_shapes import EMBEDDED_NAME, VggShapes, VggShapesConfig, shapes_config
from .voc import VocSource, parse_voc_xml

__all__ = [
    "ANNOTATION_DIRS",
    "EMBEDDED_NAME",
    "IMAGE_EXTENSIONS",
    "MAX_NAMED",
    "SOURCES",
    "SPLIT_DIRS",
    "TF_FORMATS",
    "DatasetInfo",
    "FolderSource",
    "ImageNetSource",
    "Record",
    "Request",
    "Skips",
    "Source",
    "TfdsSource",
    "VggShapes",
    "VggShapesConfig",
    "VocSource",
    "attach_info",
    "attached_info",
    "block_shuffle",
    "filter_positions",
    "element",
    "find_source",
    "info",
    "keyed_index",
    "keyed_order",
    "keyed_permutation",
    "load",
    "parse_voc_xml",
    "probe_image",
    "records_dataset",
    "register_source",
    "shapes_config",
]
