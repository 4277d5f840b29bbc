"""The training machinery both scripts share: run directory, resume, schedule, distribution.

A run directory holds everything a run produces and everything it needs to continue:

    run_dir/
      checkpoints/state.json        epoch, schedule state, history, and the names of the two
                                    weight files below (written last, atomically: it is the
                                    checkpoint, and a kill at any moment leaves a whole one)
      checkpoints/last-eNNNN.weights.h5   model + optimizer after the last finished epoch NNNN
      checkpoints/best-eNNNN.weights.h5   the epoch with the best monitored validation metric
      history.csv, history.png      per-epoch metrics and their plot
      logs/                         TensorBoard
      model.keras, saved_model/     the final model (best epoch), for Keras and for serving
      summary.json                  the evaluation of the final model

Starting the same command again on a run directory continues after the last finished epoch; the
data of every epoch is a function of (seed, epoch), so a resumed run ends with the same weights
as one that was never interrupted.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from . import _keras_compat as compat
from .augment import takes_windows, window_inputs
from .cluster import Processes, barrier, broadcast
from .rundir import (
    HISTORY_FILE, STATE_PATH, TrainingDiverged, UnfinishedWrite, check_state_kept,
    checkpoint_files, damaged_checkpoint,
)

if TYPE_CHECKING:
    from ._typing import PathLike

log = logging.getLogger(__name__)

STATE_FILE = STATE_PATH.name


def checkpoint_weights(run_dir: PathLike, which: str = "last") -> Path | None:
    """The weights file of ``run_dir``'s checkpoint: ``"last"`` (the last finished epoch) or
    ``"best"`` (the best validation epoch); None when there is none.

    >>> import tempfile
    >>> checkpoint_weights(tempfile.mkdtemp()) is None          # no finished epoch yet
    True
    >>> model.load_weights(checkpoint_weights("runs/cls-a-s256", "best"))   # doctest: +SKIP
    """
    checkpoints = Path(run_dir) / "checkpoints"
    state_path = checkpoints / STATE_FILE
    if not state_path.exists():
        return None
    name = json.loads(state_path.read_text()).get(f"{which}_weights")
    path = checkpoints / name if name else None
    return path if path and path.exists() else None


def apply_weight_decay(model: keras.Model, weight_decay: float) -> None:
    """Caffe's weight decay: ``weight_decay * w`` added to each kernel's gradient.

    That is a loss term ``0.5 * weight_decay * ||w||^2`` on the kernels (Caffe's VGG prototxts
    do not decay biases). Keras's ``SGD(weight_decay=...)`` is decoupled from momentum, which
    would make the decay ten times weaker than the paper's at momentum 0.9.
    """
    if not weight_decay:
        return
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is not None and kernel.trainable:
            kernel.regularizer = keras.regularizers.L2(0.5 * weight_decay)


def set_precision(precision: str) -> None:
    """Set Keras's global dtype policy: float32, mixed_float16 or mixed_bfloat16."""
    keras.mixed_precision.set_global_policy(precision)


