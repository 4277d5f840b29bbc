"""The embedded dataset: procedurally drawn shapes with one labelled, boxed object per image.

Every image holds one of ten shapes (``CLASS_NAMES``) over a cluttered, smoothly varying
background. The object's colour, size, aspect, rotation and position are drawn independently
of its class, and its colour is only constrained to stand out from the background under it,
so a model has to learn the silhouette: colour and position carry no information about the
class. Images vary in size and aspect ratio (shorter side 80-160 pixels, longer side up to
1.6x that, either orientation), so that isotropic rescaling to a training scale S (72-96 for
64-pixel crops) matters as it does for ImageNet. They are JPEG-encoded (quality 75-95).

Everything is a pure function of ``(seed, split, index)``: one ``numpy`` generator per image,
so the data is the same on every machine, whatever the order or parallelism of generation.

>>> image, label, box = draw_example(np.random.default_rng(0))
>>> CLASS_NAMES[label], image.dtype, box.shape
(..., dtype('uint8'), (4,))
>>> jpeg, label, box, (height, width) = make_example(seed=0, split="train", index=7)

The TFDS builder around it is in :mod:`vgg_keras.data.sources.vgg_shapes` (``vgg_shapes``).
A harder configuration, 66 classes that differ only in how parts are arranged, in clutter of the
same parts and on larger images, is :mod:`vgg_keras.data.embedded_hard` (``vgg_shapes/hard``).
"""

from __future__ import annotations

import functools
import io
import math
import zlib

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = (
    "circle", "square", "triangle", "diamond", "star",
    "cross", "ring", "crescent", "arrow", "heart",
)
"""The ten shape classes, in label order."""

MIN_SIDE, MAX_SIDE = 80, 160
"""Range of the shorter image side in pixels (uniform integers)."""

MAX_ASPECT = 1.6
"""Largest ratio of the longer to the shorter side (log-uniform from 1)."""

OBJECT_FRACTION = (0.35, 0.7)
"""Range of the object's larger extent, as a fraction of the image's shorter side."""

CENTRE_SPREAD = 0.6
"""Share of the possible range of the object's centre (each axis) that it is drawn from."""

JPEG_QUALITY = (75, 95)

MIN_CONTRAST = 60.0
"""Least luma difference (0-255) between the object and the background it covers."""

# Rotation range in degrees per class. Square and diamond differ only by 45 degrees, so both
# stay within +-15; shapes whose class survives any rotation turn freely.
_ROTATION = {
    "circle": 180, "square": 15, "triangle": 180, "diamond": 15, "star": 180,
    "cross": 15, "ring": 180, "crescent": 180, "arrow": 180, "heart": 20,
}

_SUPERSAMPLE = 3  # masks are drawn this much larger and box-filtered down: smooth edges.
_SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


def _circle(n=48):
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _star(points=5, inner=0.45):
    t = np.linspace(0.0, 2.0 * math.pi, 2 * points, endpoint=False) - math.pi / 2
    radius = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radius * np.cos(t), radius * np.sin(t)], axis=1)


def _heart(n=64):
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return np.stack([x, y], axis=1) / 16.0


# Each shape is a list of (polygon, fill) drawn in order on the mask: fill 1 adds, 0 cuts.
# Coordinates are (x, y) in about [-1, 1]; the drawing code rescales to the exact target box.
_SHAPES = {
    "circle": [(_circle(), 1)],
    "square": [(np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float), 1)],
    "triangle": [(np.array([[0, -1], [1, 0.8], [-1, 0.8]], float), 1)],
    "diamond": [(np.array([[0, -1], [1, 0], [0, 1], [-1, 0]], float), 1)],
    "star": [(_star(), 1)],
    "cross": [(np.array([[-0.33, -1], [0.33, -1], [0.33, -0.33], [1, -0.33], [1, 0.33],
                         [0.33, 0.33], [0.33, 1], [-0.33, 1], [-0.33, 0.33], [-1, 0.33],
                         [-1, -0.33], [-0.33, -0.33]], float), 1)],
    "ring": [(_circle(), 1), (0.55 * _circle(), 0)],
    "crescent": [(_circle(), 1), (0.85 * _circle() + [0.55, -0.1], 0)],
    "arrow": [(np.array([[-1, -0.25], [0.15, -0.25], [0.15, -0.7], [1, 0], [0.15, 0.7],
                         [0.15, 0.25], [-1, 0.25]], float), 1)],
    "heart": [(_heart(), 1)],
}


