"""Classification training and evaluation as train_cls.py runs them (paper Sections 3.1-3.2).

>>> from vgg_keras.classification import train_classifier
>>> summary = train_classifier(arch="A", width=0.25, crop=64, scale=(72, 96), epochs=20,
...                            batch_size=32, init="glorot", run_dir="runs/quick")
"""

import contextlib
import json
import logging
import time
from pathlib import Path

import keras

from . import data as vdata
from . import evaluate as protocols
from .augment import training_augmentation
from .models import build_vgg, load_vgg, preinitialize
from .progress import set_quiet
from .rundir import RunDirectory
from .train import (
    apply_weight_decay, checkpoint_weights, distribution_scope, fit_resumable, set_precision,
    test_scale, with_training_augmentation,
)

log = logging.getLogger(__name__)

DEFAULTS = dict(
    arch="D", data=None, data_dir=None, scale=256, crop=224, width=1.0, dropout=0.5,
    init="paper", init_from=None, val_fraction=0.05, epochs=74, steps_per_epoch=None,
    batch_size=256, accumulate=1, lr=1e-2, momentum=0.9, weight_decay=5e-4, lr_patience=2,
    lr_drops=3, precision="float32", jit=False, distribute="auto", seed=0, run_dir=None,
    eval_batch_size=32, verbose="auto", export=True, flip=True, color_shift=True, optimizer="sgd",
    quiet=False,
)


def load_splits(data, *, val_fraction, data_dir=None):
    """Training and validation examples of a source, holding out ``val_fraction`` of the
    training split when the source has no validation split."""
    name = data or vdata.EMBEDDED_NAME
    try:
        val = vdata.load(name, "validation", data_dir=data_dir)
    except vdata.SplitNotFoundError:
        percent = max(1, int(round(100 * val_fraction)))
        log.info("%s has no validation split; holding out %d%% of train", name, percent)
        return (vdata.load(name, f"train[{percent}%:]", data_dir=data_dir),
                vdata.load(name, f"train[:{percent}%]", data_dir=data_dir))
    return vdata.load(name, "train", data_dir=data_dir), val


def load_validation(data, *, val_fraction, data_dir=None):
    """The validation examples of ``load_splits`` alone, without listing the training split
    when the source has its own validation split (ImageNet's 1.28M files)."""
    name = data or vdata.EMBEDDED_NAME
    try:
        return vdata.load(name, "validation", data_dir=data_dir)
    except vdata.SplitNotFoundError:
        return load_splits(data, val_fraction=val_fraction, data_dir=data_dir)[1]


def default_run_dir(task, arch, scale):
    scale_text = f"{scale[0]}-{scale[1]}" if isinstance(scale, tuple) else str(scale)
    return Path("runs") / f"{task}-{arch.lower()}-s{scale_text}"


@contextlib.contextmanager
def start_run(o, task):
    """What every training run does first, in this order: check S against the crop, take the
    run directory (locked, checked against the configuration it holds, logging to
    ``train.log``), set the precision, create the distribution strategy (before any TF op, as
    multi-worker collectives require), load the training and validation examples, and record
    ``config.json`` with the class names.

    A context manager yielding ``(run_dir, scope, replicas, train_examples, val_examples,
    info)``; the run directory stays locked until it exits.
    """
    scale = o["scale"]
    smallest = scale[0] if isinstance(scale, tuple) else scale
    if smallest < o["crop"]:
        raise ValueError(f"The training scale S={smallest} is smaller than the crop {o['crop']}; "
                         "S must be at least the crop (the paper: S >= 224).")
    run_dir = Path(o["run_dir"] or default_run_dir(task, o["arch"], scale))
    with RunDirectory(run_dir, o) as run:
        set_quiet(o["quiet"])
        set_precision(o["precision"])
        scope, replicas = distribution_scope(o["distribute"])
        train_examples, val_examples = load_splits(o["data"], val_fraction=o["val_fraction"],
                                                   data_dir=o["data_dir"])
        meta = vdata.info(train_examples)
        run.write_config({"classes": list(meta.class_names)})
        yield run_dir, scope, replicas, train_examples, val_examples, meta


