"""Training throughput and evaluation cost, ours against keras.applications, side by side.

1. Training images/s: our pipeline (fused decode-and-crop, S jittered in [Smin, Smax]) feeding
   (a) our D behind its on-device flip + colour-shift layers and (b) keras.applications.VGG16,
   both compiled alike (SGD momentum 0.9, logits + sparse cross-entropy), rounds interleaved.
2. Evaluation cost per image of our D at the paper's three test scales: dense evaluation (one
   pass per scale and its mirror) against multi-crop (50 crops per scale, 150 in all).

    python bench/train.py                         # 224 crops, batch 8, full width (slow on CPU)
    python bench/train.py --width 0.25 --crop 112 --scales 128 160 192

Prints markdown tables; copy them into bench/RESULTS.md with the machine line it prints.
"""

import argparse
import os
import platform
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402


def machine_line():
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{model}, {os.cpu_count()} logical cores; keras {keras.__version__}, "
            f"backend {keras.backend.backend()}")


def write_jpegs(folder, count, seed=0):
    """ImageNet-like JPEGs (about 500x375, quality 90) in one class folder per label."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for index in range(count):
        label = index % 4
        os.makedirs(os.path.join(folder, f"class{label}"), exist_ok=True)
        height, width = (375, 500) if index % 3 else (500, 375)
        base = rng.uniform(0, 255, (height // 8, width // 8, 3)).astype("uint8")
        image = Image.fromarray(base).resize((width, height), Image.BILINEAR)
        image.save(os.path.join(folder, f"class{label}", f"{index:05d}.jpg"), quality=90)


def timed_rounds(steps_by_name, rounds):
    """Alternate the named step functions round by round; median seconds per call of each."""
    times = {name: [] for name in steps_by_name}
    for round_index in range(rounds):
        order = list(steps_by_name) if round_index % 2 == 0 else list(steps_by_name)[::-1]
        for name in order:
            started = time.perf_counter()
            steps_by_name[name]()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def training_table(args):
    import vgg_keras
    import vgg_keras.data as data
    from vgg_keras.augment import training_augmentation
    from vgg_keras.fitting import with_training_augmentation

    folder = tempfile.mkdtemp(prefix="vgg_bench_")
    write_jpegs(folder, args.images)
    examples = data.load(folder, "train", validate="header")
    batches = data.train_pipeline(examples, scale=tuple(args.scale), crop=args.crop,
                                  batch_size=args.batch, seed=0, repeat=True,
                                  placement=data.Placement(augment="device"))
    iterator = iter(batches)

    def compiled(model):
        model.compile(keras.optimizers.SGD(1e-3, momentum=0.9),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return model

    ours = vgg_keras.build_vgg("D", 4, input_shape=(args.crop, args.crop, 3), width=args.width,
                               init="glorot")
    ours = compiled(with_training_augmentation(ours, training_augmentation(seed=0)))
    theirs = compiled(keras.applications.VGG16(
        weights=None, input_shape=(args.crop, args.crop, 3), classes=4,
        classifier_activation=None)) if args.width == 1.0 else None
    models = {"ours: pipeline + D (+ device flip/colour)": ours}
    if theirs is not None:
        models["keras.applications.VGG16, same pipeline"] = theirs

    def step(model):
        def run():
            for _ in range(args.steps):
                images, labels = next(iterator)
                model.train_on_batch(images, labels)
        return run

    for model in models.values():  # warm-up: tracing and first allocations
        step(model)()
    seconds = timed_rounds({name: step(model) for name, model in models.items()}, args.rounds)
    lines = ["| training step | images/s |", "|---|---:|"]
    for name, value in seconds.items():
        lines.append(f"| {name} | {args.steps * args.batch / value:.2f} |")
    if theirs is None:
        lines.append("| keras.applications.VGG16 | (only at --width 1.0) |")
    return "\n".join(lines)


def evaluation_table(args):
    import vgg_keras

    model = vgg_keras.build_vgg("D", 10, input_shape=(args.crop, args.crop, 3),
                                width=args.width, init="glorot")
    dense = vgg_keras.to_dense(model)
    rng = np.random.default_rng(0)
    images = {q: rng.uniform(0, 255, (1, q, q * 4 // 3, 3)).astype("float32")
              for q in args.scales}
    crops = rng.uniform(0, 255, (50, args.crop, args.crop, 3)).astype("float32")

    def dense_eval():
        for q in args.scales:
            image = images[q]
            dense.predict_on_batch(image)
            dense.predict_on_batch(image[:, :, ::-1])

    def multicrop_eval():
        for _ in args.scales:
            for start in range(0, 50, args.batch):
                model.predict_on_batch(crops[start:start + args.batch])

    dense_eval(), multicrop_eval()  # warm-up
    seconds = timed_rounds({"dense": dense_eval, "multicrop": multicrop_eval}, args.rounds)
    scales = ",".join(str(q) for q in args.scales)
    return "\n".join([
        "| evaluation of one image, Q in {" + scales + "} | seconds | relative |",
        "|---|---:|---:|",
        f"| dense (whole image + mirror per scale) | {seconds['dense']:.2f} | 1.00 |",
        f"| multi-crop (150 crops) | {seconds['multicrop']:.2f} | "
        f"{seconds['multicrop'] / seconds['dense']:.2f} |",
    ])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--scale", type=int, nargs=2, default=[256, 512])
    parser.add_argument("--scales", type=int, nargs="+", default=[256, 384, 512])
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    print(f"crop {args.crop}, width {args.width}, batch {args.batch}, {args.steps} steps x "
          f"{args.rounds} rounds (median)\n")
    if not args.skip_training:
        print(training_table(args), "\n")
    print(evaluation_table(args))


if __name__ == "__main__":
    main()
