"""The embedded dataset as a TFDS builder, ``vgg_shapes``: registered with TFDS when this is
imported (``tfds.load("vgg_shapes")`` works), built locally in seconds; the drawing is
:mod:`vgg_keras.data.embedded`.
"""

import concurrent.futures
import dataclasses
import os

import tensorflow_datasets as tfds
from etils import epath

from .. import embedded

EMBEDDED_NAME = "vgg_shapes"
"""TFDS name of the embedded dataset; ``tfds.load(EMBEDDED_NAME)`` works once this is imported."""


@dataclasses.dataclass(eq=False)
class VggShapesConfig(tfds.core.BuilderConfig):
    """Size and seed of the embedded dataset (see :mod:`vgg_keras.data.embedded`)."""

    num_train: int = 3000
    num_validation: int = 500
    num_test: int = 500
    seed: int = 0


def shapes_config(num_train=3000, num_validation=500, num_test=500, seed=0):
    """A config of the embedded dataset at any size; its name encodes the numbers, so every size
    is stored (and built once) in its own folder.

    >>> builder = tfds.builder("vgg_shapes", config=shapes_config(200, 50, 50), data_dir=tmp)
    """
    name = f"n{num_train}_{num_validation}_{num_test}_s{seed}"
    return VggShapesConfig(
        name=name, description=f"{num_train}/{num_validation}/{num_test} images, seed {seed}",
        num_train=num_train, num_validation=num_validation, num_test=num_test, seed=seed,
    )


class VggShapes(tfds.core.GeneratorBasedBuilder):
    """Ten procedurally drawn shapes, one per image, with its bounding box; no download.

    Configs: ``default`` (3000 train / 500 validation / 500 test images), ``small`` (1000 /
    200 / 200) and ``large`` (20000 / 2000 / 2000); any other size via :func:`shapes_config`.
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
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self):
        names = list(embedded.CLASS_NAMES)
        return self.dataset_info_from_configs(
            description=(
                "Procedurally drawn shapes (vgg_keras): one object per image over a cluttered "
                "background, random colour, size, aspect, rotation and position; shorter "
                f"side {embedded.MIN_SIDE}-{embedded.MAX_SIDE} px, aspect up to "
                f"{embedded.MAX_ASPECT}, JPEG."
            ),
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
        # Drawing is numpy and PIL, which release the GIL: threads use every core, and
        # pool.map keeps the order, so the output does not depend on the thread count.
        with concurrent.futures.ThreadPoolExecutor(min(8, 2 * (os.cpu_count() or 1))) as pool:
            made = pool.map(lambda i: embedded.make_example(seed, split, i), range(count))
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