def fit_verbosity(o):
    """Keras's ``verbose`` for ``fit``: one line per epoch with ``--quiet``."""
    if o["verbose"] == "auto":
        return 2 if o["quiet"] else "auto"
    return int(o["verbose"])


def keep_best(model, run_dir):
    """Load the best validation epoch's weights into ``model`` (the weights a run keeps)."""
    best = checkpoint_weights(run_dir, "best")
    if best is not None:
        model.load_weights(best)
    return best


def make_optimizer(name, lr, momentum, accumulate):
    """The paper's SGD with momentum, or Adam; ``accumulate`` > 1 averages the gradients of that
    many batches into one update, as one batch that many times larger would (the paper's batch
    of 256 on a small machine)."""
    accumulation = accumulate if accumulate > 1 else None
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, gradient_accumulation_steps=accumulation)
    if name != "sgd":
        raise ValueError(f"optimizer must be 'sgd' or 'adam', got {name!r}")
    return keras.optimizers.SGD(learning_rate=lr, momentum=momentum,
                                gradient_accumulation_steps=accumulation)


def _initialize_from(model, path):
    """Fine-tune from a model of the same shapes, or pre-initialise from a shallower one."""
    source = load_vgg(path, kind="classifier")
    same = [tuple(w.shape) for w in source.weights] == [tuple(w.shape) for w in model.weights]
    if same:
        model.set_weights(source.get_weights())
        log.info("Initialised every layer from %s (fine-tuning).", path)
        return "all"
    copied = preinitialize(model, source)
    log.info("Pre-initialised %s from %s; the other layers are random.", ", ".join(copied), path)
    return copied


def evaluate_saved(paths, *, data=None, data_dir=None, scales=None, methods=("center", "dense"),
                   crop=None, flip=True, batch_size=32, split="validation", val_fraction=0.05,
                   output=None):
    """Evaluate saved classifiers (several: fusion) by the paper's protocols: ``.keras`` models
    or the weight files ``build_vgg(weights=...)`` reads (torchvision ``.pth``,
    keras.applications ``.h5``)."""
    models = [load_vgg(p, kind="classifier") for p in paths]
    crop = crop or models[0].input_shape[1]
    if split == "validation":
        examples = load_validation(data, val_fraction=val_fraction, data_dir=data_dir)
    else:
        examples = vdata.load(data or vdata.EMBEDDED_NAME, split, data_dir=data_dir)
    classes = vdata.info(examples).num_classes
    for path, model in zip(paths, models):
        if model.output_shape[-1] < classes:
            raise ValueError(f"{path} predicts {model.output_shape[-1]} classes but the data "
                             f"has {classes}.")

    def batches(scale, method):
        size = batch_size if method == "center" else (1 if method == "dense" else 4)
        return vdata.eval_pipeline(examples, scale=scale, mode=method, crop=crop,
                                   batch_size=size)

    rows = protocols.evaluate_classifier(models, batches, scales=scales, methods=methods,
                                         flip=flip)
    print(protocols.format_table(rows))
    if output:
        protocols.write_json(rows, output)
    return rows


def train_classifier(*, eval_methods=("center", "dense"), **options):
    """Train a classifier by the paper's recipe and evaluate it; returns ``summary.json``'s dict.

    Options are those of ``train_cls.py`` (see ``DEFAULTS``); the run directory resumes.
    ``eval_methods`` are the protocols of the evaluation after training, at the paper's single
    test scale Q (dense evaluation of images of many sizes recompiles per size on JAX).
    """
    unknown = set(options) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"Unknown options: {', '.join(sorted(unknown))}")
    o = {**DEFAULTS, **options}
    with start_run(o, "cls") as (run_dir, scope, replicas, train_examples, val_examples, meta):
        model, trainer = _build_classifier(o, meta, scope)
        state, seconds = _fit_classifier(o, trainer, model, run_dir, replicas, train_examples,
                                         val_examples, meta)
        return _finish_classifier(o, model, run_dir, state, seconds, val_examples, meta,
                                  eval_methods)


