"""VGG-D training throughput on one GPU (JAX backend, XLA): bf16 and float32, synthetic and fed
from the host, and the fraction of the GPU's peak FLOP/s it reaches. Run through ``bench/gpu.sh``.

    bash bench/gpu.sh                        # on the GPU host: JAX, batch 128, 224x224, D
    KERAS_BACKEND=jax python bench/gpu.py --smoke     # anywhere, seconds: tiny D on the CPU

The model is ``vgg_keras.models.build_vgg("D", 1000)`` with its defaults (full width, 224x224
input, the ImageNet-mean normalisation layer, dropout 0.5 after fc6 and fc7, the paper's
initialisation), compiled with ``SGD(learning_rate=0.01, momentum=0.9)``, sparse categorical
cross-entropy from logits, no metrics and ``jit_compile=True``. Only ``keras``, ``jax``,
``numpy`` and the package's model, augmentation and trainer code are imported: the GPU host
has no TensorFlow, so ``vgg_keras.data`` (tf.data) is out of reach and the input path is
emulated (below).

Rows of the table, each one ``model.fit(batches, steps_per_epoch=--steps, epochs=1)`` timed
from the call to its return (``fit`` returns the loss as a Python float, so the GPU has
finished), ``--rounds`` times, the rows interleaved round by round, median reported:

* synthetic, on device: one fixed batch (float32 pixels drawn uniformly in [0, 255], int32
  labels) placed on the GPU once and handed to every step; nothing crosses the bus. Done under
  the ``mixed_bfloat16`` policy (``keras.mixed_precision.set_global_policy``: bf16 compute,
  float32 weights) and under ``float32``, one model each.
* anchor: ``keras.applications.VGG16`` (weights=None, logits out: the library a user would
  take instead), compiled and fed as the synthetic row of the first precision; its FLOPs are
  counted from its own layers (at width 1 they are D's). ``--no-anchor`` leaves it out.
* host pipeline, float32 crops: what ``vgg_keras.data.train_pipeline`` with
  ``placement=Placement(augment="device")`` hands a GPU run, emulated without TensorFlow: a producer
  thread hands over a new host (NumPy, pageable memory) float32 batch of crops in [0, 255] every
  step through a queue
  ``--prefetch`` deep, like tf.data's prefetch; each batch is a fresh copy of one of
  ``--pool`` batches drawn at start, so drawing random numbers (not part of any real pipeline)
  does not limit the rate. Keras's JAX trainer starts each batch's transfer to the GPU one step
  ahead, as it does for tf.data. What is NOT emulated: JPEG decoding, rescaling and cropping
  (``bench/pipeline.py`` measures them on the CPU; on the GPU host they run on its own cores,
  in tf.data's threads), and, in the two crop rows, the flip and colour shift layers that a
  real run puts in front of the model on the device (``vgg_keras.augment``).
* host pipeline, uint8 crops: the same with uint8 batches (a quarter of the bytes), cast to
  float inside the compiled step on the GPU (Keras casts model inputs to the input layer's
  float32).
* host pipeline, uint8 windows: what ``train_pipeline`` with
  ``placement=Placement(resample="device")`` hands over (the scripts' default on a GPU): for each
  image, the uint8 window its crop reads, padded to a fixed
  ``vgg_keras.transforms.window_bucket(crop)`` square (340 for 224: 2.3 x the bytes of a
  uint8 crop, 0.58 x a float32 one), and a float32 ``(batch, 6)`` geometry
  (``vgg_keras.transforms.WINDOW_GEOMETRY``), handed over by the same producer. The model
  trained is the trainer a real run builds (``vgg_keras.fitting.with_training_augmentation``
  around ``training_augmentation(windows=bucket, crop=crop, flip=False, color_shift=True)``):
  ``WindowCrop`` resamples the crops (flipped by their geometry) and ``PCAColorShift`` shifts
  their colours inside the compiled step, both in float32 whatever the policy, in front of the
  same D. The windows are random bytes; the geometry is realistic (below, ``window_geometry``):
  a step of 0.65 to 1.46 source pixels per crop pixel, the first sample 0 to 3 pixels in, the
  window just large enough, half of the crops flipped.

The host rows use the bf16 model of the first row (the windows row through its trainer, which
shares D's weights): the difference between the crop rows and the synthetic bf16 row is the
cost of the host-to-device path alone; the windows row adds the crop and colour shift on the
device, which also shows what moving the resampling off the host costs the GPU.

Numbers:

* img/s: ``--batch`` x ``--steps`` / seconds per ``fit`` call (median over rounds); ms/step is
  the same time per step. ``fit``'s own per-call setup is in it, once per ``--steps`` steps,
  and so, in the host rows, is the transfer of one batch more than the call uses (the one
  Keras starts ahead while the last step runs).
* model TFLOP/s: img/s x training FLOPs per image, the training FLOPs being 3 x the forward
  FLOPs (the usual convention: the backward pass costs twice the forward), and the forward FLOPs
  counted analytically from the built model's layers (2 x multiply-adds of every Conv2D and
  Dense; 30.94 GFLOPs per 224x224 image for D). XLA's own count of the training step
  (``jax.jit(model.train_step).lower(...).cost_analysis()``, all ops, optimizer included) is
  printed next to it as a cross-check: for D at 224 it is 0.967 x ours, because XLA counts no
  multiply-adds on the convolutions' zero padding (9% of the taps at 14x14) and the backward
  pass computes no gradient for the input images.
* % of peak: model TFLOP/s / the peak dense rate of the chip for the row's precision:
  ``--peak-tflops`` (default 989, the H200 SXM's dense bf16 figure, also the H100 SXM's) for
  bf16 rows, ``--peak-tf32-tflops`` (default 494.7, its dense TF32 figure) for the float32 row,
  since XLA's default precision lets cuDNN and cuBLAS run float32 convolutions and matrix
  products on TF32 tensor cores. A bf16 matrix product (``--matmul-size``, 8192 by default) is
  also timed, as the rate this chip reaches in practice.
* host-to-device: seconds of ``jax.device_put`` of one batch's inputs from the host (no
  labels), for each host row's kind: float32 crops, uint8 crops, uint8 windows with their
  geometry.

Writes the markdown table to stdout (and to ``--table``) and every number to ``--json``.
With no GPU, or with ``--smoke``, defaults shrink to a tiny run (width 0.125, 64x64 crops,
batch 4, 2 steps, 1 round) so that the script can be checked on a CPU; any flag given wins.
"""

