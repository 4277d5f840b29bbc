"""Does the paper's recipe train plain VGG from scratch? Variants side by side in one run.

Each variant is ``train_cls.py`` on the embedded data at a CPU-sized width and crop, from random
initialisation, for the same number of epochs; the table gives each run's error on the test
split (dense, flip-averaged, the paper's three test scales: chosen on validation, reported on
test), its best epoch and its time. The variants differ only in the initialisation, the
optimizer and the weight decay, so that the reason a deep net stays at chance can be read off.

    python bench/recipe.py [--archs D] [--epochs 8] [--variants sgd-glorot sgd-xavier ...]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from vgg_keras import data
from vgg_keras.models import build_vgg, scale_to_unit_output

ROOT = Path(__file__).resolve().parents[1]

SGD = ["--optimizer", "sgd", "--lr", "1e-2", "--momentum", "0.9"]
VARIANTS = {
    # The paper's optimisation (SGD 1e-2, momentum 0.9, weight decay 5e-4) with each init.
    "sgd-paper": [*SGD, "--weight-decay", "5e-4", "--init", "paper"],
    "sgd-glorot": [*SGD, "--weight-decay", "5e-4", "--init", "glorot"],
    "sgd-xavier": [*SGD, "--weight-decay", "5e-4", "--init", "xavier"],
    # Without weight decay: does decay hold the small early gradients back?
    "sgd-glorot-nowd": [*SGD, "--weight-decay", "0", "--init", "glorot"],
    # The paper's rate was for batches of 256; at our batch of 32 the same step per image is
    # 1e-2 * 32 / 256 (the linear scaling rule).
    "sgd-glorot-batch-lr": [*SGD[:2], "--lr", "1.25e-3", *SGD[4:], "--weight-decay", "5e-4",
                            "--init", "glorot"],
    "sgd-xavier-batch-lr": [*SGD[:2], "--lr", "1.25e-3", *SGD[4:], "--weight-decay", "5e-4",
                            "--init", "xavier"],
    # Each layer's kernel rescaled on a batch of training images so that its output has unit
    # second moment (LSUV, Mishkin & Matas 2016): a start whose signal neither vanishes with depth
    # (Glorot's fan-average halves the variance at every ReLU layer) nor explodes on the
    # undivided pixels (He's 2 / fan_in, whose logits start near 100).
    "sgd-unit-scale": [*SGD, "--weight-decay", "5e-4", "--statistics", "data"],
    "sgd-unit-scale-batch-lr": [*SGD[:2], "--lr", "1.25e-3", *SGD[4:], "--weight-decay", "5e-4",
                                "--statistics", "data"],
    # The quick start's optimiser.
    "adam-glorot": ["--optimizer", "adam", "--lr", "3e-4", "--weight-decay", "0",
                    "--init", "glorot"],
    "adam-xavier": ["--optimizer", "adam", "--lr", "3e-4", "--weight-decay", "0",
                    "--init", "xavier"],
}


def unit_scale_start(arch, args, out, *, batch=256):
    """A ``.keras`` start for ``--init-from``: glorot, then each conv/FC layer's kernel divided by
    the root mean square of its output on one batch of training crops, first layer first (what
    ``train_cls.py --init unit-scale`` does on 64 crops)."""
    path = out / f"{arch.lower()}-unit-scale-start.keras"
    if path.exists():
        return path
    examples = data.load(args.data, "train")
    crop_scale = int(args.scale.split(":")[0])
    images, _ = next(iter(data.eval_pipeline(examples, test_scale=crop_scale, crop=args.crop,
                                             mode="center", batch_size=batch)))
    images = np.asarray(images, "float32")
    mean = images.reshape(-1, 3).mean(axis=0).tolist()
    model = build_vgg(arch, data.info(examples).num_classes, width=args.width, init="glorot",
                      input_shape=(args.crop, args.crop, 3), preprocessing={"mean": mean})
    scale_to_unit_output(model, images)
    out.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def run(arch, variant, args, out):
    run_dir = out / f"{arch.lower()}-{variant}"
    start = (["--init-from", str(unit_scale_start(arch, args, out))]
             if variant.startswith("sgd-unit-scale") else [])
    command = [sys.executable, str(ROOT / "train_cls.py"), "--arch", arch, "--width",
               str(args.width), "--crop", str(args.crop), "--scale", args.scale, "--batch-size",
               str(args.batch_size), "--epochs", str(args.epochs), "--data", args.data,
               "--quiet", "--no-report", "--run-dir", str(run_dir), *VARIANTS[variant], *start]
    started = time.time()
    result = subprocess.run(command, capture_output=True, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    seconds = time.time() - started
    if result.returncode != 0:
        return {"arch": arch, "variant": variant, "error": result.stderr[-500:]}
    summary = json.loads((run_dir / "summary.json").read_text())
    history = json.loads((run_dir / "checkpoints" / "state.json").read_text())["history"]
    accuracies = [round(100 * row.get("val_accuracy", 0), 1) for row in history]
    return {"arch": arch, "variant": variant, "top1": summary["top1_error"],
            "top5": summary["top5_error"], "best_epoch": summary["best_epoch"],
            "val_accuracy_by_epoch": accuracies, "seconds": round(seconds),
            "chance": summary["chance_top1_error"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["D"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--scale", default="72:96")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data", default="vgg_shapes")
    parser.add_argument("--out", default="runs/bench-recipe")
    parser.add_argument("--json", default=None, help="also write the rows here")
    args = parser.parse_args()
    out = Path(args.out)
    rows = []
    print("| arch | variant | top-1 error (test, dense, Q=3 scales) | top-5 | best epoch | "
          "selection accuracy by epoch (%) | seconds |")
    print("|---|---|---:|---:|---:|---|---:|", flush=True)
    for arch in args.archs:
        for variant in args.variants:
            row = run(arch, variant, args, out)
            rows.append(row)
            if "error" in row:
                print(f"| {arch} | {variant} | failed: {row['error']!r} |", flush=True)
                continue
            print(f"| {arch} | {variant} | {row['top1']:.1f} | {row['top5']:.1f} | "
                  f"{row['best_epoch']} | {' '.join(map(str, row['val_accuracy_by_epoch']))} | "
                  f"{row['seconds']} |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
