"""Listing a directory of images, with and without the probe cache.

Generates a class-folder tree of small photo-like JPEGs (20,000 by default, in a temporary
directory or ``--root``) and times ``vgg_keras.data.load(root, "train")``:

  (a) the first call, cold cache: every file is decoded once at 1/8 scale (``validate="decode"``,
      the default) and the results are written to the cache;
  (b) the second call, warm cache: one ``stat`` a file, nothing decoded;
  (c) after 1% of the files changed (modification time moved on): only those are decoded;
  (d) for reference, ``validate="none"``, which trusts the files and decodes nothing.

The cache lives in a temporary folder (``VGG_KERAS_CACHE``), so (a) is cold on every run. A
tiny tree is loaded first so that TensorFlow's start-up is not counted. Prints a markdown table.

    python bench/listing.py [--files 20000] [--classes 100] [--size 160x120] [--root DIR]
"""

import argparse
import concurrent.futures
import os
import platform
import subprocess
import tempfile
import time

import numpy as np
from PIL import Image

import vgg_keras.data as data
from vgg_keras.progress import set_quiet


def small_photo(seed, width, height):
    """Smooth colour and noise, JPEG quality 90: decodes like a (small) photograph."""
    rng = np.random.default_rng(seed)
    small = rng.normal(128, 50, (4, 5, 3))
    image = np.asarray(Image.fromarray(np.clip(small, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.BICUBIC), np.float32)
    image = np.clip(image + rng.normal(0, 10, image.shape), 0, 255).astype(np.uint8)
    return image


def generate(root, files, classes, size):
    """``files`` JPEGs in ``classes`` folders under ``root`` (kept if already there)."""
    width, height = size

    def write(index):
        path = os.path.join(root, f"class_{index % classes:03d}", f"img_{index:06d}.jpg")
        if not os.path.exists(path):
            Image.fromarray(small_photo(index, width, height)).save(path, quality=90)
        return path

    for label in range(classes):
        os.makedirs(os.path.join(root, f"class_{label:03d}"), exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(2 * (os.cpu_count() or 1)) as pool:
        return list(pool.map(write, range(files)))


def timed_load(root, **kwargs):
    start = time.perf_counter()
    meta = data.info(data.load(root, "train", **kwargs))
    return time.perf_counter() - start, meta


def machine():
    try:
        lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines
                     if line.startswith("Model name"))
    except (OSError, StopIteration):
        model = platform.processor() or "unknown CPU"
    return f"{model}, {os.cpu_count()} cores"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--size", default="160x120", help="WIDTHxHEIGHT of every image")
    parser.add_argument("--root", default=None, help="where the tree goes (default: temporary)")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    set_quiet()
    with tempfile.TemporaryDirectory() as scratch:
        os.environ["VGG_KERAS_CACHE"] = os.path.join(scratch, "cache")
        root = args.root or os.path.join(scratch, "tree")
        start = time.perf_counter()
        paths = generate(root, args.files, args.classes, size)
        made = time.perf_counter() - start
        warmup = os.path.join(scratch, "warmup")
        generate(warmup, 2, 2, size)
        timed_load(warmup)
        rows = [("first call, cold cache", *timed_load(root)),
                ("second call, warm cache", *timed_load(root))]
        changed = paths[::100]
        for path in changed:
            status = os.stat(path)
            os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns + 10**9))
        rows.append((f"after {len(changed)} files changed", *timed_load(root)))
        rows.append(('validate="none" (no probing)', *timed_load(root, validate="none")))
    print(f"{args.files} JPEGs of {size[0]}x{size[1]} in {args.classes} folders (generated in "
          f"{made:.0f} s); {machine()}\n")
    print("| load(root, \"train\") | files probed | probes reused | seconds |")
    print("|---|---:|---:|---:|")
    for name, seconds, meta in rows:
        listing = meta.listing or {"probed": 0, "cached": 0}
        print(f"| {name} | {listing['probed']} | {listing['cached']} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
