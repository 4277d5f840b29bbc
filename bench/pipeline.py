"""Input pipeline throughput on ImageNet-like JPEGs, side by side in one run.

Generates a few hundred ~500x375 photo-like JPEGs (quality 90, about ImageNet's median size)
in a temporary directory and measures images per second of:

  (a) decoding each file whole (``tf.io.decode_jpeg``): the floor any pipeline that looks at
      every pixel pays;
  (b) ``vgg_keras.data.train_pipeline`` with S drawn from [256, 512] and 224 crops, flip and
      colour shift on (fused decode-and-crop: only the window the crop needs is decoded);
  (b') the same with flip and colour shift left to the accelerator (augment_on="device"),
       which is how a GPU run uses it;
  (c) the straightforward pipeline: decode whole, resize to S, random 224 crop, flip;
  (d) for reference, the fused decode of (b) alone: what skipping the rest of the file saves.

All read the same files with the same tf.data parallelism (AUTOTUNE), endlessly repeated; each
measurement warms up for one pass and times the next two (steady state). The pipelines are
run interleaved, several rounds, reporting the median, so that load from other processes falls
on all of them alike. Prints a markdown table.

    python bench/pipeline.py [--images 300] [--rounds 5]
"""

import argparse
import os
import platform
import statistics
import subprocess
import tempfile
import time

import numpy as np
import tensorflow as tf
from PIL import Image, ImageDraw

import vgg_keras.data as data
from vgg_keras.data import ops

CROP = 224
SCALE = (256, 512)


def photo_like(rng, height, width):
    """Smooth light and colour, clutter and sensor noise: compresses like a photograph."""
    small = rng.normal(128, 50, (6, 8, 1)) + rng.normal(0, 25, (6, 8, 3))
    image = np.asarray(Image.fromarray(np.clip(small, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.BICUBIC), np.float32)
    canvas = Image.fromarray(image.astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for _ in range(40):
        x0, x1 = rng.uniform(0, width, 2)
        y0, y1 = rng.uniform(0, height, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=int(rng.integers(1, 6)))
        else:
            draw.ellipse([min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)], outline=colour,
                         width=int(rng.integers(1, 4)))
    texture = rng.normal(0, 14, (height, width, 3))
    return np.clip(np.asarray(canvas, np.float32) + texture, 0, 255).astype(np.uint8)


def make_images(directory, count, seed=0):
    """``count`` JPEGs in two class folders (a source needs two classes); their paths, sorted,
    and sizes."""
    rng = np.random.default_rng(seed)
    paths, sizes = [], []
    for index in range(count):
        # Mostly landscape 500x375, some portrait, a few other sizes, as in ImageNet.
        shapes = [(375, 500), (500, 375), (333, 500), (400, 500)]
        height, width = shapes[index % 4 if index % 5 else 0]
        folder = os.path.join(directory, ("photos", "pictures")[index % 2])
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{index:05d}.JPEG")
        Image.fromarray(photo_like(rng, height, width)).save(path, quality=90)
        paths.append(path)
        sizes.append(os.path.getsize(path))
    return sorted(paths), sizes


def decode_whole(paths):
    def load(path):
        return tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
    # Whole images differ in size and cannot be batched; one element per image costs the
    # Python loop some 50 microseconds each, against milliseconds of decoding.
    return tf.data.Dataset.from_tensor_slices(paths).repeat().map(
        load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def window_only(paths, seed=0):
    """Only the fused decode of (b): the window each crop needs, without resampling it."""
    def load(index, path):
        contents = tf.io.read_file(path)
        key = tf.stack([tf.cast(seed, tf.int64), index])
        size = tf.image.extract_jpeg_shape(contents)[:2]
        rescaled = ops.rescaled_size(size, ops.sample_scale(key, SCALE))
        offset = ops.sample_offset(key, rescaled, CROP)
        window = ops.crop_window(size, rescaled, offset, CROP)
        return tf.io.decode_and_crop_jpeg(contents, window, channels=3)
    return tf.data.Dataset.from_tensor_slices(paths).repeat().enumerate().map(
        load, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def naive_pipeline(paths, seed=0):
    def load(index, path):
        image = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        key = tf.stack([tf.cast(seed, tf.int64), index])
        seeds = tf.random.experimental.stateless_split(key, 3)
        size = tf.random.stateless_uniform([], seeds[0], SCALE[0], SCALE[1] + 1, tf.int32)
        shape = tf.cast(tf.shape(image)[:2], tf.float32)
        new = tf.cast(tf.round(shape * tf.cast(size, tf.float32) / tf.reduce_min(shape)), tf.int32)
        image = tf.image.resize(image, new)
        image = tf.image.stateless_random_crop(image, [CROP, CROP, 3], seeds[1])
        return tf.image.stateless_random_flip_left_right(image, seeds[2])
    return tf.data.Dataset.from_tensor_slices(paths).repeat().enumerate().map(
        load, num_parallel_calls=tf.data.AUTOTUNE).batch(32).prefetch(tf.data.AUTOTUNE)


def count_images(element):
    first = element[0] if isinstance(element, tuple) else element
    return int(first.shape[0]) if first.shape.rank == 4 else 1


def images_per_second(dataset, count, passes=2):
    """Steady-state rate: one pass over the files to warm up (tf.data's autotuner starts every
    new iterator at low parallelism), then ``passes`` timed passes on the same iterator."""
    iterator = iter(dataset)
    seen = 0
    while seen < count:
        seen += count_images(next(iterator))
    start, seen = time.perf_counter(), 0
    while seen < passes * count:
        seen += count_images(next(iterator))
    return seen / (time.perf_counter() - start)


def cpu_name():
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        paths, sizes = make_images(directory, args.images)
        source = data.load(directory, "train")
        settings = dict(scale=SCALE, crop=CROP, batch_size=32, seed=0, repeat=True)
        candidates = {
            "(a) decode whole (tf.io.decode_jpeg)": decode_whole(paths),
            f"(b) vgg_keras train_pipeline, S in [{SCALE[0]}, {SCALE[1]}], crop {CROP}, "
            "flip + colour on the host": data.train_pipeline(source, **settings),
            "(b') the same, flip + colour left to the accelerator (augment_on=\"device\")":
                data.train_pipeline(source, augment_on="device", **settings),
            "(c) decode whole + resize to S + random crop + flip": naive_pipeline(paths),
            "(d) for reference: decode only the window of (b), no resampling":
                window_only(paths),
        }
        for dataset in candidates.values():  # trace functions, fill the page cache
            images_per_second(dataset, args.images, passes=1)
        results = {name: [] for name in candidates}
        for _ in range(args.rounds):
            for name, dataset in candidates.items():
                results[name].append(images_per_second(dataset, args.images))

    base = statistics.median(results[next(iter(candidates))])
    print(f"\n{args.images} JPEGs, about 500x375, quality 90, mean "
          f"{np.mean(sizes) / 1024:.0f} KiB; {cpu_name()}, {os.cpu_count()} logical CPUs; "
          f"TensorFlow {tf.__version__}; steady state, median of {args.rounds} interleaved "
          "rounds.\n")
    print("| pipeline | images/s | vs (a) |")
    print("|---|---:|---:|")
    for name, values in results.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.0f} (min {min(values):.0f}, max {max(values):.0f}) | "
              f"{median / base:.2f}x |")


if __name__ == "__main__":
    main()