def distribution_scope(
        mode: str = "auto", processes: Processes = Processes(), command: str = "train_cls.py",
) -> tuple[contextlib.AbstractContextManager, int]:
    """A context in which to build and compile for data-parallel training, and the number of
    replicas.

    ``auto`` uses, with the TensorFlow backend, ``MirroredStrategy`` when more than one GPU is
    visible; with JAX, ``keras.distribution.DataParallel`` over every device of every process
    (``processes``, from :func:`vgg_keras.cluster.start`: each process then feeds its own share
    of each batch, whatever ``mode`` says); otherwise nothing. ``mirrored``/``none`` force a
    choice on one process. Several machines are the JAX backend's (``--num-processes``):
    TensorFlow's ``MultiWorkerMirroredStrategy`` (``multiworker``, or ``TF_CONFIG`` with
    several workers) is refused with the command to use (``command``, the script).
    """
    backend = keras.backend.backend()
    if mode == "none" and processes.count == 1:
        return contextlib.nullcontext(), 1
    if backend == "tensorflow":
        import tensorflow as tf

        tf_cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
        workers = len(tf_cluster.get("worker", []))
        if mode == "multiworker" or (mode == "auto" and workers > 1):
            # Fail before any work: Keras 3's fit feeds PerReplica values it cannot convert
            # under this strategy (keras-team/keras#20585, open; seen with Keras 3.15.1 and
            # TensorFlow 2.21 on two processes over loopback).
            raise NotImplementedError(
                "Multi-worker training on TensorFlow (TF_CONFIG with several workers) is "
                "blocked by Keras 3.15's model.fit under MultiWorkerMirroredStrategy "
                "(keras-team/keras#20585). Use the JAX backend, Keras 3's multi-host route; on "
                f"each of N hosts, with i its index:\n  KERAS_BACKEND=jax python {command} "
                "--coordinator HOST0:PORT --num-processes N --process-id i ...")
        elif mode == "mirrored" or (
                mode == "auto" and len(tf.config.list_logical_devices("GPU")) > 1):
            devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
            strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        else:
            return contextlib.nullcontext(), 1
        log.info("Training with %s over %d replicas.", type(strategy).__name__,
                 strategy.num_replicas_in_sync)
        return strategy.scope(), strategy.num_replicas_in_sync
    if backend == "jax":
        devices = keras.distribution.list_devices()
        if processes.count > 1 or (mode in ("mirrored", "auto") and len(devices) > 1):
            _refuse_starved_cpu_devices()
            distribution = keras.distribution.DataParallel(devices=devices)
            # Each process's pipeline already reads only its share of every global batch.
            distribution.auto_shard_dataset = processes.count == 1
            keras.distribution.set_distribution(distribution)
            log.info("Training with keras.distribution.DataParallel over %d devices of %d "
                     "process(es).", len(devices), processes.count)
            return contextlib.nullcontext(), len(devices)
    if mode in ("mirrored", "multiworker"):
        raise ValueError(f"--distribute {mode} needs the TensorFlow backend (or JAX for mirrored).")
    return contextlib.nullcontext(), 1


def _refuse_starved_cpu_devices() -> None:
    """Refuse, before any step, several JAX CPU devices in one process with too few threads.

    XLA's CPU client runs each device's part of every step on one shared pool of ``NPROC`` (or
    as many as there are usable cores) threads, and a part waiting in the gradients' all-reduce
    holds its thread. With fewer than two threads per device, chained steps deadlock: measured
    with JAX 0.10.2 on 2 cores, 2 forced devices hung within 1,000 dependent steps with
    ``NPROC`` 2 or 3 and never with 4; 4 devices needed 8 (it once hung a CI run mid-epoch).
    """
    import jax

    local = [device for device in jax.local_devices() if device.platform == "cpu"]
    cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
             else os.cpu_count() or 1)
    threads = int(os.environ.get("NPROC") or cores)
    if len(local) > 1 and threads < 2 * len(local):
        raise ValueError(
            f"{len(local)} JAX CPU devices in this process (--xla_force_host_platform_device_"
            f"count) share {threads} XLA threads; their all-reduces deadlock with fewer than two "
            f"threads per device. Start the command with NPROC={2 * len(local)} in the "
            "environment (XLA's CPU thread count), force fewer devices, or use --distribute "
            "none.")


def has_accelerator() -> bool:
    """Whether Keras's backend computes on a GPU or TPU rather than the CPU."""
    if keras.backend.backend() == "torch":  # Keras offers no device list for torch
        import torch

        return torch.cuda.is_available()
    return any(not device.lower().startswith("cpu")
               for device in keras.distribution.list_devices())


def resample_where(choice: str) -> str:
    """Where ``--resample-on`` resamples the crops: ``auto`` is the device when there is an
    accelerator, whose training step takes the resampling off the host; on a CPU alone the
    training step would run on the same cores that the host pipeline overlaps it with, and
    the host path compiles less."""
    if choice != "auto":
        return choice
    return "device" if has_accelerator() else "host"


