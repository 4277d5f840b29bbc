"""Localisation as train_loc.py runs it (paper Appendix A): what the task adds to the shared
:class:`~vgg_keras.run.Run`: a localizer fine-tuned from a classifier (or continued, or from
scratch), the Euclidean box loss with its metrics, batches with one box per crop, the epoch with
the best validation box loss kept, and evaluation by both protocols.

>>> from vgg_keras.localization.training import train_localizer
>>> summary = train_localizer(init_from="runs/cls_a/model.keras", regression="pcr", crop=64,
...                           scale=(72, 96), epochs=10, batch_size=32,
...                           run_dir="runs/loc_a")   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import data as vdata
from ..options import LocalizationConfig, test_scale
from ..heads import BOX_LAYER, REGRESSIONS, is_localizer, regression_of
from ..models import FINETUNE, build_localizer, freeze_for_finetune, load_vgg
from ..run import Run, Task
from .losses import MONITOR, BoxAccuracy, BoxL2, BoxRegressionLoss, _eval_batches, _train_batches
from .protocols import (
    format_table8, format_table9, run_protocol1, run_protocol2,
)

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from .._typing import PathLike, Tensor
    from ..data import DatasetInfo, Statistics

log = logging.getLogger(__name__)


def box_objective(model: keras.Model) -> dict[str, Any]:
    """``loss`` and ``metrics`` for ``model``'s head (SCR or PCR), for ``compile``."""
    _, classes = regression_of(model)
    return dict(loss=BoxRegressionLoss(classes), metrics=[BoxAccuracy(classes), BoxL2(classes)])


def compile_localizer(model: keras.Model, optimizer: keras.optimizers.Optimizer | str, *,
                      trainer: keras.Model | None = None, jit_compile: bool = False) -> None:
    """Compile ``trainer`` (default ``model``) with the box loss and the metrics for
    ``model``'s head (SCR or PCR)."""
    (trainer or model).compile(optimizer=optimizer, jit_compile=jit_compile,
                               **box_objective(model))


