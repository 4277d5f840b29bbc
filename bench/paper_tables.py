"""The paper's Tables 3-6, 8 and 9 on the embedded data, ours next to the paper's, in one run.

Every net is trained by ``train_cls.py``/``train_loc.py`` as a user runs them; every number is
on the report split (test: chosen on validation, reported on test; see ``summary.json``'s
``splits``). Scales follow the paper's ratios to the crop: the paper's S = 256, 384 and
[256; 512] for 224 crops become ``--scales`` (default 128, 192 and 128:256 for 112 crops).
The paper's schedule of pre-initialisation is kept: A from random initialisation, the deeper
nets from A at the small S (``--preinit``), the larger S from the small-S net at a tenth of the
learning rate, the jittered S from the larger-S net.

    python bench/paper_tables.py --data vgg_shapes/hard --crop 112 --width 0.25 --epochs 20
    python bench/paper_tables.py --smoke        # every step once, tiny, to check the plumbing

What bench/RESULTS.md records, time-boxed for a 2-core CPU (Adam, because SGD does not leave
chance within such a budget; see the RESULTS section on plain VGG from scratch):

    F="--data vgg_shapes/hard --crop 96 --scales 112 168 112:224 --width 0.25 --epochs 12
       --chain-epochs 4 --optimizer adam --lr 3e-4 --weight-decay 0 --init glorot
       --out runs/t3-hard"
    python bench/paper_tables.py $F --tables 3 \
        --rows A/S D/S A+/S C/S B/S E/S A-LRN/S B-5x5/S
    # then D and A+ to 8 epochs: their train_cls.py commands with --epochs 8 resume their runs
    python bench/paper_tables.py $F --rows D/S2 D/J --tables 3
    # E to 8 epochs (--chain-epochs 8 --rows E/S), its scale chain, then one evaluation of
    # D and E for Tables 5 and 6 (each net alone and fused, 150 crops an image: 740 s)
    python bench/paper_tables.py $F --rows E/S2 E/J --tables 3
    python bench/paper_tables.py $F --tables 5 6
    # Table 9 adds D(S2)'s localizer at Q = S2 - 32 and S2, and the S and S2 localizers fused,
    # each row merged by OverFeat's criterion and by IoU > 0.5 (--loc-merges)
    python bench/paper_tables.py $F --tables 8 9 --loc-epochs 2 --loc-lr 3e-4 \
        --loc-tag adam-paperinit
    # the same localizers resumed to 8 epochs: their run directories copied to the new tag
    python bench/paper_tables.py $F --tables 8 9 --loc-epochs 8 --loc-lr 3e-4 \
        --loc-tag adam-paperinit-e8
    python bench/paper_tables.py $F --tables 8 9 --loc-epochs 2 --loc-optimizer sgd \
        --loc-lr 1e-3 --loc-weight-decay 5e-4 --loc-tag sgd-paperinit --loc-merges overfeat

Writes ``OUT/tables.md`` and ``OUT/rows.json``; reruns skip finished runs (each run directory
resumes).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")   # importing vgg_keras imports TensorFlow

from vgg_keras.boxes import DEFAULT_MERGE, MERGES  # noqa: E402  (after the path: runs as a file)
from vgg_keras.options import multi_test_scales  # noqa: E402

# The paper's numbers (ILSVRC-2012 validation, top-1 / top-5 error %).
from vgg_keras.paper import (  # noqa: E402
    PAPER_T3, PAPER_T4, PAPER_T5, PAPER_T6, PAPER_T8, PAPER_T9,
)

TABLE3 = [("A", "S"), ("A+", "S"), ("A-LRN", "S"), ("B", "S"), ("B-5x5", "S"), ("C", "S"),
          ("C", "S2"), ("C", "J"), ("D", "S"), ("D", "S2"), ("D", "J"), ("E", "S"), ("E", "S2"),
          ("E", "J")]


class Bench:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        small, large, jittered = args.scales
        self.scales = {"S": small, "S2": large, "J": jittered}
        self.seconds = {}

    def common(self):
        a = self.args
        flags = ["--width", a.width, "--crop", a.crop, "--batch-size", a.batch_size, "--data",
                 a.data, "--quiet", "--no-report", "--optimizer", a.optimizer,
                 "--weight-decay", a.weight_decay, "--init", a.init]
        if a.steps_per_epoch:
            flags += ["--steps-per-epoch", a.steps_per_epoch]
        if a.data_dir:
            flags += ["--data-dir", a.data_dir]
        return [str(f) for f in flags]

    def script(self, name, flags, run_dir):
        if (run_dir / "summary.json").exists():
            return json.loads((run_dir / "summary.json").read_text())
        started = time.time()
        command = [sys.executable, str(ROOT / name), *map(str, flags), "--run-dir", str(run_dir)]
        print("$", " ".join(command[1:]), flush=True)
        result = subprocess.run(command, capture_output=True, text=True,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if result.returncode != 0:
            raise SystemExit(f"{name} failed ({result.returncode}):\n{result.stderr[-3000:]}")
        self.seconds[run_dir.name] = round(time.time() - started)
        return json.loads((run_dir / "summary.json").read_text())

    def _evaluation(self, script, flags, output):
        """``script --evaluate ...`` once: its ``--eval-output`` JSON (read back on reruns)."""
        if output.exists():
            return json.loads(output.read_text())
        command = [sys.executable, str(ROOT / script), *map(str, flags), "--data",
                   self.args.data, "--eval-output", str(output), "--quiet"]
        if self.args.data_dir:
            command += ["--data-dir", self.args.data_dir]
        print("$", " ".join(command[1:]), flush=True)
        started = time.time()
        result = subprocess.run(command, capture_output=True, text=True,
                                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if result.returncode != 0:
            raise SystemExit(f"{script} --evaluate failed:\n{result.stderr[-3000:]}")
        self.seconds[output.stem] = round(time.time() - started)
        return json.loads(output.read_text())

    def evaluate(self, models, scale, methods, output):
        """Classifiers (several: each alone, then fused) at the test scales for ``scale``."""
        return self._evaluation("train_cls.py", ["--evaluate", *models, "--scale", scale,
                                                 "--eval-methods", *methods], output)

    def evaluate_localizers(self, localizers, classifiers, scales, output, merge=DEFAULT_MERGE):
        """Protocol 2 of the union of ``localizers``' boxes rated by ``classifiers``, at each
        of ``scales`` and over all of them (the last row), merging by ``merge``."""
        return self._evaluation("train_loc.py", ["--evaluate", *localizers, "--classifier",
                                                 *classifiers, "--eval-scales", *scales,
                                                 "--merge", merge], output)

    def classifier(self, arch, scale_key):
        """Train (or find) ``arch`` at ``scale_key`` by the paper's chain of initialisations.

        ``A+`` is a control the paper did not need: A trained on from A(S) for as many epochs
        as the deeper nets, so that "deeper is better" is not just "trained longer".
        """
        a = self.args
        run_dir = self.out / f"cls-{arch.lower().replace('+', '-cont')}-{scale_key.lower()}"
        flags = [*self.common(), "--arch", arch.rstrip("+"), "--scale", self.scales[scale_key],
                 "--epochs", a.epochs, "--lr", a.lr]

        def start_from(model, lr):
            flags[flags.index("--epochs") + 1] = a.chain_epochs or a.epochs
            flags[flags.index("--lr") + 1] = lr
            flags.extend(["--init-from", model])

        # The paper pre-initialised its deeper nets (B-E) from A; A-LRN and the 5x5 net, whose
        # kernels have other shapes, start from random initialisation.
        if scale_key == "S" and arch in ("A+", "B", "C", "D", "E") and a.preinit:
            start_from(self.classifier("A", "S")[1], a.lr)
        elif scale_key == "S2":
            start_from(self.classifier(arch, "S")[1], a.lr / 10)
        elif scale_key == "J":
            start_from(self.classifier(arch, "S2")[1], a.lr / 10)
        summary = self.script("train_cls.py", flags, run_dir)
        return summary, run_dir / "model.keras"

    def loc_tag(self):
        """The suffix of the localisation runs' directories and evaluations (``--loc-tag``)."""
        return f"-{self.args.loc_tag}" if self.args.loc_tag else ""

    def localizer(self, regression, finetune, scale_key="S"):
        a = self.args
        classifier = self.classifier("D", scale_key)[1]
        run_dir = self.out / f"loc-{regression}-{finetune}-{scale_key.lower()}{self.loc_tag()}"
        flags = [*self.common(), "--arch", "D", "--scale", self.scales[scale_key],
                 "--epochs", a.loc_epochs, "--lr", a.loc_lr, "--regression", regression,
                 "--finetune", finetune, "--init-from", classifier, "--classifier", classifier]
        for name, value in (("--optimizer", a.loc_optimizer),
                            ("--weight-decay", a.loc_weight_decay), ("--init", a.loc_init)):
            if value is not None:
                flags[flags.index(name) + 1] = str(value)
        return self.script("train_loc.py", flags, run_dir), run_dir / "model.keras"