import argparse
import json
import os
import platform
import queue
import statistics
import sys
import threading
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxlib  # noqa: E402
import keras  # noqa: E402  (reads KERAS_BACKEND on import)

# The package imports keras, numpy and tqdm only; vgg_keras.data (TensorFlow) is never touched.
from vgg_keras.augment import training_augmentation  # noqa: E402
from vgg_keras.configs import GFLOPS_224  # noqa: E402
from vgg_keras.models import build_vgg  # noqa: E402
from vgg_keras.fitting import with_training_augmentation  # noqa: E402
from vgg_keras.transforms import WINDOW_GEOMETRY, window_bucket  # noqa: E402

ARCH = "D"
NUM_CLASSES = 1000
LEARNING_RATE = 0.01
HOST_KINDS = ("float32", "uint8", "windows")  # what a host row's producer hands over

# The windows row's geometry: source pixels per crop pixel (shorter side / S) of most ImageNet
# images at the paper's scales, and how far into its window a crop's first sample lies.
WINDOW_STEPS = (0.65, 1.46)
WINDOW_FIRST = (0.0, 3.0)

FULL = {"batch": 128, "crop": 224, "width": 1.0, "steps": 30, "rounds": 3, "warmup_steps": 3,
        "matmul_size": 8192}
SMOKE = {"batch": 4, "crop": 64, "width": 0.125, "steps": 2, "rounds": 1, "warmup_steps": 1,
         "matmul_size": 256}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--smoke", action="store_true",
                        help="tiny run for a CPU check: " + ", ".join(
                            f"{key}={value}" for key, value in SMOKE.items()))
    parser.add_argument("--batch", type=int, help=f"images per step (GPU {FULL['batch']})")
    parser.add_argument("--crop", type=int, help=f"image side (GPU {FULL['crop']})")
    parser.add_argument("--width", type=float, help="channel multiplier (GPU 1.0, the paper)")
    parser.add_argument("--steps", type=int, help=f"steps per timed fit (GPU {FULL['steps']})")
    parser.add_argument("--rounds", type=int, help=f"timed rounds per row (GPU {FULL['rounds']})")
    parser.add_argument("--warmup-steps", type=int,
                        help=f"steps of the untimed first fit per row, compilation included "
                             f"(GPU {FULL['warmup_steps']})")
    parser.add_argument("--matmul-size", type=int,
                        help=f"side of the bf16 matrix product timed as a practical ceiling; "
                             f"0 skips it (GPU {FULL['matmul_size']})")
    parser.add_argument("--precisions", default="mixed_bfloat16,float32",
                        help="dtype policies of the synthetic rows; the host rows use the first")
    parser.add_argument("--host-dtypes", default=",".join(HOST_KINDS),
                        help="what the emulated host pipeline hands over, one row each: float32 "
                             "or uint8 crops, or windows (uint8 windows and their geometry, "
                             "cropped on the device); empty: no host rows")
    parser.add_argument("--prefetch", type=int, default=2,
                        help="batches the host producer keeps ready (tf.data's prefetch)")
    parser.add_argument("--pool", type=int, default=4,
                        help="distinct host batches drawn at start and copied out in turn")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="peak dense bf16 TFLOP/s of the GPU (H200/H100 SXM: 989)")
    parser.add_argument("--peak-tf32-tflops", type=float, default=494.7,
                        help="peak dense TF32 TFLOP/s, for the float32 row (H200/H100 SXM: 494.7)")
    parser.add_argument("--dropout", type=float, default=0.5,
                        help="D's dropout after fc6 and fc7 (the paper's 0.5; "
                             "keras.applications.VGG16 has none)")
    parser.add_argument("--no-normalisation", dest="normalisation", action="store_false",
                        help="build D without its first layer's mean subtraction "
                             "(keras.applications.VGG16 leaves it to preprocess_input)")
    parser.add_argument("--init", default="paper", choices=("paper", "glorot", "xavier"),
                        help="D's initialisation (the paper's N(0, 0.01); "
                             "keras.applications.VGG16 uses glorot)")
    parser.add_argument("--no-anchor", dest="anchor", action="store_false",
                        help="leave out the anchor row: keras.applications.VGG16 (the same "
                             "16 layers, no normalisation layer), synthetic, first precision")
    parser.add_argument("--json", help="write every number here")
    parser.add_argument("--table", help="write the markdown report here too")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    on_gpu = jax.default_backend() != "cpu"
    defaults = SMOKE if args.smoke or not on_gpu else FULL
    args.tiny = defaults is SMOKE
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in ("batch", "crop", "steps", "rounds", "warmup_steps", "prefetch", "pool"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.width <= 0 or args.matmul_size < 0:
        parser.error("--width must be positive and --matmul-size non-negative")
    args.precisions = [p for p in args.precisions.split(",") if p]
    args.host_dtypes = [d for d in args.host_dtypes.split(",") if d]
    unknown = set(args.precisions) - {"mixed_bfloat16", "float32", "mixed_float16", "bfloat16"}
    if not args.precisions or unknown:
        parser.error(f"--precisions: unknown policy {sorted(unknown)} or none given")
    if set(args.host_dtypes) - set(HOST_KINDS):
        parser.error(f"--host-dtypes takes any of {', '.join(HOST_KINDS)}")
    return args


# --------------------------------------------------------------------------- machine

def device_description():
    devices = jax.devices()
    kinds = sorted({device.device_kind for device in devices})
    return f"{len(devices)} x {', '.join(kinds)} ({jax.default_backend()})", [
        str(device) for device in devices]


def peak_for(policy, args):
    """Peak TFLOP/s a row is held against, and its name."""
    if "bfloat16" in policy or "float16" in policy:
        return args.peak_tflops, f"{args.peak_tflops:g} TFLOP/s dense bf16 (--peak-tflops)"
    return args.peak_tf32_tflops, (f"{args.peak_tf32_tflops:g} TFLOP/s dense TF32 "
                                   "(--peak-tf32-tflops)")


def matmul_tflops(size, repeats=50):
    """TFLOP/s of a jitted ``size``-cubed bf16 matrix product: what the chip gives in practice."""
    first, second = (jax.random.normal(jax.random.key(i), (size, size), jnp.bfloat16)
                     for i in (1, 2))
    product = jax.jit(jnp.matmul)
    for _ in range(3):
        product(first, second).block_until_ready()
    start = time.perf_counter()
    results = [product(first, second) for _ in range(repeats)]
    results[-1].block_until_ready()  # one stream, in order: the last done means all done
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e12


def transfer_seconds(inputs, repeats=5):
    """Median seconds of ``jax.device_put`` of one host batch's inputs (an array or the windows'
    dict), waited on."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(jax.device_put(inputs))
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- FLOPs

def forward_flops_per_image(model):
    """2 x multiply-adds of every Conv2D and Dense layer of ``model``, for one image."""
    flops = 0
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Conv2D):
            kernel_h, kernel_w, channels_in, channels_out = layer.kernel.shape
            _, height, width, _ = layer.output.shape
            flops += 2 * kernel_h * kernel_w * channels_in * channels_out * height * width
        elif isinstance(layer, keras.layers.Dense):
            inputs, outputs = layer.kernel.shape
            flops += 2 * inputs * outputs
    return flops


def xla_train_step_flops(model, images, labels):
    """XLA's FLOP count of one compiled training step (forward, backward, optimizer) of
    ``model`` on this batch, from the lowered HLO (no compilation; the compiled module would
    hide the convolutions in cuDNN custom calls that the count skips). None if unavailable."""
    try:
        state = ([v.value for v in model.trainable_variables],
                 [v.value for v in model.non_trainable_variables],
                 [v.value for v in model.optimizer.variables],
                 [v.value for v in model.metrics_variables])
        shapes = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                              (state, (images, labels)))
        analysis = jax.jit(model.train_step).lower(*shapes).cost_analysis()
        if isinstance(analysis, (list, tuple)):  # older JAX: one dict per computation
            analysis = analysis[0]
        return float(analysis["flops"])
    except Exception as error:  # noqa: BLE001 (a cross-check, never a crash)
        print(f"XLA cost analysis unavailable: {error.__class__.__name__}: {error}",
              file=sys.stderr)
        return None


# --------------------------------------------------------------------------- inputs

def window_geometry(batch, crop, bucket, rng):
    """float32 ``(batch, 6)`` geometry (``WINDOW_GEOMETRY``) as ``decode_window`` hands it over:
    the same step on both axes (the rescaling keeps the aspect ratio), the window just large
    enough for the crop's samples, and half of the crops flipped, which the pipeline writes as
    a negative ``step_x`` starting from the window's far side."""
    step = rng.uniform(*WINDOW_STEPS, batch)
    span = (crop - 1) * step  # from the first sample to the last
    extent = np.minimum(bucket, np.ceil(span) + 3)
    first_y, first_x = rng.uniform(*WINDOW_FIRST, (2, batch))
    flipped = rng.random(batch) < 0.5
    fields = {"first_y": first_y, "first_x": np.where(flipped, first_x + span, first_x),
              "step_y": step, "step_x": np.where(flipped, -step, step),
              "height": extent, "width": extent}
    return np.stack([fields[name] for name in WINDOW_GEOMETRY], axis=1).astype(np.float32)


def host_inputs(kind, args, rng):
    """One host batch's inputs of a ``HOST_KINDS`` kind: crops in [0, 255], or the windows'
    dict that ``train_pipeline(placement=Placement(resample="device"))`` hands over."""
    crops = (args.batch, args.crop, args.crop, 3)
    if kind == "float32":
        return rng.uniform(0, 255, crops).astype(np.float32)
    if kind == "uint8":
        return rng.integers(0, 256, crops, dtype=np.uint8)
    bucket = window_bucket(args.crop)
    return {"windows": rng.integers(0, 256, (args.batch, bucket, bucket, 3), dtype=np.uint8),
            "geometry": window_geometry(args.batch, args.crop, bucket, rng)}


def input_arrays(inputs):
    """The arrays of a batch's inputs, the windows' dict in its own order (windows first)."""
    return list(inputs.values()) if isinstance(inputs, dict) else [inputs]


def inputs_layout(inputs):
    """``dtype (shape)`` of each array of a batch's inputs, for the report."""
    return " + ".join(f"{array.dtype.name} {tuple(array.shape)}"
                      for array in input_arrays(inputs))


class HostProducer:
    """Emulated host input pipeline: a thread that keeps ``prefetch`` fresh host batches
    ready, each a copy of one of ``pool`` batches drawn at start (see the module docstring)."""

    def __init__(self, kind, args, rng):
        self.kind = kind
        self.pool = [host_inputs(kind, args, rng) for _ in range(args.pool)]
        self.labels = [rng.integers(0, NUM_CLASSES, (args.batch,)).astype(np.int32)
                       for _ in range(args.pool)]
        self.ready = queue.Queue(maxsize=args.prefetch)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._produce, daemon=True)
        self.thread.start()

    def _produce(self):
        index = 0
        while not self.stopped.is_set():
            # New buffers each step, as tf.data hands over; np.copy releases the GIL.
            batch = (jax.tree.map(np.copy, self.pool[index]), np.copy(self.labels[index]))
            index = (index + 1) % len(self.pool)
            while not self.stopped.is_set():
                try:
                    self.ready.put(batch, timeout=0.1)
                    break
                except queue.Full:
                    continue

    def batches(self):
        while True:
            yield self.ready.get()

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=5)