class LocalizationTask(Task[LocalizationConfig]):
    """The localizer's part of a run (see :class:`vgg_keras.run.Task`). The schedule and the
    kept checkpoint follow the validation box loss (:data:`MONITOR`): the IoU > 0.5 accuracy
    stays at 0 for the first epochs."""

    monitor = MONITOR
    script = "train_loc.py"
    boxes = True

    def run_name(self, config: LocalizationConfig) -> str:
        return f"loc-{config.regression}"

    def prepare(self, config: LocalizationConfig) -> None:
        if config.regression not in REGRESSIONS:
            raise ValueError(f"regression must be one of {REGRESSIONS}, got "
                             f"{config.regression!r}.")
        if config.finetune not in FINETUNE:
            raise ValueError(f"finetune must be one of {FINETUNE}, got {config.finetune!r}.")
        config.check_finetune()
        self.source = load_vgg(config.init_from, arch=config.arch) if config.init_from else None
        self.classifier = self._rating_classifier(config)

    def _rating_classifier(self, config):
        """The classifier that rates protocol 2's boxes: ``--classifier``, else the
        ``--init-from`` classifier (still as loaded: ``build_localizer`` trains a copy)."""
        paths = [config.classifier] if isinstance(config.classifier, str) else config.classifier
        if paths:
            if len(paths) > 1:
                raise ValueError("training rates protocol 2 by one --classifier; give several "
                                 "with --evaluate")
            if paths[0] == config.init_from and self.source is not None:
                return self.source
            return load_vgg(paths[0], kind="classifier", arch=config.arch)
        if self.source is not None and not is_localizer(self.source):
            return self.source
        return None

    def check_data(self, info: DatasetInfo) -> None:
        if not info.has_boxes:
            raise ValueError(f"{info.name} has no bounding boxes; localisation needs a source "
                             "with boxes (the embedded dataset, a directory with VOC XML, or an "
                             "ImageNet directory with its box annotations).")

    def build(self, config: LocalizationConfig, info: DatasetInfo, statistics: Statistics,
              ) -> tuple[keras.Model, keras.Model, dict[str, Any]]:
        model = self._localizer(config, info, statistics)
        _, classes = regression_of(model)
        if classes is not None and info.num_classes > classes:
            raise ValueError(f"The data has {info.num_classes} classes but the localizer's head "
                             f"predicts boxes for {classes}.")
        freeze_for_finetune(model, config.finetune)
        # Flips happen on the host, in the pipeline, because the box must follow them.
        augmentation = self.augmentation(config, statistics)
        self.classes = classes
        return model, augmentation, box_objective(model)

    def _localizer(self, config, info, statistics):
        source = self.source
        if source is not None and not is_localizer(source):
            return self._from_classifier(config, info)
        model = build_localizer(config.arch, info.num_classes, regression=config.regression,
                                input_shape=(config.crop, config.crop, 3), width=config.width,
                                dropout=config.dropout, init=config.init,
                                preprocessing={"mean": statistics.mean})
        if source is None:
            log.info("Training %s from scratch (random %s initialisation, no --init-from; the "
                     "paper starts from a trained classifier).", model.name, config.init)
            return model
        if [tuple(w.shape) for w in source.weights] != [tuple(w.shape) for w in model.weights]:
            raise ValueError(f"{config.init_from} is a localizer of other shapes than "
                             f"{model.name} (arch, width, crop, regression, classes).")
        model.set_weights(source.get_weights())
        log.info("Initialised every layer from the localizer %s.", config.init_from)
        return model

    def _from_classifier(self, config, info):
        source = self.source
        if source.input_shape[1:3] != (config.crop, config.crop):
            raise ValueError(f"The classifier {config.init_from} takes "
                             f"{source.input_shape[1:3]} crops but --crop is {config.crop}.")
        classes = source.get_layer("fc8").units
        if classes != info.num_classes:
            # Another classifier's classes (ImageNet's, say): the box head takes the data's,
            # and that classifier cannot rate protocol 2's boxes by the data's classes.
            log.info("The classifier %s has %d classes, the data %d: %s is made for the data's; "
                     "protocol 2 needs a classifier of them (--classifier).", config.init_from,
                     classes, info.num_classes, BOX_LAYER)
            if self.classifier is source:
                self.classifier = None
            classes = info.num_classes
        model = build_localizer(source, classes, regression=config.regression, init=config.init)
        log.info("Localizer %s: conv and FC layers from %s, %s (%d outputs, %s) random, starting "
                 "at the whole-crop box.", model.name, config.init_from, BOX_LAYER,
                 model.output_shape[-1], config.regression.upper())
        return model

    def train_batches(self, config: LocalizationConfig, examples: tf.data.Dataset,
                      start_epoch: int, steps: int, **feed: Any) -> tf.data.Dataset:
        return _train_batches(vdata.train_pipeline(
            examples, scale=config.scale, crop=config.crop, batch_size=config.batch_size,
            flip=config.flip, color_shift=config.color_shift, boxes=True, seed=config.seed,
            placement=self.placement(config), repeat=True, initial_epoch=start_epoch,
            steps_per_epoch=steps, **feed), self.classes)

    def val_batches(self, config: LocalizationConfig,
                    examples: tf.data.Dataset) -> tf.data.Dataset:
        return _eval_batches(vdata.eval_pipeline(
            examples, test_scale=test_scale(config.scale), mode="center", crop=config.crop,
            batch_size=config.eval_batch_size, boxes=True,
            resample_on=self.placement(config).resample),
            self.classes)

    def picture_options(self, model: keras.Model,
                        val_batch: tuple[Tensor, ...]) -> dict[str, Any]:
        images, targets = val_batch[0], val_batch[1]
        return dict(localizer=model, val_sample=(images.numpy(), targets.numpy()),
                    regression_classes=self.classes)

    def table(self, summary: dict[str, Any]) -> str:
        tables = format_table8([summary["protocol1"]])
        if "protocol2" in summary:
            tables += "\n\n" + format_table9(summary["protocol2"])
        return tables

    def saved_model_options(self, config: LocalizationConfig,
                            model: keras.Model) -> dict[str, Any]:
        # With a classifier of the same crop, the SavedModel returns its top-5 classes and
        # each one's box.
        rater = self.classifier
        if rater is not None and rater.input_shape[1:3] != model.input_shape[1:3]:
            rater = None
        return {"classifier": rater}

    def evaluate(self, config: LocalizationConfig, model: keras.Model,
                 examples: tf.data.Dataset, info: DatasetInfo) -> dict[str, Any]:
        q = test_scale(config.scale)
        split = f"{vdata.info(examples).split} split (not seen in training or selection)"
        row = run_protocol1(model, examples, scale=q, batch_size=config.eval_batch_size)
        row["finetune"] = config.finetune if config.init_from else "all (from scratch)"
        log.info("%s", format_table8([row], title=f"{split}, {model.name}, S={config.scale}: "
                                                  "protocol 1 localisation error (%)"))
        log.info("protocol-1 localisation error %.1f%% (mean IoU %.3f) on %d images",
                 row["error"], row["mean_iou"], row["images"])
        summary = {"regression": config.regression, "finetune": row["finetune"],
                   "init_from": config.init_from, "protocol1": row,
                   "protocol1_error": row["error"]}
        if self.classifier is not None:
            rows = protocol2_rows(model, self.classifier, examples,
                                  list(config.eval_scales or [q]), merge=config.merge,
                                  merge_threshold=config.merge_threshold)
            log.info("%s", format_table9(rows, title=f"{split}, {model.name} rated by "
                                                     f"{self.classifier.name}: protocol 2 "
                                                     "localisation error (%)"))
            summary["protocol2"] = rows
            summary["protocol2_top5_error"] = rows[-1]["top5_loc"]
        return summary


