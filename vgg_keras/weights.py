"""Pretrained weight files for ``build_vgg(arch, weights=path)``, in Keras layouts; the
configuration and width of a file's net come from :func:`vgg_keras.configs.identify_vgg`.

Read from local files (:mod:`vgg_keras.released` fetches the published ones), the format told
by the first bytes: torchvision ``vgg11``/``vgg13``/``vgg16``/``vgg19`` state dicts (``.pth``,
needs ``pip install 'vgg_keras[torch]'``); keras.applications ``VGG16``/``VGG19`` HDF5 files
(``vgg16_weights_tf_dim_ordering_tf_kernels.h5``, ``_notop``, and Keras 3 ``.weights.h5``); and
keras-hub VGG preset directories (``config.json`` and ``model.weights.h5``; ``task.json`` and
``task.weights.h5`` for a ``VGGImageClassifier``). The input normalisation each was trained with
goes into the model's ``normalization`` layer, so the model still takes RGB in [0, 255].

>>> from vgg_keras import build_vgg
>>> model = build_vgg("D", weights="vgg16-397923af.pth")       # doctest: +SKIP
>>> backbone = build_vgg("E", include_top=False,                # doctest: +SKIP
...                      weights="vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5")
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import re
import zipfile
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from .configs import ARCHITECTURES, identify_vgg
from .released import NAMES

if TYPE_CHECKING:
    import keras

    from ._typing import PathLike

log = logging.getLogger(__name__)

TORCHVISION_PREPROCESSING = {
    "mean": tuple(255.0 * m for m in (0.485, 0.456, 0.406)),
    "std": tuple(255.0 * s for s in (0.229, 0.224, 0.225)),
    "channel_order": "rgb",
}
"""torchvision's ``Normalize`` of ``x / 255``, rewritten for inputs on the 0-255 scale."""

CAFFE_PREPROCESSING = {"mean": (103.939, 116.779, 123.68), "std": None, "channel_order": "bgr"}
"""keras.applications' ``preprocess_input`` for VGG (Caffe): BGR, mean BGR subtracted."""

TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}
KERAS_NAMES = {"D": "VGG16", "E": "VGG19"}

Arrays = list[np.ndarray]  # one layer's [kernel, bias]

__all__ = ["CAFFE_PREPROCESSING", "TORCHVISION_PREPROCESSING", "PretrainedWeights",
           "read_pretrained"]


def _describe_arch(arch: str) -> str:
    convs = sum(spec != "LRN" for block in ARCHITECTURES[arch] for spec in block)
    return f"configuration {arch} ({convs} conv layers)"


