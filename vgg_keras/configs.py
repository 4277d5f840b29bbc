"""The paper's Table 1 as data: one entry per configuration, one tuple per block.

Each layer is written as in the paper: ``"conv3-64"`` is a 3x3 convolution with 64 channels,
``"conv1-256"`` a 1x1 convolution, ``"LRN"`` local response normalisation. Every block ends
with a 2x2 max-pool, and every configuration shares the head FC-4096, FC-4096, FC-classes.

>>> CONFIGS["A"][2]
('conv3-256', 'conv3-256')
>>> parse_layer("conv1-512")
(1, 512)
"""

from __future__ import annotations

from collections.abc import Sequence

CONFIGS: dict[str, tuple[tuple[str, ...], ...]] = {
    "A": (
        ("conv3-64",),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "A-LRN": (
        ("conv3-64", "LRN"),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "B": (
        ("conv3-64",) * 2,
        ("conv3-128",) * 2,
        ("conv3-256",) * 2,
        ("conv3-512",) * 2,
        ("conv3-512",) * 2,
    ),
    "C": (
        ("conv3-64",) * 2,
        ("conv3-128",) * 2,
        ("conv3-256", "conv3-256", "conv1-256"),
        ("conv3-512", "conv3-512", "conv1-512"),
        ("conv3-512", "conv3-512", "conv1-512"),
    ),
    "D": (
        ("conv3-64",) * 2,
        ("conv3-128",) * 2,
        ("conv3-256",) * 3,
        ("conv3-512",) * 3,
        ("conv3-512",) * 3,
    ),
    "E": (
        ("conv3-64",) * 2,
        ("conv3-128",) * 2,
        ("conv3-256",) * 4,
        ("conv3-512",) * 4,
        ("conv3-512",) * 4,
    ),
}

VARIANTS: dict[str, tuple[tuple[str, ...], ...]] = {
    # Section 4.1: "a shallow net with five 5x5 conv layers, derived from B by replacing each
    # pair of 3x3 conv layers with a single 5x5 conv layer (same receptive field)".
    "B-5x5": (
        ("conv5-64",),
        ("conv5-128",),
        ("conv5-256",),
        ("conv5-512",),
        ("conv5-512",),
    ),
}
"""Nets the paper compares with but Table 1 does not list; the builder reads them as it reads
:data:`CONFIGS`."""

ARCHITECTURES = {**CONFIGS, **VARIANTS}
"""Every configuration the builder knows: Table 1's and :data:`VARIANTS`."""

FC_UNITS = 4096
"""Width of fc6 and fc7 (the paper's FC-4096)."""

LRN_PARAMS = {"size": 5, "k": 2.0, "alpha": 1e-4, "beta": 0.75}
"""Krizhevsky et al. (2012) LRN, as the paper uses it in A-LRN (Caffe semantics)."""

IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
"""ImageNet training-set mean RGB on the 0-255 scale, subtracted by the paper's networks."""

IMAGENET_PCA_EIGVAL = (0.2175, 0.0188, 0.0045)
"""Eigenvalues of the ImageNet RGB pixel covariance (RGB in [0, 1]), for the colour shift."""

IMAGENET_PCA_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
"""Eigenvectors as columns, matching ``IMAGENET_PCA_EIGVAL``."""

GFLOPS_224 = {"A": 15.22, "A-LRN": 15.22, "B": 22.62, "C": 23.54, "D": 30.94, "E": 39.26}
"""Forward GFLOPs (2 x multiply-adds) of one 224x224 image at width 1, from the paper sheet."""

INITIALIZERS = ("paper", "glorot", "xavier")
"""``paper``: N(0, 0.01); ``glorot``: Keras's Glorot uniform (variance 2 / (fan_in + fan_out));
``xavier``: Caffe's "xavier" filler, uniform with variance 1 / fan_in, the Glorot procedure as
the authors' Caffe code ran it."""

MIN_INPUT_SIZE = 32
"""Five 2x2 pools leave a 1x1 map at 32 pixels; below that the network has nothing to read."""


def canonical_arch(arch: str) -> str:
    """Return the table key for ``arch`` (case-insensitive), or raise a ValueError listing them.

    >>> canonical_arch("a-lrn"), canonical_arch("b-5X5")
    ('A-LRN', 'B-5x5')
    """
    key = {name.upper(): name for name in ARCHITECTURES}.get(str(arch).upper())
    if key is None:
        raise ValueError(
            f"Unknown VGG configuration {arch!r}; valid ones are {', '.join(ARCHITECTURES)}."
        )
    return key


def parse_layer(spec: str) -> tuple[int, int] | None:
    """``"conv3-64"`` -> ``(3, 64)`` (kernel size, channels); ``"LRN"`` -> ``None``."""
    if spec == "LRN":
        return None
    kind, channels = spec.split("-")
    return int(kind[len("conv"):]), int(channels)


def scaled(channels: int, width: float) -> int:
    """Channel count after applying the width multiplier (never below one)."""
    return max(1, int(round(channels * width)))


def identify_vgg(kernel_shapes: Sequence[Sequence[int]], *,
                 lrn: bool = False) -> tuple[str, float]:
    """``(configuration, width)`` of the net whose conv layers have these Keras kernel shapes
    ``(height, width, in, out)``, in order, and an LRN layer if ``lrn`` (A-LRN's has no weights):
    kernel sizes name the configuration (C and D differ in three 1x1 kernels), and ``build_vgg``
    builds exactly these output channels at that width. Other stacks are a ValueError.

    >>> identify_vgg([(3, 3, 3, 8), (3, 3, 8, 16), (3, 3, 16, 32), (3, 3, 32, 32)]
    ...              + [(3, 3, 32, 64)] + [(3, 3, 64, 64)] * 3)
    ('A', 0.125)
    """
    shapes = [tuple(int(size) for size in shape) for shape in kernel_shapes]
    sizes = [shape[:2] for shape in shapes]
    for key, blocks in ARCHITECTURES.items():
        paper = [conv for block in blocks for conv in map(parse_layer, block) if conv]
        if [(size, size) for size, _ in paper] == sizes and any("LRN" in b for b in blocks) == lrn:
            break
    else:
        raise ValueError(f"{len(shapes)} conv layers with kernels {[f'{h}x{w}' for h, w in sizes]}"
                         f"{' and an LRN layer' if lrn else ''} match no VGG configuration "
                         f"({', '.join(ARCHITECTURES)}).")
    channels = [shape[-1] for shape in shapes]
    # The widest layer fixes the width most precisely, so it is tried first.
    for found, (_, units) in reversed(list(zip(channels, paper))):
        if [scaled(other, found / units) for _, other in paper] == channels:
            return key, found / units
    raise ValueError(f"configuration {key}'s output channels {channels} are not the paper's "
                     f"{[units for _, units in paper]} scaled by one width.")


MAX_IMAGE_PIXELS = 50_000_000
"""The largest image (height x width) a run trains or evaluates on, and the serving SavedModel
decodes by default; larger files are skipped and named. 50 megapixels takes the largest
photographs people commonly send (48-megapixel phone cameras, 45-megapixel full-frame cameras)
while capping what one image costs: decoding takes ~4.5 bytes a pixel at its peak (measured:
+0.22 GB for a 48-megapixel PNG; a 1.2 MB PNG of 20000 x 20000 pixels took +1.9 GB). Bigger
images gain nothing: the network sees them rescaled to S or Q."""
