"""Is a difference between two errors more than noise? McNemar's exact test on the same images,
Fisher's exact test on error counts, a bootstrap interval for an error, and every comparison the
documentation states with its test.

    python bench/noise.py claims                   # each documented comparison, p and verdict
    python bench/noise.py counts 14/500 2/500      # two errors from counts
    python bench/noise.py runs runs/a runs/d       # two trained classifiers, same test images

``runs`` evaluates each run's ``model.keras`` on the examples its report used (dense,
flip-averaged, over the run's test scales) and pairs them image by image (McNemar). ``claims``
works from the counts recorded in ``bench/RESULTS.md`` (the per-image results of those runs
were not kept), so it uses Fisher's test, which ignores the pairing: where two nets tend to fail
on the same images, McNemar's test on their outputs would usually give a smaller p. Neither test
measures the spread between training runs of one configuration (seeds): a difference can be
real for these two runs and still not hold for the next pair. ``claims`` says so for each
comparison that comes from one run per configuration.

    >>> mcnemar([True, True, False], [True, False, False])
    (1, 0, 1.0)
    >>> round(fisher(14, 500, 2, 500), 4)
    0.0039
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ALPHA = 0.05


def mcnemar(first: Sequence[bool], second: Sequence[bool]) -> tuple[int, int, float]:
    """Images only ``first`` / only ``second`` gets right, and McNemar's exact two-sided p."""
    first, second = np.asarray(first, bool), np.asarray(second, bool)
    only_first = int(np.sum(first & ~second))
    only_second = int(np.sum(second & ~first))
    n = only_first + only_second
    tail = sum(math.comb(n, k) for k in range(min(only_first, only_second) + 1)) / 2 ** n
    return only_first, only_second, min(1.0, 2 * tail)


def fisher(errors_a: int, n_a: int, errors_b: int, n_b: int) -> float:
    """Fisher's exact two-sided p that two error counts come from one error rate: the summed
    probability of every table with the same margins no likelier than the one observed."""
    wrong = errors_a + errors_b
    total = math.comb(n_a + n_b, wrong)

    def probability(k: int) -> float:
        return math.comb(n_a, k) * math.comb(n_b, wrong - k) / total

    observed = probability(errors_a)
    tables = range(max(0, wrong - n_b), min(wrong, n_a) + 1)
    return min(1.0, sum(p for p in map(probability, tables) if p <= observed * (1 + 1e-9)))


