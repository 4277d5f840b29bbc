"""Two processes on one machine (JAX backend, gloo collectives) train as one: the same weights as
one process, each process reading only its share of every batch, and a job killed with
``kill -9`` resumes when the same commands run again."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import user_trees
from test_user_data import LOC, TINY, weights

pytestmark = pytest.mark.slow   # subprocesses and training: python -m pytest -m 'not slow' skips them

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("jax")


def free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.fixture
def env(tmp_path):
    return dict(os.environ, KERAS_BACKEND="jax", CUDA_VISIBLE_DEVICES="", PYTHONUNBUFFERED="1",
                VGG_KERAS_CACHE=str(tmp_path / "cache"))


def launch(script, args, env, processes=1):
    """Start ``processes`` processes of ``script``; the environment alone makes them a job."""
    port = free_port()
    started = []
    for index in range(processes):
        extra = {} if processes == 1 else {
            "KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": str(processes),
            "KERAS_DISTRIBUTION_PROCESS_ID": str(index)}
        started.append(subprocess.Popen(
            [sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT, env={**env, **extra},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    return started


def finish(started):
    outputs = [p.communicate(timeout=400)[0] for p in started]
    for process, out in zip(started, outputs):
        assert process.returncode == 0, out[-4000:]
    return outputs


def kill_after_first_epoch(started, run_dir, survivor=False):
    """``kill -9`` the processes once the first epoch is checkpointed; with ``survivor``, only
    process 1, and process 0 must then end by itself, saying why."""
    state = Path(run_dir) / "checkpoints" / "state.json"
    deadline = time.time() + 300
    while time.time() < deadline and not state.exists() and all(
            p.poll() is None for p in started):
        time.sleep(0.05)
    for process in started[1:] if survivor else started:
        process.send_signal(signal.SIGKILL)
    outputs = [p.communicate(timeout=200)[0] for p in started]
    assert state.exists(), outputs[0][-3000:]
    if survivor:
        assert started[0].returncode == 3, outputs[0][-3000:]
        assert "another process of the job has stopped" in outputs[0]
        assert "Run the same commands again on every process" in outputs[0]
    return json.loads(state.read_text())["epoch"]


def one_versus_two_killed(script, args, tmp_path, env, epochs=2, survivor=False):
    """One process straight; two processes killed after their first checkpoint (or only the
    second, the first then ending by itself) and started again: the same epochs once each, the
    same weights within 1e-5."""
    one, two = tmp_path / f"{script}-one", tmp_path / f"{script}-two"
    args = [*args, "--epochs", epochs, "--peer-timeout", 20]
    finish(launch(script, [*args, "--run-dir", one], env))
    assert kill_after_first_epoch(launch(script, [*args, "--run-dir", two], env, 2), two,
                                  survivor) < epochs
    outputs = finish(launch(script, [*args, "--run-dir", two], env, 2))
    assert all("Resuming" in out for out in outputs)
    assert "Process 1 of 2" in outputs[1]
    a, b = weights(one), weights(two)
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        np.testing.assert_allclose(b[name], a[name], rtol=1e-5, atol=1e-5, err_msg=name)
    history = json.loads((two / "checkpoints" / "state.json").read_text())["history"]
    assert [row["epoch"] for row in history] == list(range(1, epochs + 1))
    straight = json.loads((one / "checkpoints" / "state.json").read_text())["history"]
    for mine, theirs in zip(history, straight):  # selection on the padded, sharded batches
        assert mine["val_" + ("accuracy" if script == "train_cls.py" else "box_l2")] == \
            pytest.approx(theirs["val_" + ("accuracy" if script == "train_cls.py" else "box_l2")],
                          rel=1e-5)
    # Process 0 alone wrote the run directory, and its summary is the one process's.
    summaries = [json.loads((d / "summary.json").read_text()) for d in (one, two)]
    headline = "top1_error" if script == "train_cls.py" else "protocol1_error"
    assert summaries[1][headline] == pytest.approx(summaries[0][headline], abs=1e-6)
    assert summaries[1]["splits"] == summaries[0]["splits"]
    return one


def test_two_processes_train_like_one_and_resume_after_kill(tmp_path, env):
    tree = user_trees.voc_tree(tmp_path / "voc", per_class=10, salt=False)
    # 30 images: 4 held out for selection, 4 for the report; batches of 6 split 3 + 3, the
    # selection batch of 4 split 2 + 2 and the report evaluated by each process alike.
    common = ["--data", tree["root"], "--val-fraction", 0.15]
    # One test scale and protocol for the report: JAX compiles each image size of each pass,
    # and the default six passes were a third of each classifier run's time (47 s -> 32 s).
    classifier_dir = one_versus_two_killed(
        "train_cls.py", [*TINY, *common, "--batch-size", 6, "--optimizer", "sgd", "--lr", 0.01,
                         "--eval-batch-size", 5, "--eval-scales", 36, "--eval-methods", "dense"],
        tmp_path, env, epochs=3, survivor=True)
    one_versus_two_killed(
        "train_loc.py", [*LOC, *common, "--batch-size", 6, "--eval-batch-size", 5,
                         "--init-from", classifier_dir / "model.keras"], tmp_path, env)


def test_several_processes_on_tensorflow_are_refused_with_the_jax_command(tmp_path, env):
    tree = user_trees.class_folders(tmp_path / "pets", per_class=4, salt=False)
    env = {**env, "KERAS_BACKEND": "tensorflow"}
    [process] = launch("train_cls.py", [*TINY, "--data", tree["root"], "--run-dir",
                                        tmp_path / "run", "--num-processes", 2,
                                        "--coordinator", "localhost:1"], env)
    out = process.communicate(timeout=200)[0]
    assert process.returncode == 2
    assert "needs the JAX backend" in out
    assert "KERAS_BACKEND=jax python train_cls.py --coordinator localhost:1 --num-processes 2 " \
           "--process-id 0" in out
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_two_processes_given_one_id_end_with_messages_not_a_wait(tmp_path, env):
    """Both started as process 0: the second is refused at once (the coordinator's port is
    taken), the first ends when --peer-timeout passes without process 1 joining, each with
    the package's message, not JAX's abort and stack dump."""
    tree = user_trees.class_folders(tmp_path / "pets", per_class=4, salt=False)
    port = free_port()
    jobs = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"localhost:{port}",
            "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "0"}
    args = [*TINY, "--data", tree["root"], "--epochs", 1, "--peer-timeout", 20]
    started = time.monotonic()
    first = subprocess.Popen([sys.executable, str(ROOT / "train_cls.py"), *map(str, args),
                              "--run-dir", tmp_path / "a"], cwd=ROOT, env={**env, **jobs},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(8)   # the first holds the coordinator's port
    second = subprocess.run([sys.executable, str(ROOT / "train_cls.py"), *map(str, args),
                             "--run-dir", tmp_path / "b"], cwd=ROOT, env={**env, **jobs},
                            capture_output=True, text=True, timeout=200)
    out = first.communicate(timeout=200)[0]
    assert second.returncode == 2, second.stdout[-3000:] + second.stderr[-3000:]
    assert "another process was started as process 0" in second.stderr
    assert first.returncode == 3, out[-3000:]
    assert "the job did not start within 20 s: not every process joined" in out
    assert "Check failure stack trace" not in out + second.stderr
    assert time.monotonic() - started < 120


def kill_before_the_first_step(tmp_path, env, victim):
    """Two processes of a one-epoch job; process ``victim`` killed as the first step is about
    to compile (no step finished: the stall watchdog is not armed). The survivor's exit status,
    output and seconds from the kill to its end."""
    tree = user_trees.class_folders(tmp_path / "pets", per_class=10, salt=False)
    started = launch("train_cls.py", [*TINY, "--data", tree["root"], "--epochs", 1,
                                      "--val-fraction", 0.2, "--run-dir", tmp_path / "run"],
                     env, processes=2)
    seen = []
    for line in started[victim].stdout:
        seen.append(line)
        if "replica(s); run directory" in line:
            break
    else:
        raise AssertionError("".join(seen)[-3000:])
    started[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    survivor = started[1 - victim]
    out = survivor.communicate(timeout=300)[0]
    started[victim].communicate(timeout=30)
    assert "Check failure stack trace" not in out and "Terminating process" not in out
    return survivor.returncode, out, time.monotonic() - killed


def test_a_process_lost_before_the_first_step_ends_the_other_with_the_message(tmp_path, env):
    """Process 1 killed: process 0 ends with the package's message and exit 3 within seconds,
    not with JAX's abort and stack dump after its heartbeat timeout."""
    code, out, seconds = kill_before_the_first_step(tmp_path, env, victim=1)
    assert code == 3, out[-3000:]
    assert "Process 0 of 2: a collective failed" in out
    assert "another process of the job has stopped" in out
    assert seconds < 90   # JAX's own abort came after 100 s


