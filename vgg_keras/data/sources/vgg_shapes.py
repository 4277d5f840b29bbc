"""The embedded dataset as a TFDS builder, ``vgg_shapes``: registered with TFDS when this is
imported (``tfds.load("vgg_shapes")`` works), built locally in seconds; the drawing is
:mod:`vgg_keras.data.embedded`. Its ``hard`` configurations (``vgg_shapes/hard``: 66 classes of
arranged parts in clutter, larger images) are drawn by :mod:`vgg_keras.data.embedded_hard`.
"""

import concurrent.futures
import dataclasses
import os

import tensorflow_datasets as tfds
from etils import epath

from .. import embedded, embedded_hard

EMBEDDED_NAME = "vgg_shapes"
"""TFDS name of the embedded dataset; ``tfds.load(EMBEDDED_NAME)`` works once this is imported."""


VARIANTS = {"plain": embedded, "hard": embedded_hard}
"""The drawing module of each variant of the dataset: ``plain`` (ten shapes) and ``hard``."""

HARD_SIZES = (13200, 1320, 1320)
"""Train / validation / test images of ``vgg_shapes/hard``: 200 / 20 / 20 per class (built in
about a minute on two cores); ``vgg_shapes/hard_large`` has five times as many."""


@dataclasses.dataclass(eq=False)
class VggShapesConfig(tfds.core.BuilderConfig):
    """Size, seed and variant of the embedded dataset (see :mod:`vgg_keras.data.embedded` and,
    for ``variant="hard"``, :mod:`vgg_keras.data.embedded_hard`)."""

    num_train: int = 3000
    num_validation: int = 500
    num_test: int = 500
    seed: int = 0
    variant: str = "plain"


def shapes_config(num_train: int | None = None, num_validation: int | None = None,
                  num_test: int | None = None, seed: int = 0, *,
                  hard: bool = False) -> VggShapesConfig:
    """A config of the embedded dataset at any size (default: 3000 / 500 / 500 images, or
    ``HARD_SIZES`` with ``hard``); its name encodes the numbers (and ``hard_`` the variant), so
    every size is stored (and built once) in its own folder.

    >>> import tempfile
    >>> tmp = tempfile.mkdtemp()
    >>> builder = tfds.builder("vgg_shapes", config=shapes_config(200, 50, 50), data_dir=tmp)
    >>> builder.builder_config.name, shapes_config(660, 66, 66, hard=True).name
    ('n200_50_50_s0', 'hard_n660_66_66_s0')
    """
    defaults = HARD_SIZES if hard else (3000, 500, 500)
    num_train, num_validation, num_test = (
        default if value is None else value
        for value, default in zip((num_train, num_validation, num_test), defaults))
    sizes = f"{num_train}/{num_validation}/{num_test} images, seed {seed}"
    return VggShapesConfig(
        name=f"{'hard_' if hard else ''}n{num_train}_{num_validation}_{num_test}_s{seed}",
        description=f"hard: {sizes}" if hard else sizes,
        num_train=num_train, num_validation=num_validation, num_test=num_test, seed=seed,
        variant="hard" if hard else "plain",
    )


def _hard_config(name, num_train, num_validation, num_test):
    return VggShapesConfig(
        name=name, description=(
            f"hard: {embedded_hard.NUM_CLASSES} classes of two or three parts in an arrangement, "
            f"in clutter of the same parts; {num_train}/{num_validation}/{num_test} images, "
            "seed 0"),
        num_train=num_train, num_validation=num_validation, num_test=num_test, variant="hard")


class VggShapes(tfds.core.GeneratorBasedBuilder):
    """Procedurally drawn shapes, one labelled object per image with its bounding box; no
    download. Ten shapes in the plain configs, 66 arrangements of parts in the hard ones.

    Configs: ``default`` (3000 train / 500 validation / 500 test images), ``small`` (1000 /
    200 / 200) and ``large`` (20000 / 2000 / 2000); ``hard`` (66 classes of arranged parts in
    clutter, :mod:`vgg_keras.data.embedded_hard`; 13200 / 1320 / 1320) and ``hard_large``
    (66000 / 6600 / 6600); any other size via :func:`shapes_config` (``hard=True`` for the
    hard variant).
    """

    # TFDS 4.9.10 locates a builder's code through `importlib_resources`, a package it only
    # declares for Python < 3.9 (so it is missing on 3.11): give the path directly.
    code_path = epath.Path(__file__)

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release."}
    BUILDER_CONFIGS = [
        VggShapesConfig(name="default", description="3000/500/500 images, seed 0"),
        VggShapesConfig(name="small", description="1000/200/200 images, seed 0",
                        num_train=1000, num_validation=200, num_test=200),
        VggShapesConfig(name="large", description="20000/2000/2000 images, seed 0",
                        num_train=20000, num_validation=2000, num_test=2000),
        _hard_config("hard", *HARD_SIZES),
        _hard_config("hard_large", *(5 * n for n in HARD_SIZES)),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        drawing = VARIANTS[self.builder_config.variant]
        names = list(drawing.CLASS_NAMES)
        if drawing is embedded:
            description = (
                "Procedurally drawn shapes (vgg_keras): one object per image over a cluttered "
                "background, random colour, size, aspect, rotation and position; shorter "
                f"side {embedded.MIN_SIDE}-{embedded.MAX_SIDE} px, aspect up to "
                f"{embedded.MAX_ASPECT}, JPEG."
            )
        else:
            description = (
                f"Procedurally drawn arrangements of parts (vgg_keras, hard): {len(names)} "
                "classes, each two or three of five primitives over, in or beside one another "
                "or three in a row, column or pyramid; one object per image among distractors "
                "of the same primitives, random colours, free part rotation, object extent "
                f"{drawing.OBJECT_FRACTION[0]}-{drawing.OBJECT_FRACTION[1]} of the shorter "
                f"side {drawing.MIN_SIDE}-{drawing.MAX_SIDE} px, aspect up to "
                f"{drawing.MAX_ASPECT}, JPEG."
            )
        return self.dataset_info_from_configs(
            description=description,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                "label": tfds.features.ClassLabel(names=names),
                "objects": tfds.features.Sequence({
                    "bbox": tfds.features.BBoxFeature(),
                    "label": tfds.features.ClassLabel(names=names),
                }),
                "file_name": tfds.features.Text(),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.num_train),
            "validation": self._generate_examples("validation", config.num_validation),
            "test": self._generate_examples("test", config.num_test),
        }

    def _generate_examples(self, split, count):
        seed = self.builder_config.seed
        make_example = VARIANTS[self.builder_config.variant].make_example
        # Drawing is numpy and PIL, which release the GIL: threads use every core (the hard
        # variant's many small operations hold it more: about one core), and pool.map keeps
        # the order, so the output does not depend on the thread count.
        with concurrent.futures.ThreadPoolExecutor(min(8, 2 * (os.cpu_count() or 1))) as pool:
            made = pool.map(lambda i: make_example(seed, split, i), range(count))
            yield from self._encode_examples(split, made)

    def _encode_examples(self, split, made):
        for index, (jpeg, label, box, _) in enumerate(made):
            file_name = f"{split}_{index:06d}.jpg"
            yield file_name, {
                "image": jpeg,
                "label": label,
                "objects": [{"bbox": tfds.features.BBox(*[float(v) for v in box]),
                             "label": label}],
                "file_name": file_name,
            }