def on_device_batches(images, labels):
    while True:
        yield images, labels


# --------------------------------------------------------------------------- rows

def compile_for_training(model):
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=LEARNING_RATE, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return model


def compiled_model(policy, args):
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build_vgg(ARCH, NUM_CLASSES, input_shape=(args.crop, args.crop, 3),
                          width=args.width, dropout=args.dropout, init=args.init,
                          preprocessing="imagenet" if args.normalisation else None,
                          name=f"vgg_d_{policy}")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return compile_for_training(model)


def compiled_anchor(policy, args):
    """The anchor: ``keras.applications.VGG16`` (random weights, logits out) under ``policy``,
    compiled as our rows are, so that its row differs from ours in the model code alone."""
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = keras.applications.VGG16(weights=None, classes=NUM_CLASSES,
                                          input_shape=(args.crop, args.crop, 3),
                                          classifier_activation=None)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return compile_for_training(model)


def compiled_window_trainer(model, args):
    """``model`` behind ``WindowCrop`` and ``PCAColorShift``, as a training script builds it for
    ``train_pipeline(placement=Placement(resample="device"))``: takes the windows' dict and shares
    ``model``'s weights (its own optimizer state). No flip layer: the geometry holds the flips."""
    augmentation = training_augmentation(windows=window_bucket(args.crop), crop=args.crop,
                                         flip=False, color_shift=True, seed=args.seed)
    return compile_for_training(with_training_augmentation(model, augmentation))


