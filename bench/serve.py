"""Serving latency and throughput of one VGG through Keras, the exported SavedModel and ONNX
Runtime, side by side in one run.

One randomly initialised classifier (``--arch``, ``--width``, ``--size``; default the paper's D
at 224, 15.5 GFLOPs an image) is exported with ``vgg_keras.export`` to a SavedModel and to ONNX
in a temporary directory, then timed four ways on the same images:

* Keras: ``model.predict_on_batch`` on float32 crops (the compiled predict function; no
  preprocessing);
* SavedModel ``serve_uint8``: decoded 500x375 uint8 images; the signature rescales (shorter side
  to Q), crops and runs the network, so against Keras this adds only the resampling and the
  top-5;
* SavedModel ``serve``: the same images as JPEG bytes (quality 90, ~100 KiB, ImageNet-like), so
  against ``serve_uint8`` this adds the JPEG decode;
* ONNX Runtime (CPU execution provider, default threads) on the float32 crops, like Keras.

Latency is the median (and the best) of single calls at batch 1; throughput is ``--batch`` /
the median (and the best) over rounds of the mean seconds per call at that batch. The four paths are interleaved round by round,
in reversed order every other round, so background load falls on all of them alike. Warm-up
calls (tracing, allocation) are excluded. TensorFlow and ONNX Runtime both use every core.

    python bench/serve.py                                    # D at 224: 3-4 min on 2 cores
    python bench/serve.py --arch A --width 0.25 --size 64    # a quick check
"""

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import vgg_keras  # noqa: E402
from vgg_keras.export import SERVE_BYTES, SERVE_UINT8, default_scale, export  # noqa: E402
from models import cpu_cores, cpu_model  # noqa: E402  (bench/models.py)
from pipeline import photo_like  # noqa: E402  (bench/pipeline.py)

IMAGE_SIZE = (375, 500)   # height, width: about ImageNet's median photograph


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--arch", default="D", help="configuration A-E")
    parser.add_argument("--width", type=float, default=1.0, help="channel multiplier")
    parser.add_argument("--size", type=int, default=224, help="crop side (model input)")
    parser.add_argument("--scale", type=int, default=None,
                        help="test scale Q of the SavedModel (default 256/224 x size)")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=16, help="batch for throughput")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--latency-calls", type=int, default=3,
                        help="batch-1 calls per path per round")
    parser.add_argument("--steps", type=int, default=1, help="batch calls per path per round")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per path and batch")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("batch", "rounds", "latency_calls", "steps", "size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def log(message):
    print(message, file=sys.stderr, flush=True)