def _build_classifier(o, meta, scope):
    keras.utils.set_random_seed(o["seed"])  # here: loading data may have drawn random numbers
    with scope:
        model = build_vgg(o["arch"], meta.num_classes, input_shape=(o["crop"], o["crop"], 3),
                          width=o["width"], dropout=o["dropout"], init=o["init"])
        if o["init_from"]:
            _initialize_from(model, o["init_from"])
        else:
            log.info("Training %s from random initialisation (%s).", model.name, o["init"])
        trainer = with_training_augmentation(model, training_augmentation(
            flip=o["flip"], color_shift=o["color_shift"], seed=o["seed"]))
        apply_weight_decay(model, o["weight_decay"])
        trainer.compile(
            optimizer=make_optimizer(o["optimizer"], o["lr"], o["momentum"], o["accumulate"]),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                     keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="top5")],
            jit_compile=bool(o["jit"]),
        )
    return model, trainer


def _fit_classifier(o, trainer, model, run_dir, replicas, train_examples, val_examples, meta):
    steps = o["steps_per_epoch"] or max(1, meta.num_examples // o["batch_size"])

    def train_data(start_epoch):
        return vdata.train_pipeline(
            train_examples, scale=o["scale"], crop=o["crop"], batch_size=o["batch_size"],
            seed=o["seed"], augment_on="device", repeat=True, initial_epoch=start_epoch,
            steps_per_epoch=steps)

    # Keras keeps one validation iterator across epochs when validation_steps is given: an
    # endless stream of exactly one pass per epoch sees every validation image once an epoch.
    val_steps = -(-vdata.info(val_examples).num_examples // o["eval_batch_size"])
    val_data = vdata.eval_pipeline(val_examples, scale=test_scale(o["scale"]), mode="center",
                                   crop=o["crop"], batch_size=o["eval_batch_size"]).repeat()
    log.info("%d training images, %d classes, %d steps of %d per epoch%s, %d replica(s); run "
             "directory %s", meta.num_examples, meta.num_classes, steps, o["batch_size"],
             f" x {o['accumulate']} accumulated" if o["accumulate"] > 1 else "", replicas,
             run_dir)
    started = time.time()
    state = fit_resumable(
        trainer, train_data, epochs=o["epochs"], steps_per_epoch=steps, run_dir=run_dir,
        validation_data=val_data, validation_steps=val_steps, patience=o["lr_patience"],
        max_drops=o["lr_drops"], target_model=model, hold_below=2.0 / meta.num_classes,
        verbose=fit_verbosity(o))
    return state, time.time() - started


def _finish_classifier(o, model, run_dir, state, seconds, val_examples, meta, eval_methods):
    scale, q = o["scale"], test_scale(o["scale"])
    keep_best(model, run_dir)
    model.save(run_dir / "model.keras")
    if o["export"] and keras.backend.backend() == "tensorflow":
        # The serving SavedModel: JPEG/PNG bytes or uint8 images in, top-5 out (vgg_keras.export).
        from .export import export

        export(model, run_dir / "saved_model", scale=q)

    def batches(scale_q, method):
        size = o["eval_batch_size"] if method == "center" else 1
        return vdata.eval_pipeline(val_examples, scale=scale_q, mode=method, crop=o["crop"],
                                   batch_size=size)

    rows = protocols.evaluate_classifier(model, batches, scales=(q,), methods=tuple(eval_methods))
    log.info("%s", protocols.format_table(rows, title=f"validation, {model.name}, S={scale}"))
    by_method = {row["method"]: row for row in rows}
    center = rows[0]
    summary = {
        "model": str(run_dir / "model.keras"),
        "arch": o["arch"], "scale": scale, "test_scale": q, "epochs": state["epoch"],
        "best_epoch": state.get("best_epoch"),
        "top1_error": center["top1"], "top5_error": center["top5"],
        **{f"{method}_top{k}_error": by_method[method][f"top{k}"]
           for method in ("dense", "multicrop") if method in by_method for k in (1, 5)},
        "evaluation": rows, "seconds": round(seconds, 1),
        "train_images": meta.num_examples, "classes": meta.num_classes,
        "chance_top1_error": 100.0 * (1 - 1 / meta.num_classes),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    log.info("top-1 error %.1f%% (accuracy %.1f%%), top-5 error %.1f%% on %s after %d epochs; "
             "summary in %s", center["top1"], 100 - center["top1"], center["top5"], o["arch"],
             state["epoch"], run_dir / "summary.json")
    return summary