def fit_seconds(row, steps):
    """Seconds of one ``fit`` over ``steps`` batches; the returned loss is a float, so the
    device has finished every step when the clock stops."""
    start = time.perf_counter()
    history = row["model"].fit(row["batches"](), steps_per_epoch=steps, epochs=1, verbose=0,
                               shuffle=False)
    seconds = time.perf_counter() - start
    row["loss"] = float(history.history["loss"][-1])
    return seconds


def make_rows(args, rng):
    shape = (args.batch, args.crop, args.crop, 3)
    # Placed on the device once; every synthetic step reads the same arrays.
    device_images = jax.device_put(rng.uniform(0, 255, shape).astype(np.float32))
    device_labels = jax.device_put(rng.integers(0, NUM_CLASSES, (args.batch,)).astype(np.int32))
    rows, producers = [], []
    models = {}
    for policy in args.precisions:
        log(f"building and compiling D under {policy} ...")
        models[policy] = compiled_model(policy, args)
        rows.append({
            "name": f"synthetic, on device, {policy}", "policy": policy, "input": "on device",
            "model": models[policy],
            "batches": lambda: on_device_batches(device_images, device_labels)})
    policy = args.precisions[0]
    if args.anchor:
        log(f"building and compiling keras.applications.VGG16 under {policy} ...")
        anchor = compiled_anchor(policy, args)
        rows.append({
            "name": f"anchor: keras.applications.VGG16, synthetic, on device, {policy}",
            "policy": policy, "input": "on device (anchor)", "model": anchor,
            "forward_flops": forward_flops_per_image(anchor),
            "batches": lambda: on_device_batches(device_images, device_labels)})
    for kind in args.host_dtypes:
        producer = HostProducer(kind, args, rng)
        producers.append(producer)
        if kind == "windows":
            bucket = window_bucket(args.crop)
            name = (f"host pipeline, uint8 {bucket}x{bucket} windows + geometry, WindowCrop + "
                    f"colour shift on device, {policy}")
            model = compiled_window_trainer(models[policy], args)
        else:
            name, model = f"host pipeline, {kind} crops, {policy}", models[policy]
        rows.append({"name": name, "policy": policy, "input": f"host {kind}", "model": model,
                     "batches": producer.batches})
    return rows, producers, (device_images, device_labels)


