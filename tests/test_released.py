"""Released weights by name: ``build_vgg(weights="imagenet")`` and the scripts' ``imagenet``
fetch the table's file from a (local) server into Keras's cache, check its hash, reuse it
offline, refuse a damaged copy, and fail within seconds with a message when nothing can be
reached. The table entry is swapped for a generated file; the fetching code is the real one."""

import dataclasses
import functools
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import numpy as np
import pytest

import vgg_keras
from vgg_keras import released
from vgg_keras.options import ClassificationConfig, LocalizationConfig

torch = pytest.importorskip("torch")

from test_weights import TorchvisionVGG  # noqa: E402
from user_trees import class_folders, voc_tree  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1 / 16


class Server:
    """A local HTTP server of one folder, counting the files it sends."""

    def __init__(self, folder):
        self.sent = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.sent.append(self.path)
                super().do_GET()

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url():
    """A loopback URL where nothing listens (connections are refused at once)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def vgg11_file(tmp_path_factory):
    """A torchvision-layout vgg11 state dict (1/16 width, 1000 classes), named as torchvision
    names its files: the leading SHA-256 digits after the dash."""
    folder = tmp_path_factory.mktemp("published")
    scratch = folder / "scratch.pth"
    torch.save(TorchvisionVGG("A", num_classes=1000).state_dict(), scratch)
    prefix = hashlib.sha256(scratch.read_bytes()).hexdigest()[:8]
    path = folder / f"vgg11-{prefix}.pth"
    scratch.rename(path)
    return path, prefix


@pytest.fixture
def served(vgg11_file, monkeypatch, tmp_path):
    """A's released entry pointing at a local server of the generated file; Keras's cache in
    a fresh KERAS_HOME."""
    path, prefix = vgg11_file
    server = Server(path.parent)
    entry = next(r for r in released.RELEASES if r.arch == "A")
    swapped = dataclasses.replace(entry, url=f"{server.url}/{path.name}", file_hash=prefix)
    monkeypatch.setattr(released, "RELEASES",
                        tuple(swapped if r is entry else r for r in released.RELEASES))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.delenv(released.MIRROR_ENV, raising=False)
    yield server, path, tmp_path / "keras_home" / "models" / path.name
    server.close()


def logits(model, seed=0):
    images = np.random.default_rng(seed).uniform(0, 255, (2, 224, 224, 3)).astype("float32")
    return keras.ops.convert_to_numpy(model(images))


def test_imagenet_is_fetched_cached_and_reused_offline(served):
    server, path, cached = served
    model = vgg_keras.vgg11(weights="imagenet", width=WIDTH)
    assert cached.is_file() and server.sent == [f"/{path.name}"]
    from_file = vgg_keras.build_vgg("A", weights=path, width=WIDTH)
    np.testing.assert_array_equal(logits(model), logits(from_file))
    server.close()                                   # offline from now on
    again = vgg_keras.build_vgg("A", weights="imagenet", width=WIDTH)
    np.testing.assert_array_equal(logits(again), logits(from_file))
    assert len(server.sent) == 1
    # Without the top, at any input size: only the conv layers, from the same cached file.
    backbone = vgg_keras.build_vgg("A", include_top=False, input_shape=(None, None, 3),
                                   width=WIDTH, weights="imagenet")
    np.testing.assert_array_equal(backbone.get_layer("block5_conv2").get_weights()[0],
                                  from_file.get_layer("block5_conv2").get_weights()[0])


def test_other_classes_get_a_new_fc8(served):
    _, path, _ = served
    source = vgg_keras.build_vgg("A", weights=path, width=WIDTH)
    model = vgg_keras.build_vgg("A", 7, weights="imagenet", width=WIDTH)
    assert model.output_shape == (None, 7)
    for name in ("block1_conv1", "fc6", "fc7"):
        np.testing.assert_array_equal(model.get_layer(name).get_weights()[0],
                                      source.get_layer(name).get_weights()[0])


def test_a_corrupted_cache_is_named_refetched_or_refused(served, caplog):
    server, path, cached = served
    vgg_keras.build_vgg("A", weights="imagenet", width=WIDTH)
    cached.write_bytes(cached.read_bytes()[:1000])   # a truncated copy
    with caplog.at_level("WARNING"):
        vgg_keras.build_vgg("A", weights="imagenet", width=WIDTH)
    assert str(cached) in caplog.text and "fails its SHA-256 prefix check" in caplog.text
    assert len(server.sent) == 2 and cached.read_bytes() == path.read_bytes()
    cached.write_bytes(b"garbage")
    server.close()
    with pytest.raises(released.WeightsUnavailable) as error:
        vgg_keras.build_vgg("A", weights="imagenet", width=WIDTH)
    assert str(cached) in str(error.value)


def test_a_file_that_fails_its_hash_after_download_is_not_kept(served, monkeypatch):
    server, path, cached = served
    entry = next(r for r in released.RELEASES if r.arch == "A")
    monkeypatch.setattr(released, "RELEASES", (dataclasses.replace(entry, file_hash="0badf00d"),))
    with pytest.raises(released.WeightsUnavailable, match="fails its SHA-256 prefix check"):
        vgg_keras.build_vgg("A", weights="imagenet", width=WIDTH)
    assert not cached.exists()


def test_offline_without_a_cached_file_fails_within_seconds(served, monkeypatch):
    _, path, cached = served
    monkeypatch.setenv(released.MIRROR_ENV, closed_port_url())
    started = time.monotonic()
    with pytest.raises(released.WeightsUnavailable) as error:
        vgg_keras.build_vgg("A", weights="imagenet", width=WIDTH)
    assert time.monotonic() - started < 10
    message = str(error.value)
    for part in (os.environ[released.MIRROR_ENV], str(cached), "curl -L -o", released.MIRROR_ENV):
        assert part in message


def test_a_mirror_folder_is_read_in_place(served, monkeypatch, tmp_path):
    server, path, cached = served
    monkeypatch.setenv(released.MIRROR_ENV, str(path.parent))
    vgg_keras.build_vgg("A", weights="imagenet", width=WIDTH)
    assert server.sent == [] and not cached.exists()
    monkeypatch.setenv(released.MIRROR_ENV, str(tmp_path))
    with pytest.raises(released.WeightsUnavailable, match=f"has no {path.name}"):
        vgg_keras.build_vgg("A", weights="imagenet", width=WIDTH)


def test_names_without_a_release_are_refused():
    with pytest.raises(ValueError, match="No released 'imagenet' weights for configuration C"):
        vgg_keras.build_vgg("C", weights="imagenet")
    with pytest.raises(ValueError, match="say which configuration"):
        vgg_keras.load_vgg("imagenet")
    assert released.find_release("imagenet", "E", include_top=False).filename.endswith(
        "_notop.h5")
    assert released.find_release("imagenet-torchvision", "D").file_hash == "397923af"


@pytest.mark.slow
def test_the_scripts_exit_2_with_the_offline_message(tmp_path):
    env = dict(os.environ, KERAS_HOME=str(tmp_path / "home"),
               **{released.MIRROR_ENV: closed_port_url(), "TF_CPP_MIN_LOG_LEVEL": "3"})
    for script, args in (("train_cls.py", ["--evaluate", "imagenet", "--arch", "D"]),
                         ("train_loc.py", ["--init-from", "imagenet", "--arch", "B",
                                           "--run-dir", str(tmp_path / "loc")])):
        started = time.monotonic()
        done = subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        assert "Traceback" not in done.stderr
        assert "Cannot fetch" in done.stderr and "curl -L -o" in done.stderr
        assert time.monotonic() - started < 60


# -- fine-tuning through train_cls.py ----------------------------------------------------------


TINY = ["--arch", "A", "--width", str(WIDTH), "--crop", "32", "--scale", "32:40",
        "--batch-size", "8", "--epochs", "1", "--steps-per-epoch", "2", "--eval-methods",
        "center", "--verbose", "0", "--no-report", "--quiet", "--val-fraction", "0.2"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("pets")
    class_folders(root, classes=("cat", "dog", "fox"), per_class=12, size=(40, 48))
    return root


def weights_of(model, name):
    return [np.asarray(w) for w in model.get_layer(name).get_weights()]


@pytest.mark.slow
@pytest.mark.parametrize("finetune, trained", [
    ("all", {"block1_conv1", "block5_conv2", "fc6", "fc7"}),
    ("fc", {"fc6", "fc7", "fc8"}),
    ("fc8", {"fc8"}),
])
def test_train_cls_fine_tunes_a_classifier_of_other_classes(finetune, trained, folder, tmp_path):
    import train_cls

    keras.utils.set_random_seed(3)
    source = vgg_keras.build_vgg("A", 7, input_shape=(32, 32, 3), width=WIDTH, init="glorot")
    source.save(tmp_path / "seven.keras")
    run_dir = tmp_path / "run"
    # A negligible rate, so that after one epoch every trained layer is still within 1e-4 of
    # where it started: what was copied is what was there before the first step.
    args = TINY + ["--data", str(folder), "--init-from", str(tmp_path / "seven.keras"),
                   "--finetune", finetune, "--run-dir", str(run_dir), "--weight-decay", "0"]
    assert train_cls.main(args + (["--lr", "1e-9"] if finetune == "all" else [])) == 0
    model = keras.saving.load_model(run_dir / "model.keras")
    assert model.output_shape == (None, 3)
    for layer in ("block1_conv1", "block5_conv2", "fc6", "fc7"):
        ours, theirs = weights_of(model, layer), weights_of(source, layer)
        if layer in trained:
            np.testing.assert_allclose(ours[0], theirs[0], atol=1e-4)
        else:
            np.testing.assert_array_equal(ours[0], theirs[0])    # frozen: exactly the source's
    log = (run_dir / "train.log").read_text()
    assert "new, randomly initialised: fc8 (7 classes in the source, 3 here)" in log
    config = json.loads((run_dir / "config.json").read_text())
    assert config["finetune"] == finetune
    if finetune != "all":   # the rate rule: the paper's 1e-2 at 256, here a batch of 8
        assert config["lr"] == pytest.approx(1e-2 * 8 / 256)
        assert "scaled to the global batch of 8" in log


@pytest.mark.slow
def test_train_cls_starts_from_imagenet_by_name(served, folder, tmp_path, monkeypatch):
    import train_cls

    _, path, cached = served
    run_dir = tmp_path / "run"
    args = TINY + ["--data", str(folder), "--init-from", "imagenet", "--finetune", "fc8",
                   "--run-dir", str(run_dir)]
    assert train_cls.main(args) == 0
    assert cached.is_file()
    log = (run_dir / "train.log").read_text()
    # At 32-pixel crops fc6 reads a 1x1 pool5 map, the file's a 7x7 one: fc6 starts fresh too.
    assert "fc6 (the source's inputs are (224, 224), these (32, 32))" in log
    assert "fc8 (1000 classes in the source, 3 here)" in log
    model = keras.saving.load_model(run_dir / "model.keras")
    source = vgg_keras.build_vgg("A", weights=path, width=WIDTH)
    np.testing.assert_array_equal(weights_of(model, "block5_conv2")[0],
                                  weights_of(source, "block5_conv2")[0])
    np.testing.assert_array_equal(weights_of(model, "fc7")[0], weights_of(source, "fc7")[0])
    # torchvision's input convention came with the weights.
    norm = model.get_layer("normalization")
    assert norm.std is not None and norm.channel_order == "rgb"


@pytest.mark.slow
def test_train_loc_starts_from_imagenet_by_name(served, tmp_path):
    import train_loc

    voc = tmp_path / "voc"
    voc_tree(voc, classes=("cat", "dog"), per_class=8, size=(224, 240), salt=False)
    run_dir = tmp_path / "loc"
    args = ["--data", str(voc), "--arch", "A", "--width", str(WIDTH), "--crop", "224",
            "--scale", "224", "--batch-size", "4", "--epochs", "1", "--steps-per-epoch", "1",
            "--init-from", "imagenet", "--finetune", "fc", "--regression", "pcr",
            "--run-dir", str(run_dir), "--verbose", "0", "--no-report", "--quiet",
            "--val-fraction", "0.25"]
    assert train_loc.main(args) == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["protocol1"]["images"] > 0 and "protocol2" not in summary
    model = keras.saving.load_model(run_dir / "model.keras")
    assert model.output_shape == (None, 2 * 4)   # boxes for the data's 2 classes, not 1000
    log = (run_dir / "train.log").read_text()
    assert "1000 classes, the data 2" in log
    assert json.loads((run_dir / "config.json").read_text())["lr"] == pytest.approx(1e-3 * 4 / 256)


def test_the_rate_follows_the_global_batch():
    assert ClassificationConfig(batch_size=32).learning_rate() == pytest.approx(1.25e-3)
    assert ClassificationConfig(batch_size=32, accumulate=8).learning_rate() == pytest.approx(1e-2)
    assert ClassificationConfig(batch_size=32, lr=0.05).learning_rate() == 0.05   # as given
    assert ClassificationConfig(optimizer="adam", batch_size=512).learning_rate() == 3e-4
    assert LocalizationConfig(batch_size=256).learning_rate() == pytest.approx(1e-3)


def test_finetune_without_init_from_is_refused(folder, tmp_path, capsys):
    import train_cls

    assert train_cls.main(TINY + ["--data", str(folder), "--finetune", "fc8",
                                  "--run-dir", str(tmp_path / "r")]) == 2
    assert "--finetune fc8" in capsys.readouterr().err


@pytest.mark.slow
def test_train_cls_evaluates_imagenet_by_name_beside_the_published_figures(served, folder,
                                                                           capsys):
    import train_cls

    assert train_cls.main(["--evaluate", "imagenet", "--arch", "A", "--data", str(folder),
                           "--eval-scales", "224", "--eval-methods", "center", "--quiet",
                           "--val-fraction", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "| vgg_a | 224 | center |" in out
    # torchvision's vgg11: 69.02 / 88.628% accuracy; the paper's A at S = Q = 256: 29.6 / 10.4.
    assert "documented at 31.0 / 11.4% top-1 / top-5 error" in out
    assert "the paper's A, Table 3, S=256, Q=256: 29.6 / 10.4%" in out