def test_process_0_lost_ends_the_others_with_the_message_not_jax_abort(tmp_path, env):
    """Process 0 holds JAX's coordination service: killed, JAX aborts every other process at
    once with a C++ stack dump. The command of process 1 says what happened instead."""
    code, out, seconds = kill_before_the_first_step(tmp_path, env, victim=0)
    assert code == 3, out[-3000:]
    # Whichever comes first: JAX's abort (replaced) or a collective failing (raised).
    assert re.search(r"Process 1 of 2: (process 0 stopped answering|a collective failed .*), so "
                     "another process of the job has stopped", out), out[-3000:]
    assert seconds < 60


def test_the_command_of_process_1_replaces_jax_abort_by_the_message(tmp_path, monkeypatch,
                                                                      capfd):
    """The relay alone, deterministically (in a real job a collective may fail first): a
    training child that writes JAX's last line and its stack dump, then aborts."""
    from vgg_keras import cli
    from vgg_keras.cluster import JAX_ABORT
    from vgg_keras.options import ClassificationConfig

    (tmp_path / "aborting_training.py").write_text(
        "import os, sys\n"
        "sys.stderr.write('Epoch 1/3\\n')\n"
        f"sys.stderr.buffer.write(b'F1207 client.h:80] ' + {JAX_ABORT!r} + b'. absl::Status\\n')\n"
        "sys.stderr.write('*** Check failure stack trace: ***\\n    @ 0x7f abort\\n')\n"
        "sys.stderr.flush()\n"
        "os.abort()\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.delenv(cli.SUPERVISED_ENV, raising=False)
    code = cli.supervise("aborting_training", [], "train_cls.py",
                         ClassificationConfig(num_processes=2, process_id=1))
    err = capfd.readouterr().err
    assert code == 3
    assert "Epoch 1/3" in err and "Terminating process" not in err and "stack trace" not in err
    assert "train_cls.py: Process 1 of 2: process 0 stopped answering" in err
    # Process 0's command and a single process run as they are.
    for place in ({"num_processes": 2, "process_id": 0}, {}):
        assert cli.supervise("aborting_training", [], "train_cls.py",
                             ClassificationConfig(**place)) is None
