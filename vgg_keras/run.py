"""One training run, as both scripts run it: the part the two tasks share.

A :class:`Run` takes a typed configuration (:mod:`vgg_keras.options`) and a task, and does, in
this order: check the scale against the crop, join the other processes of a multi-process job
(:mod:`vgg_keras.cluster`; before any computation, as JAX's distributed runtime requires), take
the run directory (process 0: locked, checked against the configuration it holds, logging to
``train.log``), set the precision, create the distribution (``DataParallel`` over every
process's devices, or a ``MirroredStrategy``), load the
training, selection and report examples (:func:`vgg_keras.data.run_splits`: the schedule
and the kept epoch are chosen on the selection examples, the error is reported on examples that
neither training nor selection saw), record ``config.json``, build and compile the task's model,
fit it resumably, keep the best selection epoch's weights, save ``model.keras`` and the serving
SavedModel, evaluate on the report examples, and write ``summary.json``, which names the split
behind each number.

A task supplies only what differs (see :class:`Task`): its model, losses and metrics, batches,
the metric that picks the kept epoch, and its evaluation.

>>> from vgg_keras.classification import ClassificationTask
>>> from vgg_keras.options import ClassificationConfig
>>> config = ClassificationConfig(arch="A", width=0.25, crop=64, scale=(72, 96), epochs=1)
>>> run = Run(config, ClassificationTask())
>>> run.run_dir                                # the default: runs/<task>-<arch>-s<scale>
PosixPath('runs/cls-a-s72-96')
>>> summary = run.execute()                    # trains, then evaluates  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import keras

from . import cluster
from . import data as vdata
from .data import service as data_service
from .augment import training_augmentation
from .options import RunConfig, test_scale
from .data.placement import Placement
from .data.stats import SAMPLE_IMAGES, SAMPLE_SIDE, Statistics
from .export import export
from .models import arch_of
from .progress import set_quiet
from .report import write_report
from .rundir import SUMMARY_FILE, RunDirectory
from .tensorboard import EpochPictures, write_text
from .fitting import (
    apply_weight_decay, distribution_scope, fit_resumable, resample_where, set_precision,
    with_training_augmentation,
)

if TYPE_CHECKING:
    import tensorflow as tf

    from ._typing import Scale, Tensor
    from .data.sources import DatasetInfo

log = logging.getLogger(__name__)

ConfigT = TypeVar("ConfigT", bound=RunConfig)


class Task(Generic[ConfigT]):
    """What a task tells the :class:`Run`; the defaults are the classifier's. ``ConfigT`` is
    the task's configuration class (:class:`~vgg_keras.options.ClassificationConfig`, ...).

    ``name`` prefixes the default run directory (``runs/<name>-<arch>-s<scale>``);
    ``monitor`` is the validation metric (and ``"max"``/``"min"``) that picks the kept epoch and
    drives the learning-rate schedule; ``boxes``: the training examples carry boxes.
    """

    name = "task"
    boxes = False
    script = "train_cls.py"  # the command that runs it, for messages
    monitor = ("val_accuracy", "max")

    def run_name(self, config: ConfigT) -> str:
        """The default run directory's prefix for ``config``."""
        return self.name

    def prepare(self, config: ConfigT) -> None:
        """Before the run directory is taken: read the files the run starts from, so that a
        wrong file is refused before anything is written."""

    def check_data(self, info: DatasetInfo) -> None:
        """Refuse data the task cannot use (``info`` is the training split's)."""

    def build(self, config: ConfigT, info: DatasetInfo, statistics: Statistics,
              ) -> tuple[keras.Model, keras.Model, dict[str, Any]]:
        """``(model, augmentation, compile_arguments)``: the network that is saved, the
        augmentation ``fit`` puts before it, and ``loss``/``metrics``. ``statistics``
        (:class:`vgg_keras.data.Statistics`) gives the mean to subtract and the colour shift's
        PCA."""
        raise NotImplementedError

    def initialize_on_data(self, config: ConfigT, model: keras.Model,
                           examples: tf.data.Dataset) -> None:
        """After :meth:`build`: an initialisation that looks at training ``examples``
        (``--init unit-scale``); none by default."""

    def placement(self, config: ConfigT) -> Placement:
        """Where the steps of a training crop run: the flip and colour shift in the training
        step, the resampling where ``--resample-on`` says; :meth:`train_batches` and
        :meth:`augmentation` read this one value, so each step runs exactly once."""
        return Placement(augment="device", resample=resample_where(config.resample_on),
                         boxes=self.boxes)

    def augmentation(self, config: ConfigT, statistics: Statistics) -> keras.Model:
        """The augmentation ``fit`` puts before the network, for the batches of
        :meth:`train_batches`: with ``--resample-on device`` it crops the windows the host
        hands over (the host has flipped by their geometry), then the flip where the device
        draws it, then the colour shift."""
        placement = self.placement(config)
        log.info("Training crops resampled on the %s (--resample-on %s).", placement.resample,
                 config.resample_on)
        bucket = placement.window_bucket(config.crop)
        return training_augmentation(
            flip=config.flip and placement.device_flips, color_shift=config.color_shift,
            seed=config.seed, eigval=statistics.eigval, eigvec=statistics.eigvec,
            windows=bucket, crop=config.crop if bucket else None)

    def train_batches(self, config: ConfigT, examples: tf.data.Dataset, start_epoch: int,
                      steps: int, **feed: Any) -> tf.data.Dataset:
        """Endless training batches from ``start_epoch`` on, ``steps`` a epoch; ``feed``:
        ``train_pipeline``'s ``shard`` (this process's share of each batch), ``service`` and
        ``service_job`` (a tf.data service that makes the examples)."""
        raise NotImplementedError

    def val_batches(self, config: ConfigT, examples: tf.data.Dataset) -> tf.data.Dataset:
        """The validation batches of ``examples`` (one pass), as :meth:`train_batches`'s."""
        raise NotImplementedError

    def hold_below(self, info: DatasetInfo) -> float | None:
        """A monitored value below which the schedule does not lower the rate (None: none)."""
        return None

    def picture_options(self, model: keras.Model,
                        val_batch: tuple[Tensor, ...]) -> dict[str, Any]:
        """Extra arguments of :class:`vgg_keras.tensorboard.EpochPictures` (a localizer's
        boxes), given the model and one validation batch."""
        return {}

    def table(self, summary: dict[str, Any]) -> str:
        """The evaluation in ``summary`` as a markdown table (for TensorBoard)."""
        return ""

    def saved_model_options(self, config: ConfigT, model: keras.Model) -> dict[str, Any]:
        """Extra arguments of :func:`vgg_keras.export.export` for the serving SavedModel."""
        return {}

    def evaluate(self, config: ConfigT, model: keras.Model, examples: tf.data.Dataset,
                 info: DatasetInfo) -> dict[str, Any]:
        """The task's part of ``summary.json``; logs its tables."""
        raise NotImplementedError