def dense_row(summary, scales):
    return next(r for r in summary["evaluation"]
                if r["method"] == "dense" and r["scales"] == list(scales))


def scale_text(scale):
    return f"{scale[0]}:{scale[1]}" if isinstance(scale, (list, tuple)) else str(scale)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="vgg_shapes/hard")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--crop", type=int, default=112)
    parser.add_argument("--scales", nargs=3, default=["128", "192", "128:256"],
                        metavar=("S", "S2", "SMIN:SMAX"))
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--chain-epochs", type=int, default=None,
                        help="epochs of a net that starts from another (default: --epochs)")
    parser.add_argument("--rows", nargs="+", default=None, metavar="ARCH/KEY",
                        help="Table 3 rows to run, in this order (e.g. A/S D/S A+/S; "
                             "default: all)")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--optimizer", default="sgd")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--init", default="xavier")
    parser.add_argument("--preinit", action=argparse.BooleanOptionalAction, default=True,
                        help="deeper nets start from A, as in the paper")
    parser.add_argument("--loc-epochs", type=int, default=10)
    parser.add_argument("--loc-lr", type=float, default=1e-3)
    parser.add_argument("--loc-optimizer", default=None, help="default: --optimizer")
    parser.add_argument("--loc-weight-decay", type=float, default=None,
                        help="default: --weight-decay")
    parser.add_argument("--loc-init", default="paper",
                        help="initialisation of the localizer's new fc8_box (its other layers "
                             "come from D): the paper's N(0, 0.01) by default, whatever --init "
                             "the classifiers used (Glorot's start there put the first boxes "
                             "1.8 crop sizes from their targets, against 0.6, and cost 15-29 "
                             "points of protocol-1 error)")
    parser.add_argument("--loc-tag", default="",
                        help="suffix of the localisation run directories (loc-pcr-all-s-TAG), "
                             "to keep recipes apart")
    parser.add_argument("--loc-merges", nargs="+", default=list(MERGES), choices=list(MERGES),
                        help="protocol 2's merging criteria, a Table 9 column each (the "
                             f"localizers' own runs report {DEFAULT_MERGE}; the others cost "
                             "one more evaluation of each row)")
    parser.add_argument("--tables", nargs="+", default=["3", "4", "5", "6", "8", "9"])
    parser.add_argument("--out", default="runs/paper-tables")
    parser.add_argument("--smoke", action="store_true",
                        help="vgg_shapes/small, 32-pixel crops, one short epoch per net")
    args = parser.parse_args()
    table3_rows = [tuple(row.partition("/")[::2]) for row in args.rows] if args.rows else TABLE3
    unknown = [f"{arch}/{key}" for arch, key in table3_rows if (arch, key) not in TABLE3]
    if unknown:   # before any training, not when the table is written hours later
        parser.error(f"--rows: no Table 3 row {', '.join(unknown)}; the rows are "
                     f"{' '.join(f'{arch}/{key}' for arch, key in TABLE3)}")
    if args.smoke:
        args.data, args.crop, args.scales = "vgg_shapes/small", 32, ["36", "48", "36:64"]
        args.width, args.epochs, args.loc_epochs, args.steps_per_epoch = 0.125, 1, 1, 4
        args.batch_size = 16
        args.out = args.out + "-smoke"
    bench = Bench(args)
    started = time.time()
    lines, rows = [], {}
    settings = (f"data {args.data}, crop {args.crop}, width {args.width}, S = {args.scales}, "
                f"{args.epochs} epochs of batch {args.batch_size}, {args.optimizer} lr {args.lr}"
                f", weight decay {args.weight_decay}, init {args.init}"
                f"{', deeper nets from A' if args.preinit else ''}"
                f"{f' for {args.chain_epochs} epochs' if args.chain_epochs else ''}"
                "; errors on the test split")
    if {"8", "9"} & set(args.tables):
        decay = args.weight_decay if args.loc_weight_decay is None else args.loc_weight_decay
        settings += (f"; localisation: {args.loc_epochs} epochs, "
                     f"{args.loc_optimizer or args.optimizer} lr {args.loc_lr}, "
                     f"weight decay {decay}, fc8_box init {args.loc_init}")
    lines += [f"Settings: {settings}.", ""]

    if "3" in args.tables or "4" in args.tables:
        lines += ["Table 3 (single test scale, dense) and Table 4 (three test scales, dense):", "",
                  "| config | train S | T3 top-1 / top-5 | paper T3 | T4 top-1 / top-5 "
                  "| paper T4 |", "|---|---|---|---|---|---|"]
        for arch, key in table3_rows:
            summary, _ = bench.classifier(arch, key)
            single = dense_row(summary, [summary["test_scale"]])
            multi = dense_row(summary, summary["headline"]["scales"])
            rows[f"{arch}/{key}"] = {"single": single, "multi": multi}
            t4 = PAPER_T4.get((arch, key))
            lines.append(
                f"| {arch} | {scale_text(bench.scales[key])} | {single['top1']:.1f} / "
                f"{single['top5']:.1f} | {PAPER_T3[(arch, key)][0]} / {PAPER_T3[(arch, key)][1]}"
                f" | {multi['top1']:.1f} / {multi['top5']:.1f} | "
                f"{f'{t4[0]} / {t4[1]}' if t4 else '-'} |")
        lines.append("")

    jittered = bench.scales["J"]
    if {"5", "6"} & set(args.tables):
        # One evaluation of D and E together gives each net alone (Table 5) and their fusion
        # (Table 6) from the same passes: the 150 crops an image are computed once per net.
        models = {arch: bench.classifier(arch, "J")[1] for arch in ("D", "E")}
        result = bench.evaluate(list(models.values()), jittered, ["dense", "multicrop"],
                                bench.out / "t5-t6.json")
        # Rows come for D alone, E alone, then D + E, the same number each.
        per_member = len(result) // 3
        three_scales = [(("D", "E", "D + E")[i // per_member], row)
                        for i, row in enumerate(result) if len(row["scales"]) == 3]
        rows["t5-t6"] = result
    if "5" in args.tables:
        lines += ["Table 5 (jittered S, three test scales):", "",
                  "| config | method | top-1 / top-5 | paper |", "|---|---|---|---|"]
        for arch, row in three_scales:
            if arch != "D + E":
                paper = PAPER_T5[(arch, row["method"])]
                lines.append(f"| {arch} | {row['method']} | {row['top1']:.1f} / "
                             f"{row['top5']:.1f} | {paper[0]} / {paper[1]} |")
        lines.append("")
    if "6" in args.tables:
        lines += ["Table 6 (fusion of D and E, jittered S, three test scales):", "",
                  "| models | method | top-1 / top-5 | paper |", "|---|---|---|---|"]
        for models, row in three_scales:
            if models == "D + E":
                paper = PAPER_T6.get(row["method"], ("-", "-"))
                lines.append(f"| {models} | {row['method']} | {row['top1']:.1f} / "
                             f"{row['top5']:.1f} | {paper[0]} / {paper[1]} |")
        lines.append("")
    if "8" in args.tables:
        lines += ["Table 8 (protocol 1, D, error %):", "", "| regression | fine-tuned | ours | "
                  "paper |", "|---|---|---|---|"]
        for (regression, finetune), paper in PAPER_T8.items():
            summary, _ = bench.localizer(regression, finetune)
            rows[f"t8/{regression}-{finetune}"] = summary
            lines.append(f"| {regression.upper()} | {finetune} | "
                         f"{summary['protocol1_error']:.1f} | {paper} |")
        lines.append("")
    if "9" in args.tables:
        merges = args.loc_merges
        lines += ["Table 9 (protocol 2, PCR, all layers, top-5 localisation error %, by "
                  "merging criterion):", "",
                  f"| train S | test Q | {' | '.join(merges)} | paper |",
                  f"|---|---|{'---|' * len(merges)}---|"]
        nets = {}
        for key in ("S", "S2"):
            summary, localizer = bench.localizer("pcr", "all", key)
            nets[key] = (localizer, bench.classifier("D", key)[1])
            rows[f"t9/{key}"] = summary
        # The paper's rows: each net at its training scale; the S2 net at Q = S2 - 32 and S2
        # (as its {352, 384}; not below the crop); the two nets fused (here over both nets'
        # training scales).
        small, large = int(bench.scales["S"]), int(bench.scales["S2"])
        below = [q for q in multi_test_scales(large, args.crop) if q <= large]
        for key, members, scales in (("S", ["S"], [small]), ("S2", ["S2"], [large]),
                                     ("S2 multi", ["S2"], below),
                                     ("fusion", ["S", "S2"], [small, large])):
            errors = []
            for merge in merges:
                if len(members) == 1 and len(scales) == 1 and merge == DEFAULT_MERGE:
                    # The localizer's own run rated it so at its training scale.
                    errors.append(rows[f"t9/{key}"].get("protocol2_top5_error", float("nan")))
                    continue
                suffix = "" if merge == DEFAULT_MERGE else f"-{merge}"
                result = bench.evaluate_localizers(
                    [nets[m][0] for m in members], [nets[m][1] for m in members], scales,
                    bench.out / f"t9-{key.replace(' ', '-').lower()}{bench.loc_tag()}"
                                f"{suffix}.json", merge)
                rows[f"t9/{key}{suffix}"] = result
                errors.append(result["protocol2"][-1]["top5_loc"])
            train = " + ".join(bench.scales[m] for m in members)
            test = str(scales[0]) if len(scales) == 1 else f"{{{', '.join(map(str, scales))}}}"
            lines.append(f"| {train} | {test} | {' | '.join(f'{e:.1f}' for e in errors)} | "
                         f"{PAPER_T9[key]} |")
        lines.append("")
    lines.append(f"Seconds per run: {json.dumps(bench.seconds)}; total "
                 f"{time.time() - started:.0f} s.")
    text = "\n".join(lines)
    print("\n" + text)
    (bench.out / "tables.md").write_text(text + "\n")
    (bench.out / "rows.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
