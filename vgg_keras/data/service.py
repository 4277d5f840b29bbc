"""Decoding and augmentation on tf.data service workers: input that grows with CPU machines.

A tf.data service is one dispatcher and any number of workers, each a plain CPU process
(``tf.data.experimental.service``). The training process sends the pipeline's graph to the
dispatcher, the workers run it (read, decode the crop's window, rescale, crop, flip, colour) and
stream the examples back; the training host only batches them. Start them with this module::

    python -m vgg_keras.data.service dispatcher --port 5050            # one, anywhere
    python -m vgg_keras.data.service worker --dispatcher host:5050 --port 5051   # N of them
    python train_cls.py --data ~/data/imagenet --data-service host:5050 ...

The workers need TensorFlow and the files at the same paths as the training process (a shared
filesystem); they do not need this package's code, which travels as the graph.

>>> dispatcher, workers = start_local(workers=2)         # in-process, for tests and notebooks
>>> address = dispatcher.target                          # "grpc://localhost:..."
>>> for worker in workers: worker.stop()
>>> dispatcher.stop()
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import tensorflow as tf

log = logging.getLogger(__name__)


def _address(address: str) -> tuple[str, str]:
    """``(protocol, host:port)`` of a dispatcher address given as ``host:port`` or
    ``grpc://host:port``."""
    protocol, _, rest = address.rpartition("://")
    return protocol or "grpc", rest


CONNECT_TIMEOUT = 30.0
"""Seconds :func:`check_reachable` waits for the dispatcher to answer (one just started may
still be importing TensorFlow)."""


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """A ``ConnectionError`` naming ``address`` when no server accepts a connection there
    within ``timeout`` seconds (tf.data would wait for one without a word).

    >>> check_reachable("localhost:1", timeout=1)
    Traceback (most recent call last):
    ...
    ConnectionError: No tf.data service dispatcher answers at localhost:1 ...
    """
    target = _address(address)[1]
    host, _, port = target.rpartition(":")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host or "localhost", int(port)),
                                          timeout=max(0.1, deadline - time.monotonic())):
                return
        except (OSError, ValueError) as error:
            if isinstance(error, ConnectionRefusedError) and time.monotonic() < deadline - 0.5:
                time.sleep(0.5)   # not listening yet: a dispatcher that is starting
                continue
            reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
            raise ConnectionError(
                f"No tf.data service dispatcher answers at {target} ({reason}, within "
                f"{timeout:g} s). Start one there (python -m vgg_keras.data.service dispatcher "
                f"--port {port or 'PORT'}) and its workers, or check --data-service.") from None


WORKER_TIMEOUT = 60.0
"""Seconds without a heartbeat after which the dispatcher takes a worker for lost."""

HEARTBEAT_INTERVAL = 5.0
"""Seconds between a worker's heartbeats to the dispatcher (TensorFlow's default: 30)."""