@functools.lru_cache(maxsize=1)
def _noise_tile():
    """Standard normal noise, fixed (its own seed), large enough for any image."""
    side = int(MAX_SIDE * MAX_ASPECT) + 1
    return np.random.default_rng(20150410).standard_normal((side, side, 3), dtype=np.float32)


def _luma(rgb):
    return float(np.dot(rgb, (0.299, 0.587, 0.114)))


def _background(rng, height, width):
    """Smooth multi-scale colour noise with a few thin strokes: cluttered, shapeless."""
    # Low-frequency "scenery": random grids upsampled bicubically, coarse ones strongest. The
    # variation is mostly shared by the three channels (light and shade) with a weaker colour
    # part, as in photographs, whose RGB covariance is dominated by one luminance component.
    base = rng.uniform(60.0, 195.0) + rng.normal(0.0, 25.0, 3)
    # Summed at a quarter of the size and upsampled once: the octaves are smooth anyway.
    small = (max(8, width // 4), max(8, height // 4))
    image = np.zeros((small[1], small[0], 3), np.float32) + base.astype(np.float32)
    for cells, amplitude in ((2, 50.0), (5, 30.0), (11, 16.0)):
        grid = rng.normal(0.0, amplitude, (cells, cells, 1)) + rng.normal(
            0.0, 0.45 * amplitude, (cells, cells, 3))
        grid = np.clip(128.0 + grid, 0, 255).astype(np.uint8)
        image += np.asarray(Image.fromarray(grid).resize(small, Image.BICUBIC), np.float32)
        image -= 128.0
    canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.BICUBIC)
    draw = ImageDraw.Draw(canvas)
    # Clutter: thin lines and arcs, far thinner than any object, so they are never a shape.
    for _ in range(rng.integers(3, 9)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        stroke = int(rng.integers(1, 3))
        x0, x1 = rng.uniform(-0.1, 1.1, 2) * width
        y0, y1 = rng.uniform(-0.1, 1.1, 2) * height
        if rng.random() < 0.5:
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=stroke)
        else:
            box = [min(x0, x1), min(y0, y1), max(x0, x1) + 1, max(y0, y1) + 1]
            start = float(rng.uniform(0, 360))
            draw.arc(box, start, start + float(rng.uniform(60, 200)), fill=colour, width=stroke)
    return np.array(canvas, np.float32)  # writable: the object is painted in place


def _shape_mask(rng, name, box_height, box_width, centre_y, centre_x, window):
    """Anti-aliased alpha mask in [0, 1] of shape ``name`` filling the given extent, over the
    image region ``window = (top, left, bottom, right)`` (the object lies inside it)."""
    angle = math.radians(rng.uniform(-_ROTATION[name], _ROTATION[name]))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    parts = [(polygon @ rotation.T, fill) for polygon, fill in _SHAPES[name]]
    # Rescale the rotated outline so that its bounding box is exactly box_width x box_height.
    outline = parts[0][0]
    low, high = outline.min(axis=0), outline.max(axis=0)
    top, left, bottom, right = window
    size = np.array([box_width, box_height]) * _SUPERSAMPLE
    centre = np.array([centre_x - left, centre_y - top]) * _SUPERSAMPLE
    mask = Image.new("L", ((right - left) * _SUPERSAMPLE, (bottom - top) * _SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(mask)
    for polygon, fill in parts:
        points = (polygon - (low + high) / 2) / (high - low) * size + centre
        draw.polygon([tuple(p) for p in points], fill=255 * fill)
    mask = mask.resize((right - left, bottom - top), Image.BOX)
    return np.asarray(mask, np.float32) / 255.0


def _around_middle(rng, low, high):
    middle = (low + high) / 2
    return middle + (rng.random() - 0.5) * CENTRE_SPREAD * (high - low)


def draw_example(rng: np.random.Generator) -> tuple[np.ndarray, int, np.ndarray]:
    """Draw one image with rng: ``(uint8 image (H, W, 3), label, box)``.

    ``box`` is float32 ``[ymin, xmin, ymax, xmax]`` normalised to [0, 1], tight around the
    pixels the object covers (alpha > 0.5).
    """
    short = int(rng.integers(MIN_SIDE, MAX_SIDE + 1))
    long = int(round(short * math.exp(rng.uniform(0.0, math.log(MAX_ASPECT)))))
    height, width = (short, long) if rng.random() < 0.5 else (long, short)
    label = int(rng.integers(len(CLASS_NAMES)))
    name = CLASS_NAMES[label]

    image = _background(rng, height, width)
    extent = rng.uniform(*OBJECT_FRACTION) * short
    aspect = math.exp(rng.uniform(math.log(0.75), math.log(1.33)))
    box_width, box_height = extent * min(1.0, aspect), extent * min(1.0, 1.0 / aspect)
    # Anywhere the object fits, but nearer the middle (as photographers frame): the centre is
    # uniform over the middle CENTRE_SPREAD of the range, so random crops usually keep most of it.
    centre_x = _around_middle(rng, box_width / 2 + 1, width - box_width / 2 - 1)
    centre_y = _around_middle(rng, box_height / 2 + 1, height - box_height / 2 - 1)
    # Everything object-related happens in the pixel window around it: the rest is untouched.
    top, bottom = int(centre_y - box_height / 2), int(math.ceil(centre_y + box_height / 2))
    left, right = int(centre_x - box_width / 2), int(math.ceil(centre_x + box_width / 2))
    alpha = _shape_mask(rng, name, box_height, box_width, centre_y, centre_x,
                        (top, left, bottom, right))[..., None]
    region = image[top:bottom, left:right]

    # Colour independent of class; redrawn until it stands out from what it covers.
    covered = (region * alpha).sum((0, 1)) / max(float(alpha.sum()), 1e-6)
    for _ in range(50):
        colour = rng.uniform(0.0, 255.0, 3)
        if abs(_luma(colour) - _luma(covered)) >= MIN_CONTRAST:
            break
    else:
        colour = np.full(3, 255.0 if _luma(covered) < 128 else 0.0)
    # A soft shading gradient across the object, so its surface is not perfectly flat.
    direction = rng.normal(size=2)
    direction *= 25.0 / (extent * (np.linalg.norm(direction) + 1e-9))
    ramp_y = (np.arange(top, bottom, dtype=np.float32) - centre_y) * np.float32(direction[0])
    ramp_x = (np.arange(left, right, dtype=np.float32) - centre_x) * np.float32(direction[1])
    fill = colour.astype(np.float32) + (ramp_y[:, None] + ramp_x[None, :])[..., None]
    region += alpha * (fill - region)
    # Sensor-like noise, so that flat regions are not perfectly flat either: a window of a
    # fixed noise tile (drawing fresh Gaussian noise per pixel would dominate the cost).
    tile = _noise_tile()
    y0 = int(rng.integers(tile.shape[0] - height + 1))
    x0 = int(rng.integers(tile.shape[1] - width + 1))
    image += tile[y0:y0 + height, x0:x0 + width] * np.float32(rng.uniform(2.0, 6.0))
    image = np.clip(image + 0.5, 0, 255).astype(np.uint8)

    rows = np.flatnonzero((alpha[..., 0] > 0.5).any(axis=1)) + top
    cols = np.flatnonzero((alpha[..., 0] > 0.5).any(axis=0)) + left
    box = np.array(
        [rows[0] / height, cols[0] / width, (rows[-1] + 1) / height, (cols[-1] + 1) / width],
        np.float32,
    )
    return image, label, box


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of image ``index`` of ``split``: independent of every other image."""
    split_id = _SPLIT_IDS.get(split)
    if split_id is None:
        split_id = zlib.crc32(split.encode())
    return np.random.default_rng([int(seed), split_id, int(index)])


def make_example(seed: int, split: str,
                 index: int) -> tuple[bytes, int, np.ndarray, tuple[int, ...]]:
    """One encoded example: ``(jpeg bytes, label, box, (height, width))``.

    >>> a = make_example(0, "train", 3); b = make_example(0, "train", 3)
    >>> a[0] == b[0]
    True
    """
    rng = example_rng(seed, split, index)
    image, label, box = draw_example(rng)
    buffer = io.BytesIO()
    quality = int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue(), label, box, image.shape[:2]
