"""The paper's ImageNet numbers (ILSVRC-2012 validation, top-1 / top-5 error %), keyed by
configuration and training scale (``"S"`` = 256, ``"S2"`` = 384, ``"J"`` = jittered [256; 512])
or test protocol, for the tables that put ours beside them; and the figures a released weight
file is documented at (:func:`published_figures`).

>>> PAPER_T3[("D", "S")], PAPER_T5[("D", "dense")]
((27.0, 8.8), (24.8, 7.5))
"""

from __future__ import annotations

from .released import Release

# B-5x5: Section 4.1 gives only "top-1 error 7% higher than B's (on a center crop)".
PAPER_T3 = {("A", "S"): (29.6, 10.4), ("A-LRN", "S"): (29.7, 10.5), ("B", "S"): (28.7, 9.9),
            ("B-5x5", "S"): ("B + 7", "-"), ("A+", "S"): ("-", "-"),
            ("C", "S"): (28.1, 9.4), ("C", "S2"): (28.1, 9.3), ("C", "J"): (27.3, 8.8),
            ("D", "S"): (27.0, 8.8), ("D", "S2"): (26.8, 8.7), ("D", "J"): (25.6, 8.1),
            ("E", "S"): (27.3, 9.0), ("E", "S2"): (26.9, 8.7), ("E", "J"): (25.5, 8.0)}
"""Table 3: one test scale (Q = S; Q = 384 for jittered S)."""
PAPER_T4 = {("B", "S"): (28.2, 9.6), ("C", "S"): (27.7, 9.2), ("C", "S2"): (27.8, 9.2),
            ("C", "J"): (26.3, 8.2), ("D", "S"): (26.6, 8.6), ("D", "S2"): (26.5, 8.6),
            ("D", "J"): (24.8, 7.5), ("E", "S"): (26.9, 8.7), ("E", "S2"): (26.7, 8.6),
            ("E", "J"): (24.8, 7.5)}
"""Table 4: three test scales ({S-32, S, S+32}; {256, 384, 512} for jittered S)."""
PAPER_T5 = {("D", "dense"): (24.8, 7.5), ("D", "multicrop"): (24.6, 7.5),
            ("D", "dense+multicrop"): (24.4, 7.2), ("E", "dense"): (24.8, 7.5),
            ("E", "multicrop"): (24.6, 7.4), ("E", "dense+multicrop"): (24.4, 7.1)}
"""Table 5: dense, multi-crop and both, S in [256; 512], Q in {256, 384, 512}."""
PAPER_T6 = {"dense+multicrop": (23.7, 6.8)}
"""Table 6: the fusion of D and E (dense and multi-crop)."""
PAPER_T8 = {("scr", "fc"): 36.4, ("pcr", "fc"): 34.3, ("pcr", "all"): 33.1}
"""Table 8: localisation error (%) by regression and fine-tuned layers, S = Q = 256."""
PAPER_T9 = {"S": 29.5, "S2": 28.2, "S2 multi": 27.5, "fusion": 26.9}
"""Table 9's rows: S = Q = 256; S = Q = 384; S = 384, Q = {352, 384}; the two nets fused."""


def published_figures(release: Release) -> str:
    """What to hold an evaluation of ``release`` against: its documented single-crop figures
    (the row to compare: ``center`` at Q = 256 without flip) and the paper's for its
    configuration, as error %."""
    lines = [f"{release.describe()}: documented at {100 - release.top1:.1f} / "
             f"{100 - release.top5:.1f}% top-1 / top-5 error (single 224 crop of the image "
             f"resized to 256; compare center, Q=256, --no-eval-flip)"]
    rows = [("Table 3, S=256, Q=256", PAPER_T3.get((release.arch, "S"))),
            ("Table 3, S=[256;512], Q=384", PAPER_T3.get((release.arch, "J"))),
            ("Table 4, S=256, Q={224,256,288}", PAPER_T4.get((release.arch, "S"))),
            ("Table 4, S=[256;512], Q={256,384,512}", PAPER_T4.get((release.arch, "J"))),
            ("Table 5, dense", PAPER_T5.get((release.arch, "dense"))),
            ("Table 5, multi-crop", PAPER_T5.get((release.arch, "multicrop"))),
            ("Table 5, dense + multi-crop", PAPER_T5.get((release.arch, "dense+multicrop")))]
    lines += [f"  the paper's {release.arch}, {name}: {top1} / {top5}%"
              for name, value in rows if value is not None for top1, top5 in [value]]
    return "\n".join(lines)
