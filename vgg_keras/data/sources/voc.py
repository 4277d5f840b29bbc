"""Images with PASCAL-VOC XML files (in ``Annotations/``, ``Annotation/``, beside the images, or
``annotations=``): one label an image, its first object's class, with that class's boxes. Also
the XML parser and box normalisation the ImageNet source uses for ILSVRC's box files."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import Source
from .examples import Record
from .files import is_xml_file, read_label_map, split_files, stem, walk_files
from .probe import Listing, finish

if TYPE_CHECKING:
    import tensorflow as tf

    from ..._typing import PathLike
    from .base import DatasetInfo, Request
    from .probe import Skips


class VocSource(Source):
    """A directory whose split has XML files."""

    name = "voc"

    def matches(self, request: Request) -> bool:
        return request.is_dir and bool(split_files(request).xml_index)

    def load(self, request: Request, *, label_map: Any = None, validate: str = "decode",
             **_: Any) -> tuple[tf.data.Dataset, DatasetInfo]:
        split = split_files(request)
        names, mapping, descriptions = read_label_map(label_map)
        listing = Listing(request.root, request.split, split.split_root, validate, split.listed)
        records, class_names = voc_records(request.root, split.images, split.xml_index, names,
                                           mapping, listing)
        return finish(listing, "voc", class_names, records, descriptions=descriptions,
                      has_boxes=True)


def voc_records(root: str, images: Iterable[str], xml_index: Mapping[str, str],
                names: Sequence[str] | None, mapping: Mapping[str, int] | None,
                listing: Listing) -> tuple[list[Record], Sequence[str]]:
    """``(records, class names)`` of the usable ``images`` with a usable XML file."""
    annotated = _annotated(images, xml_index, listing.skips)
    parsed = _parsed(annotated, mapping, listing)
    if names is None:
        # Classes from every XML under the root, so that every split numbers them the same.
        names = sorted({name for _, objects in parsed for name, _ in objects}
                       | _all_xml_names(root, xml_index))
        mapping = {n: i for i, n in enumerate(names)}
    assert mapping is not None, "a label map's names come with their labels (read_label_map)"
    records = []
    for image, objects in parsed:
        # One label per image (ILSVRC: every object has the image's synset). With several
        # classes (VOC) the first object's class labels the image and keeps its boxes.
        first = objects[0][0]
        boxes = np.stack([box for name, box in objects if name == first]).astype(np.float32)
        records.append(Record(image, mapping[first], boxes))
    return records, names


def _annotated(images, xml_index, skips):
    """``[(image, xml)]``; the images without an XML file skipped."""
    with_xml = []
    for image in images:
        xml = xml_index.get(stem(image))
        if xml is None:
            skips.skip("missing annotation", image)
        else:
            with_xml.append((image, xml))
    return with_xml


def _parsed(annotated, mapping, listing):
    """``[(image, objects)]`` of the usable images whose XML has a usable object."""
    skips = listing.skips
    probed = listing.probe([p for p, _ in annotated])
    parsed = []
    for image, xml in annotated:
        if image not in probed:
            continue
        objects = parse_voc_xml(xml, mapping, listing.size(probed, image), skips)
        if objects is None:
            skips.skip("unreadable annotation", image, xml)
        elif not objects:
            skips.skip("no usable box", image, xml)
        else:
            parsed.append((image, objects))
    return parsed


def _all_xml_names(root, xml_index):
    """Object names of the XML files under ``root`` that no split image refers to (cheap regex)."""
    names = set()
    seen = set(xml_index.values())
    for path in walk_files(root, is_xml_file):
        if path in seen:
            continue
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                text = handle.read()
        except OSError:
            continue
        names.update(n.strip() for n in re.findall(r"<object>.*?<name>(.*?)</name>", text, re.S)
                     if n.strip())
    return names


def _xml_number(node, tag):
    return float(node.find(tag).text.strip())


def parse_voc_xml(path: PathLike, mapping: Mapping[str, int] | None,
                  image_size: tuple[int, int], skips: Skips,
                  origin: int = 1) -> list[tuple[str, np.ndarray]] | None:
    """The usable objects of one VOC/ILSVRC XML file: ``[(class name, [ymin, xmin, ymax, xmax])]``
    normalised to [0, 1], in file order.

    VOC coordinates are 1-based pixel indices; like TFDS's ``voc`` we take ``(v - 1) / size``
    (``origin=1``). ILSVRC's are ``v / size`` (``origin=0``, as TensorFlow's ImageNet
    ``process_bounding_boxes.py``). The size is the XML's ``<size>`` (the boxes were drawn on
    it) or, when that is missing or broken, the image's own. Boxes reaching outside the image
    are clipped; inverted (xmin > xmax or ymin > ymax), zero-area, unreadable boxes and unknown
    classes are dropped. Each case is counted in ``skips`` and named in the log; an unreadable
    file is None.

    >>> import os, tempfile
    >>> from vgg_keras.data.sources import Skips
    >>> path = os.path.join(tempfile.mkdtemp(), "img0.xml")
    >>> with open(path, "w") as xml:
    ...     print("<annotation><size><width>80</width><height>60</height></size><object>"
    ...           "<name>dog</name><bndbox><xmin>11</xmin><ymin>7</ymin><xmax>41</xmax>"
    ...           "<ymax>31</ymax></bndbox></object><object><name>cat</name></object>"
    ...           "</annotation>", file=xml)
    >>> skips = Skips()
    >>> parse_voc_xml(path, {"dog": 0}, (60, 80), skips)
    [('dog', array([0.1  , 0.125, 0.5  , 0.5  ], dtype=float32))]
    >>> dict(skips.boxes)
    {'unknown class': 1}
    """
    try:
        root = ElementTree.parse(path).getroot()
    except (ElementTree.ParseError, OSError) as error:
        skips.box("unreadable annotation", path, str(error))
        return None
    size = _xml_size(root, image_size)
    objects = []
    for obj in root.iter("object"):
        name_node = obj.find("name")
        name = name_node.text.strip() if name_node is not None and name_node.text else ""
        if not name:   # an empty or missing <name> is no class, not a class called ''
            skips.box("object without a class name", path)
            continue
        if mapping is not None and name not in mapping:
            skips.box("unknown class", path, repr(name))
            continue
        try:
            bndbox = obj.find("bndbox")
            corners = [_xml_number(bndbox, tag) for tag in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, ValueError, TypeError):
            skips.box("unreadable box", path)
            continue
        box = normalised_box(corners, size, origin, skips, path)
        if box is not None:
            objects.append((name, box))
    return objects


def _xml_size(root, image_size):
    """``(height, width)`` from the XML's ``<size>``, else ``image_size``."""
    height, width = image_size
    size = root.find("size")
    try:
        xml_width, xml_height = _xml_number(size, "width"), _xml_number(size, "height")
        if xml_width > 0 and xml_height > 0:
            width, height = xml_width, xml_height
    except (AttributeError, ValueError, TypeError):
        pass
    return height, width


def normalised_box(corners: Sequence[float], size: tuple[float, float], origin: float,
                   skips: Skips, where: PathLike) -> np.ndarray | None:
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