@dataclasses.dataclass
class PretrainedWeights:
    """Weights read from a file, in Keras layouts, of configuration ``arch`` at ``width``:
    ``convs`` the conv layers' ``[kernel, bias]`` float32 arrays in order, ``head`` fc6, fc7
    and fc8's (empty without the classifier); ``preprocessing`` the ``InputNormalization``
    arguments the weights were trained with; ``input_shape`` the input whose pool5 map the
    file's fc6 reads whole."""

    path: str
    description: str
    arch: str
    width: float
    convs: list[Arrays]
    head: list[Arrays]
    preprocessing: dict[str, Any]
    input_shape: tuple[int, int, int] = (224, 224, 3)

    @property
    def has_top(self) -> bool:
        return bool(self.head)

    @property
    def num_classes(self) -> int | None:
        return int(self.head[-1][1].shape[0]) if self.head else None

    def check_build_args(self, arch: str, *, include_top: bool,
                         preprocessing: str | dict[str, Any] | None) -> dict[str, Any]:
        """Refuse ``build_vgg`` arguments the file cannot fill, before the model is built;
        return the preprocessing to use."""
        if arch != self.arch:
            hint = f"use build_vgg({self.arch!r}, weights=...)"
            if arch == "A-LRN" and self.arch == "A":
                hint = "A-LRN has an LRN layer these weights were not trained with; " + hint
            raise ValueError(f"{self.path}: this {self.description} is {_describe_arch(self.arch)}"
                             f", but build_vgg was asked for {_describe_arch(arch)}; {hint}.")
        if include_top and not self.has_top:
            raise ValueError(f"{self.path}: this {self.description} has no classifier (fc6-fc8), "
                             f"only the conv layers; build with include_top=False.")
        # Any other value asks for an input convention other than the one the weights were
        # trained with, which would silently give wrong predictions.
        if not (isinstance(preprocessing, str) and preprocessing == "imagenet"):
            raise ValueError(
                f"{self.path}: the {self.description} sets the model's input normalisation "
                f"itself ({_describe_preprocessing(self.preprocessing)}), so the model still "
                f"takes RGB in [0, 255]; leave preprocessing at its default "
                f"(got {preprocessing!r}).")
        return dict(self.preprocessing)

    def load_into(self, model: keras.Model, *, fresh: tuple[str, ...] = ()) -> None:
        """Set ``model``'s conv layers, in order, from the file's, and its dense layers (if it
        has the top) from fc6-fc8, but those named in ``fresh``, which keep their initialisation
        (a new fc8 for other classes). Every shape is checked before anything is set."""
        # A convolution's kernel has rank 4, a dense layer's 2.
        ranks = [(layer, len(layer.weights[0].shape)) for layer in model.layers if layer.weights]
        convs, denses = ([layer for layer, rank in ranks if rank == n] for n in (4, 2))
        if len(convs) != len(self.convs) or len(denses) not in (0, len(self.head)):
            raise ValueError(f"{self.path}: the file has {len(self.convs)} conv and "
                             f"{len(self.head)} dense layers, the model {len(convs)} and "
                             f"{len(denses)}.")
        pairs = [(layer, arrays) for layer, arrays in zip(convs + denses, self.convs + self.head)
                 if layer.name not in fresh]
        for layer, arrays in pairs:
            expected = [tuple(w.shape) for w in layer.weights]
            found = [tuple(a.shape) for a in arrays]
            if expected != found:
                raise ValueError(f"{self.path}: layer {layer.name!r} has weight shapes {found} in "
                                 f"the file but {expected} in the model; {self._fit()}")
        for layer, arrays in pairs:
            layer.set_weights(arrays)
        new = [layer.name for layer in denses if layer.name in fresh]
        log.info("Loaded %s %s into %s%s", self.description, self.path, model.name,
                 f"; {', '.join(new)} randomly initialised (the file's has {self.num_classes} "
                 f"outputs)" if new else "")

    def _fit(self) -> str:
        """What a model must be to take these weights."""
        if not self.head:
            return f"the file holds configuration {self.arch} at width={self.width:g}."
        side = round((self.head[0][0].shape[0] / self.convs[-1][0].shape[-1]) ** 0.5)
        return (f"the file holds configuration {self.arch} at width={self.width:g} with an fc6 "
                f"for a {side}x{side} pool5 map (inputs of {32 * side} to {32 * side + 31} pixels "
                f"a side): build with that width and input_shape=({32 * side}, {32 * side}, 3), "
                f"or include_top=False for other sizes.")


def _describe_preprocessing(preprocessing: dict[str, Any]) -> str:
    mean = ", ".join(f"{v:g}" for v in preprocessing["mean"])
    text = f"{preprocessing['channel_order'].upper()} with mean ({mean})"
    if preprocessing["std"] is not None:
        text += " and std (" + ", ".join(f"{v:g}" for v in preprocessing["std"]) + ")"
    return text + " on the 0-255 scale"


