"""Classification as train_cls.py runs it (paper Sections 3.1-3.2): what the task adds to the
shared :class:`~vgg_keras.run.Run`: the network (random, pre-initialised from a shallower one,
or fine-tuned), cross-entropy with top-1/top-5 accuracy, the paper's training batches, and
evaluation by the paper's protocols.

>>> from vgg_keras.classification import train_classifier
>>> summary = train_classifier(arch="A", width=0.25, crop=64, scale=(72, 96), epochs=20,
...                            batch_size=32, init="glorot", run_dir="runs/quick")
"""

import logging

import keras

from . import data as vdata
from . import evaluate as protocols
from .augment import training_augmentation
from .config import ClassificationConfig, test_scale
from .models import build_vgg, load_vgg, preinitialize
from .run import Run, Task

log = logging.getLogger(__name__)


class ClassificationTask(Task):
    """The classifier's part of a run (see :class:`vgg_keras.run.Task`)."""

    name = "cls"
    monitor = ("val_accuracy", "max")

    def prepare(self, config):
        self.source = load_vgg(config.init_from, kind="classifier") if config.init_from else None

    def build(self, config, info):
        model = build_vgg(config.arch, info.num_classes, input_shape=(config.crop, config.crop, 3),
                          width=config.width, dropout=config.dropout, init=config.init)
        if self.source is not None:
            initialize_from(model, self.source, config.init_from)
        else:
            log.info("Training %s from random initialisation (%s).", model.name, config.init)
        augmentation = training_augmentation(flip=config.flip, color_shift=config.color_shift,
                                             seed=config.seed)
        return model, augmentation, dict(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                     keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")])

    def train_batches(self, config, examples, start_epoch, steps):
        return vdata.train_pipeline(
            examples, scale=config.scale, crop=config.crop, batch_size=config.batch_size,
            seed=config.seed, augment_on="device", repeat=True, initial_epoch=start_epoch,
            steps_per_epoch=steps)

    def val_batches(self, config, examples):
        return vdata.eval_pipeline(examples, scale=test_scale(config.scale), mode="center",
                                   crop=config.crop, batch_size=config.eval_batch_size)

    def hold_below(self, info):
        # Plain VGG sits at chance for several epochs; the rate waits until it has left.
        return 2.0 / info.num_classes

    def table(self, summary):
        return protocols.format_table(summary["evaluation"])

    def evaluate(self, config, model, examples, info):
        q = test_scale(config.scale)
        rows = protocols.evaluate_classifier(
            model, lambda q, method: protocols.protocol_batches(
                examples, method, q, crop=config.crop, batch_size=config.eval_batch_size),
            scales=(q,), methods=tuple(config.eval_methods))
        log.info("%s", protocols.format_table(
            rows, title=f"validation, {model.name}, S={config.scale}"))
        by_method = {row["method"]: row for row in rows}
        center = rows[0]
        log.info("top-1 error %.1f%% (accuracy %.1f%%), top-5 error %.1f%% on %s after "
                 "training", center["top1"], 100 - center["top1"], center["top5"], config.arch)
        return {
            "top1_error": center["top1"], "top5_error": center["top5"],
            **{f"{method}_top{k}_error": by_method[method][f"top{k}"]
               for method in ("dense", "multicrop") if method in by_method for k in (1, 5)},
            "evaluation": rows, "chance_top1_error": 100.0 * (1 - 1 / info.num_classes),
        }



def initialize_from(model, source, path):
    """Fine-tune from a model of the same shapes, or pre-initialise from a shallower one."""
    same = [tuple(w.shape) for w in source.weights] == [tuple(w.shape) for w in model.weights]
    if same:
        model.set_weights(source.get_weights())
        log.info("Initialised every layer from %s (fine-tuning).", path)
        return "all"
    copied = preinitialize(model, source)
    log.info("Pre-initialised %s from %s; the other layers are random.", ", ".join(copied), path)
    return copied


def train_classifier(**options):
    """Train a classifier by the paper's recipe and evaluate it; returns ``summary.json``'s dict.

    Options are the fields of :class:`vgg_keras.config.ClassificationConfig` (train_cls.py's
    flags); the run directory resumes.
    """
    return Run(ClassificationConfig.from_dict(options), ClassificationTask()).execute()


def evaluate_saved(paths, *, data=None, data_dir=None, scales=None, methods=("center", "dense"),
                   crop=None, flip=True, batch_size=32, split=None, val_fraction=0.05,
                   output=None):
    """Evaluate saved classifiers (several: fusion) by the paper's protocols: ``.keras`` models
    or the weight files ``build_vgg(weights=...)`` reads (torchvision ``.pth``,
    keras.applications ``.h5``)."""
    models = [load_vgg(p, kind="classifier") for p in paths]
    crop = crop or models[0].input_shape[1]
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
        scales=scales, methods=methods, flip=flip)
    print(protocols.format_table(rows))
    if output:
        protocols.write_json(rows, output)
    return rows
