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
import logging
import socket
import sys
from collections.abc import Sequence

import tensorflow as tf

log = logging.getLogger(__name__)


def _address(address: str) -> tuple[str, str]:
    """``(protocol, host:port)`` of a dispatcher address given as ``host:port`` or
    ``grpc://host:port``."""
    protocol, _, rest = address.rpartition("://")
    return protocol or "grpc", rest


CONNECT_TIMEOUT = 10.0
"""Seconds :func:`check_reachable` waits for the dispatcher to answer."""


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """A ``ConnectionError`` naming ``address`` when no server accepts a connection there
    within ``timeout`` seconds (tf.data would wait for one without a word).

    >>> check_reachable("localhost:1")
    Traceback (most recent call last):
    ...
    ConnectionError: No tf.data service dispatcher answers at localhost:1 ...
    """
    target = _address(address)[1]
    host, _, port = target.rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=timeout):
            pass
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise ConnectionError(
            f"No tf.data service dispatcher answers at {target} ({reason}, within {timeout:g} "
            f"s). Start one there (python -m vgg_keras.data.service dispatcher --port "
            f"{port or 'PORT'}) and its workers, or check --data-service.") from None


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
    dispatcher = tf.data.experimental.service.DispatchServer(
        tf.data.experimental.service.DispatcherConfig(port=port))
    host = dispatcher.target.split("://")[1]
    started = [tf.data.experimental.service.WorkerServer(
        tf.data.experimental.service.WorkerConfig(dispatcher_address=host))
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
    worker = kinds.add_parser("worker", help="a worker that reads and augments examples")
    worker.add_argument("--dispatcher", required=True, help="the dispatcher's HOST:PORT")
    worker.add_argument("--port", type=int, default=0, help="port to listen on (0: any)")
    worker.add_argument("--address", default=None,
                        help="HOST:PORT by which the training processes reach this worker "
                        "(default: this machine's name and --port)")
    args = parser.parse_args(argv)
    service = tf.data.experimental.service
    if args.kind == "dispatcher":
        server = service.DispatchServer(service.DispatcherConfig(
            port=args.port, work_dir=args.work_dir,
            fault_tolerant_mode=args.work_dir is not None))
        print(f"tf.data service dispatcher at {server.target}", flush=True)
    else:
        options = dict(dispatcher_address=_address(args.dispatcher)[1], port=args.port)
        if args.address:
            options["worker_address"] = args.address
        server = service.WorkerServer(service.WorkerConfig(**options))
        print(f"tf.data service worker on port {args.port or 'any'}, dispatcher "
              f"{args.dispatcher}", flush=True)
    try:
        server.join()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
