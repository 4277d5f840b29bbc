#!/usr/bin/env python
"""Tables 8 and 9 on the embedded data, end to end.

From one trained classifier (trained here first with the README's quick-start recipe when
``--classifier`` does not exist yet), train the four localizers of Table 8, SCR and PCR, each
fine-tuning the FC layers only and all layers, with one recipe and one epoch budget. Then rate
protocol 2 (Table 9) with the classifier: the best localizer by protocol 1 at each test scale
and at all of them, and the union of the two all-layer localizers.

    python bench/localization.py                       # Adam 3e-4, 10 epochs, runs/s2_loc_*
    python bench/localization.py --optimizer sgd --lr 1e-3 --weight-decay 5e-4 --prefix runs/sgd

Each step is its own ``train_cls.py`` / ``train_loc.py`` process (the same commands a user
would type; they are printed), and a finished run directory is reused, so the script resumes.
Results: ``<prefix>_results.json`` and the markdown tables on stdout.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ["--arch", "A", "--width", "0.25", "--crop", "64", "--scale", "72:96", "--batch-size",
        "32"]
CLASSIFIER = DATA + ["--epochs", "20", "--init", "glorot", "--optimizer", "adam", "--lr",
                     "3e-4", "--weight-decay", "0"]
RUNS = [("scr", "fc"), ("pcr", "fc"), ("scr", "all"), ("pcr", "all")]


def run(args, log):
    command = [sys.executable, *args]
    print("$", " ".join(str(a) for a in command[1:]), flush=True)
    started = time.time()
    with open(log, "a") as handle:
        code = subprocess.call(command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    if code:
        raise SystemExit(f"{command[1]} failed with exit status {code}; see {log}")
    return time.time() - started


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--classifier", default="runs/s2_cls_a/model.keras")
    parser.add_argument("--prefix", default="runs/s2_loc", help="run directories <prefix>_scr_fc...")
    parser.add_argument("--epochs", default="10")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", default="3e-4")
    parser.add_argument("--weight-decay", default="0")
    parser.add_argument("--scales", nargs="+", default=["84", "72", "96"],
                        help="protocol 2 test scales; the first is protocol 1's (Q of S 72:96)")
    parser.add_argument("--no-protocol2", action="store_true",
                        help="skip the multi-scale protocol-2 evaluations (each training run "
                             "still rates protocol 2 at the first scale)")
    parser.add_argument("--only", choices=[f"{r}_{f}" for r, f in RUNS], nargs="+",
                        help="train only these localizers")
    args = parser.parse_args(argv)

    prefix = Path(args.prefix)
    log = Path(f"{prefix}.log")
    classifier = Path(args.classifier)
    if not (ROOT / classifier).exists():
        run(["train_cls.py", *CLASSIFIER, "--run-dir", str(classifier.parent), "--verbose", "2"],
            log)
    cls_summary = json.loads((ROOT / classifier.parent / "summary.json").read_text())
    recipe = ["--optimizer", args.optimizer, "--lr", args.lr, "--weight-decay",
              args.weight_decay, "--epochs", args.epochs]
    rows = []
    for regression, finetune in RUNS:
        name = f"{regression}_{finetune}"
        if args.only and name not in args.only:
            continue
        run_dir = Path(f"{prefix}_{name}")
        summary_path = ROOT / run_dir / "summary.json"
        seconds = None
        if not summary_path.exists():
            seconds = run(["train_loc.py", *DATA, *recipe, "--init-from", str(classifier),
                           "--regression", regression, "--finetune", finetune,
                           "--run-dir", str(run_dir), "--verbose", "2"], log)
        summary = json.loads(summary_path.read_text())
        rows.append({"name": name, "run_dir": str(run_dir), "regression": regression,
                     "finetune": finetune, "epochs": summary["epochs"],
                     "best_epoch": summary["best_epoch"], "error": summary["protocol1_error"],
                     "mean_iou": summary["protocol1"]["mean_iou"],
                     "images": summary["protocol1"]["images"],
                     "train_seconds": summary["seconds"], "wall_seconds": seconds,
                     "p2_top5_q84": summary.get("protocol2_top5_error")})

    table9 = []
    if len(rows) == len(RUNS) and not args.no_protocol2:
        best = min(rows, key=lambda r: r["error"])
        fused = [r for r in rows if r["finetune"] == "all"]
        for models in ([best], fused):
            output = Path(f"{prefix}_p2_{'+'.join(r['name'] for r in models)}.json")
            if not (ROOT / output).exists():
                run(["train_loc.py", *DATA, "--evaluate",
                     *[f"{r['run_dir']}/model.keras" for r in models],
                     "--classifier", str(classifier), "--eval-scales", *args.scales,
                     "--eval-output", str(output)], log)
            for row in json.loads((ROOT / output).read_text())["protocol2"]:
                table9.append({**row, "localizers": [r["name"] for r in models]})

    results = {"classifier": str(classifier),
               "classifier_top1_error": cls_summary["top1_error"],
               "recipe": " ".join(recipe), "protocol1": rows, "protocol2": table9}
    Path(ROOT / f"{prefix}_results.json").write_text(json.dumps(results, indent=1))
    print(f"\nclassifier {classifier}: top-1 error {cls_summary['top1_error']:.1f}% "
          f"(center crop, Q=84)\nrecipe: {' '.join(recipe)}\n")
    print("| fine-tuned layers | regression | protocol-1 error % | mean IoU | best epoch / "
          "epochs | train s | top-5 loc err % (prot. 2, Q=84) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        p2 = "" if r["p2_top5_q84"] is None else f"{r['p2_top5_q84']:.1f}"
        print(f"| {'FC only' if r['finetune'] == 'fc' else 'all'} | {r['regression'].upper()} | "
              f"{r['error']:.1f} | {r['mean_iou']:.3f} | {r['best_epoch']} / {r['epochs']} | "
              f"{r['train_seconds']:.0f} | {p2} |")
    if table9:
        print("\n| localizer(s) | test scale(s) Q | top-1 loc err % | top-5 loc err % | "
              "top-5 cls err % |")
        print("|---|---|---:|---:|---:|")
        for r in table9:
            print(f"| {' + '.join(r['localizers'])} | {','.join(map(str, r['scales']))} | "
                  f"{r['top1_loc']:.1f} | {r['top5_loc']:.1f} | {r['top5_cls']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
