"""Decoding and augmentation on tf.data service workers (``--data-service``): every example of
an epoch exactly once, made exactly as the local pipeline makes it, and a training run fed by a
dispatcher and two workers started as a user starts them."""

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

import user_trees
from test_user_data import TINY
from vgg_keras import data
from vgg_keras.data import service

ROOT = Path(__file__).resolve().parents[1]


def by_content(batches):
    """The epoch's (image, label) pairs in an order that does not depend on who made them."""
    pairs = [(image, int(label)) for images, labels in batches
             for image, label in zip(images.numpy(), labels.numpy())]
    return sorted(pairs, key=lambda pair: (pair[1], float(pair[0].sum()), pair[0].tobytes()))


def test_two_workers_make_every_example_once_as_the_local_pipeline_does(tmp_path):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=9, salt=False)
    examples = data.load(tree["root"], "train")
    options = dict(scale=(32, 48), crop=32, batch_size=3, seed=5, initial_epoch=1)
    local = data.train_pipeline(examples, **options, repeat=True, steps_per_epoch=9).take(9)
    dispatcher, workers = service.start_local(workers=2)
    try:
        remote = data.train_pipeline(examples, **options, service=dispatcher.target)
        made_here, made_there = by_content(local), by_content(remote)
    finally:
        for worker in workers:
            worker.stop()
        dispatcher.stop()
    assert len(made_there) == len(made_here) == tree["num_images"] == 27
    for (mine, my_label), (theirs, their_label) in zip(made_here, made_there):
        assert my_label == their_label
        np.testing.assert_array_equal(mine, theirs)
    assert len({image.tobytes() for image, _ in made_there}) == 27  # no example twice


def test_a_service_needs_a_source_its_workers_can_read_one_example_of(tfds_dir):
    with pytest.raises(ValueError, match="reads image directories"):
        data.train_pipeline(data.load("vgg_shapes", "train"), scale=(72, 96), crop=64,
                            batch_size=4, seed=0, service="localhost:1")


@pytest.mark.slow
def test_train_cls_fed_by_a_dispatcher_and_two_workers_it_did_not_start(tmp_path):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=10, salt=False)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1",
               VGG_KERAS_CACHE=str(tmp_path / "cache"))
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        port = probe.getsockname()[1]

    def server(*args):
        return subprocess.Popen([sys.executable, "-m", "vgg_keras.data.service", *map(str, args)],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    servers = [server("dispatcher", "--port", port)]
    time.sleep(1)
    servers += [server("worker", "--dispatcher", f"localhost:{port}") for _ in range(2)]
    try:
        run_dir = tmp_path / "run"
        args = [*TINY, "--data", tree["root"], "--batch-size", 4, "--epochs", 2,
                "--data-service", f"localhost:{port}", "--run-dir", run_dir,
                "--resample-on", "device"]   # the workers hand over uint8 windows
        done = subprocess.run([sys.executable, str(ROOT / "train_cls.py"), *map(str, args)],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    finally:
        for process in servers:
            process.kill()
            process.wait()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == 2 and 0 <= summary["top1_error"] <= 100
    assert json.loads((run_dir / "config.json").read_text())["data_service"] == \
        f"localhost:{port}"


def free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_no_dispatcher_and_no_workers_end_with_a_message_not_a_wait(tmp_path):
    """Nothing listening at --data-service: refused at once. A dispatcher without a worker
    (or whose workers all died): no batch ever comes, and the run ends after
    --data-service-timeout with what to do, exit status 3."""
    tree = user_trees.class_folders(tmp_path / "pets", per_class=6, salt=False)
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1",
               VGG_KERAS_CACHE=str(tmp_path / "cache"), TF_CPP_MIN_LOG_LEVEL="3")
    port = free_port()
    args = [*TINY, "--data", tree["root"], "--batch-size", 4, "--epochs", 1,
            "--data-service", f"localhost:{port}", "--data-service-timeout", 20]

    def train(run_dir, timeout):
        started = time.monotonic()
        done = subprocess.run([sys.executable, str(ROOT / "train_cls.py"), *map(str, args),
                               "--run-dir", run_dir], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
        return done, time.monotonic() - started

    done, seconds = train(tmp_path / "none", 120)
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"No tf.data service dispatcher answers at localhost:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    dispatcher = subprocess.Popen([sys.executable, "-m", "vgg_keras.data.service", "dispatcher",
                                   "--port", str(port)], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120   # TensorFlow's import first: slow on a busy machine
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("localhost", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        done, seconds = train(tmp_path / "idle", 240)
    finally:
        dispatcher.kill()
        dispatcher.wait()
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"The tf.data service at localhost:{port} sent no batch" in done.stderr
    assert "no training step finished for 20 s" in done.stderr


@pytest.mark.slow
def test_the_dispatcher_reports_a_lost_worker_by_its_address(tmp_path):
    """One worker of two killed: the dispatcher says which, within --worker-timeout and a
    quarter of it (TensorFlow's own check came after 10 to 20 minutes, and was hidden
    under TF_CPP_MIN_LOG_LEVEL, which this environment sets)."""
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3")
    port, kept, lost = free_port(), free_port(), free_port()

    def server(*args, **pipes):
        return subprocess.Popen([sys.executable, "-m", "vgg_keras.data.service", *map(str, args)],
                                cwd=ROOT, env=env, **pipes)

    dispatcher = server("dispatcher", "--port", port, "--worker-timeout", 15,
                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in dispatcher.stdout],
                     daemon=True).start()
    workers = [server("worker", "--dispatcher", f"localhost:{port}", "--port", worker,
                      stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
               for worker in (kept, lost)]
    try:
        for worker in workers:   # started, and heartbeating
            assert "tf.data service worker" in worker.stdout.readline()
        time.sleep(10)
        workers[1].kill()
        killed, seen = time.monotonic(), []
        while time.monotonic() - killed < 60 and not any(" is lost" in s for s in seen):
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1))
        seconds = time.monotonic() - killed
    finally:
        for process in [dispatcher, *workers]:
            process.kill()
            process.wait()
    reports = [line for line in seen if " is lost" in line]
    assert reports, "".join(seen)[-3000:]
    assert f"worker localhost:{lost} is lost (no heartbeat for 15 s)" in reports[0]
    assert f"localhost:{kept}" not in "".join(reports)
    assert 10 < seconds < 15 * 1.25 + 10
