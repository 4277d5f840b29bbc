#!/usr/bin/env python
"""Dense evaluation: ours against one eager call per image, side by side in one run.

The anchor is dense evaluation as the paper describes it and as a Keras user writes it: the
fully convolutional net called on each whole image and on its mirror image
(``dense(image)``, one image a pass, since sizes differ). Ours is
``vgg_keras.evaluate.collect_posteriors(..., "dense")``: images regrouped by size into passes
of at most ``batch_size`` crops' pixels, the mirror images in the same pass, and on TensorFlow
one ``tf.function`` per model instead of eager calls. Both read the same numpy images (the
decoding and rescaling is timed apart, as "pipeline"), and the script checks that they give
the same posteriors.

Cases: the suite's tiny A (width 0.125, crop 32) on ``vgg_shapes/small`` at Q = 40, the quick
start's A (width 0.25, crop 64) on ``vgg_shapes`` at Q = 84, and full-size D (224) on generated
images of four sizes at Q = 256; then Appendix B descriptors (``vgg_keras.features``) of a list
of decoded images, against one image at a time. Each case runs ``--rounds`` times, interleaved; the table
gives the median images/s. The features' first pass, which on JAX compiles for each shape and
is what a single call over a dataset costs, is timed for each way in a fresh process (in one
process the second way would reuse the first's compiled shapes).

    python bench/evaluation.py                       # TensorFlow
    KERAS_BACKEND=jax python bench/evaluation.py
"""

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import vgg_keras  # noqa: E402
from vgg_keras import data as vdata  # noqa: E402
from vgg_keras.evaluate import collect_posteriors, softmax  # noqa: E402
from vgg_keras.progress import set_quiet  # noqa: E402
from vgg_keras.transforms import rescaled_size  # noqa: E402


def anchor(dense, images):
    """One eager call per image and one per mirror image, the score maps averaged."""
    out = []
    for image in images:
        image = image[None]
        plain = keras.ops.convert_to_numpy(dense(image, training=False)).mean(axis=(1, 2))
        mirror = keras.ops.convert_to_numpy(
            dense(image[:, :, ::-1], training=False)).mean(axis=(1, 2))
        out.append(0.5 * (softmax(plain) + softmax(mirror)))
    return np.concatenate(out)


def features_anchor(extractor, photos, scales):
    """Appendix B descriptors one image at a time, eagerly (the library's way until then)."""
    rows = []
    for photo in photos:
        per_scale = []
        for q in scales:
            size = tuple(int(v) for v in rescaled_size(np.array(photo.shape[:2], float), q))
            image = keras.ops.image.resize(photo[None].astype("float32"), size)
            plain = keras.ops.mean(extractor(image, training=False), axis=(1, 2))
            mirror = keras.ops.mean(extractor(keras.ops.flip(image, axis=2), training=False),
                                    axis=(1, 2))
            per_scale.append(keras.ops.convert_to_numpy(0.5 * (plain + mirror))[0])
        row = np.mean(per_scale, axis=0)
        rows.append(row / np.linalg.norm(row))
    return np.stack(rows)


def ours(model, dense, images, batch_size):
    """The library's dense protocol on the same images, one a batch as eval_pipeline gives."""
    batches = [(image[None], np.zeros(1, int)) for image in images]
    return collect_posteriors(model, batches, "dense", dense_model=dense,
                              batch_size=batch_size)[0]


def embedded_images(name, split, scale, count):
    examples = vdata.load(name, f"{split}[:{count}]")
    started = time.perf_counter()
    images = [image[0] for image, _ in
              vdata.eval_pipeline(examples, test_scale=scale, mode="dense").as_numpy_iterator()]
    return images, time.perf_counter() - started


def generated_images(scale, count, seed=0):
    """Whole images at the shapes of ImageNet's four commonest sizes, rescaled to Q."""
    rng = np.random.default_rng(seed)
    sizes = [(375, 500), (333, 500), (500, 375), (500, 333)]
    images = []
    for index in range(count):
        height, width = sizes[index % len(sizes)]
        factor = scale / min(height, width)
        shape = (round(height * factor), round(width * factor), 3)
        images.append(rng.uniform(0, 255, shape).astype("float32"))
    return images, 0.0


def feature_case(count):
    """The features case: ``(extractor, photos)``, the quick start's A cut at fc7 and ``count``
    decoded ``vgg_shapes`` validation images of their own sizes (notebook 04's list)."""
    import tensorflow as tf   # the embedded dataset holds encoded images

    quick = vgg_keras.build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25, init="glorot")
    photos = list(vdata.load("vgg_shapes", f"validation[:{count}]").map(
        lambda e: tf.io.decode_image(e["image"], channels=3, expand_animations=False)
    ).as_numpy_iterator())
    return vgg_keras.transfer.feature_extractor(quick), photos


FEATURE_SCALES = (64, 96)


def features_of(way, extractor, photos):
    if way == "anchor":
        return features_anchor(extractor, photos, FEATURE_SCALES)
    return vgg_keras.features(extractor, photos, scales=FEATURE_SCALES)