@contextlib.contextmanager
def _writing(path, tmp, *, hdf5=False):
    """Write ``tmp``, then ``os.replace`` it to ``path``; a failed write (a full disk) removes
    ``tmp``, leaves ``path`` as it was and says so, naming the file. An ``hdf5`` write that
    failed midway raises :class:`UnfinishedWrite`."""
    hooks = sys.unraisablehook, sys.excepthook
    if hdf5:
        # h5py reports each object of a file it could not finish as it is freed (a traceback
        # and an "Exception ignored"), a page of C details before the message that says it in
        # a line; the process ends right after.
        sys.unraisablehook = lambda unraisable: (
            None if "h5py" in str(unraisable.object) else hooks[0](unraisable))
        sys.excepthook = lambda kind, value, trace: (
            None if "h5py" in "".join(traceback.format_tb(trace)) else hooks[1](kind, value, trace))
    unfinished = False
    try:
        yield
        os.replace(tmp, path)
    except OSError as error:
        # h5py's message is a page of C details; the errno says it in three words.
        number = error.errno
        reason = os.strerror(number) if number else str(error)
        if isinstance(error, _NoRoom):
            reason += f" ({error.strerror})"
        with contextlib.suppress(OSError):
            os.remove(tmp)
        unfinished = hdf5 and not isinstance(error, _NoRoom)
        raise (UnfinishedWrite if unfinished else OSError)(
            number, f"Cannot write {path}: {reason}. Any earlier checkpoint is intact: make "
                    "room and run the same command to resume from it") from None
    finally:
        if not unfinished:   # the hooks stay only for a process that is about to end
            sys.unraisablehook, sys.excepthook = hooks


def _atomic_write_text(path, text):
    tmp = f"{path}.tmp"
    with _writing(path, tmp), open(tmp, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _atomic_save_weights(model, path, writer=True):
    """``model.save_weights(path)``, atomically. ``writer=False`` (every process of a
    multi-process job but the first) saves to a file it deletes: saving gathers the weights
    through collectives, so every process must take part, and only one keeps the file."""
    if not writer:
        with tempfile.TemporaryDirectory() as scratch:
            model.save_weights(os.path.join(scratch, "discarded.weights.h5"))
        return
    tmp = str(path).replace(".weights.h5", ".tmp.weights.h5")
    with _writing(path, tmp, hdf5=True):
        _check_room(model, tmp)
        model.save_weights(tmp)


class _NoRoom(OSError):
    """The disk has too little room for a save (its ``strerror`` says how much)."""


def _check_room(model, path):
    """Refuse, as a full disk would, a save that cannot fit: h5py failing mid-write leaves
    objects whose cleanup crashes the interpreter at exit (a segmentation fault)."""
    variables = list(model.variables)
    if getattr(model, "optimizer", None) is not None and model.optimizer.built:
        variables += list(model.optimizer.variables)
    needed = sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables)
    needed = int(needed * 1.05) + (1 << 20)   # HDF5's own structures
    free = shutil.disk_usage(os.path.dirname(os.path.abspath(path))).free
    if free < needed:
        raise _NoRoom(errno.ENOSPC, f"{free / 1e6:.1f} MB free, the weights need about "
                                    f"{needed / 1e6:.1f} MB")


def seed_generators(model: keras.layers.Layer) -> list[keras.random.SeedGenerator]:
    """Every ``SeedGenerator`` of ``model`` (dropout, augmentation), in a stable order.

    ``save_weights`` leaves their state out, so a resumed run restores it from the state file
    and draws the same dropout masks and augmentations as a run never interrupted.
    """
    found, seen = [], set()

    def visit(layer):
        for generator in compat.seed_generators(layer):
            if id(generator) not in seen:
                seen.add(id(generator))
                found.append(generator)
        for child in compat.sublayers(layer):
            visit(child)

    visit(model)
    return found