def read_pretrained(path: PathLike) -> PretrainedWeights:
    """Read a torchvision state dict, a keras.applications HDF5 file or a keras-hub preset
    directory. Raises FileNotFoundError for a missing file, ImportError when a ``.pth`` needs
    PyTorch and it is not installed, and ValueError, naming the file, for anything that is not
    a complete VGG weight file of a known layout.

    >>> pretrained = read_pretrained("vgg16-397923af.pth")      # doctest: +SKIP
    >>> pretrained.arch, pretrained.num_classes, pretrained.description   # doctest: +SKIP
    ('D', 1000, 'torchvision vgg16 state dict')
    """
    import h5py

    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        hint = ("pass the path of a .pth or .h5 file or a keras-hub preset directory, or a "
                "released name: " + ", ".join(NAMES))
        raise FileNotFoundError(errno.ENOENT, f"No such weights file ({hint})", path)
    if os.path.isdir(path):
        return _read_keras_hub(path)
    with open(path, "rb") as file:
        head = file.read(8)
    if head.startswith(b"PK\x03\x04"):
        return _read_torch(path, "zip")
    if head[:1] == b"\x80":  # a pickle (protocol 2+): torch.save's format before PyTorch 1.6
        return _read_torch(path, "pickle")
    # HDF5 allows a user block before its signature; h5py knows where to look.
    if head == b"\x89HDF\r\n\x1a\n" or h5py.is_hdf5(path):
        return _read_h5(path, _read_keras)
    raise ValueError(f"{path}: neither a PyTorch state dict nor a Keras HDF5 weight file (it "
                     f"starts with {head!r}, not a zip, pickle or HDF5 signature).")


def _identify(path: str, convs: list[Arrays]) -> tuple[str, float]:
    try:
        return identify_vgg([kernel.shape for kernel, _ in convs])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _read_torch(path: str, container: str) -> PretrainedWeights:
    if container == "zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise ValueError(f"{path}: a zip archive that cannot be read ({exc}); the file is "
                             f"truncated or corrupt.") from exc
        if "config.json" in names and "model.weights.h5" in names:
            raise ValueError(f"{path}: a Keras model archive (.keras), not a weight file; load "
                             f"it with keras.saving.load_model(path).")
        if not any(name.endswith("data.pkl") for name in names):
            raise ValueError(f"{path}: a zip archive but not a PyTorch file (no data.pkl inside).")
    try:
        import torch
    except ImportError as exc:
        raise ImportError(f"{path} is a PyTorch file; reading it needs PyTorch: "
                          f"pip install 'vgg_keras[torch]'") from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        pickled = "weights_only" in str(exc) or "Weights only" in str(exc)
        problem = ("it holds more than tensors (a whole pickled model?); save model.state_dict()"
                   " instead" if pickled else "the file is truncated or corrupt")
        raise ValueError(f"{path}: torch.load could not read this {container} file: {problem} "
                         f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}).") from exc
    # Training scripts often save {"state_dict": ...} or {"model": ...}, and DataParallel
    # prefixes every key with "module.".
    if isinstance(state, dict):
        state = next((state[key] for key in ("state_dict", "model")
                      if isinstance(state.get(key), dict)), state)
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: the PyTorch file holds a {type(state).__name__}, not a state "
                         f"dict.")
    for key, value in state.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise ValueError(f"{path}: not a model state dict (entry {key!r} is a "
                             f"{type(value).__name__}).")
    # float32 first: bfloat16 has no numpy dtype, and the Keras model is float32.
    return _convert_torch(path, {key.removeprefix("module."): value.detach().float().numpy()
                                 for key, value in state.items()})


