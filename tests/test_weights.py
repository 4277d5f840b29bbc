"""Pretrained-weight import: torchvision state dicts and keras.applications HDF5 files give the
same outputs as the networks that wrote them, and wrong files fail with the file's name."""

import sys

import h5py
import keras
import numpy as np
import pytest

import vgg_keras
from vgg_keras.weights import (
    CAFFE_PREPROCESSING,
    TORCHVISION_PREPROCESSING,
    read_pretrained,
)

torch = pytest.importorskip("torch")
nn = torch.nn

WIDTH = 1 / 16  # every torchvision width divides by 16: 64 -> 4, ..., 4096 -> 256
CLASSES = 10

# torchvision.models.vgg's cfgs, copied so the test needs no torchvision.
TORCHVISION_CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


class TorchvisionVGG(nn.Module):
    """torchvision.models.VGG's structure (same attribute names, hence the same state dict keys),
    with every width divided by 16."""

    def __init__(self, arch, num_classes=CLASSES, batch_norm=False, divisor=16):
        super().__init__()
        layers, channels = [], 3
        for v in TORCHVISION_CFGS[arch]:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                continue
            conv = nn.Conv2d(channels, v // divisor, kernel_size=3, padding=1)
            layers += [conv, nn.BatchNorm2d(v // divisor)] if batch_norm else [conv]
            layers.append(nn.ReLU(inplace=True))
            channels = v // divisor
        hidden = 4096 // divisor
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        self.classifier = nn.Sequential(
            nn.Linear(channels * 7 * 7, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, hidden), nn.ReLU(True), nn.Dropout(),
            nn.Linear(hidden, num_classes),
        )
        # He initialisation and non-zero biases: activations keep their scale through 19 layers,
        # so the comparison below is between outputs of order one, not between near-zeros.
        generator = torch.Generator().manual_seed(0)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                with torch.no_grad():
                    module.weight.normal_(0, (2 / fan_in) ** 0.5, generator=generator)
                    module.bias.uniform_(-0.1, 0.1, generator=generator)
        self.eval()

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def rgb_images(n, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def torchvision_input(images):
    """What torchvision's ToTensor + Normalize make of RGB [0, 255] images, in NCHW."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2) / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def torch_files(tmp_path_factory):
    """arch -> (torch net, path of its saved state dict), made on first use."""
    folder, made = tmp_path_factory.mktemp("torch"), {}

    def get(arch):
        if arch not in made:
            net = TorchvisionVGG(arch)
            path = folder / f"vgg_{arch}.pth"
            torch.save(net.state_dict(), path)
            made[arch] = net, path
        return made[arch]

    return get


@pytest.mark.parametrize("arch", ["A", "B", "D", "E"])
def test_torchvision_state_dict_gives_torchvision_logits(arch, torch_files):
    net, path = torch_files(arch)
    model = vgg_keras.build_vgg(arch, CLASSES, width=WIDTH, weights=path)
    images = rgb_images(2, 224)
    with torch.no_grad():
        expected = net(torchvision_input(images)).numpy()
    logits = keras.ops.convert_to_numpy(model(images))
    assert np.abs(expected).max() > 0.5
    # Same float32 arithmetic in other orders: differences are ~1e-6 at this scale. A wrong
    # transpose or fc6 row order would be off by the logits' own size.
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    norm = model.get_layer("normalization")
    assert norm.channel_order == "rgb"
    np.testing.assert_allclose(norm.mean, [123.675, 116.28, 103.53])
    np.testing.assert_allclose(norm.std, [58.395, 57.12, 57.375])


def test_torchvision_backbone_loads_at_any_size(torch_files):
    net, path = torch_files("A")
    model = vgg_keras.build_vgg("A", include_top=False, input_shape=(None, None, 3), width=WIDTH,
                                weights=path)
    images = rgb_images(2, 96, seed=1)
    with torch.no_grad():
        expected = net.features(torchvision_input(images)).permute(0, 2, 3, 1).numpy()
    features = keras.ops.convert_to_numpy(model(images))
    assert features.shape == (2, 3, 3, 32) and np.abs(expected).max() > 0.5
    np.testing.assert_allclose(features, expected, rtol=0, atol=1e-4)


# --- keras.applications -------------------------------------------------------------------


def write_2016_layout(model, path, include_top=True):
    """The layout of keras.applications' downloads (fchollet/deep-learning-models v0.1): one
    group per layer at the root, the root attribute layer_names, and per group weight_names
    such as 'block1_conv1_W_1:0', 'block1_conv1_b_1:0'."""
    layers = [layer for layer in model.layers
              if include_top or not layer.name.startswith(("flatten", "fc", "predictions"))]
    with h5py.File(path, "w") as file:
        # Fixed-length byte strings, as Keras 1/2 wrote them (np.asarray of bytes).
        file.attrs["layer_names"] = np.array([layer.name.encode() for layer in layers])
        for layer in layers:
            group = file.create_group(layer.name)
            names = [f"{layer.name}_W_1:0", f"{layer.name}_b_1:0"] if layer.weights else []
            group.attrs["weight_names"] = np.array([name.encode() for name in names], dtype="S")
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name, data=value)


def write_legacy_writer(model, path):
    """Keras' own writer of the legacy format (weight names like 'block1_conv1/kernel')."""
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, model)


def write_keras3(model, path):
    model.save_weights(path)


@pytest.fixture(scope="module")
def keras_vgg16():
    # The real files need 224 inputs; 64 gives the same layers with a 2x2 pool5 and a 4x smaller
    # fc1, which keeps the file at 160 MB (the real one is 553 MB).
    return keras.applications.VGG16(weights=None, classes=CLASSES, input_shape=(64, 64, 3),
                                    classifier_activation=None)


def test_2016_layout_matches_the_downloads(keras_vgg16, tmp_path):
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    write_2016_layout(keras_vgg16, path)
    with h5py.File(path, "r") as file:
        assert file.attrs["layer_names"].dtype.kind == "S"
        names = [n.decode() for n in file.attrs["layer_names"]]
        assert names[1:3] == ["block1_conv1", "block1_conv2"]
        assert names[-3:] == ["fc1", "fc2", "predictions"]
        assert list(file["block1_conv1"]) == ["block1_conv1_W_1:0", "block1_conv1_b_1:0"]
        assert file["block1_conv1/block1_conv1_W_1:0"].shape == (3, 3, 3, 64)


@pytest.mark.parametrize("writer, suffix", [
    (write_2016_layout, "_tf_kernels.h5"),
    (write_legacy_writer, "_legacy.h5"),
    (write_keras3, ".weights.h5"),
])
def test_keras_applications_file_gives_keras_applications_logits(writer, suffix, keras_vgg16,
                                                                   tmp_path):
    path = tmp_path / f"vgg16{suffix}"
    writer(keras_vgg16, path)
    model = vgg_keras.build_vgg("D", CLASSES, input_shape=(64, 64, 3), weights=path)
    path.unlink()
    images = rgb_images(2, 64)
    expected = keras.ops.convert_to_numpy(
        keras_vgg16(keras.applications.vgg16.preprocess_input(images.copy())))
    logits = keras.ops.convert_to_numpy(model(images))
    assert np.abs(expected).max() > 0.05
    # The same Keras ops on the same backend; only the BGR flip and mean subtraction are
    # written differently, so anything above float32 round-off means a wrong convention.
    np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-4)
    norm = model.get_layer("normalization")
    assert norm.channel_order == "bgr" and norm.std is None
    np.testing.assert_allclose(norm.mean, CAFFE_PREPROCESSING["mean"])


@pytest.fixture(scope="module")
def vgg19_notop(tmp_path_factory):
    ref = keras.applications.VGG19(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("keras") / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    write_2016_layout(ref, path)
    return ref, path


def test_notop_file_loads_the_backbone_at_any_size(vgg19_notop):
    ref, path = vgg19_notop
    model = vgg_keras.build_vgg("E", include_top=False, input_shape=(None, None, 3), weights=path)
    backbone = keras.Model(ref.input, ref.get_layer("block5_pool").output)
    images = rgb_images(2, 32, seed=2)
    expected = keras.ops.convert_to_numpy(
        backbone(keras.applications.vgg19.preprocess_input(images.copy())))
    assert np.abs(expected).max() > 0.05
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(images)), expected,
                               rtol=0, atol=1e-4)


def test_notop_file_with_the_top_fails(vgg19_notop):
    _, path = vgg19_notop
    with pytest.raises(ValueError, match="include_top=False") as info:
        vgg_keras.build_vgg("E", weights=path)
    assert str(path) in str(info.value)


# --- wrong files and wrong arguments ------------------------------------------------------


def test_another_architecture_names_the_file_and_its_architecture(torch_files):
    _, path = torch_files("D")
    with pytest.raises(ValueError, match=r"vgg16 state dict is configuration D \(13 conv") as info:
        vgg_keras.build_vgg("A", CLASSES, width=WIDTH, weights=path)
    assert str(path) in str(info.value) and "configuration A (8 conv layers)" in str(info.value)


def test_a_lrn_is_refused_for_vgg11(torch_files):
    _, path = torch_files("A")
    with pytest.raises(ValueError, match="LRN"):
        vgg_keras.build_vgg("A-LRN", CLASSES, width=WIDTH, weights=path)


@pytest.mark.parametrize("kwargs, message", [
    ({"width": 1 / 8}, r"'block1_conv1'.*\(3, 3, 3, 4\).*\(3, 3, 3, 8\).*width"),
    ({"input_shape": (256, 256, 3)}, r"'fc6'.*7x7.*input_shape"),
    ({"preprocessing": None}, "preprocessing"),
])
def test_arguments_the_file_cannot_fill_fail_clearly(kwargs, message, torch_files):
    _, path = torch_files("A")
    arguments = {"num_classes": CLASSES, "width": WIDTH, **kwargs}
    with pytest.raises(ValueError, match=message) as info:
        vgg_keras.build_vgg("A", weights=path, **arguments)
    assert str(path) in str(info.value)


def test_every_key_must_be_used_and_every_layer_filled(torch_files, tmp_path):
    net, _ = torch_files("A")
    extra = dict(net.state_dict(), **{"classifier.9.weight": torch.zeros(3)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ValueError, match="classifier"):
        read_pretrained(tmp_path / "extra.pth")
    missing = {k: v for k, v in net.state_dict().items() if k != "features.3.bias"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"features\.3"):
        read_pretrained(tmp_path / "missing.pth")


def test_batch_norm_variant_is_refused(tmp_path):
    path = tmp_path / "vgg11_bn.pth"
    torch.save(TorchvisionVGG("A", batch_norm=True).state_dict(), path)
    with pytest.raises(ValueError, match="batch"):
        read_pretrained(path)


def test_truncated_files_fail_naming_the_file(torch_files, vgg19_notop, tmp_path):
    for source in (torch_files("A")[1], vgg19_notop[1]):
        data = source.read_bytes()
        path = tmp_path / f"half_{source.name}"
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(ValueError, match="truncated or corrupt") as info:
            read_pretrained(path)
        assert str(path) in str(info.value)


def test_other_files_fail_clearly(tmp_path):
    text = tmp_path / "vgg16.h5"
    text.write_text("not weights\n")
    with pytest.raises(ValueError, match="neither a PyTorch state dict nor a Keras HDF5") as info:
        vgg_keras.build_vgg("D", weights=text)
    assert str(text) in str(info.value)
    pickled = tmp_path / "whole_model.pth"
    torch.save(TorchvisionVGG("A"), pickled)
    with pytest.raises(ValueError, match="state_dict"):
        read_pretrained(pickled)
    archive = tmp_path / "model.keras"
    vgg_keras.build_vgg("A", 2, input_shape=(32, 32, 3), width=WIDTH).save(archive)
    with pytest.raises(ValueError, match="load_model"):
        read_pretrained(archive)


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such weights file"):
        vgg_keras.build_vgg("D", weights=tmp_path / "vgg16.pth")


def test_missing_torch_names_the_extra(torch_files, monkeypatch):
    _, path = torch_files("A")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"vgg_keras\[torch\]"):
        read_pretrained(path)


def test_read_pretrained_reports_what_it_found(torch_files):
    _, path = torch_files("B")
    pretrained = read_pretrained(path)
    assert pretrained.arch == "B" and pretrained.num_classes == CLASSES
    assert pretrained.description == "torchvision vgg13 state dict"
    assert pretrained.preprocessing == TORCHVISION_PREPROCESSING
    assert pretrained.width == WIDTH and len(pretrained.convs) == 10
    assert pretrained.convs[0][0].shape == (3, 3, 3, 4)      # block1_conv1, (h, w, in, out)
    assert pretrained.head[0][0].shape == (7 * 7 * 32, 256)  # fc6
