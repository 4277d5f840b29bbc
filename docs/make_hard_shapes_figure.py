#!/usr/bin/env python
"""Draw docs/figures/vgg_shapes_hard.png: one image of each of 20 classes of the embedded
dataset's hard configuration (``vgg_shapes/hard``, :mod:`vgg_keras.data.embedded_hard`), its box
in red, chosen so that each row shows classes made of the same parts.

    python docs/make_hard_shapes_figure.py [--out docs/figures/vgg_shapes_hard.png]

Each image is the first of its class in the training split (seed 0), as stored (JPEG), shrunk to
fit a 176-pixel tile; the figure is a palette PNG 880 pixels wide and under 300 KB.
"""

import argparse
import io
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone without installing

from PIL import Image, ImageDraw, ImageFont  # noqa: E402

from vgg_keras.data import embedded_hard  # noqa: E402

CLASSES = (
    "circle_over_square", "square_over_circle", "circle_in_square", "square_in_circle",
    "circle_beside_square",
    "triangle_over_ring", "ring_over_triangle", "triangle_in_ring", "ring_in_triangle",
    "triangle_beside_ring",
    "cross_over_circle", "circle_over_cross", "cross_in_circle", "circle_beside_cross",
    "cross_row3",
    "square_row3", "square_column3", "square_pyramid3", "square_vee3", "ring_pyramid3",
)
"""Four rows of five: the same parts over, under, in, around and beside one another; then
the four arrangements of three copies of one part."""

COLUMNS = 5
TILE = 176
CAPTION = 16
MAX_BYTES = 300_000


def first_of_each_class(seed=0, split="train"):
    """``{label: index}``: the first index of each class in ``split``."""
    found, index = {}, 0
    while len(found) < embedded_hard.NUM_CLASSES:
        found.setdefault(embedded_hard.example_label(seed, split, index), index)
        index += 1
    return found


def tile(name, index, font):
    jpeg, label, box, (height, width) = embedded_hard.make_example(0, "train", index)
    assert embedded_hard.CLASS_NAMES[label] == name
    image = Image.open(io.BytesIO(jpeg)).convert("RGB")
    factor = min(TILE / width, TILE / height)
    size = (round(width * factor), round(height * factor))
    image = image.resize(size, Image.LANCZOS)
    ImageDraw.Draw(image).rectangle(
        [box[1] * size[0], box[0] * size[1], box[3] * size[0] - 1, box[2] * size[1] - 1],
        outline=(255, 0, 0))
    cell = Image.new("RGB", (TILE, TILE + CAPTION), (255, 255, 255))
    cell.paste(image, ((TILE - size[0]) // 2, CAPTION + (TILE - size[1]) // 2))
    ImageDraw.Draw(cell).text((2, 2), name, fill=(0, 0, 0), font=font)
    return cell


def draw(out):
    index_of = first_of_each_class()
    font = ImageFont.load_default()
    rows = -(-len(CLASSES) // COLUMNS)
    figure = Image.new("RGB", (COLUMNS * TILE, rows * (TILE + CAPTION)), (255, 255, 255))
    for k, name in enumerate(CLASSES):
        cell = tile(name, index_of[embedded_hard.CLASS_NAMES.index(name)], font)
        figure.paste(cell, ((k % COLUMNS) * TILE, (k // COLUMNS) * (TILE + CAPTION)))
    buffer = io.BytesIO()
    figure.quantize(256, method=Image.Quantize.MEDIANCUT).save(buffer, format="PNG",
                                                                optimize=True)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_bytes(buffer.getvalue())
    print(f"{out}: {figure.size[0]}x{figure.size[1]}, {len(buffer.getvalue()) / 1000:.0f} KB")
    if len(buffer.getvalue()) > MAX_BYTES:
        print(f"  warning: over {MAX_BYTES / 1000:.0f} KB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "vgg_shapes_hard.png"))
    draw(parser.parse_args(argv).out)


if __name__ == "__main__":
    main()
