"""Throughput of ``vgg_keras.build_vgg("D")`` against ``keras.applications.VGG16`` (same process).

Both models are compiled the same way (SGD with momentum 0.9, sparse categorical crossentropy
from logits, no metrics, the same ``jit_compile``) and fed the same batch. keras.applications
builds with ``weights=None, classifier_activation=None`` so that both output logits, and ours with
``init="glorot"`` (keras.applications' initializer) unless ``--init`` says otherwise.

Rows:

* forward: ``model.predict_on_batch`` (inference, compiled predict step).
* forward+backward: ``model.train_on_batch`` (one compiled SGD step).

Our model differs from keras.applications in two ways, each shown in its own row:

* ``build_vgg`` subtracts the ImageNet mean in its first layer (``preprocessing="imagenet"``);
  keras.applications expects already-preprocessed input. The main rows use
  ``preprocessing=None``; the rows marked "defaults" use ``build_vgg``'s default layer.
* Ours has Dropout(0.5) after fc6 and fc7 (the paper's recipe); keras.applications has none.
  Dropout is inert at inference but is real work in a training step, so forward+backward is
  reported with ``dropout=0`` (apples-to-apples) and with ``dropout=0.5``.

Timing: warm-up calls (compilation included) are excluded. Each round times ``--steps`` calls of
every model in turn, ours and theirs alternating and the order reversed every other round
(A B / B A ...), so background load hits both alike; the reported time per step is the median of
the per-round means, and img/s = batch / that time.

The backend is the one Keras picks from ``KERAS_BACKEND`` (set it before running):

    KERAS_BACKEND=tensorflow python bench/models.py
    KERAS_BACKEND=jax python bench/models.py --batch 4 --rounds 3
    KERAS_BACKEND=torch python bench/models.py --peak-tflops 989
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import keras  # noqa: E402  (reads KERAS_BACKEND on import)

import vgg_keras  # noqa: E402
from vgg_keras.configs import CONFIGS, FC_UNITS, GFLOPS_224, parse_layer  # noqa: E402

ARCH = "D"
NUM_CLASSES = 1000


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batch", type=int, default=8, help="images per step")
    parser.add_argument("--size", type=int, default=224, help="image height and width")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timing rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per model per round")
    parser.add_argument("--warmup", type=int, default=2,
                        help="untimed calls per model and step kind before timing (compiles)")
    parser.add_argument("--backend-note", default="",
                        help="free text printed with the backend (e.g. driver, XLA flags)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="accelerator peak TFLOP/s for the dtype used; with a GPU, the "
                             "fraction of peak is reported")
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"),
                        help="passed to compile() of both models")
    parser.add_argument("--init", default="glorot", choices=("glorot", "paper"),
                        help="our initializer (keras.applications uses Glorot uniform)")
    parser.add_argument("--lr", type=float, default=1e-3, help="SGD learning rate")
    parser.add_argument("--no-defaults-rows", action="store_true",
                        help="skip the extra rows for build_vgg defaults (normalisation layer)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="print per-round step times")
    args = parser.parse_args(argv)
    for name in ("batch", "size", "rounds", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be non-negative")
    return args


# --------------------------------------------------------------------------- machine

def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def cpu_cores():
    total = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = total
    return f"{usable} usable of {total} logical" if usable != total else f"{total} logical"


def gpu_name(backend):
    """Name of the accelerator the backend computes on, or None on CPU."""
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if not gpus:
                return None
            details = tf.config.experimental.get_device_details(gpus[0])
            return details.get("device_name", gpus[0].name) + (
                f" (x{len(gpus)})" if len(gpus) > 1 else "")
        if backend == "jax":
            import jax

            if jax.default_backend() == "cpu":
                return None
            return jax.devices()[0].device_kind
        if backend == "torch":
            import torch

            if not torch.cuda.is_available():
                return None
            return torch.cuda.get_device_name(0)
    except Exception as error:  # noqa: BLE001 (a report line, never a crash)
        return f"unknown accelerator ({error.__class__.__name__})"
    return None


# --------------------------------------------------------------------------- FLOPs

def _analytic_forward_flops(size):
    """2 x multiply-adds of one size x size image through D's conv and FC layers."""
    flops, channels, side = 0, 3, size
    for block in CONFIGS[ARCH]:
        for spec in block:
            parsed = parse_layer(spec)
            if parsed is None:
                continue
            kernel, out = parsed
            flops += 2 * kernel * kernel * channels * out * side * side
            channels = out
        side //= 2
    flops += 2 * (side * side * channels * FC_UNITS + FC_UNITS * FC_UNITS + FC_UNITS * NUM_CLASSES)
    return flops


