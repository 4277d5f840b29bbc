"""Miniature image trees in every layout ``vgg_keras.data.load`` reads, for tests: class folders
(flat, or with train/ and val/), PASCAL VOC, the ImageNet Object Localization Challenge
(Kaggle) download, and the ILSVRC2012 archives unpacked. Each is salted with the awkward files
real datasets have (a truncated JPEG, an empty file, a CMYK JPEG, a grayscale JPEG, a PNG named
.JPEG) and returns a dict saying exactly what it made.

Images are deterministic (seeded) and learnable: one object over a noisy background, its colour
and shape set by its class, its extent the box. Boxes are given in pixel edges ``(x0, y0, x1,
y1)``, ``x1`` exclusive, as ImageNet counts (normalised ``x0 / width`` ...); VOC XML files hold
them 1-based (``xmin = x0 + 1``, ``xmax = x1``).

>>> tree = user_trees.class_folders(tmp_path / "pets", per_class=12)
>>> tree["classes"], tree["counts"]["train"]
(('cat', 'dog', 'fox'), {'cat': 12, 'dog': 12, 'fox': 12})
>>> tree["bad"]
{'cat/truncated.jpg': 'corrupt image', 'dog/empty.jpg': 'corrupt image'}
"""

import io
import os
import tarfile

import numpy as np
import scipy.io
from PIL import Image, ImageDraw

PALETTE = ((220, 40, 40), (40, 180, 60), (50, 80, 230), (235, 200, 40), (170, 60, 200),
           (40, 200, 210))
SHAPES = ("rectangle", "ellipse", "triangle", "diamond")

WNIDS = ("n02119789", "n01440764", "n03000134", "n01530575")
"""Deliberately not sorted: the devkit's ILSVRC2012_ID order and the CSV's row order."""

DESCRIPTIONS = {
    "n01440764": "tench, Tinca tinca",
    "n01530575": "brambling, Fringilla montifringilla",
    "n02119789": "kit fox, Vulpes macrotis",
    "n03000134": "chainlink fence",
}
UNKNOWN_WNID = "n09999999"
DEVKIT = "ILSVRC2012_devkit_t12"


# ----------------------------------------------------------------------------------------------
# Pictures and files.