def main(argv=None):
    args = parse_args(argv)
    if keras.backend.backend() != "tensorflow":
        raise SystemExit("bench/serve.py times the SavedModel: run it with "
                         "KERAS_BACKEND=tensorflow")
    import onnxruntime

    keras.utils.set_random_seed(args.seed)
    crop = args.size
    scale = args.scale or default_scale(crop)
    model = vgg_keras.build_vgg(args.arch, args.classes, input_shape=(crop, crop, 3),
                                width=args.width, init="glorot")
    rng = np.random.default_rng(args.seed)
    photos = np.stack([photo_like(rng, *IMAGE_SIZE) for _ in range(args.batch)])
    jpegs = [tf.io.encode_jpeg(photo, quality=90).numpy() for photo in photos]
    # Float crops for the paths without preprocessing: the central crops of the same photos.
    top, left = (IMAGE_SIZE[0] - crop) // 2, (IMAGE_SIZE[1] - crop) // 2
    crops = photos[:, top:top + crop, left:left + crop].astype(np.float32) if min(
        IMAGE_SIZE) >= crop else rng.uniform(0, 255, (args.batch, crop, crop, 3)).astype(
        np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        export(model, os.path.join(tmp, "saved_model"), test_scale=scale)
        saved_seconds = time.perf_counter() - started
        started = time.perf_counter()
        onnx_path = export(model, os.path.join(tmp, "model.onnx"), format="onnx")
        onnx_seconds = time.perf_counter() - started
        log(f"exported: SavedModel {saved_seconds:.0f} s, ONNX {onnx_seconds:.0f} s")
        served = tf.saved_model.load(os.path.join(tmp, "saved_model"))
        session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        by_uint8, by_bytes = served.signatures[SERVE_UINT8], served.signatures[SERVE_BYTES]

        def inputs(n):
            return {
                "keras": tf.constant(crops[:n]),
                "uint8": tf.constant(photos[:n]),
                "bytes": tf.constant(jpegs[:n]),
                "onnx": crops[:n],
            }

        # Each call returns host memory (numpy), so its time includes finishing the work.
        calls = {
            "keras": lambda x: model.predict_on_batch(x),
            "uint8": lambda x: by_uint8(images=x)["probabilities"].numpy(),
            "bytes": lambda x: by_bytes(image_bytes=x)["probabilities"].numpy(),
            "onnx": lambda x: session.run(["logits"], {"image": x})[0],
        }
        keys = list(calls)
        single, batched = inputs(1), inputs(args.batch)

        # Sanity: ONNX and Keras give the same logits on the same crops.
        difference = float(np.max(np.abs(calls["onnx"](batched["onnx"])
                                          - calls["keras"](batched["keras"]))))
        log(f"warm-up ({args.warmup} call(s) per path and batch) ...")
        for key in keys:
            for _ in range(args.warmup):
                calls[key](single[key])
                calls[key](batched[key])

        latency = {key: [] for key in keys}
        per_round = {key: [] for key in keys}
        wall = time.perf_counter()
        for round_index in range(args.rounds):
            order = keys if round_index % 2 == 0 else keys[::-1]
            for key in order:
                for _ in range(args.latency_calls):
                    start = time.perf_counter()
                    calls[key](single[key])
                    latency[key].append(time.perf_counter() - start)
                start = time.perf_counter()
                for _ in range(args.steps):
                    calls[key](batched[key])
                per_round[key].append((time.perf_counter() - start) / args.steps)
            log(f"round {round_index + 1}/{args.rounds}: " + ", ".join(
                f"{key} {per_round[key][-1]:.2f} s/batch" for key in keys))
        elapsed = time.perf_counter() - wall

    import onnx  # noqa: F401  (versions for the report)
    import torch  # (the ONNX export ran torch.onnx in a subprocess)

    throughput = {key: args.batch / statistics.median(per_round[key]) for key in keys}
    milliseconds = {key: 1e3 * statistics.median(latency[key]) for key in keys}
    rows = [
        ("keras", "Keras `model.predict_on_batch`", f"float32 {crop}x{crop} crops"),
        ("uint8", f"SavedModel `{SERVE_UINT8}` (rescale to Q={scale} + crop + net + top-5)",
         f"uint8 {IMAGE_SIZE[1]}x{IMAGE_SIZE[0]} images"),
        ("bytes", f"SavedModel `{SERVE_BYTES}` (JPEG decode + the above)",
         f"JPEG bytes ({np.mean([len(j) for j in jpegs]) / 1024:.0f} KiB mean)"),
        ("onnx", "ONNX Runtime (CPU EP)", f"float32 {crop}x{crop} crops"),
    ]
    print()
    print(f"# Serving VGG-{args.arch.upper()} (width {args.width:g}, {crop}x{crop}, "
          f"{args.classes} classes, {model.count_params():,} parameters)")
    print()
    print(f"- machine: {cpu_model()}, {cpu_cores()} cores, no GPU; {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}")
    print(f"- keras {keras.__version__}, tensorflow {tf.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, onnx {sys.modules['onnx'].__version__}, torch "
          f"{torch.__version__} (ONNX export)")
    print(f"- latency: median of {args.rounds} x {args.latency_calls} calls at batch 1; "
          f"throughput: batch {args.batch}, median over {args.rounds} rounds of {args.steps} "
          f"call(s); {args.warmup} warm-up call(s) per path and batch; timing wall time "
          f"{elapsed:.0f} s; export SavedModel {saved_seconds:.0f} s, ONNX {onnx_seconds:.0f} s")
    print(f"- ONNX Runtime vs Keras logits on the same crops: max |difference| {difference:.2e}")
    print()
    best = {key: args.batch / min(per_round[key]) for key in keys}
    print("| path | input | latency, batch 1 (ms): median (best) | throughput, batch "
          f"{args.batch} (img/s): median (best round) | throughput vs Keras: median (best) |")
    print("|---|---|---:|---:|---:|")
    for key, label, what in rows:
        print(f"| {label} | {what} | {milliseconds[key]:.1f} ({1e3 * min(latency[key]):.1f}) | "
              f"{throughput[key]:.2f} ({best[key]:.2f}) | "
              f"{throughput[key] / throughput['keras']:.2f}x ({best[key] / best['keras']:.2f}x) |")
    print()
    print("Background load only slows calls down, so on a shared machine the best figures are "
          "the closer estimate of each path's cost; the medians show how steady it was.")

if __name__ == "__main__":
    main()