IMAGENET_SOURCES = ("imagenet-loc", "ilsvrc2012")


def is_imagenet(data: str | None, info: DatasetInfo) -> bool:
    """Whether the run's data is ImageNet (a TFDS imagenet* name or an ImageNet tree)."""
    return info.source in IMAGENET_SOURCES or str(data or "").startswith("imagenet")


def default_run_dir(task_name: str, arch: str, scale: Scale) -> Path:
    """``runs/<task_name>-<arch>-s<scale>``, where a run goes without ``--run-dir``.

    >>> default_run_dir("cls", "A", (256, 512))
    PosixPath('runs/cls-a-s256-512')
    """
    scale_text = f"{scale[0]}-{scale[1]}" if isinstance(scale, tuple) else str(scale)
    return Path("runs") / f"{task_name}-{arch.lower()}-s{scale_text}"


def make_optimizer(name: str, lr: float, momentum: float,
                   accumulate: int) -> keras.optimizers.Optimizer:
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


def fit_verbosity(config: RunConfig) -> int | str:
    """Keras's ``verbose`` for ``fit``: one line per epoch with ``--quiet``."""
    if config.verbose == "auto":
        # A progress bar redrawn into a log file is a line of escape codes every step.
        return 2 if config.quiet or not sys.stdout.isatty() else "auto"
    return int(config.verbose)


