"""ImageNet directories without TFDS, in the two layouts people have on disk (the Kaggle
localization challenge download, the ILSVRC2012 archives unpacked): labels in sorted-wnid order
whatever order the devkit and the CSV use, exact boxes, the awkward files skipped and counted,
and every way a ground-truth file can disagree with the images made a clear error."""

import os
import shutil

import numpy as np
import pytest

import user_trees
import vgg_keras.data as data


@pytest.fixture(autouse=True)
def listing_cache_dir(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("listing_cache")
    monkeypatch.setenv("VGG_KERAS_CACHE", str(folder))
    return folder


@pytest.fixture(scope="module")
def loc_tree(tmp_path_factory):
    return user_trees.imagenet_loc_tree(tmp_path_factory.mktemp("kaggle"))


@pytest.fixture(scope="module")
def ilsvrc_tree(tmp_path_factory):
    # The devkit as its archive, one folder below the root (a TFDS-style downloads/ folder).
    return user_trees.ilsvrc2012_tree(tmp_path_factory.mktemp("ilsvrc"), devkit="archive")


def examples(dataset):
    """{filename relative to the root: (label, boxes)} of every example."""
    return {ex["filename"].numpy().decode(): (int(ex["label"]), ex["boxes"].numpy())
            for ex in dataset}


def expected_boxes(tree, relative):
    """ImageNet pixel boxes normalised as ILSVRC counts them: ``v / size``."""
    height, width = tree["sizes"][relative]
    return np.array([[y0 / height, x0 / width, y1 / height, x1 / width]
                     for x0, y0, x1, y1 in tree["boxes"][relative]], np.float32).reshape(-1, 4)


def check_split(tree, split, source):
    dataset = data.load(tree["root"], split)
    meta = data.info(dataset)
    assert meta.source == source and meta.has_boxes
    assert meta.class_names == tree["wnids"] and meta.descriptions == tree["descriptions"]
    found = examples(dataset)
    assert {name: label for name, (label, _) in found.items()} == tree[split]
    for relative, (_, boxes) in found.items():
        np.testing.assert_allclose(boxes, expected_boxes(tree, relative), atol=1e-6,
                                   err_msg=relative)
    skipped = {reason: sorted(os.path.relpath(p, tree["root"]) for p in paths)
               for reason, paths in meta.skipped.items()}
    assert skipped == {"corrupt image": sorted(tree["bad"][split])}
    assert meta.box_problems == tree["box_problems"][split]
    return found


@pytest.mark.parametrize("layout,source", [("loc_tree", "imagenet-loc"),
                                           ("ilsvrc_tree", "ilsvrc2012")])
def test_labels_follow_sorted_wnids_boxes_are_exact_and_bad_files_counted(layout, source,
                                                                          request):
    tree = request.getfixturevalue(layout)
    assert tree["wnids"] != user_trees.WNIDS  # the devkit's and the CSV's order is not sorted
    train = check_split(tree, "train", source)
    validation = check_split(tree, "validation", source)
    # 5 per class, the truncated JPEG skipped; the CMYK, grayscale and PNG-named-.JPEG kept.
    assert len(train) == 20 and len(validation) == 12 and len(tree["odd"]) == 4
    # Half of the train images have a box XML; the others have none and stay usable.
    assert sum(len(boxes) > 0 for _, boxes in train.values()) == 10
    # Validation image 2 has two boxes of its class (and one of another class, not kept).
    assert len(validation[os.path.relpath(_val_path(tree, 2), tree["root"])][1]) == 2
    # ILSVRC2012_ID 1 (n02119789) is the third wnid in sorted order: label 2, not 0.
    first = [name for name, wnid in zip(sorted(validation), tree["val_order"])
             if wnid == user_trees.WNIDS[0]]
    assert first and all(validation[name][0] == 2 for name in first)


def _val_path(tree, number):
    folder = os.path.dirname(next(iter(tree["validation"])))
    return os.path.join(tree["root"], folder, f"ILSVRC2012_val_{number:08d}.JPEG")


def test_imagenet_trains_and_evaluates_with_boxes(loc_tree):
    train = data.load(loc_tree["root"], "train")
    boxed = sum(1 for r in loc_tree["train"] if loc_tree["boxes"][r])
    count, present = 0, 0.0
    for images, targets, weights in data.train_pipeline(train, scale=(48, 56), crop=40,
                                                        batch_size=10, boxes=True, seed=0):
        assert images.shape[1:] == (40, 40, 3) and targets["box"].shape[1:] == (4,)
        count += images.shape[0]
        present += float(weights["box"].numpy().sum())
    # Images without a box XML never teach the box head (weight 0); a crop may cut a box.
    assert count == 20 and boxed - 2 <= present <= boxed
    validation = data.load(loc_tree["root"], "validation")
    batches = list(data.eval_pipeline(validation, test_scale=48, crop=40, batch_size=5, boxes=True))
    assert sum(int(x.shape[0]) for x, _ in batches) == 12
    assert sum(int(y["num_boxes"].numpy().sum()) for _, y in batches) == 13
    assert len(list(data.eval_pipeline(validation, test_scale=48, crop=40, mode="multicrop"))) >= 1


def test_slices_and_other_roots_of_the_kaggle_layout(loc_tree):
    halves = [examples(data.load(loc_tree["root"], s)) for s in ("validation[:50%]",
                                                                  "validation[50%:]")]
    assert not set(halves[0]) & set(halves[1])
    # 13 files, the truncated one in one half; together every usable image.
    assert {**halves[0], **halves[1]}.keys() == loc_tree["validation"].keys()
    # The ILSVRC/Data/CLS-LOC folder (and ILSVRC/) find the challenge's files above them.
    for below in (("ILSVRC",), ("ILSVRC", "Data", "CLS-LOC")):
        meta = data.info(data.load(os.path.join(loc_tree["root"], *below), "validation"))
        assert meta.source == "imagenet-loc" and meta.num_examples == 12
    with pytest.raises(ValueError, match="labels are not public") as refused:
        data.load(loc_tree["root"], "test")
    assert "CLS-LOC/test" in str(refused.value)


def small_tree(kind, root, **kwargs):
    build = user_trees.imagenet_loc_tree if kind == "loc" else user_trees.ilsvrc2012_tree
    return build(root, train_per_class=1, val_per_class=2, salt=False, **kwargs)


def rewrite(path, change):
    with open(path, encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(change(lines)) + "\n")


def fails_clearly(root, split, match, error=ValueError):
    """The error names the problem, and not a missing split: the scripts hold out a slice of
    train when load's message mentions a split, which would hide a broken ground truth."""
    with pytest.raises(error, match=match) as raised:
        data.load(root, split)
    assert "split" not in str(raised.value).lower()
    return str(raised.value)


def test_kaggle_ground_truth_that_does_not_match_the_images(tmp_path):
    tree = small_tree("loc", tmp_path / "kaggle")
    root, csv = tree["root"], os.path.join(tree["root"], "LOC_val_solution.csv")
    original = open(csv, encoding="utf-8").read()
    rewrite(csv, lambda lines: lines[:-1])  # one row fewer than images
    message = fails_clearly(root, "validation", r"labels 7 images but .* holds 8")
    assert "LOC_val_solution.csv" in message and "no label for 1: ILSVRC2012_val_" in message
    rewrite(csv, lambda lines: lines + ["ILSVRC2012_val_00000099,n01440764 1 1 9 9"])
    fails_clearly(root, "validation", "no image for 1: ILSVRC2012_val_00000099")
    open(csv, "w", encoding="utf-8").write(original)
    rewrite(csv, lambda lines: lines[:3] + [lines[3].split(",")[0] + ",n09999999 1 1 9 9"]
            + lines[4:])
    fails_clearly(root, "validation", r"line 4: unknown wnid 'n09999999'")
    rewrite(csv, lambda lines: lines[:2] + [lines[2].split(",")[0] + ",n01440764 1 1"]
            + lines[3:])
    fails_clearly(root, "validation", r"line 3: expected groups of 'wnid xmin ymin xmax ymax'")
    os.remove(csv)
    fails_clearly(root, "validation", "LOC_val_solution.csv' is missing", FileNotFoundError)
    assert data.info(data.load(root, "train")).num_examples == 4  # train needs no CSV


def test_devkit_ground_truth_that_does_not_match_the_images(tmp_path):
    tree = small_tree("ilsvrc", tmp_path / "ilsvrc")
    root = tree["root"]
    truth = os.path.join(root, "ILSVRC2012_devkit_t12", "data",
                         "ILSVRC2012_validation_ground_truth.txt")
    original = open(truth, encoding="utf-8").read()
    rewrite(truth, lambda lines: lines[:-1])
    message = fails_clearly(root, "validation", r"labels 7 images but .* holds 8")
    assert "ILSVRC2012_validation_ground_truth.txt" in message
    open(truth, "w", encoding="utf-8").write(original)
    rewrite(truth, lambda lines: lines[:2] + ["99"] + lines[3:])
    fails_clearly(root, "validation", r"line 3: ILSVRC2012_ID 99 is out of range.* 1\.\.4")
    open(truth, "w", encoding="utf-8").write(original)
    assert data.info(data.load(root, "validation")).num_examples == 8
    # Without the devkit, flat validation images have no labels: say where it goes.
    shutil.rmtree(os.path.join(root, "ILSVRC2012_devkit_t12"))
    fails_clearly(root, "validation", "No ILSVRC2012_devkit_t12 folder or "
                                      "ILSVRC2012_devkit_t12.tar.gz", FileNotFoundError)
    meta = data.info(data.load(root, "train"))  # classes from the wnid folders, sorted
    assert meta.source == "ilsvrc2012" and meta.class_names == tree["wnids"]
    assert meta.descriptions == ()


def test_validation_sorted_into_wnid_folders_and_boxes_elsewhere(tmp_path):
    tree = small_tree("ilsvrc", tmp_path / "ilsvrc", devkit=None)
    root = tree["root"]
    for number, wnid in enumerate(tree["val_order"], start=1):
        name = f"ILSVRC2012_val_{number:08d}.JPEG"
        os.makedirs(os.path.join(root, "val", wnid), exist_ok=True)
        os.rename(os.path.join(root, "val", name), os.path.join(root, "val", wnid, name))
    found = examples(data.load(root, "validation"))
    labels = {os.path.basename(name): label for name, (label, _) in found.items()}
    assert labels == {os.path.basename(k): v for k, v in tree["validation"].items()}
    assert all(len(boxes) for _, boxes in found.values())  # bbox/val found by file name
    # The box XMLs may live anywhere: annotations= names the folder.
    os.rename(os.path.join(root, "bbox", "val"), os.path.join(root, "val_boxes"))
    without = data.info(data.load(root, "validation"))
    assert not without.has_boxes
    boxed = data.load(root, "validation", annotations=os.path.join(root, "val_boxes"))
    assert data.info(boxed).has_boxes and all(len(b) for _, b in examples(boxed).values())
    # A layout without a val/ folder has no validation split: the scripts hold out train.
    shutil.rmtree(os.path.join(root, "val"))
    with pytest.raises(data.SplitNotFoundError, match="no folder for split 'validation'"):
        data.load(root, "validation")
