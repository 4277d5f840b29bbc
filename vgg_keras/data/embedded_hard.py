"""The embedded dataset's hard configuration, ``vgg_shapes/hard``: 66 classes that differ only
in structure, each an arrangement of two or three parts, in clutter made of the same parts.

Five primitive parts (``PRIMITIVES``: circle, square, triangle, cross, ring) make every class:

* ``A_over_B``: A stacked above B (20 classes, A != B);
* ``A_in_B``: A inside B (16: B is a circle, square, triangle or ring, never a cross);
* ``A_beside_B``: A and B side by side, in either order (10, unordered);
* ``A_row3``, ``A_column3``, ``A_pyramid3``, ``A_vee3``: three A in a row, a column, a
  pyramid (one above two) and an inverted pyramid (two above one) (5 each).

Classes share their parts and differ in how the parts are arranged: ``circle_over_square``,
``square_over_circle``, ``circle_in_square``, ``square_in_circle`` and ``circle_beside_square``
are five classes of the same two parts. Every relation is invariant under a horizontal flip
(``beside`` is unordered), so the training pipeline's random flips never change a label. Parts
turn freely (a primitive stays itself under any rotation: a square at 45 degrees is still the
square part), the arrangement turns by at most +-10 degrees (so ``over`` stays ``over``).

Each image holds exactly one labelled object, whose box is the union of its parts, among 1-5
distractors: single primitives of the same five kinds, mostly smaller than the object's parts,
each kept at least its own size away from the object's box and from the other distractors (the
object's parts are a fraction of that apart), so that no arrangement is formed by chance and
which parts are present says little of the class. The distractors' kinds, sizes and number are
drawn independently of the class. Every part (object or distractor) has its own colour, drawn
independently of the class and only constrained to stand out from what it covers.

Scale: the object's larger extent is 0.3-0.75 of the image's shorter side (log-uniform), and
images are larger than the plain configuration's (shorter side 160-256 pixels, longer side up
to 1.5x that, either orientation), so that the training scale S and its jittering matter for
112-pixel crops: at S = 128 the smallest parts (in rows of three of the smallest objects) are
about 10 pixels across, at S = 256 they are 20 but the largest objects (192 pixels) no longer
fit in a crop. Background, shading, sensor noise and JPEG encoding are the plain
configuration's (:mod:`vgg_keras.data.embedded`).

Labels are exactly balanced: every block of ``NUM_CLASSES`` consecutive indices of a split holds
each class once, in an order drawn per block. Everything is a pure function of ``(seed, split,
index)``, as in the plain configuration.

>>> jpeg, label, box, (height, width) = make_example(seed=0, split="train", index=7)
>>> len(CLASS_NAMES), CLASS_NAMES[label] == CLASS_NAMES[example_label(0, "train", 7)]
(66, True)
>>> image, box, mask = draw_example(example_rng(0, "train", 7), label, with_mask=True)
>>> image.shape[2], bool(mask.any())
(3, True)

Design and measurements: ``docs/vgg_shapes_hard.md``.
"""

from __future__ import annotations

import functools
import io
import itertools
import math
import zlib

import numpy as np
from PIL import Image, ImageDraw

from . import embedded

PRIMITIVES = ("circle", "square", "triangle", "cross", "ring")
"""The parts every class is made of (and the distractors too)."""

CONTAINERS = ("circle", "square", "triangle", "ring")
"""The parts that can hold another (``A_in_B``); a cross has no room inside."""

TRIPLES = ("row3", "column3", "pyramid3", "vee3")
"""Arrangements of three copies of one part."""


def _class_specs():
    specs = []
    for a, b in itertools.permutations(PRIMITIVES, 2):
        specs.append((f"{a}_over_{b}", "over", (a, b)))
    for b in CONTAINERS:
        for a in PRIMITIVES:
            if a != b:
                specs.append((f"{a}_in_{b}", "in", (a, b)))
    for a, b in itertools.combinations(PRIMITIVES, 2):
        specs.append((f"{a}_beside_{b}", "beside", (a, b)))
    for arrangement in TRIPLES:
        for a in PRIMITIVES:
            specs.append((f"{a}_{arrangement}", arrangement, (a, a, a)))
    return tuple(specs)


