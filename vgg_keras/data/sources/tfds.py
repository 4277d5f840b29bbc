"""Any TFDS dataset by name (``"imagenet2012"``, ``"voc/2007"``, the embedded ``"vgg_shapes"``):
its ``image`` feature left encoded, its ClassLabel ``label`` (or the first object's), the boxes
of ``objects`` of that class. TFDS builds or downloads it on first use."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import tensorflow as tf
import tensorflow_datasets as tfds

from ..errors import SplitNotFoundError
from .base import DatasetInfo, Source
from .examples import block_shuffle, element, filter_positions
from .vgg_shapes import EMBEDDED_NAME

if TYPE_CHECKING:
    from .base import Request

# "name", "name/config", "name:1.0.0", "name/config:1.*.*": anything else is meant as a path.
TFDS_NAME = re.compile(r"[a-z][a-z0-9_]*(/[A-Za-z0-9_.-]+)?(:[0-9*]+(\.[0-9*]+){0,2})?")


class TfdsSource(Source):
    """A TFDS name that is not an existing path."""

    name = "tfds"

    def matches(self, request: Request) -> bool:
        return not os.path.exists(request.path) and bool(TFDS_NAME.fullmatch(request.text))

    def load(self, request: Request, *, data_dir: str | None = None,
             manual_dir: str | None = None, shuffle_buffer: int = 4096,
             **_: Any) -> tuple[tf.data.Dataset, DatasetInfo]:
        name, split = request.text, request.split
        builder = tfds_builder(name, data_dir, manual_dir)
        features = builder.info.features
        label_feature, box_key = _label_and_boxes(name, features)
        dataset = _examples(builder, name, split, box_key)
        num_examples = int(dataset.cardinality())
        if num_examples < 0:  # filtered: TFDS's count (images without objects included)
            num_examples = builder.info.splits[split].num_examples
        if num_examples == 0:
            raise ValueError(f"{name!r} split {split!r} is empty.")

        def epoch_source(key, keep=None):
            # TFDS wrote its examples in a shuffled order; blocks of them are reshuffled per
            # epoch.
            return filter_positions(block_shuffle(dataset, key, shuffle_buffer).enumerate(), keep)

        meta = DatasetInfo(
            name=name, split=split, source="embedded" if builder.name == EMBEDDED_NAME else "tfds",
            class_names=tuple(label_feature.names), num_examples=num_examples,
            has_boxes=bool(box_key), epoch_source=epoch_source,
        )
        return dataset, meta


def tfds_builder(name: str, data_dir: str | None,
                 manual_dir: str | None) -> tfds.core.DatasetBuilder:
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


def _label_and_boxes(name, features):
    """``(the ClassLabel feature that labels an image, the objects' box key or None)``."""
    if "image" not in features:
        raise ValueError(f"TFDS dataset {name!r} has no 'image' feature.")
    if not isinstance(features["image"], tfds.features.Image):
        raise ValueError(f"The 'image' feature of {name!r} is not a tfds.features.Image.")
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


def _examples(builder, name, split, box_key):
    """The split's examples, the image left encoded (the pipeline decodes and crops)."""
    features = builder.info.features
    decoders = {"image": tfds.decode.SkipDecoding()}
    try:
        dataset = builder.as_dataset(split=split, decoders=decoders,
                                     read_config=tfds.ReadConfig(try_autocache=False))
    except (ValueError, KeyError) as error:  # unknown split names
        raise SplitNotFoundError(f"{name!r} has no split {split!r}: {error}") from error
    if "label" not in features:  # the first object labels the image: images need one
        dataset = dataset.filter(lambda example: tf.size(example["objects"]["label"]) > 0)
    return dataset.map(_element_of(features, box_key), num_parallel_calls=tf.data.AUTOTUNE)


def _element_of(features, box_key):
    """The function making an example of a TFDS example with these ``features``."""

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
        return element(example["image"], label, boxes, filename)

    return to_element
