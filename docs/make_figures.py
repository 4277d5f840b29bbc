#!/usr/bin/env python
"""Draw the README's figures (docs/figures/*.png) from the quick-start run and the localisation
example, with the report's own gathering and drawing functions (vgg_keras.inspection and
vgg_keras.figures).

    python docs/make_figures.py --train        # train both runs first (about 10 min on 2 cores)
    python docs/make_figures.py --cls-run runs/cls-a-s72-96 --loc-run runs/loc-scr-a-s72-96

--train runs the README's commands (the quick start, then the SCR localizer fine-tuned from it)
for each run directory that has no summary.json yet; without it the runs must exist. Each
figure is a palette PNG 880 pixels wide and under 150 KB.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a clone without installing

from vgg_keras import figures, inspection, rundir  # noqa: E402

CLS_RUN = "runs/cls-a-s72-96"
LOC_RUN = "runs/loc-scr-a-s72-96"
WIDTH_PX = 880
MAX_BYTES = 150_000


def cls_command(run_dir):
    """The README's quick start."""
    return ["train_cls.py", "--arch", "A", "--width", "0.25", "--crop", "64", "--scale", "72:96",
            "--epochs", "20", "--batch-size", "32", "--init", "glorot", "--optimizer", "adam",
            "--lr", "3e-4", "--weight-decay", "0", "--run-dir", str(run_dir)]


def loc_command(run_dir, cls_run):
    """The README's localisation example: SCR, all layers, from the quick-start classifier."""
    return ["train_loc.py", "--init-from", str(Path(cls_run) / "model.keras"), "--arch", "A",
            "--width", "0.25", "--crop", "64", "--scale", "72:96", "--regression", "scr",
            "--finetune", "all", "--epochs", "10", "--batch-size", "32", "--optimizer", "adam",
            "--lr", "3e-4", "--weight-decay", "0", "--run-dir", str(run_dir)]


def relative(path):
    """``path`` relative to the repository when inside it (the commands run there), so that
    config.json records the README's paths."""
    path = Path(path).resolve()
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


def train(command, run_dir):
    if (Path(run_dir) / "summary.json").exists():
        print(f"{run_dir}: already trained (summary.json), not training again", flush=True)
        return
    print("$ python " + " ".join(command), flush=True)
    started = time.time()
    subprocess.run([sys.executable, *command, "--quiet"], cwd=ROOT, check=True)
    print(f"{run_dir}: {time.time() - started:.0f} s", flush=True)


def save(png, path):
    path.write_bytes(png)
    from PIL import Image

    with Image.open(path) as image:
        size = image.size
    print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {size[0]}x{size[1]}"
          f" px, {len(png) / 1000:.0f} KB", flush=True)
    if len(png) > MAX_BYTES:
        print(f"  warning: over {MAX_BYTES / 1000:.0f} KB", flush=True)


def draw(cls_run, loc_run, out):
    from vgg_keras.options import test_scale
    from vgg_keras.models import load_vgg

    out.mkdir(parents=True, exist_ok=True)
    config = json.loads((cls_run / "config.json").read_text())
    summary = json.loads((cls_run / "summary.json").read_text())
    names = config["classes"]
    q = test_scale(rundir.run_scale(config))
    train_examples, val = inspection.run_examples(config)
    classifier = load_vgg(cls_run / "model.keras", kind="classifier")
    crop = classifier.input_shape[1]

    history = rundir.read_history(cls_run / "history.csv")
    save(figures.figure_png(figures.plot_curves(history, best_epoch=summary.get("best_epoch"),
                                                width=10.5), width_px=WIDTH_PX),
         out / "curves.png")

    images, labels, _ = inspection.training_crops(
        train_examples, scale=rundir.run_scale(config), crop=config["crop"],
        seed=config.get("seed", 0), count=16)
    save(figures.figure_png(figures.plot_crops(images, labels, names), width_px=WIDTH_PX),
         out / "crops.png")

    seen = inspection.classify_validation(classifier, val, test_scale=q, crop=crop, keep=6,
                                          mistakes=2)
    first, wrong = seen["first"], seen["mistakes"]
    pick = {k: list(first[k]) + list(wrong[k]) for k in first}
    save(figures.figure_png(figures.plot_predictions(pick["images"], pick["labels"],
                                                     pick["posteriors"], names),
                            width_px=WIDTH_PX), out / "predictions.png")

    scene, classes, probabilities = inspection.heat_scene(classifier, val, test_scale=q)
    save(figures.figure_png(figures.plot_scene(scene, classes, probabilities, names, crop=crop),
                            width_px=WIDTH_PX), out / "heatmap.png")

    loc_config = json.loads((loc_run / "config.json").read_text())
    localizer = load_vgg(loc_run / "model.keras", kind="localizer")
    loc_q = test_scale(rundir.run_scale(loc_config))
    _, loc_val = inspection.run_examples(loc_config)
    found = inspection.protocol1_boxes(localizer, loc_val, test_scale=loc_q, count=16)
    save(figures.figure_png(figures.plot_boxes(found, names), width_px=WIDTH_PX),
         out / "boxes.png")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cls-run", default=CLS_RUN, help="the quick-start run directory")
    parser.add_argument("--loc-run", default=LOC_RUN, help="the localisation run directory")
    parser.add_argument("--train", action="store_true",
                        help="train the runs that have no summary.json first")
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"))
    args = parser.parse_args(argv)
    cls_run, loc_run = (Path(p) if Path(p).is_absolute() else ROOT / p
                        for p in (args.cls_run, args.loc_run))
    if args.train:
        train(cls_command(relative(cls_run)), cls_run)
        train(loc_command(relative(loc_run), relative(cls_run)), loc_run)
    for run_dir in (cls_run, loc_run):
        if not (run_dir / "model.keras").exists():
            parser.error(f"{run_dir} has no model.keras: train it (--train) or name a finished "
                         "run")
    draw(cls_run, loc_run, Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