_CLASS_SPECS = _class_specs()

CLASS_NAMES = tuple(name for name, _, _ in _CLASS_SPECS)
"""The 66 classes, in label order: 20 ``over``, 16 ``in``, 10 ``beside``, 4 x 5 triples."""

NUM_CLASSES = len(CLASS_NAMES)

MIN_SIDE, MAX_SIDE = 160, 256
"""Range of the shorter image side in pixels (uniform integers)."""

MAX_ASPECT = 1.5
"""Largest ratio of the longer to the shorter side (log-uniform from 1)."""

OBJECT_FRACTION = (0.3, 0.75)
"""Range of the object's larger extent, as a fraction of the shorter side (log-uniform)."""

NUM_DISTRACTORS = (1, 5)
"""Range of the number of distractor parts tried per image (uniform integers, inclusive); one
that finds no free place in 30 tries is left out."""

DISTRACTOR_RADIUS = (0.03, 0.12)
"""Range of a distractor's radius, as a fraction of the shorter side (log-uniform): the lower
part of the range of the object's part radii (0.04-0.14 in rows of three, 0.06-0.23 in pairs,
containers up to 0.38), so that distractors look like parts but rarely outsize the object's."""

JPEG_QUALITY = embedded.JPEG_QUALITY
MIN_CONTRAST = embedded.MIN_CONTRAST
CENTRE_SPREAD = embedded.CENTRE_SPREAD

MAX_TURN = 10.0
"""Largest rotation of the whole arrangement, in degrees (each part turns freely)."""

PART_GAP = (0.05, 0.3)
"""Gap between neighbouring parts of the object, as a fraction of their mean radius."""

DISTRACTOR_GAP = 1.0
"""Least gap between a distractor and the object's box or another distractor, in units of the
larger radius of the two (the object's parts are at most ``PART_GAP[1]`` of their radius apart,
so distractors never seem to extend an arrangement or form one)."""

_SUPERSAMPLE = 3
_PLACE_TRIES = 30
_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}
_TAG = zlib.crc32(b"vgg_shapes/hard")  # keeps these streams apart from the plain config's


def _regular(sides, start=-math.pi / 2):
    t = start + np.arange(sides) * 2.0 * math.pi / sides
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _cross(half_width=0.3):
    w, l = half_width, math.sqrt(1.0 - half_width ** 2)  # noqa: E741 (the figure's names)
    return np.array([[-w, -l], [w, -l], [w, -w], [l, -w], [l, w], [w, w], [w, l], [-w, l],
                     [-w, w], [-l, w], [-l, -w], [-w, -w]], float)


# Each primitive: (polygon, fill) pieces as in the plain config, all inside the unit circle
# (circumradius 1, centred), so that a part of radius r never reaches beyond r however it turns;
# and the radius of the largest centred disc inside it (where another part can sit).
_PRIMITIVES = {
    "circle": ([(_regular(48), 1)], 1.0),
    "square": ([(_regular(4, math.pi / 4), 1)], math.sqrt(0.5)),
    "triangle": ([(_regular(3), 1)], 0.5),
    "cross": ([(_cross(), 1)], 0.3),
    "ring": ([(_regular(48), 1), (0.55 * _regular(48), 0)], 0.55),
}
_INNER_FRACTION = (0.55, 0.75)  # an inner part's radius, as a fraction of that free disc


def example_label(seed: int, split: str, index: int) -> int:
    """The label of image ``index`` of ``split``: each class once per block of ``NUM_CLASSES``
    consecutive indices, in an order drawn per block.

    >>> sorted(example_label(0, "train", i) for i in range(NUM_CLASSES)) == list(range(66))
    True
    """
    block, position = divmod(int(index), NUM_CLASSES)
    order = np.random.default_rng([int(seed), _split_id(split), block, _TAG, 1]).permutation(
        NUM_CLASSES)
    return int(order[position])