def _convert_torch(path: str, arrays: dict[str, np.ndarray]) -> PretrainedWeights:
    if any(key.endswith(("running_mean", "running_var", "num_batches_tracked")) for key in arrays):
        raise ValueError(
            f"{path}: a batch-normalised VGG (torchvision vgg*_bn); batch normalisation is not "
            f"part of VGG as in the paper and build_vgg has no such layers. Use torchvision's "
            f"vgg11/vgg13/vgg16/vgg19 weights.")
    kernels = sorted((int(key.split(".")[1]), value) for key, value in arrays.items()
                     if re.fullmatch(r"features\.\d+\.weight", key) and value.ndim == 4)
    if not kernels:
        raise ValueError(f"{path}: not a torchvision VGG state dict (no features.<i>.weight "
                         f"convolution kernels); its keys include {sorted(arrays)[:8]}.")
    # PyTorch conv kernels are (out, in, h, w); Keras wants (h, w, in, out). Both compute a
    # cross-correlation, so no kernel flip is needed.
    convs = [[kernel.transpose(2, 3, 1, 0), arrays.get(f"features.{index}.bias")]
             for index, kernel in kernels]
    arch, width = _identify(path, convs)
    # torchvision's features hold (conv, ReLU) per conv layer and a MaxPool after each block.
    blocks = [len(block) for block in ARCHITECTURES[arch]]
    indices = [2 * (conv + sum(blocks[:b])) + b for b, n in enumerate(blocks) for conv in range(n)]
    expected = [f"{module}.{index}.{kind}" for module, at in
                (("features", indices), ("classifier", (0, 3, 6)))
                for index in at for kind in ("weight", "bias")]
    name = TORCHVISION_NAMES.get(arch)
    description = f"torchvision {name} state dict" if name else "torchvision state dict"
    if not any(key.startswith("classifier.") for key in arrays):
        expected, description = expected[:2 * len(indices)], description + " (features only)"
    if sorted(arrays) != sorted(expected):
        raise ValueError(f"{path}: not torchvision's {name or arch} (conv layers at features "
                         f"{indices}, Linear layers at classifier 0, 3 and 6): missing "
                         f"{[k for k in expected if k not in arrays]}, unexpected "
                         f"{sorted(k for k in arrays if k not in expected)}.")
    head = []
    if "classifier.0.weight" in arrays:
        fc6, fc7, fc8 = (arrays[f"classifier.{index}.weight"] for index in (0, 3, 6))
        channels = convs[-1][0].shape[-1]
        if fc6.ndim != 2 or fc6.shape[1] != channels * 49 or fc7.ndim != 2 or fc8.ndim != 2:
            raise ValueError(f"{path}: classifier weights of shapes "
                             f"{[fc6.shape, fc7.shape, fc8.shape]}; torchvision's are Linear, fc6 "
                             f"reading the 7x7x{channels} map of AdaptiveAvgPool2d((7, 7)).")
        # torchvision flattens pool5 as (C, 7, 7); Keras' Flatten is (7, 7, C): reorder fc6's
        # input rows so that each weight still meets the activation it was trained on.
        fc6 = fc6.T.reshape(channels, 7, 7, -1).transpose(1, 2, 0, 3).reshape(49 * channels, -1)
        head = [[kernel, arrays[f"classifier.{index}.bias"]]
                for kernel, index in ((fc6, 0), (fc7.T, 3), (fc8.T, 6))]
    return PretrainedWeights(path, description, arch, width, convs, head,
                             dict(TORCHVISION_PREPROCESSING))


def _read_h5(path: str, read: Callable[[str, Any], Any]) -> Any:
    """``read(path, file)`` of the HDF5 file at ``path``; one h5py cannot read is a ValueError."""
    import h5py

    try:
        with h5py.File(path, "r") as file:
            return read(path, file)
    except OSError as exc:
        raise ValueError(f"{path}: an HDF5 file that cannot be read ({exc}); it is truncated or "
                         f"corrupt.") from exc


def _attr_list(group: Any, name: str) -> list[str]:
    # Keras splits attributes over 64 KB into name0, name1, ... (HDF5's header limit).
    values, chunk = list(group.attrs.get(name, [])), 0
    while f"{name}{chunk}" in group.attrs:
        values, chunk = values + list(group.attrs[f"{name}{chunk}"]), chunk + 1
    return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]


def _keras_layers(path: str, file: Any) -> list[tuple[str, Arrays]]:
    """``[(layer name, arrays)]`` of a Keras weight file's layers with weights, in model order."""
    group = file["model_weights"] if "model_weights" in file else file  # legacy model.save
    if "layer_names" in group.attrs:  # the legacy format
        # The order within a group is kernel, bias; the names differ between writers
        # ("block1_conv1_W_1:0" in the 2016 downloads, later "block1_conv1/kernel").
        names = _attr_list(group, "layer_names")
        if any(name not in group for name in names):
            raise ValueError(f"{path}: layers {[n for n in names if n not in group]} are listed "
                             f"but have no group.")
        layers = [(name, [np.asarray(group[name][w], "float32")
                          for w in _attr_list(group[name], "weight_names")]) for name in names]
        return [(name, arrays) for name, arrays in layers if arrays]
    if not hasattr(file.get("layers"), "keys"):
        raise ValueError(f"{path}: an HDF5 file without Keras weights (no 'layer_names' "
                         f"attribute and no 'layers' group).")
    # Keras 3: each layer's "vars" group carries its name (nested models too), and the groups
    # are named conv2d, conv2d_1, ..., conv2d_12 in model order.
    keys: list[str] = []
    file.visit(lambda key: keys.append(key) if key.rsplit("/", 1)[-1] == "vars" else None)
    keys.sort(key=lambda key: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)])
    return [(str(file[key].attrs.get("name", key)),
             [np.asarray(file[key][k], "float32") for k in sorted(file[key], key=int)])
            for key in keys if len(file[key]) and not key.startswith("optimizer")]


