"""Classification as train_cls.py runs it (paper Sections 3.1-3.2): what the task adds to the
shared :class:`~vgg_keras.run.Run`: the network (random, pre-initialised from a shallower one,
or fine-tuned), cross-entropy with top-1/top-5 accuracy, the paper's training batches, and
evaluation by the paper's protocols.

>>> from vgg_keras.classification import train_classifier
>>> summary = train_classifier(arch="A", width=0.25, crop=64, scale=(72, 96), epochs=20,
...                            batch_size=32, init="glorot",
...                            run_dir="runs/quick")   # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from . import data as vdata
from . import evaluate as protocols
from .options import UNIT_SCALE, ClassificationConfig, multi_test_scales, test_scale
from .models import (
    build_vgg, freeze_for_finetune, initialize_from, input_normalization, load_vgg,
    scale_to_unit_output,
)
from .paper import published_figures
from .released import find_release, is_release_name
from .run import Run, Task

if TYPE_CHECKING:
    import tensorflow as tf

    from ._typing import PathLike, Scale
    from .data import DatasetInfo, Statistics

log = logging.getLogger(__name__)

UNIT_SCALE_IMAGES = 64
"""Training crops that ``--init unit-scale`` measures each layer's output on."""


class ClassificationTask(Task[ClassificationConfig]):
    """The classifier's part of a run (see :class:`vgg_keras.run.Task`)."""

    name = "cls"
    monitor = ("val_accuracy", "max")

    def prepare(self, config: ClassificationConfig) -> None:
        config.check_finetune()
        self.source = (load_vgg(config.init_from, kind="classifier", arch=config.arch)
                       if config.init_from else None)

    def build(self, config: ClassificationConfig, info: DatasetInfo, statistics: Statistics,
              ) -> tuple[keras.Model, keras.Model, dict[str, Any]]:
        preprocessing = {"mean": statistics.mean}
        if config.statistics == "auto" and self.source is not None:
            # Weights see their inputs as they were trained to: the source's normalisation.
            preprocessing = input_normalization(self.source) or preprocessing
            log.info("Input normalisation of %s: %s", config.init_from, preprocessing)
        # unit-scale rescales a Glorot start on training crops (initialize_on_data).
        random_init = "glorot" if config.init == UNIT_SCALE else config.init
        model = build_vgg(config.arch, info.num_classes, input_shape=(config.crop, config.crop, 3),
                          width=config.width, dropout=config.dropout, init=random_init,
                          preprocessing=preprocessing)
        self.copied: str | Sequence[str] = ()  # initialize_from's: "all", or layer names
        if self.source is not None:
            self.copied = initialize_from(model, self.source, config.init_from)
            freeze_for_finetune(model, config.finetune)
        else:
            log.info("Training %s from random initialisation (%s).", model.name, config.init)
        augmentation = self.augmentation(config, statistics)
        return model, augmentation, dict(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                     keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")])

    def initialize_on_data(self, config: ClassificationConfig, model: keras.Model,
                           examples: tf.data.Dataset) -> None:
        if config.init != UNIT_SCALE or self.copied == "all":
            return
        if (config.num_processes or 1) > 1:
            # Every process would rescale its own copy; one start, passed to all, is the same.
            raise ValueError("--init unit-scale rescales the network on one process; make the "
                             "start with vgg_keras.models.scale_to_unit_output and give it to "
                             "every process with --init-from.")
        images, _ = next(iter(vdata.eval_pipeline(
            examples, test_scale=test_scale(config.scale), mode="center", crop=config.crop,
            batch_size=UNIT_SCALE_IMAGES, resample_on="host")))
        scale_to_unit_output(model, images, skip=self.copied)

    def train_batches(self, config: ClassificationConfig, examples: tf.data.Dataset,
                      start_epoch: int, steps: int, **feed: Any) -> tf.data.Dataset:
        return vdata.train_pipeline(
            examples, scale=config.scale, crop=config.crop, batch_size=config.batch_size,
            seed=config.seed, placement=self.placement(config), repeat=True,
            initial_epoch=start_epoch, steps_per_epoch=steps, **feed)

    def val_batches(self, config: ClassificationConfig,
                    examples: tf.data.Dataset) -> tf.data.Dataset:
        return vdata.eval_pipeline(examples, test_scale=test_scale(config.scale), mode="center",
                                   crop=config.crop, batch_size=config.eval_batch_size,
                                   resample_on=self.placement(config).resample)

    def hold_below(self, info: DatasetInfo) -> float:
        # Plain VGG sits at chance for several epochs; the rate waits until it has left.
        return 2.0 / info.num_classes

    def table(self, summary: dict[str, Any]) -> str:
        return protocols.format_table(summary["evaluation"])

    def evaluate(self, config: ClassificationConfig, model: keras.Model,
                 examples: tf.data.Dataset, info: DatasetInfo) -> dict[str, Any]:
        # The paper's protocol is the headline: dense, flip-averaged, posteriors averaged over
        # the test scales for the training scale; each method at each scale is a row as well.
        scales = tuple(config.eval_scales or multi_test_scales(config.scale, crop=config.crop))
        methods = tuple(config.eval_methods)
        rows = protocols.evaluate_classifier(
            model, lambda q, method: protocols.protocol_batches(
                examples, method, q, crop=config.crop, batch_size=config.eval_batch_size),
            scales=scales, methods=methods, batch_size=config.eval_batch_size)
        split = vdata.info(examples).split
        log.info("%s", protocols.format_table(
            rows, title=f"{split} split (not seen in training or selection), {model.name}, "
                        f"S={config.scale}"))

        def over_all_scales(method):
            return next(r for r in rows if r["method"] == method and r["scales"] == list(scales))

        headline = over_all_scales("dense" if "dense" in methods else methods[0])
        log.info("top-1 error %.1f%% (accuracy %.1f%%), top-5 error %.1f%% on %s: %s, "
                 "flip-averaged, Q=%s, %d images of %s", headline["top1"], 100 - headline["top1"],
                 headline["top5"], config.arch, headline["method"],
                 ",".join(map(str, scales)), headline["images"], split)
        single = test_scale(config.scale)
        return {
            "top1_error": headline["top1"], "top5_error": headline["top5"],
            "headline": {"method": headline["method"], "scales": list(scales), "flip": True,
                         "split": split, "images": headline["images"]},
            **{f"{method}_top{k}_error": over_all_scales(method)[f"top{k}"]
               for method in {r["method"] for r in rows} for k in (1, 5)},
            **{f"{row['method']}_q{single}_top{k}_error": row[f"top{k}"] for row in rows
               if row["scales"] == [single] for k in (1, 5)},
            "evaluation": rows, "chance_top1_error": 100.0 * (1 - 1 / info.num_classes),
        }


def train_classifier(**options: Any) -> dict[str, Any]:
    """Train a classifier by the paper's recipe and evaluate it; returns ``summary.json``'s dict.

    Options are the fields of :class:`vgg_keras.options.ClassificationConfig` (train_cls.py's
    flags); the run directory resumes.
    """
    return Run(ClassificationConfig.from_dict(options), ClassificationTask()).execute()


def evaluate_saved(paths: Sequence[PathLike], *, data: str | None = None,
                   data_dir: str | None = None, scales: Sequence[int] | None = None,
                   scale: Scale = 256, methods: Sequence[str] = ("dense", "center"),
                   crop: int | None = None, flip: bool = True, batch_size: int = 32,
                   split: str | None = None, val_fraction: float = 0.05,
                   output: PathLike | None = None, arch: str = "D") -> list[dict[str, Any]]:
    """Evaluate saved classifiers (several: fusion) by the paper's protocols: ``.keras`` models
    or the weights ``build_vgg(weights=...)`` reads (torchvision ``.pth``, keras.applications
    ``.h5``, keras-hub presets, or ``"imagenet"``: ``arch``'s released weights, printed with
    their documented figures and the paper's), at test ``scales`` (default: the paper's
    multi-scale set for the training scale ``scale``) on ``split`` (default: the report
    examples of :func:`vgg_keras.data.run_splits`)."""
    models = [load_vgg(p, kind="classifier", arch=arch) for p in paths]
    crop = crop or models[0].input_shape[1]
    scales = scales or multi_test_scales(scale, crop=crop)
    examples = vdata.evaluation_examples(data, split=split, val_fraction=val_fraction,
                                   data_dir=data_dir)
    classes = vdata.info(examples).num_classes
    for path, model in zip(paths, models):
        if model.output_shape[-1] < classes:
            raise ValueError(f"{path} predicts {model.output_shape[-1]} classes but the data "
                             f"has {classes}.")
    rows = protocols.evaluate_classifier(
        models, lambda q, method: protocols.protocol_batches(
            examples, method, q, crop=crop, batch_size=batch_size),
        scales=scales, methods=methods, flip=flip, batch_size=batch_size)
    print(protocols.format_table(rows))
    for path in paths:
        if is_release_name(path):
            print(published_figures(find_release(path, arch)))
    if output:
        protocols.write_json(rows, output)
    return rows
