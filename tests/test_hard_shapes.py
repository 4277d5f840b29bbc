"""The embedded dataset's hard configuration, ``vgg_shapes/hard``:
deterministic images, at least 50 balanced classes defined by structure, boxes that hold the
object's parts and nothing of the clutter, colour that says nothing of the class, and loading
through the registry at a small size."""

import collections
import concurrent.futures
import io
import itertools

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image, ImageDraw

import vgg_keras.data as data
from vgg_keras.data import embedded, embedded_hard as hard

SMALL = dict(num_train=132, num_validation=66, num_test=66, seed=1)


def draws(count, seed=0, split="train", start=0):
    """``(label, image, box, mask)`` of images ``start .. start + count`` (not JPEG-encoded)."""
    for index in range(start, start + count):
        label = hard.example_label(seed, split, index)
        image, box, mask = hard.draw_example(hard.example_rng(seed, split, index), label,
                                             with_mask=True)
        yield label, image, box, mask


def test_examples_are_deterministic_and_independent_of_the_order_of_generation():
    first = [hard.make_example(0, "train", i) for i in range(8)]
    # Again, in reverse order and on four threads: the same bytes, labels and boxes.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        again = list(pool.map(lambda i: hard.make_example(0, "train", i), reversed(range(8))))
    for a, b in zip(first, reversed(again)):
        assert a[0] == b[0] and a[1] == b[1] and np.array_equal(a[2], b[2]) and a[3] == b[3]
    # Another seed, split or index is another image; so is the plain config's same index.
    assert hard.make_example(1, "train", 0)[0] != first[0][0]
    assert hard.make_example(0, "validation", 0)[0] != first[0][0]
    assert len({jpeg for jpeg, *_ in first}) == 8
    assert embedded.make_example(0, "train", 0)[0] != first[0][0]
    # Sizes: shorter side in range, longer side within the aspect limit, both orientations.
    sizes = np.array([hard.make_example(0, "test", i)[3] for i in range(40)])
    assert sizes.min() >= hard.MIN_SIDE and sizes.min(1).max() <= hard.MAX_SIDE
    assert (sizes.max(1) <= np.ceil(sizes.min(1) * hard.MAX_ASPECT)).all()
    assert (sizes[:, 0] > sizes[:, 1]).any() and (sizes[:, 0] < sizes[:, 1]).any()


def test_at_least_50_classes_that_share_parts_and_differ_in_arrangement():
    names = hard.CLASS_NAMES
    assert len(names) == hard.NUM_CLASSES >= 50 and len(set(names)) == len(names)
    specs = hard._CLASS_SPECS
    # Structure alone defines a class: no two classes have the same arrangement of the same parts.
    assert len({(relation, parts) for _, relation, parts in specs}) == len(specs)
    # Every pair of different primitives makes at least four classes (over both ways, beside,
    # and in where one of them can hold the other): classes share parts.
    by_parts = collections.Counter(frozenset(parts) for _, relation, parts in specs
                                   if len(set(parts)) == 2)
    assert all(by_parts[frozenset(pair)] >= 4
               for pair in itertools.combinations(hard.PRIMITIVES, 2))
    # Every relation appears with every primitive in it.
    for relation in {relation for _, relation, _ in specs}:
        used = set().union(*(parts for _, r, parts in specs if r == relation))
        assert used == set(hard.PRIMITIVES)


def test_labels_are_balanced():
    # Exactly: each class once in each block of NUM_CLASSES consecutive indices.
    labels = [hard.example_label(0, "train", i) for i in range(3 * hard.NUM_CLASSES)]
    assert collections.Counter(labels) == {k: 3 for k in range(hard.NUM_CLASSES)}
    # Any window of a few hundred images is near-balanced: 400 from an unaligned start span
    # five whole blocks and two partial ones, so 5 to 7 of each class. The order within blocks
    # is not the same from block to block.
    window = [hard.example_label(0, "validation", i) for i in range(1000, 1400)]
    counts = np.bincount(window, minlength=hard.NUM_CLASSES)
    assert counts.min() >= 5 and counts.max() <= 7
    assert labels[:hard.NUM_CLASSES] != labels[hard.NUM_CLASSES:2 * hard.NUM_CLASSES]
    # make_example labels its image with that label.
    assert [hard.make_example(0, "train", i)[1] for i in range(5)] == labels[:5]