def _split(path: str, layers: list[tuple[str, Arrays]]) -> tuple[list[Arrays], list[Arrays]]:
    """The convolutions and the dense layers of a Keras file, each in order."""
    for name, arrays in layers:
        kernel = arrays[0]
        if not (len(arrays) == 2 and arrays[1].ndim == 1 and kernel.ndim in (2, 4)
                and (kernel.ndim == 2 or kernel.shape[0] == kernel.shape[1])):
            raise ValueError(
                f"{path}: layer {name!r} has weights of shapes {[a.shape for a in arrays]}; a "
                f"keras.applications VGG has only square (h, w, in, out) convolutions and dense "
                f"layers, with biases (Theano-ordered 'th_dim_ordering' files are not supported). "
                f"A file saved from a vgg_keras model loads with model.load_weights(path).")
    return ([arrays for _, arrays in layers if arrays[0].ndim == 4],
            [arrays for _, arrays in layers if arrays[0].ndim == 2])


def _read_keras(path: str, file: Any) -> PretrainedWeights:
    convs, denses = _split(path, _keras_layers(path, file))
    arch, width = _identify(path, convs)
    if arch not in KERAS_NAMES:
        raise ValueError(f"{path}: configuration {arch}; keras.applications has VGG16 (D) and "
                         f"VGG19 (E) only, and the input convention of other files is unknown.")
    if len(denses) not in (0, 3):
        raise ValueError(f"{path}: {len(denses)} dense layers; a keras.applications VGG has fc1, "
                         f"fc2 and predictions, or none in a _notop file.")
    layout = "legacy HDF5 weights" if "layers" not in file else "Keras 3 .weights.h5"
    description = f"keras.applications {KERAS_NAMES[arch]}{'' if denses else ' (notop)'} {layout}"
    # keras.applications and build_vgg both flatten pool5 as (h, w, c): no reordering.
    return PretrainedWeights(path, description, arch, width, convs, denses,
                             dict(CAFFE_PREPROCESSING))


def _read_json(path: str, name: str, class_name: str | None = None) -> dict[str, Any]:
    """The ``config`` of keras-hub's ``name`` in the preset ``path``, of class ``class_name``."""
    file = os.path.join(path, name)
    try:
        with open(file, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file}: not a readable JSON file ({exc}).") from exc
    if not isinstance(value, dict) or not isinstance(value.get("config"), dict):
        raise ValueError(f"{file}: not a keras-hub config (no 'class_name' and 'config').")
    if class_name and value.get("class_name") != class_name:
        raise ValueError(f"{file}: a keras-hub {value.get('class_name')!r}, not a {class_name}.")
    return value["config"]


def _preset_file(path: str, name: str, beside: str) -> str:
    if not os.path.isfile(os.path.join(path, name)):
        raise ValueError(f"{path}: the preset has {beside} but no {name}.")
    return os.path.join(path, name)