def log(message):
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- report

def row_numbers(row, args, train_flops_per_image):
    """The row's numbers; ``train_flops_per_image`` is D's, unless the row counts its own."""
    if row.get("forward_flops"):
        train_flops_per_image = 3 * row["forward_flops"]
    seconds = statistics.median(row["seconds"])
    images_per_s = args.batch * args.steps / seconds
    model_tflops = images_per_s * train_flops_per_image / 1e12
    peak, peak_name = peak_for(row["policy"], args)
    return {
        "name": row["name"], "policy": row["policy"], "input": row["input"],
        "images_per_s": images_per_s, "ms_per_step": 1e3 * seconds / args.steps,
        "fit_seconds_per_round": row["seconds"], "warmup_seconds": row.get("warmup_seconds"),
        "model_tflops": model_tflops, "peak_tflops": peak, "peak": peak_name,
        "fraction_of_peak": model_tflops / peak, "final_loss": row.get("loss"),
    }


def report(results, args):
    lines = [f"# VGG-{ARCH} training throughput, JAX/XLA, one device", ""]
    env = results["environment"]
    lines += [
        f"- device: {env['device']}; host: {env['host']}",
        f"- jax {env['jax']}, jaxlib {env['jaxlib']}, keras {env['keras']}, "
        f"Python {env['python']}; TensorFlow imported: {env['tensorflow_imported']}; "
        f"XLA_FLAGS={env['xla_flags'] or '(unset)'}",
        f"- D at width {args.width:g}, {args.crop}x{args.crop}x3, {NUM_CLASSES} classes, "
        f"build_vgg ("
        f"{'normalisation layer' if args.normalisation else 'no normalisation layer'}, "
        f"dropout {args.dropout:g}, init {args.init}); SGD(lr={LEARNING_RATE:g}, "
        f"momentum=0.9), sparse CE from logits, jit_compile=True; batch {args.batch}; "
        f"{args.rounds} round(s) x fit of {args.steps} steps per row, median; warm-up fit of "
        f"{args.warmup_steps} step(s) per row excluded"
        + (" (tiny smoke-test settings: the numbers say nothing about a GPU)" if args.tiny
           else ""),
    ]
    flops = results["flops"]
    xla = flops["xla_train_per_image"]
    lines.append(
        f"- FLOPs per image: forward {flops['forward_per_image'] / 1e9:.3f} G (analytic, from "
        f"the model's Conv2D and Dense layers), training {flops['train_per_image'] / 1e9:.3f} G "
        f"(3 x forward); XLA's count of the training step: "
        + (f"{xla / 1e9:.3f} G ({xla / flops['train_per_image']:.3f} x ours)" if xla
           else "unavailable"))
    if results.get("matmul"):
        matmul = results["matmul"]
        lines.append(f"- bf16 matrix product {matmul['size']}^3: {matmul['tflops']:.1f} TFLOP/s "
                     f"({100 * matmul['tflops'] / args.peak_tflops:.1f}% of the "
                     f"{args.peak_tflops:g} peak): the practical ceiling")
    for kind, seconds in results.get("transfer_seconds", {}).items():
        size = results["batch_bytes"][kind]
        lines.append(f"- host-to-device copy of one {kind} batch ({results['batch_layout'][kind]}, "
                     f"{size / 1e6:.1f} MB): {1e3 * seconds:.2f} ms "
                     f"({size / seconds / 1e9:.1f} GB/s)")
    lines += ["", "| row | img/s | ms/step | model TFLOP/s | % of peak | peak used |",
              "|---|---:|---:|---:|---:|---|"]
    for row in results["rows"]:
        lines.append(f"| {row['name']} | {row['images_per_s']:.1f} | {row['ms_per_step']:.1f} | "
                     f"{row['model_tflops']:.2f} | {100 * row['fraction_of_peak']:.1f}% | "
                     f"{row['peak']} |")
    synthetic = next((r for r in results["rows"] if r["input"] == "on device"), None)
    host_rows = [r for r in results["rows"] if r["input"].startswith("host")]
    anchor = next((r for r in results["rows"] if r["input"] == "on device (anchor)"), None)
    if synthetic and anchor:
        lines += ["", f"Ours over the anchor, synthetic, {anchor['policy']}: "
                      f"{synthetic['images_per_s'] / anchor['images_per_s']:.3f} x its img/s."]
    if synthetic and host_rows:
        same = ("same D; the windows row also crops and colour-shifts on the device"
                if any(row["input"] == "host windows" for row in host_rows) else "same model")
        lines += ["", f"Host-fed over synthetic ({same}): " + ", ".join(
            f"{row['input']} {row['images_per_s'] / synthetic['images_per_s']:.3f}"
            for row in host_rows) + "."]
    lines += ["", "Final losses (finite expected): " + ", ".join(
        f"{row['name']} {row['final_loss']:.3f}" for row in results["rows"]) + ".",
        "Warm-up (compilation) seconds: " + ", ".join(
        f"{row['name']} {row['warmup_seconds']:.1f}" for row in results["rows"]) + "."]
    return "\n".join(lines) + "\n"


