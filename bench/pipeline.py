"""Input pipeline throughput on ImageNet-like JPEGs, side by side in one run.

Generates a few hundred ~500x375 photo-like JPEGs (quality 90, about ImageNet's median size)
in a temporary directory and measures images per second of:

  (a) decoding each file whole (``tf.io.decode_jpeg``): the floor any pipeline that looks at
      every pixel pays;
  (b) ``vgg_keras.data.train_pipeline`` with S drawn from [256, 512] and 224 crops, flip and
      colour shift on (fused decode-and-crop: only the window the crop needs is decoded);
  (b') the same with flip and colour shift left to the accelerator (Placement(augment="device")),
       which is how a GPU run uses it;
  (c) the straightforward pipeline: decode whole, resize to S, random 224 crop, flip;
  (d) for reference, the fused decode of (b) alone: what skipping the rest of the file saves;
  (e) the host's part when the accelerator resamples (Placement(resample="device"), the scripts'
      default): the window each crop reads, decoded and handed over as uint8 in a fixed
      bucket, with its geometry.

Then, for (e): how far its crops (made by ``vgg_keras.augment.WindowCrop``) are from (b)'s,
over every crop of two passes, and what the device part (``WindowCrop`` and the colour shift,
compiled) costs next to one VGG-D training step of the same batch, on the Keras backend in use
(``KERAS_BACKEND=jax`` is the fast one on a CPU; ``--no-device-step`` skips it).

All read the same files with the same tf.data parallelism (AUTOTUNE), endlessly repeated; each
measurement warms up for one pass and times the next two (steady state). The pipelines are
run interleaved, several rounds, reporting the median, so that load from other processes falls
on all of them alike. Prints a markdown table.

    KERAS_BACKEND=jax python bench/pipeline.py [--images 300] [--rounds 7] [--batch 8]
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

import keras

import vgg_keras.data as data
from vgg_keras import augment, build_vgg
from vgg_keras.data import ops
from vgg_keras.transforms import window_bucket

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
    first = first["windows"] if isinstance(first, dict) else first
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
    parser.add_argument("--batch", type=int, default=8,
                        help="batch of the device-part measurement")
    parser.add_argument("--no-device-step", action="store_true",
                        help="skip the device part and the VGG-D step (minutes on a CPU)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        paths, sizes = make_images(directory, args.images)
        source = data.load(directory, "train")
        settings = dict(scale=SCALE, crop=CROP, batch_size=32, seed=0, repeat=True)
        candidates = {
            "(a) decode whole (tf.io.decode_jpeg)": decode_whole(paths),
            f"(b) vgg_keras train_pipeline, S in [{SCALE[0]}, {SCALE[1]}], crop {CROP}, "
            "flip + colour on the host": data.train_pipeline(source, **settings),
            "(b') the same, flip + colour left to the accelerator (augment=\"device\")":
                data.train_pipeline(source, placement=data.Placement(augment="device"), **settings),
            "(c) decode whole + resize to S + random crop + flip": naive_pipeline(paths),
            "(d) for reference: decode only the window of (b), no resampling":
                window_only(paths),
            "(e) the host's part with resample=\"device\": the window as uint8 in a "
            f"{window_bucket(CROP)}x{window_bucket(CROP)} bucket, + geometry":
                data.train_pipeline(source, placement=data.Placement(resample="device"),
                                    **settings),
        }
        for dataset in candidates.values():  # trace functions, fill the page cache
            images_per_second(dataset, args.images, passes=1)
        results = {name: [] for name in candidates}
        for _ in range(args.rounds):
            for name, dataset in candidates.items():
                results[name].append(images_per_second(dataset, args.images))
        agreement = crop_agreement(source, settings, 2 * args.images)
        device = None if args.no_device_step else device_part(source, settings, args.batch)

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
    host = statistics.median(results[list(candidates)[-1]])
    print(f"\n(e) per decode core: {host / os.cpu_count():.0f} images/s "
          f"({os.cpu_count()} logical CPUs).")
    bucket = window_bucket(CROP)
    print(f"Handed over per image: (e) {bucket * bucket * 3 + 24} bytes (uint8 window + "
          f"geometry), (b') {CROP * CROP * 3 * 4} bytes (float32 crop): "
          f"{(bucket * bucket * 3 + 24) / (CROP * CROP * 12):.2f}x.")
    print(f"\nCrops of (e) against (b) over {agreement['crops']} crops: max difference "
          f"{agreement['max']:.4f} grey levels; {agreement['windows']:.1%} handed over as "
          f"windows (max difference {agreement['max_windows']:.4f}), the rest cropped on the "
          "host and rounded to uint8.")
    if device is not None:
        print(f"\nDevice part on {keras.backend.backend()} ({cpu_name()}), batch "
              f"{args.batch}, median of {len(device['part'])}:\n")
        print("| step | ms per batch | vs a VGG-D training step |")
        print("|---|---:|---:|")
        step = statistics.median(device["step"])
        for name, key in (("WindowCrop + colour shift (compiled)", "part"),
                          ("VGG-D training step (224 crops, SGD, dropout)", "step")):
            value = statistics.median(device[key])
            print(f"| {name} | {1000 * value:.1f} | {100 * value / step:.2f}% |")


def crop_agreement(source, settings, count):
    """(e)'s crops against (b)'s, the same draws: max difference, share handed over as
    windows."""
    options = dict(settings, color_shift=False, repeat=False)
    host = data.train_pipeline(source, **options)
    device = data.train_pipeline(source, placement=data.Placement(resample="device"), **options)
    crop = augment.WindowCrop(CROP)
    worst, worst_window, windows, seen = 0.0, 0.0, 0, 0
    for (expected, _), (handed, _) in zip(host.repeat(), device.repeat()):
        difference = np.abs(keras.ops.convert_to_numpy(crop(handed)) - expected.numpy()).max(
            axis=(1, 2, 3))
        geometry = handed["geometry"].numpy()
        whole = geometry[:, 4] != CROP
        worst = max(worst, float(difference.max()))
        if whole.any():
            worst_window = max(worst_window, float(difference[whole].max()))
        windows += int(whole.sum())
        seen += len(difference)
        if seen >= count:
            break
    return dict(crops=seen, max=worst, max_windows=worst_window, windows=windows / seen)


def device_part(source, settings, batch, rounds=5):
    """Seconds per batch of the device part (``WindowCrop`` + colour shift, compiled, in
    training mode) and of a VGG-D training step on the same batch. Each is timed on its own,
    its result fetched, so that no asynchronous work of the other falls into its time."""
    windows, labels = next(iter(data.train_pipeline(
        source, placement=data.Placement(resample="device"), **dict(settings, batch_size=batch))))
    windows = {name: value.numpy() for name, value in windows.items()}
    inputs = augment.window_inputs(window_bucket(CROP))
    shifted = augment.PCAColorShift(seed=0)(augment.WindowCrop(CROP)(inputs), training=True)
    part = keras.Model(inputs, shifted)
    part.compile(jit_compile=True)
    model = build_vgg("D", 1000, input_shape=(CROP, CROP, 3))
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=True)
    crops = keras.ops.convert_to_numpy(part.predict_on_batch(windows))
    labels = labels.numpy()

    def part_step():
        keras.ops.convert_to_numpy(part.predict_on_batch(windows))

    def training_step():
        model.train_on_batch(crops, labels)
        keras.ops.convert_to_numpy(model.trainable_variables[-1])   # wait for the update

    times = {}
    for name, step in (("part", part_step), ("step", training_step)):
        step()  # compiles
        times[name] = []
        for _ in range(rounds):
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times

if __name__ == "__main__":
    main()