def protocol2_rows(localizers: keras.Model | Sequence[keras.Model],
                   classifiers: keras.Model | Sequence[keras.Model], examples: tf.data.Dataset,
                   scales: Sequence[int], **merging: Any) -> list[dict[str, Any]]:
    """Table 9's rows: each test scale alone, then all of them together. ``merging``:
    ``merge`` and ``merge_threshold`` for :func:`run_protocol2` (default: its own)."""
    rows = [run_protocol2(localizers, classifiers, examples, scales=[q], **merging)
            for q in scales]
    if len(scales) > 1:
        rows.append(run_protocol2(localizers, classifiers, examples, scales=scales, **merging))
    return rows


def train_localizer(**options: Any) -> dict[str, Any]:
    """Train a localizer as in the paper's Appendix A and evaluate it; returns ``summary.json``.

    Options are the fields of :class:`vgg_keras.options.LocalizationConfig` (train_loc.py's
    flags): the classification ones with ``lr`` 1e-3, plus ``regression`` ("scr"/"pcr"),
    ``finetune`` ("all"/"fc"/"fc8"), ``classifier`` (a classifier whose class scores rate protocol
    2's boxes; default ``init_from`` when that is a classifier), ``eval_scales``,
    ``eval_split``, ``merge`` and ``merge_threshold`` (protocol 2's merging). ``init_from``
    is a classifier (conv and fc6/fc7 copied; fc8_box new, its kernel random and its bias the
    whole crop) or a localizer of the same shapes (continued);
    without it ``arch`` is built from scratch. The run directory resumes.
    """
    return Run(LocalizationConfig.from_dict(options), LocalizationTask()).execute()


def evaluate_saved(paths: Sequence[PathLike], *, classifiers: Sequence[PathLike] = (),
                   data: str | None = None, data_dir: str | None = None,
                   scales: Sequence[int] | None = None, split: str | None = None,
                   val_fraction: float = 0.05, batch_size: int = 32,
                   output: PathLike | None = None, arch: str = "D",
                   **merging: Any) -> dict[str, Any]:
    """Protocol 1 for each saved localizer, protocol 2 (union of all of them) when classifier
    paths are given (``"imagenet"``: ``arch``'s released classifier), merging by ``merging``
    (``merge``, ``merge_threshold``, as :func:`protocol2_rows`); prints Tables 8 and 9 and
    optionally writes them as JSON."""
    localizers = [load_vgg(p, kind="localizer") for p in paths]
    classifier_models = [load_vgg(p, kind="classifier", arch=arch) for p in classifiers]
    examples = vdata.evaluation_examples(data, split=split, val_fraction=val_fraction,
                                   data_dir=data_dir)
    scales = list(scales or [localizers[0].input_shape[1]])
    table8 = [run_protocol1(loc, examples, scale=scales[0], batch_size=batch_size)
              for loc in localizers]
    print(format_table8(table8))
    report = {"protocol1": table8}
    if classifier_models:
        report["protocol2"] = protocol2_rows(localizers, classifier_models, examples, scales,
                                             **merging)
        print()
        print(format_table9(report["protocol2"]))
    if output:
        Path(output).write_text(json.dumps(report, indent=1))
    return report