def save(results, args):
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def main(argv=None):
    args = parse_args(argv)
    if keras.backend.backend() != "jax":
        raise SystemExit(f"bench/gpu.py needs KERAS_BACKEND=jax (got {keras.backend.backend()})")
    wall = time.perf_counter()
    device, devices = device_description()
    results = {
        "environment": {
            "device": device, "devices": devices,
            "host": f"{platform.machine()}, {os.cpu_count()} logical cores",
            "jax": jax.__version__, "jaxlib": jaxlib.__version__,
            "keras": keras.__version__, "python": platform.python_version(),
            "tensorflow_imported": "tensorflow" in sys.modules,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        },
        "settings": {key: value for key, value in vars(args).items()
                     if key not in ("json", "table")},
        "rows": [],
    }
    log(f"device: {device}: {devices}")
    log(f"jax {jax.__version__}, keras {keras.__version__}, "
        f"TensorFlow imported: {'tensorflow' in sys.modules}")
    if args.tiny:
        log("tiny settings (--smoke or no GPU): " + ", ".join(
            f"{key}={getattr(args, key)}" for key in SMOKE))
    save(results, args)

    if args.matmul_size:
        log(f"timing a bf16 {args.matmul_size}^3 matrix product ...")
        results["matmul"] = {"size": args.matmul_size, "tflops": matmul_tflops(args.matmul_size)}

    rng = np.random.default_rng(args.seed)
    rows, producers, (device_images, device_labels) = make_rows(args, rng)
    results["batch_layout"] = {producer.kind: inputs_layout(producer.pool[0])
                               for producer in producers}
    results["batch_bytes"] = {producer.kind: sum(array.nbytes for array in
                                                 input_arrays(producer.pool[0]))
                              for producer in producers}
    results["transfer_seconds"] = {producer.kind: transfer_seconds(producer.pool[0])
                                   for producer in producers}

    forward = forward_flops_per_image(rows[0]["model"])
    if args.width == 1.0 and args.crop == 224:
        log(f"analytic forward GFLOPs {forward / 1e9:.2f}, paper sheet {GFLOPS_224[ARCH]}")
    results["flops"] = {"forward_per_image": forward, "train_per_image": 3 * forward,
                        "xla_train_per_image": None}
    try:
        for row in rows:
            log(f"warm-up (compiles): {row['name']} ...")
            row["warmup_seconds"] = fit_seconds(row, args.warmup_steps)
            log(f"  {row['warmup_seconds']:.1f} s")
        xla = xla_train_step_flops(rows[0]["model"], device_images, device_labels)
        results["flops"]["xla_train_per_image"] = xla / args.batch if xla else None

        for row in rows:
            row["seconds"] = []
        for round_index in range(args.rounds):
            order = rows if round_index % 2 == 0 else rows[::-1]
            for row in order:
                row["seconds"].append(fit_seconds(row, args.steps))
            log(f"round {round_index + 1}/{args.rounds}: " + ", ".join(
                f"{row['name']} {args.batch * args.steps / row['seconds'][-1]:.1f} img/s"
                for row in rows))
            results["rows"] = [row_numbers(row, args, 3 * forward) for row in rows]
            save(results, args)  # a run cut short still leaves its finished rounds
    finally:
        for producer in producers:
            producer.stop()

    results["wall_seconds"] = time.perf_counter() - wall
    save(results, args)
    text = report(results, args) + f"\nWall time: {results['wall_seconds']:.0f} s.\n"
    print(text)
    if args.table:
        with open(args.table, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