def dispatcher_config(port: int, work_dir: str | None = None,
                      worker_timeout: float = WORKER_TIMEOUT,
                      ) -> tf.data.experimental.service.DispatcherConfig:
    """The dispatcher's config: a worker silent for ``worker_timeout`` seconds is lost.

    TensorFlow checks for lost workers only on its maintenance beat,
    ``job_gc_check_interval_ms`` (default 10 min, on top of a 10 min ``worker_timeout_ms``):
    a quarter of the timeout here, so that a loss is known within 1.25 timeouts."""
    timeout_ms = max(1000, int(worker_timeout * 1000))
    return tf.data.experimental.service.DispatcherConfig(
        port=port, work_dir=work_dir, fault_tolerant_mode=work_dir is not None,
        worker_timeout_ms=timeout_ms, job_gc_check_interval_ms=max(1000, timeout_ms // 4))


def worker_config(dispatcher: str, port: int = 0, address: str | None = None,
                  ) -> tf.data.experimental.service.WorkerConfig:
    """A worker's config: it dials ``dispatcher`` (HOST:PORT), listens on ``port`` (0: any),
    is reached at ``address`` (default: localhost and its port) and heartbeats every
    :data:`HEARTBEAT_INTERVAL` seconds."""
    options: dict[str, Any] = dict(dispatcher_address=dispatcher, port=port,
                                   heartbeat_interval_ms=int(HEARTBEAT_INTERVAL * 1000))
    if address:
        options["worker_address"] = address
    return tf.data.experimental.service.WorkerConfig(**options)


_LOST_WORKER = re.compile(rb"Lost worker (\S+) due to timeout")


def lost_worker_message(worker: str, timeout: float) -> str:
    """What the dispatcher says when ``worker`` stopped heartbeating."""
    return (f"tf.data service dispatcher: worker {worker} is lost (no heartbeat for "
            f"{timeout:g} s). Training goes on with the other workers, slower; the examples "
            "it had taken are skipped this epoch. Start a worker again to restore the pace.")


def _relay(source: int, target: int, timeout: float) -> None:
    pending = b""
    with os.fdopen(source, "rb", buffering=0) as pipe:
        while chunk := pipe.read(65536):
            os.write(target, chunk)
            *lines, pending = (pending + chunk).split(b"\n")
            pending = pending[-4096:]
            for line in lines:
                if match := _LOST_WORKER.search(line):
                    os.write(target, (lost_worker_message(match[1].decode(errors="replace"),
                                                          timeout) + "\n").encode())


@contextlib.contextmanager
def reporting_lost_workers(timeout: float) -> Iterator[None]:
    """While inside, this process's fd 2 (where TensorFlow's C++ log goes) passes through a
    thread that adds :func:`lost_worker_message` after TensorFlow's INFO line ``Lost worker
    ADDRESS due to timeout``; everything else passes unchanged."""
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    relay = threading.Thread(target=_relay, args=(read_end, original, timeout),
                             name="vgg_keras-dispatcher-log", daemon=True)
    relay.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)    # the pipe's last writer closes: the relay drains it and ends
        relay.join(5)
        os.close(original)


def stalled_message(address: str, epoch: int, cause: str) -> str:
    """What a run says when the service at ``address`` stopped sending batches."""
    return (f"The tf.data service at {_address(address)[1]} sent no batch: {cause}. Its "
            "dispatcher has stopped, or every worker has (or none was started). Start them "
            "again (a dispatcher started with --work-dir resumes its jobs), then run the same "
            "command to resume from the last checkpoint (the last finished epoch was "
            f"{epoch}); --data-service-timeout sets how long a run waits.")


def distribute(examples: tf.data.Dataset, address: str, *, job_name: str) -> tf.data.Dataset:
    """``examples`` made by the service at ``address``: the dispatcher hands out the source
    (a ``Dataset.range``) in parts to its workers as they ask (dynamic sharding), so each
    element is made exactly once, by one worker; consumers with the same ``job_name`` share
    the elements out."""
    protocol, target = _address(address)
    return examples.apply(tf.data.experimental.service.distribute(
        processing_mode=tf.data.experimental.service.ShardingPolicy.DYNAMIC,
        service=f"{protocol}://{target}", job_name=job_name))


def start_local(
        workers: int = 2, port: int = 0,
) -> tuple[tf.data.experimental.service.DispatchServer,
           list[tf.data.experimental.service.WorkerServer]]:
    """A dispatcher and ``workers`` workers in this process (stop them with ``.stop()``):
    ``(dispatcher, [worker, ...])``; the address is ``dispatcher.target``."""
    dispatcher = tf.data.experimental.service.DispatchServer(dispatcher_config(port))
    host = dispatcher.target.split("://")[1]
    started = [tf.data.experimental.service.WorkerServer(worker_config(host))
               for _ in range(workers)]
    return dispatcher, started


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vgg_keras.data.service dispatcher|worker ...``: run one server until
    interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m vgg_keras.data.service",
        description="Run a tf.data service dispatcher or worker for --data-service.")
    kinds = parser.add_subparsers(dest="kind", required=True)
    dispatcher = kinds.add_parser("dispatcher", help="the one dispatcher the training "
                                  "processes (--data-service HOST:PORT) and workers dial")
    dispatcher.add_argument("--port", type=int, default=5050, help="port to listen on")
    dispatcher.add_argument("--work-dir", default=None,
                            help="where the dispatcher keeps its journal, so that a restarted "
                            "dispatcher resumes its jobs (none: not fault tolerant)")
    dispatcher.add_argument("--worker-timeout", type=float, default=WORKER_TIMEOUT,
                            help="seconds without a heartbeat after which a worker is "
                            "reported lost (at least three heartbeats, "
                            f"{3 * HEARTBEAT_INTERVAL:g}; TensorFlow's C++ INFO log is on for "
                            "the dispatcher, which reports lost workers there)")
    worker = kinds.add_parser("worker", help="a worker that reads and augments examples")
    worker.add_argument("--dispatcher", required=True, help="the dispatcher's HOST:PORT")
    worker.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    worker.add_argument("--address", default=None,
                        help="HOST:PORT by which the training processes reach this worker "
                        "(default: localhost and its port, which serves training processes on "
                        "this machine only)")
    args = parser.parse_args(argv)
    service = tf.data.experimental.service
    if args.kind == "dispatcher":
        if args.worker_timeout < 3 * HEARTBEAT_INTERVAL:
            parser.error(f"--worker-timeout must be at least {3 * HEARTBEAT_INTERVAL:g} s (three "
                         "of the workers' heartbeats), or live workers are reported lost.")
        if argv is None and os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") != "0":
            _restart_with_info_log()
        server = service.DispatchServer(
            dispatcher_config(args.port, args.work_dir, args.worker_timeout))
        print(f"tf.data service dispatcher at {server.target}; a worker silent for "
              f"{args.worker_timeout:g} s is reported lost", flush=True)
        with reporting_lost_workers(args.worker_timeout):
            _serve(server)
        return 0
    else:
        server = service.WorkerServer(
            worker_config(_address(args.dispatcher)[1], args.port, args.address))
        print(f"tf.data service worker on port {args.port or 'any'}, dispatcher "
              f"{args.dispatcher}", flush=True)
    _serve(server)
    return 0


def _restart_with_info_log() -> None:
    """Run this command again with TensorFlow's C++ INFO log on, where the dispatcher reports
    lost workers. TensorFlow reads TF_CPP_MIN_LOG_LEVEL once, when it first logs, and importing
    JAX (KERAS_BACKEND=jax, or TensorFlow importing it) sets it to 1 if unset; by the time this
    module runs, that has happened."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "vgg_keras.data.service", *sys.argv[1:]],
              dict(os.environ, TF_CPP_MIN_LOG_LEVEL="0"))


def _serve(server: Any) -> None:
    """Serve until interrupted: ``server.join()`` waits in C++, where Ctrl-C never reaches
    Python, so this process waits in Python instead (the server runs on its own threads)."""
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