def _split_id(split):
    split_id = _SPLIT_IDS.get(split)
    return zlib.crc32(split.encode()) if split_id is None else split_id


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator that draws image ``index`` of ``split``: independent of every other image
    (and of the plain configuration's image of the same index)."""
    return np.random.default_rng([int(seed), _split_id(split), int(index), _TAG])


@functools.lru_cache(maxsize=1)
def _noise_tile():
    side = int(MAX_SIDE * MAX_ASPECT) + 1
    return np.random.default_rng(20150410 + 1).standard_normal((side, side, 3), dtype=np.float32)


def _rotation(angle):
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


class _Part:
    """One primitive placed in the image plane: centre (x, y), radius and angle."""

    def __init__(self, kind, x, y, radius, angle):
        self.kind, self.x, self.y, self.radius, self.angle = kind, x, y, radius, angle

    def pieces(self):
        rotation = _rotation(self.angle).T * self.radius
        return [(polygon @ rotation + (self.x, self.y), fill)
                for polygon, fill in _PRIMITIVES[self.kind][0]]

    def support(self, direction):
        """How far the part reaches from its centre along the unit vector ``direction``."""
        outline = _PRIMITIVES[self.kind][0][0][0] @ _rotation(self.angle).T * self.radius
        return float((outline @ np.asarray(direction)).max())


def _arrangement(rng, relation, kinds):
    """The object's parts at unit scale (mean radius about 1), centred on the origin."""
    sizes = rng.uniform(0.85, 1.15, len(kinds))
    angles = rng.uniform(0.0, 2.0 * math.pi, len(kinds))
    parts = [_Part(k, 0.0, 0.0, float(s), float(a)) for k, s, a in zip(kinds, sizes, angles)]

    def after(first, second, direction):
        # second beside first along direction, a small gap between their outlines, and a
        # small offset across it.
        direction = np.asarray(direction, float)
        across = np.array([-direction[1], direction[0]])
        gap = rng.uniform(*PART_GAP) * (first.radius + second.radius) / 2
        distance = first.support(direction) + second.support(-direction) + gap
        shift = rng.uniform(-0.15, 0.15) * (first.radius + second.radius) / 2
        second.x, second.y = np.array([first.x, first.y]) + distance * direction + shift * across

    if relation == "in":
        inner, outer = parts
        inner.radius = outer.radius * _PRIMITIVES[outer.kind][1] * rng.uniform(*_INNER_FRACTION)
        parts = [outer, inner]  # the container is painted first
    elif relation in ("over", "column3"):
        for first, second in zip(parts, parts[1:]):
            after(first, second, (0.0, 1.0))
    elif relation == "beside":
        if rng.random() < 0.5:  # unordered: either part on the left
            parts.reverse()
        after(parts[0], parts[1], (1.0, 0.0))
    elif relation == "row3":
        for first, second in zip(parts, parts[1:]):
            after(first, second, (1.0, 0.0))
    elif relation in ("pyramid3", "vee3"):
        single, left, right = parts
        after(left, right, (1.0, 0.0))
        # The single part centred over (pyramid) or under (vee) the pair, clear of both.
        sign = -1.0 if relation == "pyramid3" else 1.0
        reach = max(left.support((0.0, -sign)), right.support((0.0, -sign)))
        gap = rng.uniform(*PART_GAP) * single.radius
        single.x = (left.x + right.x) / 2 + rng.uniform(-0.15, 0.15) * single.radius
        single.y = left.y + sign * (reach + single.support((0.0, sign)) + gap)
        parts = [left, right, single]
    else:
        raise ValueError(f"Unknown arrangement {relation!r}.")

    # The whole arrangement turns a little, about its middle.
    turn = math.radians(rng.uniform(-MAX_TURN, MAX_TURN))
    rotation = _rotation(turn)
    centres = np.array([[p.x, p.y] for p in parts])
    centres = (centres - centres.mean(0)) @ rotation.T
    for part, (x, y) in zip(parts, centres):
        part.x, part.y, part.angle = float(x), float(y), part.angle + turn
    return parts


def _extent(parts):
    points = np.concatenate([p.pieces()[0][0] for p in parts])
    return points.min(0), points.max(0)  # (xmin, ymin), (xmax, ymax)


def _paint(rng, image, part):
    """Paint ``part`` on ``image`` (float32, in place) in a colour drawn to stand out from what
    it covers; returns its alpha mask and the window ``(top, left)`` it lies in, or None when
    it lies outside the image."""
    height, width = image.shape[:2]
    pieces = part.pieces()
    low, high = pieces[0][0].min(0), pieces[0][0].max(0)
    left, top = max(0, int(math.floor(low[0]))), max(0, int(math.floor(low[1])))
    right = min(width, int(math.ceil(high[0])) + 1)
    bottom = min(height, int(math.ceil(high[1])) + 1)
    if right <= left or bottom <= top:
        return None
    mask = Image.new("L", ((right - left) * _SUPERSAMPLE, (bottom - top) * _SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(mask)
    for polygon, fill in pieces:
        # Pixel (i, j) covers [j, j+1) x [i, i+1): the supersampled grid's sample centres.
        points = (polygon - (left, top)) * _SUPERSAMPLE - 0.5
        draw.polygon(points.ravel().tolist(), fill=255 * fill)
    alpha = np.asarray(mask.resize((right - left, bottom - top), Image.BOX), np.float32)
    alpha = alpha[..., None] / np.float32(255.0)
    region = image[top:bottom, left:right]
    covered = (region * alpha).sum((0, 1)) / max(float(alpha.sum()), 1e-6)
    for _ in range(50):
        colour = rng.uniform(0.0, 255.0, 3)
        if abs(embedded._luma(colour) - embedded._luma(covered)) >= MIN_CONTRAST:
            break
    else:
        colour = np.full(3, 255.0 if embedded._luma(covered) < 128 else 0.0)
    # A soft shading gradient across the part, as in the plain configuration.
    direction = rng.normal(size=2)
    direction *= 25.0 / (2.0 * part.radius * (np.linalg.norm(direction) + 1e-9))
    ramp_y = (np.arange(top, bottom, dtype=np.float32) - part.y) * np.float32(direction[0])
    ramp_x = (np.arange(left, right, dtype=np.float32) - part.x) * np.float32(direction[1])
    fill = colour.astype(np.float32) + (ramp_y[:, None] + ramp_x[None, :])[..., None]
    region += alpha * (fill - region)
    return alpha[..., 0], (top, left)


def _place_distractors(rng, object_box, part_radius, height, width):
    """Distractor parts, as circles of their radius at least ``DISTRACTOR_GAP`` times the
    larger radius clear of the object's box (its parts' radius ``part_radius``) and of one
    another. Their kinds, sizes and number are drawn independently of the object, so the
    clutter says nothing of the class."""
    x0, y0, x1, y1 = object_box
    short = min(height, width)
    placed = []
    for _ in range(int(rng.integers(NUM_DISTRACTORS[0], NUM_DISTRACTORS[1] + 1))):
        kind = PRIMITIVES[int(rng.integers(len(PRIMITIVES)))]
        r = short * float(np.exp(rng.uniform(*np.log(DISTRACTOR_RADIUS))))
        angle = float(rng.uniform(0.0, 2.0 * math.pi))
        # 30 candidate centres at once; the first that is clear of everything is taken.
        x, y = rng.uniform(0.0, width, _PLACE_TRIES), rng.uniform(0.0, height, _PLACE_TRIES)
        # Distance from each centre to the object's box.
        clear = np.hypot(np.maximum(np.maximum(x0 - x, x - x1), 0.0),
                         np.maximum(np.maximum(y0 - y, y - y1), 0.0)) >= (
            r + DISTRACTOR_GAP * max(r, part_radius))
        for p in placed:
            clear &= np.hypot(x - p.x, y - p.y) >= r + p.radius + DISTRACTOR_GAP * max(r, p.radius)
        found = np.flatnonzero(clear)
        if found.size:
            placed.append(_Part(kind, float(x[found[0]]), float(y[found[0]]), r, angle))
    return placed


def draw_example(rng: np.random.Generator, label: int,
                 with_mask: bool = False) -> tuple[np.ndarray, ...]:
    """Draw one image of class ``label`` with ``rng``: ``(uint8 image (H, W, 3), box)``, and
    with ``with_mask`` the object's alpha mask (float32 (H, W), 1 on its parts) as well.

    ``box`` is float32 ``[ymin, xmin, ymax, xmax]`` normalised to [0, 1], tight around the
    pixels the object's parts cover (alpha > 0.5).
    """
    _, relation, kinds = _CLASS_SPECS[int(label)]
    short = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    long = int(round(short * math.exp(rng.uniform(0.0, math.log(MAX_ASPECT)))))
    height, width = (short, long) if rng.random() < 0.5 else (long, short)
    image = embedded._background(rng, height, width)

    # The object: its arrangement at unit scale, scaled to its extent and placed near the middle.
    parts = _arrangement(rng, relation, kinds)
    low, high = _extent(parts)
    extent = short * math.exp(rng.uniform(*np.log(OBJECT_FRACTION)))
    scale = extent / float((high - low).max())
    size_x, size_y = (high - low) * scale
    centre_x = embedded._around_middle(rng, size_x / 2 + 1, width - size_x / 2 - 1)
    centre_y = embedded._around_middle(rng, size_y / 2 + 1, height - size_y / 2 - 1)
    middle = (low + high) / 2
    for part in parts:
        part.x = float((part.x - middle[0]) * scale + centre_x)
        part.y = float((part.y - middle[1]) * scale + centre_y)
        part.radius *= scale
    object_box = (centre_x - size_x / 2, centre_y - size_y / 2,
                  centre_x + size_x / 2, centre_y + size_y / 2)
    # Distractors first (they never touch the object), then the object's parts in order.
    part_radius = max(p.radius for p in parts)
    for part in _place_distractors(rng, object_box, part_radius, height, width):
        _paint(rng, image, part)
    mask = np.zeros((height, width), np.float32)
    for part in parts:
        painted = _paint(rng, image, part)
        alpha, (top, left) = painted  # the object lies inside the image: always painted
        window = mask[top:top + alpha.shape[0], left:left + alpha.shape[1]]
        np.maximum(window, alpha, out=window)

    tile = _noise_tile()
    y0 = int(rng.integers(tile.shape[0] - height + 1))
    x0 = int(rng.integers(tile.shape[1] - width + 1))
    image += tile[y0:y0 + height, x0:x0 + width] * np.float32(rng.uniform(2.0, 6.0))
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)

    rows = np.flatnonzero((mask > 0.5).any(axis=1))
    cols = np.flatnonzero((mask > 0.5).any(axis=0))
    box = np.array(
        [rows[0] / height, cols[0] / width, (rows[-1] + 1) / height, (cols[-1] + 1) / width],
        np.float32,
    )
    return (image, box, mask) if with_mask else (image, box)


def make_example(seed: int, split: str,
                 index: int) -> tuple[bytes, int, np.ndarray, tuple[int, ...]]:
    """One encoded example: ``(jpeg bytes, label, box, (height, width))``, as
    :func:`vgg_keras.data.embedded.make_example`.

    >>> a = make_example(0, "train", 3); b = make_example(0, "train", 3)
    >>> a[0] == b[0]
    True
    """
    label = example_label(seed, split, index)
    rng = example_rng(seed, split, index)
    image, box = draw_example(rng, label)
    buffer = io.BytesIO()
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), label, box, image.shape[:2]