def forward_gflops(size):
    """GFLOPs per image: the paper sheet's figure at 224, scaled analytically to ``size``."""
    return GFLOPS_224[ARCH] * _analytic_forward_flops(size) / _analytic_forward_flops(224)


# --------------------------------------------------------------------------- models

def compiled(model, args):
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=args.lr, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    return model


def build_models(args):
    shape = (args.size, args.size, 3)
    models = {
        "ours": vgg_keras.build_vgg(ARCH, NUM_CLASSES, input_shape=shape, init=args.init,
                                    preprocessing=None, dropout=0.5, name="ours_drop05"),
        "ours_nodrop": vgg_keras.build_vgg(ARCH, NUM_CLASSES, input_shape=shape, init=args.init,
                                           preprocessing=None, dropout=0.0, name="ours_drop0"),
        "theirs": keras.applications.VGG16(weights=None, input_shape=shape, classes=NUM_CLASSES,
                                           classifier_activation=None),
    }
    if not args.no_defaults_rows:
        models["ours_defaults"] = vgg_keras.build_vgg(
            ARCH, NUM_CLASSES, input_shape=shape, init=args.init, name="ours_defaults")
    # The normalisation layer's mean is a non-trainable weight; trainable counts must agree.
    counts = {key: sum(int(np.prod(w.shape)) for w in model.trainable_weights)
              for key, model in models.items()}
    if len(set(counts.values())) != 1:
        raise SystemExit(f"trainable parameter counts differ: {counts}")
    return {key: compiled(model, args) for key, model in models.items()}


# --------------------------------------------------------------------------- timing

def step_fns(model, x, y):
    return {
        "forward": lambda: model.predict_on_batch(x),           # returns NumPy: synchronised
        "train": lambda: model.train_on_batch(x, y),            # returns NumPy loss: synchronised
    }


def measure(kind, keys, fns, args, log):
    """Median over rounds of the mean seconds per step, per model key, ABAB / BABA order."""
    per_round = {key: [] for key in keys}
    for round_index in range(args.rounds):
        order = keys if round_index % 2 == 0 else keys[::-1]
        for key in order:
            fn = fns[key][kind]
            start = time.perf_counter()
            for _ in range(args.steps):
                fn()
            per_round[key].append((time.perf_counter() - start) / args.steps)
        log(f"  {kind} round {round_index + 1}/{args.rounds}: " + ", ".join(
            f"{key} {per_round[key][-1] * 1e3:.0f} ms" for key in keys))
    return per_round