def bootstrap_interval(errors: int, n: int, *, level: float = 0.95, draws: int = 20000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval for an error rate (%), resampling the n images."""
    rng = np.random.default_rng(seed)
    resampled = 100 * rng.binomial(n, errors / n, size=draws) / n
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(low), float(high)


def verdict(p: float, *, runs: int = 1) -> str:
    """Words a comparison may use: a difference only where the test says so."""
    if p >= ALPHA:
        return "not distinguishable here"
    return "differ" if runs > 1 else "differ in this run (seeds not repeated)"


class Claim(NamedTuple):
    """One comparison the documentation states: two errors as counts of one test set."""

    where: str
    first: str
    errors_first: int
    second: str
    errors_second: int
    images: int

    def p(self) -> float:
        return fisher(self.errors_first, self.images, self.errors_second, self.images)


def _count(percent: float, images: int) -> int:
    return round(percent * images / 100)


HARD, SHAPES = 1320, 500   # test images of vgg_shapes/hard and vgg_shapes
_T3 = "Table 3 (vgg_shapes/hard, Adam, one Q)"
_T4 = "Table 4 (vgg_shapes/hard, Adam, three Q)"
_T5 = "Tables 5-6 (vgg_shapes/hard, jittered S, three Q)"
_T8 = "Table 8 (vgg_shapes/hard, protocol-1 error)"
_T9 = "Table 9 (vgg_shapes/hard, top-5 localisation error)"
_SGD = "Table 3 (vgg_shapes, the paper's SGD, 100 epochs)"
_PERCENT_CLAIMS = [
    # (where, first, its error %, second, its error %, test images)
    (_T3, "A", 21.5, "A-LRN", 12.6, HARD),
    (_T3, "B (A + 4)", 17.3, "B-5x5", 16.1, HARD),
    (_T3, "C (A + 4)", 21.2, "D (A + 4)", 18.0, HARD),
    (_T3, "C (A + 8)", 7.3, "D (A + 8)", 5.2, HARD),
    (_T3, "A+ (A + 8)", 6.1, "D (A + 8)", 5.2, HARD),
    (_T3, "A+ (A + 16)", 3.3, "D (A + 16)", 1.6, HARD),
    (_T3, "A+ (A + 4)", 10.1, "B (A + 4)", 17.3, HARD),
    (_T4, "A+ (A + 16)", 1.5, "D (A + 16)", 1.1, HARD),
    (_T4, "C (A + 8)", 5.3, "D (A + 8)", 4.2, HARD),
    (_T4, "A, one Q", 21.5, "A, three Q", 17.4, HARD),
    (_T4, "A-LRN, one Q", 12.6, "A-LRN, three Q", 8.8, HARD),
    (_T4, "B-5x5, one Q", 16.1, "B-5x5, three Q", 12.2, HARD),
    (_T4, "B (A + 4), one Q", 17.3, "B (A + 4), three Q", 13.9, HARD),
    (_T4, "C (A + 4), one Q", 21.2, "C (A + 4), three Q", 17.6, HARD),
    (_T4, "D (A + 4), one Q", 18.0, "D (A + 4), three Q", 14.7, HARD),
    (_T4, "E (A + 4), one Q", 32.0, "E (A + 4), three Q", 29.2, HARD),
    (_T4, "D (A + 16), one Q", 1.6, "D (A + 16), three Q", 1.1, HARD),
    (_T4, "D, S = 112 (A + 8)", 4.2, "D, S = 168", 1.8, HARD),
    (_T4, "D, S = 168", 1.8, "D, S in [112, 224]", 1.4, HARD),
    (_T4, "E, S = 168", 2.0, "E, S in [112, 224]", 1.4, HARD),
    (_T5, "D dense", 1.4, "D multi-crop", 1.4, HARD),
    (_T5, "E dense", 1.4, "E multi-crop", 1.1, HARD),
    (_T5, "E dense + multi-crop", 1.1, "D + E fusion", 1.0, HARD),
    (_T8, "SCR, FC, 8 epochs", 3.8, "PCR, all layers, 8 epochs", 2.0, HARD),
    (_T8, "SCR, FC, 24 epochs", 1.6, "PCR, FC, 24 epochs", 3.2, HARD),
    (_T9, "S = 168, one Q (8 epochs)", 2.8, "S = 168, two Q", 0.8, HARD),
    (_T9, "S = 168, IoU merging", 6.5, "S = 168, OverFeat merging", 2.8, HARD),
    (_T9, "S = 112 (8 epochs)", 2.9, "S = 168", 2.8, HARD),
    (_T9, "best single localizer (2 epochs)", 9.8, "two fused", 3.0, HARD),
    (_T9, "SGD, S = 112 (2 epochs)", 69.3, "SGD, S = 168", 58.0, HARD),
]
_COUNT_CLAIMS = [
    # images wrong of 500 (bench/RESULTS.md, the patience-6 runs to 100 epochs)
    (_SGD, "A", 14, "B", 4, SHAPES),
    (_SGD, "A", 14, "C", 4, SHAPES),
    (_SGD, "A", 14, "D", 2, SHAPES),
    (_SGD, "A", 14, "E", 7, SHAPES),
    (_SGD, "B-5x5", 18, "B", 4, SHAPES),
    (_SGD, "A", 14, "A-LRN", 15, SHAPES),
    (_SGD, "C", 4, "D", 2, SHAPES),
]
CLAIMS = [Claim(w, a, _count(ea, n), b, _count(eb, n), n) for w, a, ea, b, eb, n in
          _PERCENT_CLAIMS] + [Claim(*row) for row in _COUNT_CLAIMS]


def correct_images(run_dir: str | Path, data: str | None = None) -> tuple[np.ndarray, dict]:
    """Per report image, whether the run's classifier ranks the true class first (dense,
    flip-averaged, over the run's test scales: the headline protocol); and its summary."""
    from vgg_keras import evaluate as protocols
    from vgg_keras.data import evaluation_examples
    from vgg_keras.models import load_vgg

    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    config = json.loads((run_dir / "config.json").read_text())
    model = load_vgg(run_dir / "model.keras")
    examples = evaluation_examples(data or config.get("data"))
    posteriors: np.ndarray | int = 0
    for q in summary["headline"]["scales"]:
        p, labels = protocols.collect_posteriors(
            model, protocols.protocol_batches(examples, "dense", q, crop=config["crop"]), "dense")
        posteriors = posteriors + p
    return np.argmax(posteriors, axis=1) == labels, summary


def _parse_count(text: str) -> tuple[int, int]:
    try:
        errors, images = (int(v) for v in text.split("/"))
    except ValueError:
        raise SystemExit(f"expected ERRORS/IMAGES such as 14/500, got {text!r}") from None
    if not 0 <= errors <= images:
        raise SystemExit(f"{text}: errors must lie between 0 and the number of images")
    return errors, images


def _interval(errors: int, n: int) -> str:
    low, high = bootstrap_interval(errors, n)
    return f"{100 * errors / n:.1f}% [{low:.1f}, {high:.1f}]"


def print_claims() -> None:
    print("Errors with their 95% bootstrap interval over the test images; Fisher's exact p on "
          "the counts (one run per configuration: seeds not repeated).\n")
    print("| table | first | second | p | verdict |")
    print("|---|---|---|---:|---|")
    for claim in CLAIMS:
        p = claim.p()
        print(f"| {claim.where} | {claim.first} {_interval(claim.errors_first, claim.images)} "
              f"| {claim.second} {_interval(claim.errors_second, claim.images)} | {p:.2g} "
              f"| {verdict(p)} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("claims", help="every comparison the documentation states, tested")
    counts = commands.add_parser("counts", help="two errors given as ERRORS/IMAGES")
    counts.add_argument("first", help="e.g. 14/500")
    counts.add_argument("second", help="e.g. 2/500")
    runs = commands.add_parser("runs", help="two run directories, paired on the same images")
    runs.add_argument("first", help="a run directory with model.keras and summary.json")
    runs.add_argument("second", help="another, trained on the same data")
    runs.add_argument("--data", default=None,
                      help="the data to evaluate on (default: the first run's --data)")
    args = parser.parse_args(argv)
    if args.command == "claims":
        print_claims()
    elif args.command == "counts":
        (ea, na), (eb, nb) = _parse_count(args.first), _parse_count(args.second)
        p = fisher(ea, na, eb, nb)
        print(f"{_interval(ea, na)} against {_interval(eb, nb)}: Fisher p {p:.2g}, "
              f"{verdict(p)}")
    else:
        data = args.data or json.loads((Path(args.first) / "config.json").read_text())["data"]
        first, _ = correct_images(args.first, data)
        second, _ = correct_images(args.second, data)
        if len(first) != len(second):
            raise SystemExit(f"the runs were evaluated on {len(first)} and {len(second)} images")
        only_first, only_second, p = mcnemar(first, second)
        n = len(first)
        print(f"{args.first}: {_interval(int(n - first.sum()), n)}; "
              f"{args.second}: {_interval(int(n - second.sum()), n)}")
        print(f"only the first right on {only_first} images, only the second on {only_second}: "
              f"McNemar p {p:.2g}, {verdict(p)}")


if __name__ == "__main__":
    main()