def _read_keras_hub(path: str) -> PretrainedWeights:
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"{path} is a directory but not a keras-hub preset (no config.json); "
                         f"pass a .pth or .h5 weight file, or a preset directory.")
    config = _read_json(path, "config.json", "VGGBackbone")
    weights_file = _preset_file(path, "model.weights.h5", "config.json")
    convs, _ = _split(weights_file, _read_h5(weights_file, _keras_layers))
    arch, width = _identify(weights_file, convs)
    # The weights fix the net; a config that builds another one is a damaged preset.
    repeats = [len(block) for block in ARCHITECTURES[arch]]
    filters = [int(convs[sum(repeats[:b])][0].shape[-1]) for b in range(len(repeats))]
    found = [config.get("stackwise_num_repeats"), config.get("stackwise_num_filters")]
    if found != [repeats, filters]:
        raise ValueError(f"{os.path.join(path, 'config.json')}: stackwise_num_repeats and "
                         f"stackwise_num_filters {found} are not the paper's configuration "
                         f"{arch} at width {width:g}, {[repeats, filters]}, as in {weights_file}.")
    head: list[Arrays] = []
    input_shape = (224, 224, 3)
    description = f"keras-hub {TORCHVISION_NAMES[arch]} preset"
    if os.path.isfile(os.path.join(path, "task.json")):
        image_shape = config.get("image_shape") or [None, None, 3]
        head, input_shape = _keras_hub_head(path, convs[-1][0].shape[-1], image_shape)
    else:
        description += " (backbone only)"
    return PretrainedWeights(path, description, arch, width, convs, head,
                             _keras_hub_preprocessing(path), input_shape)


def _keras_hub_head(path: str, channels: int, image_shape: list[int | None]
                    ) -> tuple[list[Arrays], tuple[int, int, int]]:
    """fc6-fc8 of a ``VGGImageClassifier``'s head, and the input size its fc6 is made for."""
    task = _read_json(path, "task.json", "VGGImageClassifier")
    weights_file = _preset_file(path, "task.weights.h5", "task.json")
    variables = dict(_read_h5(weights_file, _keras_layers))
    missing = [name for name in ("fc1", "fc2", "predictions") if name not in variables]
    if missing:
        raise ValueError(f"{weights_file}: no weights for {missing} (a VGGImageClassifier head "
                         f"has fc1, fc2 and predictions).")
    (fc1, b1), (fc2, b2), (fc3, b3) = (variables[n] for n in ("fc1", "fc2", "predictions"))
    # fc1 reads a side x side pool5 map flattened ("flatten" pooling), or as one 7x7
    # convolution whose single output global pooling passes on (fc2 then a 1x1 one): at 224
    # pixels exactly fc6 reading the flattened map, both flattening as height, width, channel.
    flatten, inputs = task.get("pooling") == "flatten", fc1[..., 0].size
    side = round((inputs / channels) ** 0.5)
    if (fc1.ndim == 2) != flatten or side * side * channels != inputs or not (flatten or side == 7):
        raise ValueError(f"{weights_file}: pooling {task.get('pooling')!r} with fc1 {fc1.shape}: "
                         f"not a head of VGGImageClassifier's two forms.")
    height, width = (s or 32 * side for s in image_shape[:2]) if flatten else (224, 224)
    if task.get("activation") not in (None, "linear"):
        log.info("%s: the preset's classifier applies %r; the loaded model returns logits",
                 path, task["activation"])
    return [[fc1.reshape(-1, fc1.shape[-1]), b1], [fc2.reshape(-1, fc2.shape[-1]), b2],
            [fc3, b3]], (int(height), int(width), 3)


def _keras_hub_preprocessing(path: str) -> dict[str, Any]:
    """The preset's ``ImageConverter`` (``x * scale + offset`` on 0-255 RGB) as ``mean``/``std``
    on the 0-255 scale: ``mean = -offset / scale``, ``std = 1 / scale``."""
    names = [name for name in ("image_converter.json", "preprocessor.json")
             if os.path.isfile(os.path.join(path, name))]
    if not names:
        log.warning("%s: no image_converter.json; the model passes pixels on unnormalised", path)
        return {"mean": (0.0, 0.0, 0.0), "std": None, "channel_order": "rgb"}
    config = _read_json(path, names[0])
    converter = config.get("image_converter", {}).get("config", config)
    scale = np.broadcast_to(np.asarray(converter.get("scale") or 1.0, "float64"), (3,))
    offset = np.broadcast_to(np.asarray(converter.get("offset") or 0.0, "float64"), (3,))
    std = None if np.all(scale == 1.0) else tuple(float(v) for v in 1.0 / scale)
    return {"mean": tuple(float(v) for v in -offset / scale), "std": std, "channel_order": "rgb"}