def main(argv=None):
    args = parse_args(argv)
    backend = keras.backend.backend()
    keras.utils.set_random_seed(args.seed)

    def log(message):
        print(message, file=sys.stderr, flush=True)

    log(f"building and compiling models (backend {backend}) ...")
    models = build_models(args)
    rng = np.random.default_rng(args.seed)
    # One batch for every model; values centred like mean-subtracted 0-255 pixels.
    x = keras.ops.convert_to_tensor(
        rng.uniform(-128.0, 128.0, (args.batch, args.size, args.size, 3)).astype("float32"))
    y = keras.ops.convert_to_tensor(rng.integers(0, NUM_CLASSES, (args.batch,)).astype("int32"))
    fns = {key: step_fns(model, x, y) for key, model in models.items()}

    forward_keys = ["ours", "theirs"] + (["ours_defaults"] if "ours_defaults" in models else [])
    train_keys = ["ours_nodrop", "theirs", "ours"] + (
        ["ours_defaults"] if "ours_defaults" in models else [])

    wall = time.perf_counter()
    log(f"warm-up: {args.warmup} call(s) per model and step kind ...")
    for kind, keys in (("forward", forward_keys), ("train", train_keys)):
        for key in keys:
            start = time.perf_counter()
            for _ in range(args.warmup):
                fns[key][kind]()
            log(f"  {kind} {key}: {time.perf_counter() - start:.1f} s")
    times = {}
    for kind, keys in (("forward", forward_keys), ("train", train_keys)):
        log(f"timing {kind}: {args.rounds} rounds x {args.steps} steps ...")
        times[kind] = measure(kind, keys, fns, args, log)
    losses = {key: float(np.asarray(model.train_on_batch(x, y))) for key, model in models.items()
              if key in train_keys}
    elapsed = time.perf_counter() - wall

    def ips(kind, key):
        return args.batch / statistics.median(times[kind][key])

    rows = [  # (label, kind, our key)
        ("forward: ours `preprocessing=None` vs theirs", "forward", "ours"),
    ]
    if "ours_defaults" in models:
        rows.append(("forward: ours with its normalisation layer (build_vgg default) [extra]",
                     "forward", "ours_defaults"))
    rows += [
        ("forward+backward: ours `dropout=0`, `preprocessing=None` (apples-to-apples)",
         "train", "ours_nodrop"),
        ("forward+backward: ours `dropout=0.5` (paper recipe), `preprocessing=None`",
         "train", "ours"),
    ]
    if "ours_defaults" in models:
        rows.append(("forward+backward: ours build_vgg defaults (normalisation + `dropout=0.5`) "
                     "[extra]", "train", "ours_defaults"))

    accelerator = gpu_name(backend)
    jit = {key: model.jit_compile for key, model in models.items()}
    gflops = forward_gflops(args.size)
    flops_per_image = {"forward": gflops, "train": 3 * gflops}

    print()
    print(f"# VGG-{ARCH} throughput: vgg_keras.build_vgg({ARCH!r}) vs "
          f"keras.applications.VGG16(weights=None)")
    print()
    print(f"- machine: {cpu_model()}, {cpu_cores()} cores, "
          f"{'GPU: ' + accelerator if accelerator else 'no GPU'}; {platform.system()} "
          f"{platform.release()}, Python {platform.python_version()}")
    print(f"- backend: {backend}" + (f" ({args.backend_note})" if args.backend_note else "")
          + f"; keras {keras.__version__}; {backend_version(backend)}")
    print(f"- batch {args.batch}, image {args.size}x{args.size}x3 float32, {args.rounds} rounds x "
          f"{args.steps} steps (median of per-round means), {args.warmup} warm-up call(s) "
          f"excluded; jit_compile={args.jit_compile} -> resolved {sorted(set(jit.values()))}; "
          f"SGD(lr={args.lr:g}, momentum=0.9), sparse CE from logits; ours init={args.init!r}")
    print(f"- model FLOPs: {gflops:.2f} GFLOPs/image forward, ~{3 * gflops:.2f} forward+backward "
          f"(3x); every model has {models['theirs'].count_params():,} trainable parameters")
    print(f"- wall time of warm-up + timing: {elapsed:.0f} s")
    print()
    print("| step | ours img/s | keras.applications img/s | ratio ours/theirs |")
    print("|---|---:|---:|---:|")
    for label, kind, key in rows:
        ours, theirs = ips(kind, key), ips(kind, "theirs")
        print(f"| {label} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.3f} |")
    print()

    print("| step | ours TFLOP/s | keras.applications TFLOP/s"
          + (" | ours % of peak | keras.applications % of peak" if args.peak_tflops else "")
          + " |")
    print("|---|---:|---:" + ("|---:|---:" if args.peak_tflops else "") + "|")
    for label, kind, key in rows:
        achieved = [ips(kind, k) * flops_per_image[kind] / 1e3 for k in (key, "theirs")]
        cells = [f"{a:.3f}" for a in achieved]
        if args.peak_tflops:
            cells += [f"{100 * a / args.peak_tflops:.1f}%" for a in achieved]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    if accelerator and not args.peak_tflops:
        print("Note: a GPU is present; pass --peak-tflops to report the fraction of peak.")
    elif args.peak_tflops and not accelerator:
        print(f"Note: --peak-tflops {args.peak_tflops:g} was given but no GPU was found; the "
              "percentages are against that figure on the CPU.")
    print("Notes:")
    print("- Same input batch, same compile() for every model; keras.applications built with "
          "classifier_activation=None (logits), like ours.")
    print("- 'keras.applications' column: the same measurement of VGG16 in every row of a step "
          "kind (timed once per round, interleaved with each of our variants).")
    print("- Ours with `preprocessing=None` matches keras.applications' expectation of "
          "preprocessed input; the [extra] rows keep build_vgg's default mean-subtraction layer.")
    print("- Dropout is inactive in the forward (inference) rows. In forward+backward, ours with "
          "`dropout=0.5` does the paper's fc6/fc7 dropout that keras.applications lacks; the "
          "`dropout=0` row is the like-for-like ratio.")
    print("- Final training loss per model (sanity, finite expected): " + ", ".join(
        f"{key} {loss:.3f}" for key, loss in losses.items()))
    if args.verbose:
        print()
        for kind in times:
            for key, values in times[kind].items():
                print(f"- {kind} {key} per-round ms: "
                      + ", ".join(f"{v * 1e3:.0f}" for v in values))


def backend_version(backend):
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return f"tensorflow {tf.__version__}"
        if backend == "jax":
            import jax

            return f"jax {jax.__version__} ({jax.default_backend()})"
        if backend == "torch":
            import torch

            return f"torch {torch.__version__}" + (
                f" (CUDA {torch.version.cuda})" if torch.cuda.is_available() else " (CPU)")
    except ImportError:
        pass
    return f"{backend} (version unknown)"


if __name__ == "__main__":
    main()
