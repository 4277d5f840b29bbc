"""Classification training and evaluation as train_cls.py runs them (paper Sections 3.1-3.2).

>>> from vgg_keras.classification import train_classifier
>>> summary = train_classifier(arch="A", width=0.25, crop=64, scale=(72, 96), epochs=20,
...                            batch_size=32, init="glorot", run_dir="runs/quick")
"""

import json
import logging
import time
from pathlib import Path

import keras

from . import evaluate as protocols
from .augment import training_augmentation
from .models import build_vgg, preinitialize
from .train import (
    apply_weight_decay, distribution_scope, fit_resumable, set_precision, test_scale,
    with_training_augmentation,
)

log = logging.getLogger(__name__)

DEFAULTS = dict(
    arch="D", data=None, data_dir=None, scale=256, crop=224, width=1.0, dropout=0.5,
    init="paper", init_from=None, val_fraction=0.05, epochs=74, steps_per_epoch=None,
    batch_size=256, accumulate=1, lr=1e-2, momentum=0.9, weight_decay=5e-4, lr_patience=2,
    lr_drops=3, precision="float32", jit=False, distribute="auto", seed=0, run_dir=None,
    eval_batch_size=32, verbose="auto", export=True, flip=True, color_shift=True, optimizer="sgd",
)


def load_splits(data, *, val_fraction, data_dir=None):
    """Training and validation examples of a source, holding out ``val_fraction`` of the
    training split when the source has no validation split."""
    from . import data as vdata

    name = data or vdata.EMBEDDED_NAME
    train = vdata.load(name, "train", data_dir=data_dir)
    try:
        val = vdata.load(name, "validation", data_dir=data_dir)
    except ValueError as error:
        if "split" not in str(error).lower():
            raise
        percent = max(1, int(round(100 * val_fraction)))
        log.info("%s has no validation split; holding out %d%% of train", name, percent)
        train = vdata.load(name, f"train[{percent}%:]", data_dir=data_dir)
        val = vdata.load(name, f"train[:{percent}%]", data_dir=data_dir)
    return train, val


def default_run_dir(task, arch, scale):
    scale_text = f"{scale[0]}-{scale[1]}" if isinstance(scale, tuple) else str(scale)
    return Path("runs") / f"{task}-{arch.lower()}-s{scale_text}"


def start_run(o, task):
    """What every training run does first, in this order: check S against the crop, make the
    run directory, set the precision, create the distribution strategy (before any TF op, as
    multi-worker collectives require), load the training and validation examples.

    Returns ``(run_dir, scope, replicas, train_examples, val_examples, info)``.
    """
    from . import data as vdata

    scale = o["scale"]
    smallest = scale[0] if isinstance(scale, tuple) else scale
    if smallest < o["crop"]:
        raise ValueError(f"The training scale S={smallest} is smaller than the crop {o['crop']}; "
                         "S must be at least the crop (the paper: S >= 224).")
    run_dir = Path(o["run_dir"] or default_run_dir(task, o["arch"], scale))
    run_dir.mkdir(parents=True, exist_ok=True)
    set_precision(o["precision"])
    scope, replicas = distribution_scope(o["distribute"])
    train_examples, val_examples = load_splits(o["data"], val_fraction=o["val_fraction"],
                                               data_dir=o["data_dir"])
    return run_dir, scope, replicas, train_examples, val_examples, vdata.info(train_examples)


def write_run_config(run_dir, o, info):
    """The options of a run and its class names, as ``config.json`` in the run directory."""
    scale = o["scale"]
    (run_dir / "config.json").write_text(json.dumps(
        {**o, "scale": list(scale) if isinstance(scale, tuple) else scale,
         "classes": list(info.class_names)}, indent=1, default=str))


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
    source = keras.saving.load_model(path, safe_mode=True, compile=False)
    same = [tuple(w.shape) for w in source.weights] == [tuple(w.shape) for w in model.weights]
    if same:
        model.set_weights(source.get_weights())
        print(f"Initialised every layer from {path} (fine-tuning).")
        return "all"
    copied = preinitialize(model, source)
    print(f"Pre-initialised {', '.join(copied)} from {path}; the other layers are random.")
    return copied


