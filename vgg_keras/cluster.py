"""Several training processes as one job, on JAX's distributed runtime.

Keras 3's multi-host route is the JAX backend: JAX's distributed runtime (started as
:func:`keras.distribution.initialize` starts it) and a ``DataParallel`` distribution over
``keras.distribution.list_devices()`` then spans every process. :func:`start` does that from
the flags or, as for any Keras program, from the environment alone::

    # on every host (or twice on one machine), the same command but for the index
    KERAS_BACKEND=jax KERAS_DISTRIBUTION_JOB_ADDRESSES=host0:1234 \\
    KERAS_DISTRIBUTION_NUM_PROCESSES=2 KERAS_DISTRIBUTION_PROCESS_ID=0 python train_cls.py ...

On CPU the processes talk through gloo, which :func:`start` selects. Each process reads its own
share of every global batch (:func:`vgg_keras.data.train_pipeline`'s ``shard``), only process 0
writes to the run directory, and every process resumes from its checkpoint.

>>> processes = start()            # no flags, no environment: one process
>>> processes.index, processes.count, processes.is_chief
(0, 1, True)
>>> broadcast([1.0, 2.0], processes)
array([1., 2.])
>>> share({"mean": [124.5, 125.8, 125.4]}, processes)     # process 0's, on every process
{'mean': [124.5, 125.8, 125.4]}
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

log = logging.getLogger(__name__)

ADDRESS_ENV = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
COUNT_ENV = "KERAS_DISTRIBUTION_NUM_PROCESSES"
INDEX_ENV = "KERAS_DISTRIBUTION_PROCESS_ID"

HEARTBEAT_TIMEOUT = 900.0
"""Seconds JAX's distributed service waits for a silent process before it aborts every other
process with a C++ stack dump (JAX's default: 100). Longer than the peer timeout, so that a job
that lost a process ends with the package's message first: the survivors' next collective
fails at once (:func:`is_lost_peer`), or :class:`PeerWatchdog` fires."""

START_TIMEOUT = 240.0
"""Seconds a process waits for the others to join before it ends with a message (under JAX's
own 300, after which it aborts with a C++ stack dump)."""


class ClusterError(ValueError):
    """A multi-process job that cannot start as asked (a bad flag, or the wrong backend)."""


class PeerLostError(RuntimeError):
    """Another process of the job stopped; this one cannot go on alone."""


def lost_peer_message(processes: Processes, epoch: int | None, cause: str) -> str:
    """What a process says when another process of its job has stopped (``epoch``: the last
    finished one, where known)."""
    return (f"Process {processes.index} of {processes.count}: {cause}, so another process of "
            "the job has stopped (killed, crashed or its machine lost). Ending this one. Run the "
            "same commands again on every process to resume from the last checkpoint"
            + ("." if epoch is None else f" (the last finished epoch was {epoch})."))


def is_lost_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective that failed because a peer went away."""
    # JAX raises it as a JaxRuntimeError, which Keras's fit may hand on as a ValueError.
    return multi_process() and any(
        words in str(error) for words in ("Gloo", "Connection reset", "coordination service"))


@dataclasses.dataclass(frozen=True)
class Processes:
    """This process's place in the job: ``index`` of ``count``."""

    index: int = 0
    count: int = 1

    @property
    def is_chief(self) -> bool:
        """Process 0, the one that writes checkpoints, logs, exports and the report."""
        return self.index == 0

    @property
    def shard(self) -> tuple[int, int]:
        """``(index, count)``, as the pipelines take it."""
        return self.index, self.count


_started: Processes | None = None


def _setting(value, variable, parse):
    if value is not None:
        return value
    text = os.environ.get(variable, "").strip()
    if not text:
        return None
    try:
        return parse(text)
    except ValueError:
        raise ClusterError(f"{variable}={text!r} is not a valid value.") from None


JAX_ABORT = b"Terminating process because the JAX distributed service detected fatal errors"
"""The line JAX writes to stderr before it aborts a process whose job lost its coordinator."""


def place(num_processes: int | None = None, process_id: int | None = None) -> Processes:
    """This process's place in the job, from the flags or else the environment, without
    joining it (:func:`start` joins)."""
    count = _setting(num_processes, COUNT_ENV, int) or 1
    index = _setting(process_id, INDEX_ENV, int) or 0
    if count < 1 or not 0 <= index < count:
        raise ClusterError(f"Process index {index} is not in 0..{count - 1} "
                           f"(--process-id, --num-processes).")
    return Processes(index, count)


def start(coordinator: str | None = None, num_processes: int | None = None,
          process_id: int | None = None, *, command: str = "train_cls.py",
          start_timeout: float = START_TIMEOUT,
          heartbeat_timeout: float = HEARTBEAT_TIMEOUT) -> Processes:
    """Join the job: with more than one process, start JAX's distributed runtime as
    :func:`keras.distribution.initialize` does (once per interpreter), with JAX's heartbeat
    timeout set to ``heartbeat_timeout``, and return this process's place. Unset arguments
    come from ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and
    ``KERAS_DISTRIBUTION_PROCESS_ID``.

    Must run before any JAX computation. Other backends refuse several processes with the
    command that works (``command`` names the script in that message). A process whose peers
    have not all joined within ``start_timeout`` seconds ends with a message (exit status 3);
    a second process 0 on the coordinator's machine is refused at once.
    """
    global _started
    coordinator = _setting(coordinator, ADDRESS_ENV, str)
    index, count = place(num_processes, process_id).shard
    if count == 1:
        return Processes()
    backend = keras.backend.backend()
    if backend != "jax":
        raise ClusterError(
            f"Training with {count} processes needs the JAX backend, Keras 3's multi-host route "
            f"(the {backend} backend cannot: Keras 3's fit fails under TensorFlow's "
            "MultiWorkerMirroredStrategy, keras-team/keras#20585). Run on every process:\n"
            f"  KERAS_BACKEND=jax python {command} --coordinator {coordinator or 'HOST0:PORT'} "
            f"--num-processes {count} --process-id {index} ...")
    if not coordinator:
        raise ClusterError(f"{count} processes need the coordinator's address: --coordinator "
                           f"HOST:PORT (process 0's host) or {ADDRESS_ENV}.")
    wanted = Processes(index, count)
    if _started is not None:
        if _started != wanted:
            raise ClusterError(f"This interpreter already joined a job as {_started}.")
        return _started
    import jax

    address = coordinator.split(",")[0]   # Keras also takes every process's address, 0 first
    if index == 0:
        _check_coordinator_port(address, count)
    # CPU processes need a collectives implementation to talk to each other; GPUs use NCCL
    # whatever this says.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    joined = threading.Event()
    threading.Thread(target=_bound_start, args=(joined, wanted, coordinator, start_timeout),
                     name="vgg_keras-start-watchdog", daemon=True).start()
    # keras.distribution.initialize(coordinator, count, index), which cannot pass the
    # heartbeat timeout: a process that died before the first step would end the others
    # through JAX's abort after 100 s, before the package's own message.
    jax.distributed.initialize(address, count, index,
                               heartbeat_timeout_seconds=int(heartbeat_timeout))
    joined.set()
    _started = Processes(jax.process_index(), jax.process_count())
    # Then, as Keras does, one random seed for every process (the same draw on each from a
    # seed already set).
    keras.utils.set_random_seed(int(broadcast(
        keras.ops.convert_to_numpy(keras.random.randint((), 0, 2 ** 31 - 1)), _started)))
    log.info("Process %d of %d; coordinator %s; %d devices in all.", _started.index,
             _started.count, coordinator, len(keras.distribution.list_devices()))
    return _started


def _check_coordinator_port(coordinator, count):
    """Process 0 serves the coordinator: a port already taken on this machine is a second
    process 0 (or another job), which JAX would answer by aborting both."""
    import socket

    host, _, port = coordinator.rpartition(":")
    try:
        local = socket.gethostbyname(host or "localhost")
        with socket.socket() as probe:
            probe.bind((local, int(port)))
    except OSError as error:
        if getattr(error, "errno", None) == errno.EADDRINUSE:
            raise ClusterError(
                f"Process 0 serves the coordinator at {coordinator}, but that port is taken on "
                "this machine: another process was started as process 0 (each of the "
                f"{count} processes needs its own --process-id, 0 to {count - 1}), or another "
                "job uses the port (choose another with --coordinator).") from None
    except ValueError:
        raise ClusterError(f"--coordinator {coordinator!r} is not HOST:PORT.") from None


def _bound_start(joined, wanted, coordinator, timeout):
    if joined.wait(timeout):
        return
    print(f"Process {wanted.index} of {wanted.count}: the job did not start within "
          f"{timeout:g} s: not every process joined at {coordinator}. Start all "
          f"{wanted.count} processes with the same --coordinator and --num-processes, each "
          f"with its own --process-id (0 to {wanted.count - 1}), then run the same commands "
          "again.", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(3)


def multi_process() -> bool:
    """Whether this interpreter joined a job of several processes."""
    return _started is not None and _started.count > 1


def leave_after_error(code: int, *, at_once: bool = False) -> None:
    """End a process of a multi-process job that failed, at once: a normal exit would wait
    (minutes) at JAX's shutdown barrier for processes that are waiting for this one; process 0
    going away ends the others through JAX's distributed service. ``at_once``: any failed
    process, whose normal exit would crash (a half-written HDF5 file)."""
    if code and (at_once or multi_process()):
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)


def broadcast(values: ArrayLike, processes: Processes) -> np.ndarray:
    """Process 0's ``values`` (an array of numbers), on every process."""
    values = np.asarray(values)
    if processes.count == 1:
        return values
    from jax.experimental import multihost_utils

    return np.asarray(_collective(processes, multihost_utils.broadcast_one_to_all, values))


def share(value: Any, processes: Processes) -> Any:
    """Process 0's ``value`` (anything JSON can hold), the very same on every process."""
    if processes.count == 1:
        return value
    data = np.frombuffer(json.dumps(value).encode(), np.uint8) if processes.is_chief else b""
    length = int(broadcast(np.int32(len(data)), processes))
    buffer = np.zeros(length, np.int32)
    if processes.is_chief:
        buffer[:] = data
    return json.loads(bytes(broadcast(buffer, processes).astype(np.uint8)))


def barrier(name: str, processes: Processes) -> None:
    """Wait until every process has reached ``name`` (e.g. until process 0 wrote a file)."""
    if processes.count > 1:
        from jax.experimental import multihost_utils

        _collective(processes, multihost_utils.sync_global_devices, name)


def _collective(processes, function, *args):
    """``function(*args)``, a collective; one that failed because a process of the job went
    away raises :class:`PeerLostError` with the package's message."""
    try:
        return function(*args)
    except Exception as error:
        if not is_lost_peer(error):
            raise
        raise PeerLostError(lost_peer_message(
            processes, None, f"a collective failed ({str(error).splitlines()[0][:200]})")) \
            from error


class StallWatchdog(keras.callbacks.Callback):
    """Ends this process with a message (exit status 3) when no training or validation step
    has finished for ``timeout`` seconds: something the steps wait on outside the process
    (another process of the job, a tf.data service) has stopped, and would be waited for
    forever. ``message(epoch, cause)`` says what happened and what to do.

    Armed at the first finished step (compiling does not count), or at the start of training
    with ``from_start`` (when the first step itself waits on the outside). :meth:`stop`
    disarms it. A thread watches the time, so that it runs while the main thread waits.
    """

    def __init__(self, timeout: float, message: Callable[[int, str], str], *,
                 from_start: bool = False) -> None:
        super().__init__()
        self.timeout = float(timeout)
        self.message = message
        self.from_start = from_start
        self.last_step = None
        self.epoch = 0
        self.done = threading.Event()

    def _progress(self, *args, **kwargs):
        self.last_step = time.monotonic()

    on_train_batch_end = on_test_batch_end = _progress

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self.epoch = epoch + 1
        self._progress()

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self.from_start:
            self._progress()
        threading.Thread(target=self._watch, name="vgg_keras-watchdog", daemon=True).start()

    def stop(self) -> None:
        self.done.set()

    def _watch(self):
        while not self.done.wait(min(5.0, self.timeout / 4)):
            if self.last_step is not None and time.monotonic() - self.last_step > self.timeout:
                cause = f"no training step finished for {self.timeout:g} s"
                print(self.message(self.epoch, cause), file=sys.stderr, flush=True)
                logging.shutdown()
                os._exit(3)


def PeerWatchdog(processes: Processes, timeout: float) -> StallWatchdog:  # noqa: N802
    """The :class:`StallWatchdog` of a multi-process job: a process of it has stopped."""
    return StallWatchdog(timeout, lambda epoch, cause: lost_peer_message(processes, epoch, cause))
