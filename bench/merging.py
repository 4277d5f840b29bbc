#!/usr/bin/env python
"""Protocol 2's merging criteria side by side: OverFeat's match score against IoU.

The same localizers, classifier and images for both: the nets run once per image and scale
set (``protocol2_predictions``), and every criterion and threshold merges those same outputs
(``localize_image``, as ``protocol2`` does). Thresholds are chosen on one split (``--tune``,
validation) and both criteria are compared on another (``--split``, test), so that neither
is rated on the images its threshold was picked on. A check reruns one row end to end with
``run_protocol2(..., merge=...)`` and requires the same errors.

    python bench/merging.py          # trains the quick models below when missing
    python bench/merging.py --data vgg_shapes/hard --classifier runs/t3-hard/cls-d-s \
        --localizers runs/t3-hard/loc-pcr-all-s-adam-paperinit-e8 --scales 112

Models (trained here with the commands printed when their run directory has no model): the
README's quick-start classifier (A, width 0.25, crop 64, S 72:96, 20 epochs, Adam 3e-4) and
two localizers fine-tuned from it, all layers, SCR and PCR, 10 epochs, Adam 3e-4 (the recipe
of bench/localization.py). Results: ``--output`` (JSON) and markdown tables on stdout.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from noise import mcnemar  # noqa: E402

DATA = ["--arch", "A", "--width", "0.25", "--crop", "64", "--scale", "72:96", "--batch-size",
        "32"]
CLASSIFIER = DATA + ["--epochs", "20", "--init", "glorot", "--optimizer", "adam", "--lr",
                     "3e-4", "--weight-decay", "0"]
LOCALIZER = DATA + ["--epochs", "10", "--optimizer", "adam", "--lr", "3e-4", "--weight-decay",
                    "0", "--finetune", "all"]
THRESHOLDS = {"overfeat": [-0.2, -0.1, -0.05, 0.0, 0.05, 0.1, 0.2, 0.3],
              "iou": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]}


def train(args, run_dir, log):
    """Run train_cls.py / train_loc.py ``args`` into ``run_dir`` unless it holds a model."""
    if (ROOT / run_dir / "model.keras").exists():
        return None
    command = [sys.executable, *args, "--run-dir", str(run_dir), "--verbose", "2", "--quiet"]
    print("$", " ".join(command[1:]), flush=True)
    started = time.time()
    with open(log, "a") as handle:
        code = subprocess.call(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT)
    if code:
        raise SystemExit(f"{command[1]} failed with exit status {code}; see {log}")
    return time.time() - started


def collect(localizer, classifier, examples, scales):
    """Every usable image's ``(label, ground truth, predictions, posterior)`` and the seconds
    the nets took."""
    from vgg_keras.evaluate import known_total, protocol_batches
    from vgg_keras.localization.protocols import protocol2_predictions

    def make_batches(q):
        return protocol_batches(examples, "dense", q, boxes=True).as_numpy_iterator()

    started = time.perf_counter()
    items = [item for item in protocol2_predictions(
        localizer, classifier, make_batches, scales=scales, total=known_total(examples)[0],
        progress_label=f"{localizer.name} Q={','.join(map(str, scales))}")
        if item[2] is not None]
    return items, time.perf_counter() - started


def rate(items, merge, threshold):
    """Protocol 2's errors (%) on ``items`` merging by ``merge`` at ``threshold``, with the
    boxes merged per class and the clusters left (top-1 class), and the merging's time."""
    import numpy as np

    from vgg_keras import boxes as B
    from vgg_keras.localization.protocols import localization_errors, localize_image

    top1 = top5 = cls5 = boxes_in = clusters = 0.0
    seconds = 0.0
    wrong = []
    for label, gt, predictions, posterior in items:
        started = time.perf_counter()
        guesses = localize_image(predictions, posterior, merge=merge, merge_threshold=threshold)
        seconds += time.perf_counter() - started
        errors = localization_errors(guesses, label, gt)
        top1 += errors["top1"]
        top5 += errors["top5"]
        wrong.append(bool(errors["top5"]))
        cls5 += label not in [c for c, _ in guesses]
        # What localize_image merges for the top-1 class: the union of its boxes.
        first = guesses[0][0]
        union, rates = [], []
        for b, r in predictions:
            b = np.asarray(b).reshape(len(r), -1, 4)
            union.append(b[:, first if b.shape[1] > 1 else 0])
            rates.append(np.asarray(r)[:, first])
        union, rates = np.concatenate(union), np.concatenate(rates)
        boxes_in += len(union)
        clusters += len(B.merge_boxes(union, rates, merge=merge, threshold=threshold)[0])
    n = len(items)
    return {"merge": merge, "merge_threshold": threshold, "top1_loc": 100 * top1 / n,
            "top5_loc": 100 * top5 / n, "top5_cls": 100 * cls5 / n, "images": n,
            "boxes": boxes_in / n, "clusters": clusters / n, "merge_ms": 1000 * seconds / n,
            "top5_wrong": wrong}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--data", default="vgg_shapes",
                        help="dataset the models were trained on (vgg_keras.data.load name)")
    parser.add_argument("--classifier", default="runs/cls-a-s72-96")
    parser.add_argument("--localizers", nargs="+",
                        default=["runs/loc-scr-a-s72-96", "runs/loc-pcr-a-s72-96"],
                        help="run directories; one whose name holds 'scr' or 'pcr' is trained "
                             "with that regression when it has no model.keras")
    parser.add_argument("--scales", nargs="+", default=["84", "72,84,96", "128"],
                        help="test scale sets Q, comma-separated")
    parser.add_argument("--tune", default="validation", help="split the thresholds are "
                        "chosen on")
    parser.add_argument("--split", default="test", help="split both criteria are compared on")
    parser.add_argument("--compare", nargs="*", default=["overfeat:0", "iou:0.5"],
                        help="MERGE:THRESHOLD settings compared besides each criterion's default "
                             "and its tuned threshold")
    parser.add_argument("--output", default="runs/merging_results.json")
    args = parser.parse_args(argv)

    log = ROOT / "runs" / "merging_train.log"
    log.parent.mkdir(exist_ok=True)
    data = ["--data", args.data]
    trained = {args.classifier: train(["train_cls.py", *CLASSIFIER, *data], args.classifier,
                                      log)}
    for run_dir in args.localizers:
        regression = "pcr" if "pcr" in Path(run_dir).name else "scr"
        trained[run_dir] = train(["train_loc.py", *LOCALIZER, *data, "--regression", regression,
                                  "--init-from", f"{args.classifier}/model.keras"], run_dir, log)

    import keras
    from vgg_keras import boxes as B
    from vgg_keras.data import load
    from vgg_keras.localization.protocols import format_table9, run_protocol2
    from vgg_keras.models import load_vgg

    classifier = load_vgg(str(ROOT / args.classifier / "model.keras"), kind="classifier")
    localizers = [load_vgg(str(ROOT / d / "model.keras"), kind="localizer")
                  for d in args.localizers]
    scale_sets = [[int(q) for q in s.split(",")] for s in args.scales]
    splits = {name: load(args.data, name) for name in (args.tune, args.split)}

    # The nets once per (split, localizer, scale set); every criterion merges their outputs.
    cached, net_seconds = {}, {}
    for split, examples in splits.items():
        for localizer in localizers:
            for scales in scale_sets:
                key = (split, localizer.name, tuple(scales))
                cached[key], net_seconds[key] = collect(localizer, classifier, examples, scales)

    # Thresholds: each criterion's lowest mean top-5 error over the tuning split's rows (ties:
    # lower mean top-1, then the current default).
    sweep = {}
    for merge, thresholds in THRESHOLDS.items():
        for t in thresholds:
            rows = [rate(items, merge, t) for key, items in cached.items()
                    if key[0] == args.tune]
            sweep[(merge, t)] = (sum(r["top5_loc"] for r in rows) / len(rows),
                                 sum(r["top1_loc"] for r in rows) / len(rows))
    tuned = {merge: min(thresholds, key=lambda t: (*sweep[(merge, t)],
                                                    t != B.MERGE_THRESHOLDS[merge]))
             for merge, thresholds in THRESHOLDS.items()}

    # The comparison on the other split: both criteria at their defaults and as tuned.
    settings = []
    extra = [(m, float(t)) for m, t in (c.split(":") for c in args.compare)]
    for merge in B.MERGES:
        for m, t in [(merge, B.MERGE_THRESHOLDS[merge]), (merge, tuned[merge])] + extra:
            if m == merge and (m, t) not in settings:
                settings.append((m, t))
    table = []
    for localizer in localizers:
        for scales in scale_sets:
            key = (args.split, localizer.name, tuple(scales))
            for merge, t in settings:
                table.append({"models": [localizer.name], "classifiers": [classifier.name],
                              "scales": scales, **rate(cached[key], merge, t)})

    # Paired: the two defaults on the same images, row by row.
    pairs = []
    for localizer in localizers:
        for scales in scale_sets:
            rows = {r["merge"]: r for r in table if r["models"] == [localizer.name]
                    and r["scales"] == scales and r["merge_threshold"] ==
                    B.MERGE_THRESHOLDS[r["merge"]]}
            only_overfeat, only_iou, p = mcnemar(
                [not wrong for wrong in rows["overfeat"]["top5_wrong"]],
                [not wrong for wrong in rows["iou"]["top5_wrong"]])
            pairs.append({"localizer": localizer.name, "scales": scales,
                          "only_overfeat_right": only_overfeat, "only_iou_right": only_iou,
                          "p": p})
    for r in table:
        r.pop("top5_wrong")

    # End to end through run_protocol2 for the first localizer and scale set: the same errors.
    check = []
    for merge in B.MERGES:
        row = run_protocol2(localizers[0], classifier, splits[args.split],
                            scales=scale_sets[0], merge=merge)
        mine = next(r for r in table if r["models"] == [localizers[0].name]
                    and r["scales"] == scale_sets[0] and r["merge"] == merge
                    and r["merge_threshold"] == B.MERGE_THRESHOLDS[merge])
        same = all(abs(row[k] - mine[k]) < 1e-9 for k in ("top1_loc", "top5_loc", "top5_cls"))
        check.append({"merge": merge, "top5_loc": row["top5_loc"], "same": same})
        if not same:
            raise SystemExit(f"run_protocol2 merge={merge} disagrees: {row} vs {mine}")

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores, "
               f"Python {platform.python_version()}, keras {keras.__version__}, backend "
               f"{keras.backend.backend()}")
    summaries = {d: json.loads((ROOT / d / "summary.json").read_text())
                 for d in [args.classifier, *args.localizers]}
    results = {"machine": machine, "default_merge": B.DEFAULT_MERGE,
               "default_thresholds": B.MERGE_THRESHOLDS, "tuned_on": args.tune,
               "tuned": tuned, "compared_on": args.split,
               "sweep": [{"merge": m, "threshold": t, "mean_top5_loc": v[0],
                          "mean_top1_loc": v[1]} for (m, t), v in sweep.items()],
               "table9": table, "paired": pairs, "check": check,
               "net_seconds": {f"{s}/{n}/{','.join(map(str, q))}": v
                               for (s, n, q), v in net_seconds.items()},
               "models": {d: {k: summaries[d].get(k) for k in (
                   "arch", "epochs", "seconds", "top1_error", "regression", "finetune",
                   "protocol1_error")} for d in summaries},
               "trained_here_seconds": trained}
    (ROOT / args.output).write_text(json.dumps(results, indent=1))

    print(f"\nMachine: {machine}")
    for d, s in results["models"].items():
        print(f"{d}: " + ", ".join(f"{k} {v}" for k, v in s.items() if v is not None))
    print(f"\nThreshold sweep on {args.tune} (mean over {len(localizers)} localizer(s) x "
          f"{len(scale_sets)} scale set(s)): top-5 / top-1 localisation error %\n")
    print("| criterion | threshold | mean top-5 loc | mean top-1 loc |")
    print("|---|---:|---:|---:|")
    for (m, t), (five, one) in sweep.items():
        mark = " (default)" if t == B.MERGE_THRESHOLDS[m] else ""
        mark += " (best)" if t == tuned[m] else ""
        print(f"| {m} | {t:g}{mark} | {five:.2f} | {one:.2f} |")
    print()
    print(format_table9(table, title=f"Protocol 2 on {args.split} "
                                     f"({table[0]['images']} images), both criteria"))
    print("\n| localizer | Q | merging | boxes per class | merged boxes (top-1 class) | "
          "merge ms/image |")
    print("|---|---|---|---:|---:|---:|")
    for r in table:
        print(f"| {r['models'][0]} | {','.join(map(str, r['scales']))} | {r['merge']} "
              f"{r['merge_threshold']:g} | {r['boxes']:.1f} | {r['clusters']:.2f} | "
              f"{r['merge_ms']:.2f} |")
    print(f"\nThe defaults paired on the same {args.split} images (top-5 localisation): "
          f"overfeat {B.MERGE_THRESHOLDS['overfeat']:g} vs iou {B.MERGE_THRESHOLDS['iou']:g}\n")
    print("| localizer | Q | only overfeat right | only iou right | McNemar p |")
    print("|---|---|---:|---:|---:|")
    for r in pairs:
        print(f"| {r['localizer']} | {','.join(map(str, r['scales']))} | "
              f"{r['only_overfeat_right']} | {r['only_iou_right']} | {r['p']:.2f} |")
    print(f"\nrun_protocol2 end to end ({localizers[0].name}, Q={scale_sets[0]}): " + ", ".join(
        f"{c['merge']} top-5 loc {c['top5_loc']:.1f}% (same as above: {c['same']})"
        for c in check))
    nets = sum(net_seconds.values())
    print(f"Nets: {nets:.0f} s for all splits, localizers and scale sets. Results in "
          f"{args.output}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
