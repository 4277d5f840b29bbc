"""Directory and TFDS sources, and every kind of bad input ImageNet has: each one is decoded
when that is possible, otherwise skipped with a count and its file named in the log; a missing
or empty source is an error before training starts."""

import io
import json
import logging
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import user_trees
import vgg_keras.data as data
import vgg_keras.progress
from vgg_keras.data import ops, probe_image, sources

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def listing_cache_dir(tmp_path_factory, monkeypatch):
    """Listing caches go to a folder of their own, never the user's home (nor a listed tree)."""
    folder = tmp_path_factory.mktemp("listing_cache")
    monkeypatch.setenv("VGG_KERAS_CACHE", str(folder))
    return folder


def picture(height=60, width=80, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.uniform(40, 200, (1, 1, 3))
    ramp = np.linspace(-30, 30, width)[None, :, None]
    return np.clip(base + ramp + rng.normal(0, 3, (height, width, 3)), 0, 255).astype(np.uint8)


def save(path, array, fmt="JPEG", mode=None, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    image.save(path, format=fmt, **kwargs)
    return path


def jpeg_bytes(array, **kwargs):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", **kwargs)
    return buffer.getvalue()


@pytest.fixture()
def messy_folder(tmp_path):
    """A class-folder tree with one file of every troublesome kind; returns (root, expected)."""
    root = tmp_path / "imagenet_like"
    good = {
        "n01/plain.JPEG": lambda p: save(p, picture(seed=1), quality=90),
        "n01/png_named_jpeg.JPEG": lambda p: save(p, picture(seed=2), "PNG"),
        "n01/cmyk.JPEG": lambda p: save(p, picture(seed=3), mode="CMYK", quality=95),
        "n02/gray.JPEG": lambda p: save(p, picture(seed=4), mode="L", quality=95),
        "n02/rgba.png": lambda p: save(
            p, np.dstack([picture(seed=5), np.full((60, 80), 7, np.uint8)]), "PNG"),
        "n02/palette.gif": lambda p: save(p, picture(seed=6), "GIF", mode="P"),
        "n02/tiny.JPEG": lambda p: save(p, picture(3, 2, seed=7), quality=95),
        "n02/extreme.JPEG": lambda p: save(p, picture(4, 900, seed=8), quality=95),
        "n02/sub/nested.jpg": lambda p: save(p, picture(seed=9), quality=90),
    }
    bad = {
        "n01/truncated.JPEG": ("corrupt image",
                               lambda p: open(p, "wb").write(jpeg_bytes(picture(seed=10))[:700])),
        "n01/garbage.JPEG": ("corrupt image", lambda p: open(p, "wb").write(RNG.bytes(3000))),
        "n02/empty.jpg": ("corrupt image", lambda p: open(p, "wb").write(b"")),
        "n02/tiff.jpg": ("unsupported format", lambda p: save(p, picture(seed=11), "TIFF")),
        # 52.5 megapixels, over the 50 a run reads (and the SavedModel decodes).
        "n02/huge.png": ("image too large", lambda p: Image.new("1", (7500, 7000)).save(p)),
    }
    for relative, make in good.items():
        path = str(root / relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        make(path)
    for relative, (_, make) in bad.items():
        path = str(root / relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        make(path)
    (root / "n02" / "notes.txt").write_text("not an image")
    return str(root), good, bad


def test_every_bad_file_is_decoded_or_skipped_counted_and_named(messy_folder, caplog):
    root, good, bad = messy_folder
    with caplog.at_level(logging.WARNING, logger="vgg_keras.data"):
        dataset = data.load(root, "train")
    meta = data.info(dataset)
    assert meta.num_examples == len(good) and meta.class_names == ("n01", "n02")
    assert meta.num_skipped == len(bad)
    for relative, (reason, _) in bad.items():
        assert os.path.join(root, relative) in meta.skipped[reason]
        assert relative.split("/")[-1] in caplog.text
    assert f"skipped {len(bad)}" in caplog.text
    # A whole epoch runs through the training pipeline, every image becomes an RGB crop.
    batches = data.train_pipeline(dataset, scale=(64, 80), crop=64, batch_size=1, seed=0)
    images = [x for x, _ in batches]
    assert len(images) == len(good)
    assert all(x.shape == (1, 64, 64, 3) for x in images)
    # ... and every evaluation mode, including a 4 x 900 picture and a 3 x 2 one.
    for mode in ("center", "dense", "multicrop"):
        assert len(list(data.eval_pipeline(dataset, test_scale=64, crop=64, mode=mode))) >= 1
    assert sum(x.shape[0] for x, _ in data.eval_pipeline(dataset, test_scale=64, crop=64)) == len(good)


def test_a_file_that_breaks_after_listing_does_not_end_the_epoch(tmp_path):
    for i in range(4):
        save(str(tmp_path / "cls" / f"{i}.jpg"), picture(seed=i))
    save(str(tmp_path / "other" / "o.jpg"), picture(seed=9))
    dataset = data.load(str(tmp_path))
    os.remove(tmp_path / "cls" / "1.jpg")                      # vanished
    (tmp_path / "cls" / "2.jpg").write_bytes(b"\xff\xd8\xff" + RNG.bytes(500))  # now garbage
    batches = data.train_pipeline(dataset, scale=64, crop=48, batch_size=1, seed=0)
    assert sum(1 for _ in batches) == 3
    assert sum(1 for _ in data.eval_pipeline(dataset, test_scale=64, crop=48)) == 1


def test_odd_formats_decode_to_the_right_rgb(messy_folder):
    root, _, _ = messy_folder
    decoded = {}
    for example in data.load(root, "train"):
        decoded[example["filename"].numpy().decode()] = ops.decode(example["image"]).numpy()
    for name in ("n01/cmyk.JPEG", "n02/gray.JPEG", "n02/rgba.png", "n01/png_named_jpeg.JPEG",
                 "n02/palette.gif"):
        reference = np.asarray(Image.open(os.path.join(root, name)).convert("RGB"), np.float32)
        got = decoded[name.replace("/", os.sep)]
        assert got.shape == reference.shape
        assert np.abs(got - reference).mean() < 2.0, name
    gray = decoded[os.path.join("n02", "gray.JPEG")]
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    assert decoded[os.path.join("n02", "tiny.JPEG")].shape == (3, 2, 3)


def test_unknown_synset_folders_are_skipped_with_a_label_map(messy_folder, tmp_path, caplog):
    root, good, _ = messy_folder
    mapping = tmp_path / "synsets.txt"
    mapping.write_text("n02 goldfish, Carassius auratus\nn99 never seen\n")
    with caplog.at_level(logging.WARNING, logger="vgg_keras.data"):
        dataset = data.load(root, "train", label_map=str(mapping))
    meta = data.info(dataset)
    assert meta.class_names == ("n02", "n99")
    assert meta.descriptions[0] == "goldfish, Carassius auratus"
    n01 = sum(1 for k in good if k.startswith("n01"))
    assert len(meta.skipped["unknown class"]) == n01 + 2  # + truncated and garbage in n01
    assert {int(ex["label"]) for ex in dataset} == {0}


def test_missing_and_empty_sources_fail_before_training(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such directory"):
        data.load(str(tmp_path / "nowhere"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="No image files"):
        data.load(str(empty))
    for name in ("cat", "dog"):
        broken = tmp_path / "broken" / name
        broken.mkdir(parents=True)
        (broken / "a.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(ValueError, match="No usable images.*2 corrupt image"):
        data.load(str(tmp_path / "broken"))
    with pytest.raises(ValueError, match="neither an existing directory nor a TFDS"):
        data.load("no_such_dataset_name")
    flat = tmp_path / "flat"
    flat.mkdir()
    save(str(flat / "a.jpg"), picture())
    with pytest.raises(ValueError, match="no class sub-directories"):
        data.load(str(flat))


def test_split_folders_and_hash_slices(tmp_path):
    for split, count in (("train", 10), ("val", 4)):
        for label in ("a", "b"):
            for i in range(count):
                save(str(tmp_path / split / label / f"{label}{i}.jpg"), picture(seed=i))
    assert data.info(data.load(str(tmp_path), "validation")).num_examples == 8
    head = data.load(str(tmp_path), "train[:75%]")
    tail = data.load(str(tmp_path), "train[75%:]")
    names = [{ex["filename"].numpy() for ex in ds} for ds in (head, tail)]
    assert len(names[0]) == 15 and len(names[1]) == 5 and not names[0] & names[1]
    again = {ex["filename"].numpy() for ex in data.load(str(tmp_path), "train[75%:]")}
    assert again == names[1]
    with pytest.raises(data.SplitNotFoundError, match="no test"):
        data.load(str(tmp_path), "test")


def voc_xml(objects, size=(80, 60)):
    parts = [f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>"]
    for name, box in objects:
        parts.append(f"<object><name>{name}</name><bndbox><xmin>{box[0]}</xmin><ymin>{box[1]}"
                     f"</ymin><xmax>{box[2]}</xmax><ymax>{box[3]}</ymax></bndbox></object>")
    return "".join(parts) + "</annotation>"


def test_voc_boxes_clipped_dropped_and_counted(tmp_path, caplog):
    root = tmp_path / "voc"
    for i in range(7):
        save(str(root / "JPEGImages" / f"img{i}.jpg"), picture(seed=i))
    annotations = {
        # Two boxes of one class; the second reaches outside the 80 x 60 image: clipped.
        "img0": voc_xml([("n01", (11, 7, 41, 31)), ("n01", (31, 21, 100, 70))]),
        # Inverted (xmin > xmax) and zero-area boxes dropped, the good one kept.
        "img1": voc_xml([("n02", (50, 10, 20, 30)), ("n02", (5, 5, 5, 30)),
                         ("n02", (1, 1, 80, 60))]),
        "img2": voc_xml([("n03_unknown", (1, 1, 10, 10))]),   # unknown synset -> no box left
        "img3": "<annotation><object><name>n01",               # malformed XML
        "img4": voc_xml([("n02", (1, 1, 40, 30)), ("n01", (41, 31, 80, 60))]),  # two classes
        "img5": voc_xml([("n01", ("a", 1, 10, 10)), ("n01", (2, 2, 20, 20))]),  # unreadable box
        # img6 has no annotation at all.
    }
    (root / "Annotations").mkdir()
    for stem, text in annotations.items():
        (root / "Annotations" / f"{stem}.xml").write_text(text)
    with caplog.at_level(logging.WARNING, logger="vgg_keras.data"):
        dataset = data.load(str(root), "train", label_map=["n01", "n02"])
    meta = data.info(dataset)
    assert meta.source == "voc" and meta.has_boxes and meta.num_examples == 4
    assert [os.path.basename(p) for p in meta.skipped["missing annotation"]] == ["img6.jpg"]
    assert [os.path.basename(p) for p in meta.skipped["no usable box"]] == ["img2.jpg"]
    assert [os.path.basename(p) for p in meta.skipped["unreadable annotation"]] == ["img3.jpg"]
    assert meta.box_problems == {"box clipped to the image": 1, "inverted box": 1,
                                 "zero-area box": 1, "unknown class": 1,
                                 "unreadable annotation": 1, "unreadable box": 1}
    assert "img6.jpg" in caplog.text and "img1.xml" in caplog.text
    found = {os.path.basename(ex["filename"].numpy().decode()): ex for ex in dataset}
    # VOC pixel indices are 1-based: (v - 1) / size.
    np.testing.assert_allclose(found["img0.jpg"]["boxes"].numpy(),
                               [[6 / 60, 10 / 80, 30 / 60, 40 / 80], [20 / 60, 30 / 80, 1, 1]],
                               atol=1e-6)
    np.testing.assert_allclose(found["img1.jpg"]["boxes"].numpy(), [[0, 0, 59 / 60, 79 / 80]],
                               atol=1e-6)
    assert int(found["img4.jpg"]["label"]) == 1 and found["img4.jpg"]["boxes"].shape == (1, 4)
    # Boxes reach the training pipeline.
    batches = data.train_pipeline(dataset, scale=64, crop=48, batch_size=4, boxes=True, seed=0)
    images, targets, weights = next(iter(batches))
    assert targets["box"].shape == (4, 4) and weights["box"].shape == (4,)


def test_an_object_without_a_class_name_is_skipped_not_a_class(tmp_path, caplog):
    root = tmp_path / "voc"
    for i in range(3):
        save(str(root / "JPEGImages" / f"img{i}.jpg"), picture(seed=i))
    (root / "Annotations").mkdir()
    for i, name in enumerate(["cat", "dog", ""]):
        (root / "Annotations" / f"img{i}.xml").write_text(voc_xml([(name, (1, 1, 40, 30))]))
    with caplog.at_level(logging.WARNING, logger="vgg_keras.data"):
        meta = data.info(data.load(str(root), "train"))
    assert meta.class_names == ("cat", "dog") and meta.num_examples == 2
    assert meta.box_problems["object without a class name"] == 1 and "img2.xml" in caplog.text


def test_xml_beside_images_and_class_names_from_all_files(tmp_path):
    for i, name in enumerate(["dog", "cat", "dog"]):
        save(str(tmp_path / f"p{i}.jpg"), picture(seed=i))
        (tmp_path / f"p{i}.xml").write_text(voc_xml([(name, (5, 5, 50, 40))]))
    dataset = data.load(str(tmp_path))
    meta = data.info(dataset)
    assert meta.class_names == ("cat", "dog") and meta.num_examples == 3
    assert sorted(int(ex["label"]) for ex in dataset) == [0, 1, 1]


def test_boxes_needs_a_source_with_boxes(tmp_path):
    save(str(tmp_path / "a" / "x.jpg"), picture())
    save(str(tmp_path / "b" / "y.jpg"), picture())
    dataset = data.load(str(tmp_path))
    with pytest.raises(ValueError, match="bounding boxes"):
        data.train_pipeline(dataset, scale=64, crop=48, batch_size=1, boxes=True)


def test_imagenet2012_through_tfds_without_boxes(monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(num_examples=6):
        dataset = data.load("imagenet2012", "validation")
        meta = data.info(dataset)
        assert meta.num_classes == 1000 and meta.class_names[0] == "n01440764"
        assert not meta.has_boxes
        images, labels = next(iter(data.train_pipeline(dataset, scale=(64, 80), crop=48,
                                                       batch_size=3, seed=0)))
        assert images.shape == (3, 48, 48, 3) and labels.dtype == tf.int32


# ----------------------------------------------------------------------------------------------
# The test trees the end-to-end tests reuse, the listing cache, and bad input at the data level.


def test_user_trees_load_exactly_as_described(tmp_path):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=6, split_dirs=True)
    for split, folder in (("train", "train"), ("validation", "val")):
        dataset = data.load(tree["root"], split)
        meta = data.info(dataset)
        assert meta.class_names == tree["classes"] == ("cat", "dog", "fox")
        assert meta.num_examples == sum(tree["counts"][split].values()) == {
            "train": 18, "validation": 12}[split]
        skipped = sorted(os.path.relpath(p, tree["root"]) for p in meta.skipped["corrupt image"])
        assert skipped == sorted(k for k in tree["bad"] if k.startswith(folder + os.sep))
        labels = {ex["filename"].numpy().decode(): int(ex["label"]) for ex in dataset}
        assert labels == {k: v for k, v in tree["labels"].items() if k.startswith(folder)}
    voc = user_trees.voc_tree(tmp_path / "voc", per_class=3)
    dataset = data.load(voc["root"], "train")
    meta = data.info(dataset)
    assert meta.num_examples == voc["num_images"] == 9 and meta.num_skipped == len(voc["bad"])
    for example in dataset:
        name = example["filename"].numpy().decode()
        x0, y0, x1, y1 = voc["boxes"][name]
        height, width = ops.decode(example["image"]).shape[:2]
        # 1-based VOC pixels in the XML: (v - 1) / size, so the last pixel is (x1 - 1) / width.
        np.testing.assert_allclose(example["boxes"].numpy(), [[
            y0 / height, x0 / width, (y1 - 1) / height, (x1 - 1) / width]], atol=1e-6)
        assert int(example["label"]) == voc["labels"][name]


def listing_of(root, split="train", **kwargs):
    dataset = data.load(root, split, **kwargs)
    meta = data.info(dataset)
    found = {ex["filename"].numpy().decode(): int(ex["label"]) for ex in dataset}
    return meta, found


def test_a_second_listing_reuses_the_probes_and_reprobes_only_changed_files(
        tmp_path, listing_cache_dir, monkeypatch, caplog):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=6)  # 18 good + 2 corrupt
    first, found = listing_of(tree["root"])
    assert first.listing == {"probed": 20, "cached": 0}
    calls = []
    monkeypatch.setattr(sources.probe, "probe_image",
                        lambda path, validate: calls.append(path) or probe_image(path, validate))
    with caplog.at_level(logging.INFO, logger="vgg_keras.data"):
        second, found_again = listing_of(tree["root"])
    assert second.listing == {"probed": 0, "cached": 20} and calls == []
    assert found_again == found and second.skipped == first.skipped  # still named and counted
    assert "reused 20 cached probes, probed 0 files" in caplog.text
    assert "truncated.jpg: corrupt image" in caplog.text
    # A changed file is validated again (now truncated), a touched one too; nothing else.
    changed = os.path.join(tree["root"], "fox", "fox_003.jpg")
    data_bytes = open(changed, "rb").read()
    open(changed, "wb").write(data_bytes[:len(data_bytes) // 2])
    touched = os.path.join(tree["root"], "dog", "dog_002.jpg")
    os.utime(touched, ns=(os.stat(touched).st_atime_ns, os.stat(touched).st_mtime_ns + 10**9))
    third, _ = listing_of(tree["root"])
    assert third.listing == {"probed": 2, "cached": 18} and sorted(calls) == [touched, changed]
    assert changed in third.skipped["corrupt image"] and third.num_examples == 17
    # A deleted file disappears from the cache as from the listing.
    os.remove(touched)
    fourth, _ = listing_of(tree["root"])
    assert fourth.listing == {"probed": 0, "cached": 19} and fourth.num_examples == 16
    caches = sorted(os.listdir(listing_cache_dir))
    assert len(caches) == 1 and caches[0].endswith(".json")  # written atomically: no .tmp left
    with open(os.path.join(listing_cache_dir, caches[0]), encoding="utf-8") as handle:
        assert len(json.load(handle)["entries"]) == 19
    # Another validate mode is another cache.
    assert listing_of(tree["root"], validate="header")[0].listing == {"probed": 19, "cached": 0}


def test_a_broken_or_unwritable_cache_is_a_warning_not_an_error(tmp_path, listing_cache_dir,
                                                                monkeypatch, caplog):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=2, salt=False)
    listing_of(tree["root"])
    (cache,) = listing_cache_dir.iterdir()
    cache.write_text('{"key": [1, "/elsewhere"')
    with caplog.at_level(logging.WARNING, logger="vgg_keras.data"):
        meta, _ = listing_of(tree["root"])
    assert meta.listing == {"probed": 6, "cached": 0} and meta.num_examples == 6
    assert f"ignoring the unreadable listing cache {cache}" in caplog.text
    assert listing_of(tree["root"])[0].listing == {"probed": 0, "cached": 6}  # rewritten
    blocked = tmp_path / "a_file"
    blocked.write_text("")
    monkeypatch.setenv("VGG_KERAS_CACHE", str(blocked / "listings"))
    with caplog.at_level(logging.WARNING, logger="vgg_keras.data"):
        meta, _ = listing_of(tree["root"])
    assert meta.num_examples == 6 and "cannot write the listing cache" in caplog.text


def test_one_class_and_classes_without_usable_images_are_errors(tmp_path):
    save(str(tmp_path / "single" / "cat" / "a.jpg"), picture())
    with pytest.raises(ValueError, match="needs at least two classes") as raised:
        data.load(str(tmp_path / "single"))
    assert f"'{tmp_path / 'single'}' has 1 class ('cat')" in str(raised.value)
    root = tmp_path / "pets"
    for i in range(3):
        save(str(root / "cat" / f"{i}.jpg"), picture(seed=i))
        (root / "dog").mkdir(exist_ok=True)
        (root / "dog" / f"{i}.jpg").write_bytes(jpeg_bytes(picture(seed=i))[:300])
    (root / "fox").mkdir()
    with pytest.raises(ValueError, match="without a usable image") as raised:
        data.load(str(root))
    message = str(raised.value)
    assert "'dog' (3 files, none decodable)" in message and "'fox' (no image files)" in message
    # Not taken for a missing split: the scripts would hold out train and hide the problem.
    assert "split" not in message.lower()
    # A slice that happens to leave a class out is fine.
    (root / "fox" / "0.jpg").write_bytes(jpeg_bytes(picture(seed=7)))
    shutil.rmtree(root / "dog")
    meta = data.info(data.load(str(root), "train[:1]"))
    assert meta.num_examples == 1 and meta.num_classes == 2


@pytest.mark.parametrize("text", ["/does/not/exist", "~/no_such_vgg_keras_folder", "./nowhere",
                                  "data/nowhere"])
def test_a_data_path_that_does_not_exist_is_named(text):
    with pytest.raises(FileNotFoundError, match="No such directory") as raised:
        data.load(text, "train")
    assert repr(text) in str(raised.value)
    if text.startswith(("~", ".", "data")):  # and where it was looked for
        assert os.path.abspath(os.path.expanduser(text)) in str(raised.value)


def test_listing_and_statistics_report_progress_and_a_summary(tmp_path, caplog, capsys,
                                                               monkeypatch):
    monkeypatch.setattr(vgg_keras.progress, "_quiet", False)
    tree = user_trees.class_folders(tmp_path / "pets", per_class=4)  # 12 good + 2 corrupt
    with caplog.at_level(logging.INFO, logger="vgg_keras.data"):
        dataset = data.load(tree["root"], "train")
    assert f"{tree['root']} [train]: 12 images, 3 classes (2 skipped)" in caplog.text
    assert data.compute_statistics(dataset).num_images == 12
    shown = capsys.readouterr().err
    assert f"validating 14 files under {tree['root']}" in shown and "14/14" in shown
    assert "statistics" in shown and "12/12" in shown


def test_load_with_info_and_a_new_source_kind_registered_before_the_others(tmp_path,
                                                                            monkeypatch):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=4)
    dataset, meta = data.load(tree["root"], "train", with_info=True)
    assert meta is data.info(dataset) and meta.source == "folder" and meta.num_examples == 12
    batches = data.eval_pipeline(dataset, test_scale=40, crop=32, batch_size=4)
    assert data.info(batches) is meta  # the pipelines carry it along

    class Marked(sources.FolderSource):
        """Class folders holding a MARKED file: one module and one registration line."""

        name = "marked"

        def matches(self, request):
            return request.is_dir and os.path.exists(os.path.join(request.path, "MARKED"))

        def load(self, request, **options):
            dataset, meta = super().load(request, **options)
            meta.source = "marked"
            return dataset, meta

    monkeypatch.setattr(sources.registry, "SOURCES", list(sources.SOURCES))
    sources.register_source(Marked(), before="imagenet")
    assert [s.name for s in sources.registry.SOURCES] == [
        "marked", "imagenet", "voc", "folder", "tfds"]
    assert data.info(data.load(tree["root"])).source == "folder"
    open(os.path.join(tree["root"], "MARKED"), "w").close()
    assert data.info(data.load(tree["root"])).source == "marked"
    with pytest.raises(ValueError, match="not yet registered"):
        sources.register_source(Marked())
    with pytest.raises(ValueError, match="No registered source 'nope'"):
        sources.register_source(type("Other", (Marked,), {"name": "other"})(), before="nope")