def test_box_is_the_union_of_the_parts_and_distractors_stay_clear_of_it():
    low, high = hard.OBJECT_FRACTION
    for label, image, box, mask in draws(40, seed=3):
        height, width = image.shape[:2]
        assert mask.shape == (height, width) and mask.max() > 0.99
        top, left = round(box[0] * height), round(box[1] * width)
        bottom, right = round(box[2] * height), round(box[3] * width)
        assert 0 <= top < bottom <= height and 0 <= left < right <= width
        inside = np.zeros_like(mask, bool)
        inside[top:bottom, left:right] = True
        # Every pixel of the object lies inside its box, and the box is tight: each edge
        # row / column holds object pixels.
        solid = mask > 0.5
        assert not (solid & ~inside).any()
        assert solid[top].any() and solid[bottom - 1].any()
        assert solid[:, left].any() and solid[:, right - 1].any()
        # Its larger extent is the drawn fraction of the shorter side (anti-aliasing aside).
        extent, short = max(bottom - top, right - left), min(height, width)
        assert low * short - 3 <= extent <= high * short + 3
    # Distractors never reach into the object's box (with a margin of their own size or the
    # object's parts', whichever is larger), nor come as close to one another as the object's
    # parts are.
    rng = np.random.default_rng(0)
    for _ in range(50):
        height, width = (int(v) for v in rng.integers(hard.MIN_SIDE, hard.MAX_SIDE, 2))
        x0, y0 = rng.uniform(0, width / 2), rng.uniform(0, height / 2)
        box = (x0, y0, x0 + rng.uniform(20, width / 2), y0 + rng.uniform(20, height / 2))
        part_radius = rng.uniform(3, 30)
        parts = hard._place_distractors(rng, box, part_radius, height, width)
        for part in parts:
            dx = max(box[0] - part.x, 0.0, part.x - box[2])
            dy = max(box[1] - part.y, 0.0, part.y - box[3])
            gap = hard.DISTRACTOR_GAP * max(part.radius, part_radius)
            assert np.hypot(dx, dy) >= part.radius + gap - 1e-9
        for a, b in itertools.combinations(parts, 2):
            gap = hard.DISTRACTOR_GAP * max(a.radius, b.radius)
            assert np.hypot(a.x - b.x, a.y - b.y) >= a.radius + b.radius + gap - 1e-9


def rasterised(part, scale=40, side=800):
    """The part's pixels (bool (side, side)) with the arrangement's origin in the middle."""
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    for polygon, fill in part.pieces():
        draw.polygon((polygon * scale + side / 2).ravel().tolist(), fill=255 * fill)
    return np.asarray(canvas) > 127


def test_arrangements_are_what_their_names_say():
    rng = np.random.default_rng(5)
    for name, relation, kinds in hard._CLASS_SPECS:
        for _ in range(3):
            parts = hard._arrangement(rng, relation, kinds)
            assert sorted(p.kind for p in parts) == sorted(kinds)
            masks = [rasterised(p) for p in parts]
            centres = np.array([[p.x, p.y] for p in parts])
            if relation == "in":
                outer, inner = masks  # the container first, the part inside it lies within
                container = parts[0]
                assert parts[1].kind == kinds[0] and container.kind == kinds[1]
                if container.kind == "ring":  # in the hole: inside the disc, off the band
                    assert not (inner & outer).any(), name
                    outer = rasterised(hard._Part("circle", container.x, container.y,
                                                  container.radius, 0.0))
                assert inner.any() and not (inner & ~outer).any(), name
                continue
            # Otherwise parts never touch: one visible piece each.
            assert sum(m.sum() for m in masks) == np.any(masks, axis=0).sum(), name
            dx, dy = np.abs(centres[1] - centres[0])
            if relation == "over":  # the first named part is the upper one
                assert parts[0].kind == kinds[0] and centres[0, 1] < centres[1, 1]
                assert dy > 2 * dx, name
            elif relation in ("beside", "row3"):
                assert dx > 2 * dy, name
            elif relation == "column3":
                assert dy > 2 * dx, name
            else:  # pyramid3 / vee3: the single part above / below the middle of the pair
                pair, single = centres[:2], centres[2]
                above = single[1] < pair[:, 1].min()
                assert above == (relation == "pyramid3"), name
                assert pair[:, 0].min() < single[0] < pair[:, 0].max(), name