def evaluate_saved(paths, *, data=None, data_dir=None, scales=None, methods=("center", "dense"),
                   crop=None, flip=True, batch_size=32, split="validation", val_fraction=0.05,
                   output=None):
    """Evaluate saved ``.keras`` classifiers (several: fusion) by the paper's protocols."""
    from . import data as vdata

    models = [keras.saving.load_model(p, safe_mode=True, compile=False) for p in paths]
    crop = crop or models[0].input_shape[1]
    if split == "validation":
        _, examples = load_splits(data, val_fraction=val_fraction, data_dir=data_dir)
    else:
        examples = vdata.load(data or vdata.EMBEDDED_NAME, split, data_dir=data_dir)

    def batches(scale, method):
        size = batch_size if method == "center" else (1 if method == "dense" else 4)
        return vdata.eval_pipeline(examples, scale=scale, mode=method, crop=crop,
                                   batch_size=size).as_numpy_iterator()

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
    from . import data as vdata

    scale = o["scale"]
    run_dir, scope, replicas, train_examples, val_examples, meta = start_run(o, "cls")
    steps = o["steps_per_epoch"] or max(1, meta.num_examples // o["batch_size"])
    q = test_scale(scale)
    write_run_config(run_dir, o, meta)

    keras.utils.set_random_seed(o["seed"])  # here: loading data may have drawn random numbers
    with scope:
        model = build_vgg(o["arch"], meta.num_classes, input_shape=(o["crop"], o["crop"], 3),
                          width=o["width"], dropout=o["dropout"], init=o["init"])
        if o["init_from"]:
            _initialize_from(model, o["init_from"])
        else:
            print(f"Training {model.name} from random initialisation ({o['init']}).")
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

    def train_data(start_epoch):
        return vdata.train_pipeline(
            train_examples, scale=scale, crop=o["crop"], batch_size=o["batch_size"],
            seed=o["seed"], augment_on="device", repeat=True, initial_epoch=start_epoch,
            steps_per_epoch=steps)

    # Keras keeps one validation iterator across epochs when validation_steps is given: an
    # endless stream of exactly one pass per epoch sees every validation image once an epoch.
    val_steps = -(-vdata.info(val_examples).num_examples // o["eval_batch_size"])
    val_data = vdata.eval_pipeline(val_examples, scale=q, mode="center", crop=o["crop"],
                                   batch_size=o["eval_batch_size"]).repeat()
    print(f"{meta.num_examples} training images, {meta.num_classes} classes, {steps} steps of "
          f"{o['batch_size']} per epoch" + (f" x {o['accumulate']} accumulated" if
                                            o["accumulate"] > 1 else "")
          + f", {replicas} replica(s); run directory {run_dir}")
    started = time.time()
    state = fit_resumable(
        trainer, train_data, epochs=o["epochs"], steps_per_epoch=steps, run_dir=run_dir,
        validation_data=val_data, validation_steps=val_steps, patience=o["lr_patience"], max_drops=o["lr_drops"],
        target_model=model, hold_below=2.0 / meta.num_classes, verbose=o["verbose"] if o["verbose"] == "auto" else int(o["verbose"]),
    )
    best = run_dir / "checkpoints" / "best.weights.h5"
    if best.exists():
        model.load_weights(best)
    model.save(run_dir / "model.keras")
    if o["export"] and keras.backend.backend() == "tensorflow":
        # The serving SavedModel: JPEG/PNG bytes or uint8 images in, top-5 out (vgg_keras.export).
        from .export import export

        export(model, run_dir / "saved_model", scale=q)

    def batches(scale_q, method):
        size = o["eval_batch_size"] if method == "center" else 1
        return vdata.eval_pipeline(val_examples, scale=scale_q, mode=method, crop=o["crop"],
                                   batch_size=size).as_numpy_iterator()

    rows = protocols.evaluate_classifier(model, batches, scales=(q,), methods=tuple(eval_methods))
    print(protocols.format_table(rows, title=f"validation, {model.name}, S={scale}"))
    by_method = {row["method"]: row for row in rows}
    center = rows[0]
    summary = {
        "model": str(run_dir / "model.keras"),
        "arch": o["arch"], "scale": scale, "test_scale": q, "epochs": state["epoch"],
        "best_epoch": state.get("best_epoch"),
        "top1_error": center["top1"], "top5_error": center["top5"],
        **{f"{method}_top{k}_error": by_method[method][f"top{k}"]
           for method in ("dense", "multicrop") if method in by_method for k in (1, 5)},
        "evaluation": rows, "seconds": round(time.time() - started, 1),
        "train_images": meta.num_examples, "classes": meta.num_classes,
        "chance_top1_error": 100.0 * (1 - 1 / meta.num_classes),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    print(f"top-1 error {center['top1']:.1f}% (accuracy {100 - center['top1']:.1f}%), top-5 "
          f"error {center['top5']:.1f}% on {o['arch']} after {state['epoch']} epochs; "
          f"summary in {run_dir / 'summary.json'}")
    return summary