def with_training_augmentation(model: keras.Model, augmentation: keras.Sequential) -> keras.Model:
    """``model`` behind the batched augmentation layers, for ``fit``; ``model`` itself stays the
    bare network that is saved and exported (it shares its weights with the result).

    The photometric augmentation thus runs inside the training step, on the accelerator; for
    an ``augmentation`` that starts with ``WindowCrop`` (``train_pipeline(placement=
    Placement(resample="device"))``), so does the resampling of the crops, and the result takes
    the windows' dict.
    """
    if not augmentation.layers:
        return model
    if takes_windows(augmentation):  # the pipeline hands over windows, the trainer crops them
        inputs = window_inputs(augmentation.input["windows"].shape[1])
    else:
        inputs = keras.Input(model.input_shape[1:], name="image")
    return keras.Model(inputs, model(augmentation(inputs)), name=f"{model.name}_trainer")


class ResumableTraining(keras.callbacks.Callback):
    """Checkpoints, step-down learning-rate schedule, history and NaN guard in one callback.

    After each epoch: divide the learning rate by ``factor`` when ``monitor`` has not improved
    for ``patience`` epochs (at most ``max_drops`` times: the paper's schedule), write the
    history, save ``last`` (and ``best``) weights with the optimizer state, then the state
    file, each atomically, so a kill at any moment leaves a consistent checkpoint.
    """

    def __init__(self, run_dir: PathLike, *, monitor: str = "val_accuracy", mode: str = "max",
                 patience: int = 2, factor: float = 0.1, max_drops: int = 3,
                 target_model: keras.Model | None = None,
                 hold_below: float | None = None,
                 processes: Processes = Processes()) -> None:
        super().__init__()
        self.processes = processes
        self.writer = processes.is_chief  # the other processes of a job write nothing
        self.run_dir = Path(run_dir)
        self.checkpoint_dir = self.run_dir / "checkpoints"
        self.monitor = monitor
        self.mode = mode
        self.patience = patience
        self.factor = factor
        self.max_drops = max_drops
        self.target_model = target_model
        self.hold_below = hold_below
        self.state: dict[str, Any] = {"epoch": 0, "best": None, "best_epoch": None, "wait": 0,
                                      "drops": 0, "history": []}
        self.diverged_at: tuple[int, int] | None = None

    # -- state --------------------------------------------------------------------------------
    def restore(self, training_model: keras.Model, processes: Processes = Processes()) -> int:
        """Load the last checkpoint into ``training_model``; return the epoch to start at.

        With several ``processes``, each reads the checkpoint (the run directory must be on a
        filesystem they share), after checking that they all find the same epoch."""
        state = self._read_state()
        found = state["epoch"] if state else 0
        chief_found = int(broadcast(found, processes))
        if chief_found != found:
            raise RuntimeError(
                f"Process {processes.index} finds epoch {found} checkpointed in {self.run_dir}, "
                f"process 0 finds epoch {chief_found}: every process must see the same run "
                "directory (a filesystem they share, the same --run-dir).")
        if state is None:
            return 0
        self.state = state
        if training_model.optimizer is not None and not training_model.optimizer.built:
            training_model.optimizer.build(training_model.trainable_variables)
        weights = self.checkpoint_dir / self.state["last_weights"]
        try:
            training_model.load_weights(weights)
        except Exception as error:  # h5py and Keras raise many kinds for a damaged file
            raise self._damaged(weights, f"{type(error).__name__}: {error}") from error
        for generator, value in zip(seed_generators(training_model), self.state["seed_states"]):
            generator.state.assign(np.asarray(value, dtype=generator.state.dtype))
        log.info("Resuming %s after epoch %d (learning rate %.3g).", self.run_dir,
                 self.state["epoch"],
                 float(keras.ops.convert_to_numpy(training_model.optimizer.learning_rate)))
        return self.state["epoch"]

    def _read_state(self):
        """The checkpoint's state, None when no epoch has finished; a damaged or incomplete
        checkpoint is a :class:`RunDirectoryError` naming the file."""
        state_path = self.checkpoint_dir / STATE_FILE
        if not state_path.exists():
            check_state_kept(self.run_dir)
            return None
        try:
            state = json.loads(state_path.read_text())
        except (OSError, ValueError) as error:
            raise self._damaged(state_path, str(error)) from error
        missing = [k for k in ("epoch", "history", "seed_states", "last_weights")
                   if not isinstance(state, dict) or k not in state]
        if missing:
            raise self._damaged(state_path, f"it lacks {', '.join(missing)}")
        if not (self.checkpoint_dir / state["last_weights"]).is_file():
            raise self._damaged(self.checkpoint_dir / state["last_weights"],
                                f"missing, though {STATE_FILE} names it")
        return state

    def _damaged(self, path, reason):
        return damaged_checkpoint(self.run_dir, path, reason)

    def _improved(self, value):
        best = self.state["best"]
        if best is None:
            return True
        return value > best if self.mode == "max" else value < best

    # -- callback hooks -----------------------------------------------------------------------
    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch_started = time.time()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.diverged_at = (self.state["epoch"] + 1, batch + 1)
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.diverged_at is not None:
            return  # keep the last good checkpoint untouched
        logs = dict(logs or {})
        optimizer = self.model.optimizer
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        value = logs.get(self.monitor)
        weights_model = self.target_model or self.model
        if self.writer:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        if value is not None and self._improved(value):
            self.state.update(best=float(value), best_epoch=epoch + 1, wait=0,
                              best_weights=f"best-e{epoch + 1:04d}.weights.h5")
            _atomic_save_weights(weights_model, self.checkpoint_dir / self.state["best_weights"],
                                 self.writer)
        elif value is not None and self.hold_below is not None and value < self.hold_below:
            # Plain VGG sits at chance for several epochs before it learns; lowering the rate
            # there would freeze it at chance, so the schedule waits until it has left.
            self.state["wait"] = 0
        elif value is not None:
            self.state["wait"] += 1
            if self.state["wait"] >= self.patience and self.state["drops"] < self.max_drops:
                new_lr = logs["learning_rate"] * self.factor
                optimizer.learning_rate.assign(new_lr)
                self.state["drops"] += 1
                self.state["wait"] = 0
                log.info("Epoch %d: %s stopped improving; learning rate divided by %g to %.3g "
                         "(drop %d of %d).", epoch + 1, self.monitor, 1 / self.factor, new_lr,
                         self.state["drops"], self.max_drops)
        self.state["epoch"] = epoch + 1
        # Training time of every epoch so far, across the invocations of a resumed run.
        self.state["seconds"] = self.state.get("seconds", 0.0) + time.time() - getattr(
            self, "_epoch_started", time.time())
        self.state["seed_states"] = [
            [int(v) for v in keras.ops.convert_to_numpy(generator.state.value)]
            for generator in seed_generators(self.model)
        ]
        self.state["history"].append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        self.state["last_weights"] = f"last-e{epoch + 1:04d}.weights.h5"
        if not self.writer:
            # The other processes keep the same state and take part in saving the weights,
            # then wait until process 0 has written the checkpoint.
            _atomic_save_weights(self.model, self.checkpoint_dir / "unused", writer=False)
            barrier(f"epoch {epoch + 1} checkpointed", self.processes)
            return
        # New files under new names, then the state that names them: the checkpoint changes in
        # one atomic step, so weights and state always belong to the same epoch. The history
        # follows the checkpoint, never runs ahead of it.
        _atomic_save_weights(self.model, self.checkpoint_dir / self.state["last_weights"])
        _atomic_write_text(self.checkpoint_dir / STATE_FILE, json.dumps(self.state, indent=1))
        self._write_history()
        self._remove_unreferenced_weights()
        barrier(f"epoch {epoch + 1} checkpointed", self.processes)

    def _remove_unreferenced_weights(self):
        # Only the checkpoint's own files, by name: anything else in the folder is not ours.
        keep = {self.state.get("last_weights"), self.state.get("best_weights")}
        for path in checkpoint_files(self.run_dir):
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def _write_history(self):
        rows = self.state["history"]
        keys = sorted({k for row in rows for k in row if k != "epoch"})
        tmp = self.run_dir / f"{HISTORY_FILE}.tmp"
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", *keys])
            for row in rows:
                writer.writerow([row["epoch"], *[row.get(k, "") for k in keys]])
        os.replace(tmp, self.run_dir / HISTORY_FILE)