class Run(Generic[ConfigT]):
    """One run of ``task`` with ``config``; :meth:`execute` trains, evaluates and returns
    ``summary.json``'s dict. The run directory resumes."""

    def __init__(self, config: ConfigT, task: Task[ConfigT]) -> None:
        self.config = config
        self.task = task
        self.run_dir = Path(config.run_dir or
                            default_run_dir(task.run_name(config), config.arch, config.scale))

    def execute(self) -> dict[str, Any]:
        """Train, evaluate and write the run directory; ``summary.json``'s dict."""
        # The rate that runs, in config.json too: a resumed run without --lr gets the same one.
        rate = self.config.describe_learning_rate()
        c = self.config = self.config.replace(lr=self.config.learning_rate())
        smallest = c.scale[0] if isinstance(c.scale, tuple) else c.scale
        if smallest < c.crop:
            raise ValueError(f"The training scale S={smallest} is smaller than the crop "
                             f"{c.crop}; S must be at least the crop (the paper: S >= 224).")
        # First of all: JAX's distributed runtime must start before any computation (before
        # the task reads the model it starts from).
        self.processes = processes = cluster.start(
            c.coordinator, c.num_processes, c.process_id, command=self.task.script,
            start_timeout=min(c.peer_timeout, cluster.START_TIMEOUT),
            heartbeat_timeout=max(cluster.HEARTBEAT_TIMEOUT, c.peer_timeout + 60))
        self.task.prepare(c)
        if c.data_service:
            data_service.check_reachable(c.data_service)
        if c.batch_size % processes.count:
            raise ValueError(f"--batch-size {c.batch_size} cannot be split evenly between "
                             f"{processes.count} processes; choose a multiple of "
                             f"{processes.count}.")
        # Only process 0 takes (and writes) the run directory; the others read its checkpoint.
        directory = (RunDirectory(self.run_dir, c.to_dict(), resumable=type(c).resumable())
                     if processes.is_chief else contextlib.nullcontext())
        with directory:
            set_quiet(c.quiet)
            log.info("%s", rate)
            set_precision(c.precision)
            scope, replicas = distribution_scope(c.distribute, processes, self.task.script)
            splits = vdata.run_splits(c.data, val_fraction=c.val_fraction,
                                      data_dir=c.data_dir, report=c.eval_split)
            train, val = splits.train, splits.selection
            info = vdata.info(train)
            if isinstance(directory, RunDirectory):  # process 0's
                directory.write_config({"classes": list(info.class_names)})
            self.task.check_data(info)
            self.statistics = self._statistics(train, info)
            model, trainer = self._build(scope, info, train)
            state, seconds = self._fit(model, trainer, train, val, info, replicas)
            self._save(model, state)
            model = self._evaluation_model(model)
            return self._summarize(model, state, seconds, splits, info)

    def _statistics(self, train, info):
        """The mean RGB and colour-shift PCA the run trains with (``--statistics``), kept in
        ``statistics.json`` so that a resumed run uses the very same numbers; process 0's on
        every process."""
        if self.processes.is_chief:
            statistics = self._chief_statistics(train, info)
            chosen = {"statistics": statistics.as_dict(), "origin": self.statistics_origin}
        else:
            chosen = None
        chosen = cluster.share(chosen, self.processes)
        self.statistics_origin = chosen["origin"]
        fields = chosen["statistics"]
        return Statistics(mean=tuple(fields["mean"]), eigval=tuple(fields["eigval"]),
                          eigvec=tuple(tuple(row) for row in fields["eigvec"]),
                          num_images=fields["num_images"], num_pixels=fields["num_pixels"])

    def _chief_statistics(self, train, info):
        c = self.config
        choice = c.statistics
        if choice == "auto":
            choice = "imagenet" if is_imagenet(c.data, info) else "data"
        saved = self.run_dir / "statistics.json"
        if choice == "imagenet":
            statistics, origin = Statistics.imagenet(), "ImageNet's"
        elif choice == "data":
            if saved.exists():
                statistics = Statistics.read(saved)
            else:
                statistics = vdata.compute_statistics(train, max_images=SAMPLE_IMAGES,
                                                      max_side=SAMPLE_SIDE)
            origin = f"the training data's ({statistics.num_images} images)"
        else:
            statistics, origin = Statistics.read(choice), choice
        statistics.write(saved)
        self.statistics_origin = origin
        log.info("Mean RGB (%s) and colour-shift PCA from %s",
                 ", ".join(f"{v:.1f}" for v in statistics.mean), origin)
        return statistics

    def _build(self, scope, info, train):
        c = self.config
        keras.utils.set_random_seed(c.seed)  # here: loading data may have drawn random numbers
        with scope:
            model, augmentation, compile_arguments = self.task.build(c, info, self.statistics)
            self.task.initialize_on_data(c, model, train)
            self.augmentation = augmentation
            trainer = with_training_augmentation(model, augmentation)
            apply_weight_decay(model, c.weight_decay)
            trainer.compile(optimizer=make_optimizer(c.optimizer, c.lr, c.momentum, c.accumulate),
                            jit_compile=bool(c.jit), **compile_arguments)
        return model, trainer

    def _fit(self, model, trainer, train, val, info, replicas):
        c = self.config
        steps = c.steps_per_epoch or max(1, info.num_examples // c.batch_size)
        # Keras keeps one validation iterator across epochs when validation_steps is given: an
        # endless stream of exactly one pass per epoch sees every validation image once an epoch.
        val_steps = -(-vdata.info(val).num_examples // c.eval_batch_size)
        log.info("%d training images, %d classes, %d steps of %d per epoch%s, %d replica(s); "
                 "run directory %s", info.num_examples, info.num_classes, steps, c.batch_size,
                 f" x {c.accumulate} accumulated" if c.accumulate > 1 else "", replicas,
                 self.run_dir)
        started = time.time()
        shard = self.processes.shard
        # One service job for the processes of this run; a new one when the run resumes.
        job = cluster.share(f"vgg_keras-{secrets.token_hex(8)}", self.processes)
        feed = dict(shard=shard, service=c.data_service, service_job=job)
        # TensorBoard's pictures run the model and the augmentation on one process, which a
        # program spread over several cannot: single-process runs only.
        if self.processes.count == 1:
            callbacks = [self._pictures(model, train, val, steps)]
        else:
            self.watchdog = cluster.PeerWatchdog(self.processes, c.peer_timeout)
            callbacks = [self.watchdog]
        service_watchdog = None
        if c.data_service:
            # The steps wait on the service's workers, from the very first one.
            service_watchdog = cluster.StallWatchdog(
                c.data_service_timeout, lambda epoch, cause: data_service.stalled_message(
                    c.data_service, epoch, cause), from_start=True)
            callbacks.append(service_watchdog)
        try:
            state = fit_resumable(
                trainer, lambda start: self.task.train_batches(c, train, start, steps, **feed),
                epochs=c.epochs, steps_per_epoch=steps, run_dir=self.run_dir,
                validation_data=vdata.shard_batches(self.task.val_batches(c, val),
                                                    shard).repeat(),
                validation_steps=val_steps, monitor=self.task.monitor[0],
                mode=self.task.monitor[1], patience=c.lr_patience, max_drops=c.lr_drops,
                target_model=model, hold_below=self.task.hold_below(info),
                verbose=fit_verbosity(c), callbacks=callbacks, processes=self.processes)
        except Exception as error:
            if self.processes.count > 1 and cluster.is_lost_peer(error):
                raise cluster.PeerLostError(cluster.lost_peer_message(
                    self.processes, self.watchdog.epoch,
                    f"a collective failed ({str(error).splitlines()[0][:200]})")) from error
            raise
        finally:
            if service_watchdog is not None:
                service_watchdog.stop()
        return state, time.time() - started

    def _pictures(self, model, train, val, steps):
        """TensorBoard's pictures: the first training crops of the run and one validation
        batch (a localizer's boxes)."""
        crops = next(iter(self.task.train_batches(self.config, train, 0, steps).take(1)))[0]
        # The pictures draw the validation crops themselves: made on the host.
        val_batch = next(iter(self.task.val_batches(self.config.replace(resample_on="host"),
                                                    val).take(1)))
        return EpochPictures(self.run_dir / "logs", crops, augmentation=self.augmentation,
                             **self.task.picture_options(model, val_batch))

    def _save(self, model, state):
        """Keep the best validation epoch's weights; write ``model.keras`` and the SavedModel
        (process 0)."""
        # Every process loads and saves (collectives gather the weights); process 0 keeps it.
        # The file is the one the training state names, the same on every process.
        best = state.get("best_weights") and self.run_dir / "checkpoints" / state["best_weights"]
        if best and best.exists():
            model.load_weights(best)
        for layer in model.layers:
            layer.trainable = True  # the saved model is a plain network, whatever was frozen
        if not self.processes.is_chief:
            with tempfile.TemporaryDirectory() as scratch:
                model.save(Path(scratch) / "discarded.keras")
            return
        model.save(self.run_dir / "model.keras")
        if self.config.export and keras.backend.backend() == "tensorflow":
            # The serving SavedModel: image files in, top-5 (and boxes) out (vgg_keras.export).
            export(model, self.run_dir / "saved_model", test_scale=test_scale(self.config.scale),
                   **self.task.saved_model_options(self.config, model))

    def _evaluation_model(self, model):
        """The model to evaluate: ``model`` itself, or with several processes each process's
        own copy of the saved model (dense evaluation takes one image at a time, which one
        data-parallel program over every process cannot), every process evaluating alike and
        process 0 writing."""
        if self.processes.count == 1:
            return model
        cluster.barrier("model.keras written", self.processes)
        self.watchdog.stop()  # the last collective: each process evaluates on its own now
        keras.distribution.set_distribution(None)
        return keras.saving.load_model(self.run_dir / "model.keras")

    def _summarize(self, model, state, seconds, splits, info):
        c = self.config
        best = state.get("best_epoch")
        summary = {
            "model": str(self.run_dir / "model.keras"), "arch": arch_of(model),
            "scale": c.scale, "test_scale": test_scale(c.scale), "epochs": state["epoch"],
            # Every epoch's training, whichever invocation ran it; this invocation's in full.
            "best_epoch": best, "seconds": round(state.get("seconds", seconds), 1),
            "seconds_this_invocation": round(seconds, 1),
            "train_images": info.num_examples, "classes": info.num_classes,
            # Which examples gave which number: the schedule and the kept weights were chosen
            # on "selection"; every error below is measured on "report".
            "splits": splits.describe(),
            "statistics": {"from": self.statistics_origin, "mean": self.statistics.mean},
            "kept_weights": (f"best epoch by {self.task.monitor[0]} on the selection split"
                             if best is not None else "last epoch"),
            **self.task.evaluate(c, model, splits.report, info),
        }
        if not self.processes.is_chief:
            return summary
        (self.run_dir / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, default=str))
        write_text(self.run_dir / "logs", "evaluation", self.task.table(summary))
        log.info("Summary in %s", self.run_dir / SUMMARY_FILE)
        if c.report:
            self._report()
        return summary

    def _report(self):
        """``report.html``: the run's pictures. A failure to draw one is logged, never the end of
        a finished run."""
        try:
            log.info("Report in %s", write_report(self.run_dir))
        except Exception as error:  # the run's results are written; the page is a view of them
            log.warning("Could not write %s: %s: %s", self.run_dir / "report.html",
                        type(error).__name__, error)