def fresh_first_pass(way, count):
    """Seconds of ``way``'s first features pass over ``count`` images, in a new process."""
    import subprocess

    output = subprocess.run([sys.executable, __file__, "--first-features-pass", way,
                             "--feature-images", str(count)], check=True, capture_output=True,
                            text=True).stdout
    return float(output.split("FIRST_PASS")[-1].split()[0])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--full-size-images", type=int, default=8,
                        help="images for the full-size D case (0 skips it)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--feature-images", type=int, default=300,
                        help="images for the Appendix B features case (0 skips it)")
    parser.add_argument("--first-features-pass", choices=("anchor", "ours"),
                        help=argparse.SUPPRESS)   # the fresh process of fresh_first_pass
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    set_quiet()
    if args.first_features_pass:
        extractor, photos = feature_case(args.feature_images)
        started = time.perf_counter()
        features_of(args.first_features_pass, extractor, photos)
        print("FIRST_PASS", time.perf_counter() - started)
        return
    cases = []
    tiny = vgg_keras.build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125, init="glorot")
    cases.append(("A x0.125, crop 32, vgg_shapes/small test, Q=40", tiny,
                  *embedded_images("vgg_shapes/small", "test", 40, 200)))
    quick = vgg_keras.build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25, init="glorot")
    cases.append(("A x0.25, crop 64, vgg_shapes validation, Q=84", quick,
                  *embedded_images("vgg_shapes", "validation", 84, 500)))
    if args.full_size_images:
        full = vgg_keras.build_vgg("D", 1000, init="glorot")
        cases.append((f"D x1, crop 224, {args.full_size_images} images of ImageNet's 4 "
                      "commonest sizes, Q=256", full,
                      *generated_images(256, args.full_size_images)))

    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"python {sys.version.split()[0]}")
    rows = []
    for name, model, images, pipeline_seconds in cases:
        dense = vgg_keras.to_dense(model)
        shapes = len({image.shape for image in images})
        timings = {"anchor": [], "ours": []}
        reference = mine = None
        # Warm-up: the first calls trace (TensorFlow) or compile (JAX) for each image size;
        # both ways are timed from the second round on, and the first round is reported apart.
        first = {}
        for round_index in range(args.rounds + 1):
            for way in ("anchor", "ours"):
                started = time.perf_counter()
                if way == "anchor":
                    reference = anchor(dense, images)
                else:
                    mine = ours(model, dense, images, args.batch_size)
                seconds = time.perf_counter() - started
                if round_index == 0:
                    first[way] = seconds
                else:
                    timings[way].append(seconds)
        difference = float(np.abs(reference - mine).max())
        anchor_rate = len(images) / statistics.median(timings["anchor"])
        our_rate = len(images) / statistics.median(timings["ours"])
        rows.append((name, len(images), shapes, pipeline_seconds, first["anchor"],
                     first["ours"], anchor_rate, our_rate, difference))

    features_row = None
    if args.feature_images:
        # Appendix B descriptors of a list of decoded images of varied sizes (notebook 04's).
        first = {way: fresh_first_pass(way, args.feature_images) for way in ("anchor", "ours")}
        extractor, photos = feature_case(args.feature_images)
        timings, results = {"anchor": [], "ours": []}, {}
        for round_index in range(args.rounds + 1):
            for way in ("anchor", "ours"):
                started = time.perf_counter()
                results[way] = features_of(way, extractor, photos)
                if round_index:
                    timings[way].append(time.perf_counter() - started)
        features_row = (len(photos), len({p.shape for p in photos}), first["anchor"],
                        first["ours"], len(photos) / statistics.median(timings["anchor"]),
                        len(photos) / statistics.median(timings["ours"]),
                        float(np.abs(results["anchor"] - results["ours"]).max()))

    print()
    print("| case | images | sizes | pipeline s | first pass s: anchor / ours | anchor img/s "
          "| ours img/s | ours / anchor | max posterior difference |")
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for name, count, shapes, pipe, first_a, first_o, rate_a, rate_o, diff in rows:
        print(f"| {name} | {count} | {shapes} | {pipe:.1f} | {first_a:.1f} / {first_o:.1f} | "
              f"{rate_a:.1f} | {rate_o:.1f} | {rate_o / rate_a:.2f}x | {diff:.1e} |")


    if features_row:
        count, shapes, first_a, first_o, rate_a, rate_o, diff = features_row
        print()
        print("| Appendix B features, A x0.25, Q = 64, 96, a list of images | images | sizes "
              "| first pass s, fresh process: anchor / ours | anchor img/s | ours img/s "
              "| ours / anchor | max difference |")
        print("|---|---:|---:|---|---:|---:|---:|---:|")
        print(f"| `vgg_shapes` validation, decoded | {count} | {shapes} | {first_a:.1f} / "
              f"{first_o:.1f} | {rate_a:.1f} | {rate_o:.1f} | {rate_o / rate_a:.2f}x | "
              f"{diff:.1e} |")


if __name__ == "__main__":
    main()