def plot_history(history: Sequence[dict[str, Any]], path: PathLike) -> None:
    """Loss, accuracy and learning rate per epoch (:func:`vgg_keras.figures.plot_curves`, as
    the run report draws them), as a PNG.

    >>> path = Path(tempfile.mkdtemp()) / "history.png"
    >>> plot_history([{"epoch": 1, "loss": 2.3, "val_loss": 2.2, "learning_rate": 0.01},
    ...               {"epoch": 2, "loss": 1.9, "val_loss": 2.0, "learning_rate": 0.01}], path)
    >>> path.read_bytes()[1:4]
    b'PNG'
    """
    from .figures import figure_png, plot_curves

    Path(path).write_bytes(figure_png(plot_curves(history), dpi=80, colors=None))


def fit_resumable(training_model: keras.Model, train_data: Callable[[int], Any], *,
                  epochs: int, steps_per_epoch: int, run_dir: PathLike,
                  validation_data: Any = None, validation_steps: int | None = None,
                  monitor: str = "val_accuracy", mode: str = "max", patience: int = 2,
                  max_drops: int = 3, target_model: keras.Model | None = None,
                  hold_below: float | None = None, verbose: str | int = "auto",
                  callbacks: Sequence[keras.callbacks.Callback] = (),
                  processes: Processes = Processes()) -> dict[str, Any]:
    """``training_model.fit`` that resumes from ``run_dir`` and stops cleanly on NaN.

    ``train_data(start_epoch)`` must return a dataset whose batches from position 0 are those of
    ``start_epoch`` onwards (``steps_per_epoch`` per epoch), each epoch a function of the seed
    and its number only. ``target_model`` is the model to keep as "best" (e.g. the network
    without its training-only augmentation wrapper); ``callbacks`` run after the checkpoint's.
    With several ``processes``, every process reads the checkpoint (the run directory must be
    on a filesystem they share) once they agree on its epoch, only the first writes, and each
    epoch ends when its checkpoint is written. Returns the callback's state.
    """
    run_dir = Path(run_dir)
    writer = processes.is_chief
    if writer:
        run_dir.mkdir(parents=True, exist_ok=True)
    keeper = ResumableTraining(run_dir, monitor=monitor, mode=mode, patience=patience,
                               max_drops=max_drops, target_model=target_model,
                               hold_below=hold_below, processes=processes)
    start = keeper.restore(training_model, processes)
    if start >= epochs:
        log.info("Run in %s already finished %d epochs", run_dir, start)
        return keeper.state
    if writer:
        callbacks = [keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
                     *callbacks]
    callbacks = [keeper, *callbacks]
    started = time.time()
    training_model.fit(
        train_data(start), epochs=epochs, initial_epoch=start, steps_per_epoch=steps_per_epoch,
        validation_data=validation_data, validation_steps=validation_steps, callbacks=callbacks,
        verbose=verbose, shuffle=False,  # the pipeline orders each epoch by (seed, epoch)
    )
    if keeper.diverged_at is not None:
        epoch, step = keeper.diverged_at
        kept = (f"The last good checkpoint (epoch {keeper.state['epoch']}) is kept in "
                f"{run_dir / 'checkpoints'}" if keeper.state["epoch"] else
                "No epoch finished, so nothing was saved")
        raise TrainingDiverged(
            f"The loss became NaN/Inf at epoch {epoch}, step {step}. {kept}; lower the learning "
            f"rate (--lr) or use float32 precision and run again."
        )
    keeper.state["train_seconds"] = time.time() - started
    if writer:
        plot_history(keeper.state["history"], run_dir / "history.png")
    return keeper.state
