"""Fine-tuning against training from scratch on a small folder of real images, and the
from-scratch learning rate before and after the batch rule, run as a user runs them.

The folder: scikit-learn's 1,797 handwritten digits (8x8 scans, ten classes), each upscaled to
a JPEG of a random size between 64 and 128 pixels a side, written as ``train/<digit>/`` and
``val/<digit>/`` class folders (500 images in ``val/``, the report split; ``--val-fraction`` of
``train/`` chooses the kept epoch). The source for fine-tuning is a classifier trained on other
classes (``--source``, e.g. the quick start's A on ``vgg_shapes``). Every run is
``train_cls.py`` as a subprocess; the table gives each run's dense error on the 500 ``val/``
images and, for each comparison, the images only one of the two gets right with McNemar's exact
p-value (same images, same protocol).

    pip install scikit-learn       # the digits ship inside the package
    python train_cls.py --arch A --width 0.25 --crop 64 --scale 72:96 --epochs 20 \\
        --batch-size 32 --init glorot --optimizer adam --lr 3e-4 --weight-decay 0 \\
        --run-dir runs/source-a-shapes
    python bench/small_folder.py --source runs/source-a-shapes/model.keras --out runs/small
"""

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from noise import correct_images, mcnemar  # noqa: E402

COMMON = ["--arch", "A", "--width", "0.25", "--crop", "64", "--scale", "64:96", "--init",
          "glorot", "--batch-size", "32", "--val-fraction", "0.1", "--quiet", "--no-report"]
RUNS = {
    # name: extra flags (the epochs come from --epochs)
    "scratch-sgd-rule": [],
    "scratch-sgd-1e-2": ["--lr", "1e-2"],
    "scratch-adam": ["--optimizer", "adam", "--weight-decay", "0"],
    "finetune-sgd-rule": ["--init-from", "{source}"],
    "finetune-adam": ["--init-from", "{source}", "--optimizer", "adam", "--weight-decay", "0"],
    "finetune-fc8-sgd-rule": ["--init-from", "{source}", "--finetune", "fc8"],
}
PAIRS = [("finetune-sgd-rule", "scratch-sgd-rule"), ("finetune-adam", "scratch-adam"),
         ("scratch-sgd-rule", "scratch-sgd-1e-2"), ("finetune-sgd-rule", "finetune-adam"),
         ("finetune-fc8-sgd-rule", "finetune-sgd-rule")]
VAL_IMAGES = 500


def make_folder(root, seed=0):
    """Write the digits as JPEG class folders; returns the image count."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(digits.target))
    for rank, index in enumerate(order):
        split = "val" if rank < VAL_IMAGES else "train"
        folder = Path(root) / split / str(digits.target[index])
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[index] * (255 / 16)).astype("uint8")
        height, width = (int(v) for v in rng.integers(64, 129, size=2))
        image = Image.fromarray(pixels).resize((width, height), Image.BICUBIC).convert("RGB")
        image.save(folder / f"{index:04d}.jpg", quality=90)
    return len(order)


def train(name, flags, args, folder):
    run_dir = Path(args.out) / f"{name}-seed{args.seed}"
    command = [sys.executable, str(ROOT / "train_cls.py"), "--data", str(folder),
               *COMMON, "--epochs", str(args.epochs), "--seed", str(args.seed),
               "--run-dir", str(run_dir),
               *[flag.format(source=args.source) for flag in flags]]
    if not (run_dir / "summary.json").exists():
        print("$", " ".join(command), flush=True)
        started = time.time()
        subprocess.run(command, check=True, cwd=ROOT)
        print(f"  {time.time() - started:.0f} s", flush=True)
    return run_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--source", required=True, help="a classifier of other classes")
    parser.add_argument("--out", default="runs/small")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = parser.parse_args(argv)
    folder = Path(args.out) / "digits"
    if not folder.exists():
        print(f"{make_folder(folder)} images written to {folder}")
    dirs = {name: train(name, RUNS[name], args, folder) for name in args.runs}
    results = {name: correct_images(run_dir, str(folder)) for name, run_dir in dirs.items()}
    print(f"\n{args.epochs} epochs, seed {args.seed}; dense error on the {VAL_IMAGES} val/ images")
    print("| run | top-1 error % | best epoch | seconds |")
    print("|---|---|---|---|")
    for name, (correct, summary) in results.items():
        print(f"| {name} | {100 * (1 - correct.mean()):.1f} | {summary['best_epoch']} | "
              f"{summary['seconds']:.0f} |")
    print("\n| comparison | only first right | only second right | McNemar p |")
    print("|---|---|---|---|")
    for first, second in PAIRS:
        if first in results and second in results:
            a, b, p = mcnemar(results[first][0], results[second][0])
            print(f"| {first} vs {second} | {a} | {b} | {p:.2g} |")


if __name__ == "__main__":
    main()
