"""ImageNet directories as downloaded, without TFDS: the Kaggle localization challenge folder or
the ILSVRC2012 archives unpacked. :mod:`vgg_keras.data.imagenet` (TF-free) finds the layout,
its classes and the validation ground truth; this turns them into examples: labels number the
sorted wnids, train images are labelled by their class folder, boxes come from the ground
truth (LOC validation) or the box XML files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import imagenet as layouts
from .base import Source
from .examples import Record
from .files import (
    check_two_classes, find_annotation_dirs, index_xml, read_label_map, require_images, sliced,
    split_name_and_slice, stem, walk_images_and_xml,
)
from .folders import check_class_folders, folder_candidates
from .probe import Listing, finish
from .voc import normalised_box, parse_voc_xml

if TYPE_CHECKING:
    import tensorflow as tf

    from ..._typing import PathLike
    from .base import DatasetInfo, Request


class ImageNetSource(Source):
    """A directory holding either ImageNet layout (:func:`vgg_keras.data.imagenet.detect`)."""

    name = "imagenet"

    def matches(self, request: Request) -> bool:
        return request.is_dir and _layout(request) is not None

    def load(self, request: Request, *, label_map: Any = None, annotations: str | None = None,
             validate: str = "decode", **_: Any) -> tuple[tf.data.Dataset, DatasetInfo]:
        layout, root, split = _layout(request), request.root, request.split
        name, start, stop = split_name_and_slice(split)
        split_root = layout.split_dir(name)
        listed, xml_files = walk_images_and_xml(split_root)
        require_images(listed, split_root)
        # Checked on every image before slicing: a ground truth that does not match is an error.
        labels = layouts.split_labels(layout, name, listed)
        names, mapping, descriptions = imagenet_classes(layout, label_map)
        check_two_classes(names, root)
        box_dirs = _box_dirs(layout, root, split_root, name, annotations)
        xml_index = index_xml(box_dirs, split_root, xml_files)
        images = sliced(listed, split, split_root, start, stop)
        listing = Listing(root, split, split_root, validate, listed)
        records = _labelled_records(listing, images, labels, names, mapping, xml_index)
        # The LOC validation ground truth holds boxes for every image.
        has_boxes = bool(xml_index) or (labels is not None and layout.kind == layouts.LOC)
        return finish(listing, layout.kind, names, records, descriptions=descriptions,
                      has_boxes=has_boxes)


def _layout(request):
    """The request's ImageNet layout, or None; detected once per request."""
    return request.memo("imagenet layout", lambda: layouts.detect(request.root))


def _box_dirs(layout, root, split_root, name, annotations):
    """The folders of the split's box XML files: ``annotations`` if given, else the layout's."""
    if annotations:
        return find_annotation_dirs(root, split_root, annotations)
    return [layout.box_dirs[k] for k in (layouts.SPLITS.get(name),) if k in layout.box_dirs]


def imagenet_classes(
        layout: layouts.Layout, label_map: Sequence[str] | dict[str, int] | PathLike | None,
) -> tuple[tuple[str, ...], dict[str, int], tuple[str, ...]]:
    """``(names, mapping, descriptions)``: the layout's wnids, sorted, or ``label_map``'s."""
    if label_map is not None:
        names, mapping, descriptions = read_label_map(label_map)
    else:
        names = tuple(layout.synsets)
        mapping, descriptions = {n: i for i, n in enumerate(names)}, ()
    if not descriptions and any(layout.synsets.values()):
        descriptions = tuple(layout.synsets.get(n) or n for n in names)
    return names, mapping, descriptions


def _labelled_records(listing, images, labels, names, mapping, xml_index):
    """The records of ``images``, labelled by the ground truth ``labels`` or, where there is
    none (train, or validation sorted into class folders), by their class folder."""
    if labels is None:
        candidates = [(p, label, None) for p, label in
                      folder_candidates(listing.split_root, images, mapping, listing.skips)]
    else:
        candidates = _truth_candidates(images, labels, mapping, listing.skips)
    records = _imagenet_records(candidates, names, mapping, xml_index, listing)
    if labels is None:
        check_class_folders(listing, [c[:2] for c in candidates], records, names)
    return records


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
        boxes = _imagenet_boxes(path, names[label], pixel_boxes, xml_index, mapping,
                                listing.size(good, path), listing.skips)
        records.append(Record(path, label, boxes))
    return records


def _imagenet_boxes(path, wnid, pixel_boxes, xml_index, mapping, size, skips):
    """The boxes of an image's own class, ``v / size`` as ILSVRC counts: from the ground truth's
    pixel boxes (LOC validation) or the image's XML file; none where it has neither (most
    train images), which leaves it to classification."""
    if pixel_boxes is not None:
        boxes = [normalised_box(corners, size, 0, skips, path) for corners in pixel_boxes]
    else:
        xml = xml_index.get(stem(path))
        objects = parse_voc_xml(xml, mapping, size, skips, origin=0) if xml else None
        boxes = [box for name, box in objects or () if name == wnid]
    boxes = [box for box in boxes if box is not None]
    return np.stack(boxes) if boxes else np.zeros((0, 4), np.float32)