def picture(label, rng, size):
    """``(uint8 [H, W, 3], (x0, y0, x1, y1))``: one object of class ``label`` on noise, with
    ``size`` = (height, width) varied by up to 10 px so that boxes normalise differently."""
    height = int(size[0] + rng.integers(-10, 11))
    width = int(size[1] + rng.integers(-10, 11))
    background = rng.uniform(90, 160) + rng.normal(0, 12, (height, width, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    box_w = int(rng.integers(width // 3, 2 * width // 3 + 1))
    box_h = int(rng.integers(height // 3, 2 * height // 3 + 1))
    x0, y0 = int(rng.integers(0, width - box_w + 1)), int(rng.integers(0, height - box_h + 1))
    x1, y1 = x0 + box_w, y0 + box_h
    colour, shape = PALETTE[label % len(PALETTE)], SHAPES[label % len(SHAPES)]
    draw, right, bottom = ImageDraw.Draw(image), x1 - 1, y1 - 1
    if shape == "rectangle":
        draw.rectangle([x0, y0, right, bottom], fill=colour)
    elif shape == "ellipse":
        draw.ellipse([x0, y0, right, bottom], fill=colour)
    elif shape == "triangle":
        draw.polygon([(x0, bottom), ((x0 + right) / 2, y0), (right, bottom)], fill=colour)
    else:
        middle_x, middle_y = (x0 + right) / 2, (y0 + bottom) / 2
        draw.polygon([(middle_x, y0), (right, middle_y), (middle_x, bottom), (x0, middle_y)],
                     fill=colour)
    return np.asarray(image), (x0, y0, x1, y1)


def encode(array, kind="jpeg"):
    """The bytes of a file of ``kind``: jpeg, cmyk (JPEG), gray (JPEG), png_as_jpeg (PNG bytes,
    to be named .JPEG), truncated (the first half of a JPEG), empty."""
    if kind == "empty":
        return b""
    image = Image.fromarray(array)
    buffer = io.BytesIO()
    if kind == "png_as_jpeg":
        image.save(buffer, format="PNG")
    else:
        mode = {"cmyk": "CMYK", "gray": "L"}.get(kind, "RGB")
        image.convert(mode).save(buffer, format="JPEG", quality=90)
    data = buffer.getvalue()
    return data[:len(data) // 2] if kind == "truncated" else data


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
    return path


def xml_text(filename, size, objects, folder="", one_based=False):
    """A VOC/ILSVRC annotation: ``objects`` = [(name, (x0, y0, x1, y1))] in pixel edges."""
    height, width = size
    parts = [f"<annotation><folder>{folder}</folder><filename>{filename}</filename>"
             f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>"]
    for name, (x0, y0, x1, y1) in objects:
        shift = 1 if one_based else 0
        parts.append(f"<object><name>{name}</name><bndbox><xmin>{x0 + shift}</xmin>"
                     f"<ymin>{y0 + shift}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox>"
                     "</object>")
    return "".join(parts) + "</annotation>"


def _odd_kinds(salt, label, index):
    """The awkward-but-usable kind of image ``index`` of class ``label`` (salted trees)."""
    if not salt or index != 0:
        return "jpeg"
    return ("cmyk", "gray", "png_as_jpeg", "jpeg")[label % 4]


# ----------------------------------------------------------------------------------------------
# Class folders and VOC.


def class_folders(root, classes=("cat", "dog", "fox"), per_class=12, size=(48, 64),
                  split_dirs=False, salt=True, val_per_class=4, seed=0):
    """``root/<class>/*.jpg`` (or ``root/train/<class>``, ``root/val/<class>``): ``per_class``
    usable images a class (``val_per_class`` in val/), the first of the first classes CMYK,
    grayscale and a PNG named .jpg; with ``salt``, a truncated JPEG in the first class, an empty
    file in the second and a README.txt (not an image) are added.

    Returns ``{"root", "classes", "counts": {"train"[, "validation"]: {class: n}},
    "labels": {relative path: label}, "boxes": {relative path: (x0, y0, x1, y1)},
    "bad": {relative path: reason}, "odd": {relative path: kind}, "num_images"}``.
    """
    root, rng = str(root), np.random.default_rng(seed)
    made = _made(root, classes)
    splits = {"train": ("train", per_class), "validation": ("val", val_per_class)}
    for split, (folder, count) in splits.items() if split_dirs else [("train", ("", per_class))]:
        made["counts"][split] = {}
        for label, name in enumerate(classes):
            for index in range(count):
                kind = _odd_kinds(salt, label, index)
                relative = os.path.join(folder, name, f"{name}_{index:03d}.jpg")
                array, box = picture(label, rng, size)
                write(os.path.join(root, relative), encode(array, kind))
                _note(made, relative, label, box, kind)
            made["counts"][split][name] = count
        if salt:
            for relative, kind in ((os.path.join(folder, classes[0], "truncated.jpg"),
                                    "truncated"),
                                   (os.path.join(folder, classes[1 % len(classes)],
                                                 "empty.jpg"), "empty")):
                write(os.path.join(root, relative), encode(picture(0, rng, size)[0], kind))
                made["bad"][relative] = "corrupt image"
    if salt:
        write(os.path.join(root, "README.txt"), b"not an image")
    made["num_images"] = len(made["labels"])
    return made


def _made(root, classes):
    return {"root": root, "classes": tuple(classes), "counts": {}, "labels": {}, "boxes": {},
            "bad": {}, "odd": {}}


def _note(made, relative, label, box, kind):
    made["labels"][relative] = label
    made["boxes"][relative] = box
    if kind != "jpeg":
        made["odd"][relative] = kind


def voc_tree(root, classes=("cat", "dog", "fox"), per_class=8, size=(48, 64), salt=True,
             seed=0):
    """``root/JPEGImages/*.jpg`` and ``root/Annotations/*.xml`` (1-based VOC coordinates), one
    object an image whose box is the drawn object; with ``salt``: a truncated JPEG
    ("corrupt image"), an image without XML ("missing annotation"), an image whose XML is
    broken ("unreadable annotation"), and a CMYK image (usable).

    Returns the dict of :func:`class_folders` (paths relative to ``root``); labels follow the
    sorted class names.
    """
    root, rng = str(root), np.random.default_rng(seed)
    made = _made(root, sorted(classes))
    order = {name: i for i, name in enumerate(sorted(classes))}
    for name in classes:
        for index in range(per_class):
            stem = f"{name}_{index:03d}"
            kind = "cmyk" if salt and index == 0 and name == classes[0] else "jpeg"
            array, box = picture(order[name], rng, size)
            relative = os.path.join("JPEGImages", f"{stem}.jpg")
            write(os.path.join(root, relative), encode(array, kind))
            write(os.path.join(root, "Annotations", f"{stem}.xml"),
                  xml_text(f"{stem}.jpg", array.shape[:2], [(name, box)], one_based=True).encode())
            _note(made, relative, order[name], box, kind)
    made["counts"]["train"] = {name: per_class for name in sorted(classes)}
    if salt:
        array, box = picture(0, rng, size)
        for stem, kind, xml, reason in (
                ("truncated", "truncated", True, "corrupt image"),
                ("no_xml", "jpeg", False, "missing annotation"),
                ("broken_xml", "jpeg", None, "unreadable annotation")):
            write(os.path.join(root, "JPEGImages", f"{stem}.jpg"), encode(array, kind))
            text = (xml_text(stem, array.shape[:2], [(classes[0], box)], one_based=True)
                    if xml else "<annotation><object><name>")
            if xml is not False:
                write(os.path.join(root, "Annotations", f"{stem}.xml"), text.encode())
            made["bad"][os.path.join("JPEGImages", f"{stem}.jpg")] = reason
    made["num_images"] = len(made["labels"])
    return made


# ----------------------------------------------------------------------------------------------
# ImageNet.


def _imagenet_images(root, train_dir, val_dir, wnids, train_per_class, val_per_class, size,
                     salt, rng):
    """Train images in ``train_dir/<wnid>/`` and flat validation images ``ILSVRC2012_val_N``
    (classes interleaved in a shuffled order) in ``val_dir``; the dict the builders return,
    with ``val_order`` (the wnid of val image N at index N - 1) and ``val_objects``."""
    order = {w: i for i, w in enumerate(sorted(wnids))}
    made = {"root": root, "wnids": tuple(sorted(wnids)),
            "descriptions": tuple(DESCRIPTIONS.get(w, w) for w in sorted(wnids)),
            "train": {}, "validation": {}, "boxes": {}, "sizes": {},
            "bad": {"train": {}, "validation": {}}, "odd": {}, "val_order": [],
            "val_objects": {}}
    for position, wnid in enumerate(wnids):
        for index in range(train_per_class):
            kind = _odd_kinds(salt, position, index)
            name = f"{wnid}_{1000 + 37 * index}.JPEG"
            array, box = picture(order[wnid], rng, size)
            relative = os.path.relpath(write(os.path.join(train_dir, wnid, name),
                                             encode(array, kind)), root)
            made["train"][relative], made["sizes"][relative] = order[wnid], array.shape[:2]
            made["boxes"][relative] = [box]
            if kind != "jpeg":
                made["odd"][relative] = kind
    if salt:
        relative = os.path.relpath(write(os.path.join(train_dir, wnids[0], f"{wnids[0]}_9.JPEG"),
                                         encode(picture(0, rng, size)[0], "truncated")), root)
        made["bad"]["train"][relative] = "corrupt image"
    sequence = [w for w in wnids for _ in range(val_per_class)] + (
        [wnids[1 % len(wnids)]] if salt else [])
    rng.shuffle(sequence)
    for number, wnid in enumerate(sequence, start=1):
        kind = "truncated" if salt and number == len(sequence) else (
            "cmyk" if salt and number == 1 else "jpeg")
        array, box = picture(order[wnid], rng, size)
        objects = [(wnid, box)]
        if number == 2:  # a second box of its class, and an object of another class
            objects += [(wnid, (1, 2, array.shape[1] // 2, array.shape[0] // 2)),
                        (wnids[(wnids.index(wnid) + 1) % len(wnids)], (0, 0, 5, 5))]
        relative = os.path.relpath(write(os.path.join(val_dir, f"ILSVRC2012_val_{number:08d}"
                                                      ".JPEG"), encode(array, kind)), root)
        made["val_order"].append(wnid)
        made["val_objects"][relative] = objects
        if kind == "truncated":
            made["bad"]["validation"][relative] = "corrupt image"
            continue
        made["validation"][relative], made["sizes"][relative] = order[wnid], array.shape[:2]
        made["boxes"][relative] = [b for w, b in objects if w == wnid]
        if kind != "jpeg":
            made["odd"][relative] = kind
    return made


def _train_xmls(made, xml_dir, train_dir, salt):
    """Box XMLs for every other train image (ILSVRC has them for some); with ``salt`` one names
    an unknown wnid as a second object. Images without one lose their box in ``made``."""
    problems = {}
    for index, relative in enumerate(sorted(made["train"])):
        if index % 2:
            made["boxes"][relative] = []
            continue
        wnid = made["wnids"][made["train"][relative]]
        objects = [(wnid, made["boxes"][relative][0])]
        if salt and index == 0:
            objects.append((UNKNOWN_WNID, (0, 0, 4, 4)))
            problems["unknown class"] = 1
        stem = os.path.splitext(os.path.basename(relative))[0]
        path = os.path.join(xml_dir, os.path.relpath(
            os.path.join(made["root"], relative), train_dir))
        write(os.path.splitext(path)[0] + ".xml",
              xml_text(stem, made["sizes"][relative], objects, folder=wnid).encode())
    made["box_problems"] = {"train": problems, "validation": {}}


def imagenet_loc_tree(root, wnids=WNIDS, train_per_class=5, val_per_class=3, size=(56, 72),
                      salt=True, test_images=2, seed=0):
    """The Kaggle ImageNet Object Localization Challenge layout (see
    ``vgg_keras.data.imagenet``), with ``LOC_val_solution.csv`` rows in a shuffled order and
    train box XMLs for every other train image.

    Returns ``{"root", "wnids" (sorted), "descriptions", "train": {relative path: label},
    "validation": {...}, "boxes": {relative path: [(x0, y0, x1, y1)] of its class},
    "sizes": {relative path: (height, width)}, "bad": {split: {relative path: reason}},
    "box_problems": {split: {reason: count}}, "odd": {relative path: kind}, ...}``.
    """
    root, rng = str(root), np.random.default_rng(seed)
    data = os.path.join(root, "ILSVRC", "Data", "CLS-LOC")
    made = _imagenet_images(root, os.path.join(data, "train"), os.path.join(data, "val"), wnids,
                            train_per_class, val_per_class, size, salt, rng)
    _train_xmls(made, os.path.join(root, "ILSVRC", "Annotations", "CLS-LOC", "train"),
                os.path.join(data, "train"), salt)
    with open(os.path.join(root, "LOC_synset_mapping.txt"), "w", encoding="utf-8") as out:
        out.writelines(f"{w} {DESCRIPTIONS.get(w, w)}\n" for w in sorted(wnids))
    rows = list(made["val_objects"].items())
    rng.shuffle(rows)
    with open(os.path.join(root, "LOC_val_solution.csv"), "w", encoding="utf-8") as out:
        out.write("ImageId,PredictionString\n")
        for relative, objects in rows:
            groups = " ".join(f"{w} {x0} {y0} {x1} {y1}" for w, (x0, y0, x1, y1) in objects)
            out.write(f"{os.path.splitext(os.path.basename(relative))[0]},{groups} \n")
    for number in range(1, test_images + 1):
        write(os.path.join(data, "test", f"ILSVRC2012_test_{number:08d}.JPEG"),
              encode(picture(0, rng, size)[0]))
    return made


def ilsvrc2012_tree(root, wnids=WNIDS, train_per_class=5, val_per_class=3, size=(56, 72),
                    salt=True, devkit="folder", bbox=True, seed=0):
    """The ILSVRC2012 archives unpacked under ``root`` (see ``vgg_keras.data.imagenet``): a flat
    ``val/``, the devkit (``devkit="folder"``: ``root/ILSVRC2012_devkit_t12/``; ``"archive"``:
    ``root/downloads/ILSVRC2012_devkit_t12.tar.gz``; None: no devkit) whose ILSVRC2012_IDs
    number ``wnids`` in the given, unsorted order (plus one non-leaf synset), and with ``bbox``
    the box XMLs in ``root/bbox/train/<wnid>/`` (every other image) and ``root/bbox/val/``.

    Returns the dict of :func:`imagenet_loc_tree`, plus ``"ids"``: {ILSVRC2012_ID: wnid}.
    """
    root, rng = str(root), np.random.default_rng(seed)
    made = _imagenet_images(root, os.path.join(root, "train"), os.path.join(root, "val"), wnids,
                            train_per_class, val_per_class, size, salt, rng)
    made["ids"] = {i: w for i, w in enumerate(wnids, start=1)}
    if bbox:
        _train_xmls(made, os.path.join(root, "bbox", "train"), os.path.join(root, "train"),
                    salt)
        for relative, objects in made["val_objects"].items():
            stem = os.path.splitext(os.path.basename(relative))[0]
            height_width = made["sizes"].get(relative, (size[0], size[1]))
            write(os.path.join(root, "bbox", "val", f"{stem}.xml"),
                  xml_text(stem, height_width, objects).encode())
    else:
        made["boxes"] = {k: [] for k in made["boxes"]}
        made["box_problems"] = {"train": {}, "validation": {}}
    if devkit is not None:
        files = devkit_files(wnids, made["val_order"])
        if devkit == "folder":
            for member, data in files.items():
                write(os.path.join(root, DEVKIT, member), data)
        else:
            _write_tar(os.path.join(root, "downloads", f"{DEVKIT}.tar.gz"), files)
    return made


def devkit_files(wnids, val_order):
    """``{"data/meta.mat": bytes, "data/ILSVRC2012_validation_ground_truth.txt": bytes}``:
    ILSVRC2012_ID i (1-based) is ``wnids[i - 1]``; one more synset, a WordNet ancestor with
    children, as the real meta.mat has 860 of them."""
    fields = ("ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images")
    synsets = np.empty((len(wnids) + 1, 1), dtype=[(f, "O") for f in fields])
    for i, wnid in enumerate(wnids):
        synsets[i, 0] = (np.array([[i + 1]], np.uint16), wnid, DESCRIPTIONS.get(wnid, wnid),
                         "a gloss", np.array([[0]], np.uint8), np.zeros((1, 0)), 0, 1300)
    synsets[len(wnids), 0] = (np.array([[len(wnids) + 1]], np.uint16), "n00001740", "entity",
                              "the root", np.array([[2]], np.uint8),
                              np.array([[1, 2]], np.uint16), 19, 0)
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, {"synsets": synsets})
    ids = {w: i for i, w in enumerate(wnids, start=1)}
    truth = "".join(f"{ids[w]}\n" for w in val_order)
    return {"data/meta.mat": buffer.getvalue(),
            "data/ILSVRC2012_validation_ground_truth.txt": truth.encode()}


def _write_tar(path, files):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        for member, data in files.items():
            info = tarfile.TarInfo(f"{DEVKIT}/{member}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