def f_statistic(values, labels):
    """One-way ANOVA F of ``values`` (N, ...) grouped by ``labels``: about 1 when the groups'
    means differ only by chance, large when the label shifts the values."""
    values, labels = np.asarray(values, float), np.asarray(labels)
    groups = [values[labels == k] for k in np.unique(labels)]
    grand = values.mean(0)
    between = sum(len(g) * (g.mean(0) - grand) ** 2 for g in groups) / (len(groups) - 1)
    within = sum(((g - g.mean(0)) ** 2).sum(0) for g in groups) / (len(values) - len(groups))
    return between / within


def test_colour_carries_no_class_information():
    # Ten images per class: the mean colour inside the box, and of the whole image, per class.
    labels, box_colour, image_colour, aspect = [], [], [], []
    for label, image, box, _ in draws(10 * hard.NUM_CLASSES, seed=2):
        height, width = image.shape[:2]
        inner = image[round(box[0] * height):round(box[2] * height),
                      round(box[1] * width):round(box[3] * width)]
        labels.append(label)
        box_colour.append(inner.reshape(-1, 3).mean(0))
        image_colour.append(image.reshape(-1, 3).mean(0))
        aspect.append(np.log((box[3] - box[1]) * width / ((box[2] - box[0]) * height)))
    # Under "colour is independent of the class" F is about 1 (its 99.99% point for these
    # degrees of freedom, 65 and 594, is 1.87); every channel stays below 2.
    assert (f_statistic(box_colour, labels) < 2.0).all()
    assert (f_statistic(image_colour, labels) < 2.0).all()
    # The check has power: the box's shape, which the arrangement sets, is far from chance.
    assert f_statistic(aspect, labels) > 20


@pytest.fixture(scope="module")
def hard_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tfds")
    tfds.builder(data.EMBEDDED_NAME, config=data.shapes_config(**SMALL, hard=True),
                 data_dir=str(path)).download_and_prepare()
    return str(path)


def test_load_through_the_registry_at_a_small_size(hard_dir):
    name = f"{data.EMBEDDED_NAME}/hard_n132_66_66_s1"
    assert data.shapes_config(**SMALL, hard=True).name == name.split("/")[1]
    loaded = data.load(name, "validation", data_dir=hard_dir)
    meta = data.info(loaded)
    assert meta.source == "embedded" and meta.has_boxes and meta.num_examples == 66
    assert meta.class_names == hard.CLASS_NAMES and meta.num_classes == hard.NUM_CLASSES
    assert data.info(data.load(name, "train", data_dir=hard_dir)).num_examples == 132
    # What TFDS stored is what the generator draws for that seed, split and index; the
    # validation split holds each class once.
    labels = []
    for example in loaded:
        index = int(example["filename"].numpy().decode()[len("validation_"):-len(".jpg")])
        jpeg, label, box, size = hard.make_example(1, "validation", index)
        assert example["image"].numpy() == jpeg and int(example["label"]) == label
        np.testing.assert_allclose(example["boxes"].numpy(), [box], atol=1e-6)
        labels.append(label)
    assert sorted(labels) == list(range(hard.NUM_CLASSES))
    assert Image.open(io.BytesIO(jpeg)).size == size[::-1]
    # The named configs: the plain default unchanged, "hard" at its documented size.
    builder = tfds.builder(f"{data.EMBEDDED_NAME}/hard", data_dir=hard_dir)
    config = builder.builder_config
    assert (config.variant, config.num_train, config.num_validation, config.num_test) == (
        "hard", 13200, 1320, 1320)
    assert builder.info.features["label"].num_classes == hard.NUM_CLASSES
    plain = tfds.builder(data.EMBEDDED_NAME, data_dir=hard_dir)
    assert plain.builder_config.name == "default" and plain.builder_config.variant == "plain"
    assert plain.info.features["label"].names == list(embedded.CLASS_NAMES)


def test_pipeline_crops_hard_images_with_their_boxes(hard_dir):
    train = data.load(f"{data.EMBEDDED_NAME}/hard_n132_66_66_s1", "train", data_dir=hard_dir)
    batches = data.train_pipeline(train, scale=(128, 160), crop=112, batch_size=16, seed=0,
                                  boxes=True)
    images, targets, weights = next(iter(batches))
    assert images.shape == (16, 112, 112, 3) and targets["box"].shape == (16, 4)
    box = targets["box"].numpy()
    assert (box >= 0).all() and (box <= 1).all()
    # At S <= 160 a 112-pixel crop keeps some of nearly every object (placed near the middle).
    assert weights["box"].numpy().mean() >= 0.75
