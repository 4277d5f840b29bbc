"""Pretrained weight files, for ``build_vgg(arch, weights=path)`` (:mod:`vgg_keras.released`
fetches the published ones by name).

Three sources, all converted to ``build_vgg``'s layer names and Keras layouts:

- torchvision ``vgg11``/``vgg13``/``vgg16``/``vgg19`` state dicts (``.pth``) for configurations
  A, B, D and E. Needs PyTorch (``pip install 'vgg_keras[torch]'``); torchvision does not.
- keras.applications ``VGG16``/``VGG19`` HDF5 weight files for D and E: the legacy downloads
  ``vgg16_weights_tf_dim_ordering_tf_kernels.h5`` (and ``_notop``), and Keras 3
  ``.weights.h5`` files written by ``keras.applications.VGG16(...).save_weights``.
- keras-hub VGG preset directories (``VGGBackbone`` with ``config.json`` and
  ``model.weights.h5``; with ``task.json`` and ``task.weights.h5`` for a ``VGGImageClassifier``),
  as ``save_to_preset`` writes them and as ``from_preset("vgg_16_imagenet")`` caches them:
  configurations A, B, D and E at any width.

Each source also fixes how input pixels must be normalised; that goes into the model's
``normalization`` layer, so the loaded model still takes RGB images in [0, 255]. This module
reads local files only. The format is read from the file's first bytes, not its extension.

>>> from vgg_keras import build_vgg
>>> model = build_vgg("D", weights="vgg16-397923af.pth")       # doctest: +SKIP
>>> notop = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
>>> backbone = build_vgg("E", include_top=False, weights=notop)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import errno
import logging
import os
import re
import zipfile

from typing import TYPE_CHECKING

import numpy as np

from .configs import CONFIGS, parse_layer
from .released import NAMES

if TYPE_CHECKING:
    import keras

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
HEAD = ("fc6", "fc7", "fc8")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_ZIP_SIGNATURE = b"PK\x03\x04"
# A-LRN's LRN has no weights, so its files would be indistinguishable from A's; no published
# weights exist for it, and matching it would hide that the nets differ.
_IDENTIFIABLE = tuple(key for key in CONFIGS if key != "A-LRN")

__all__ = [
    "CAFFE_PREPROCESSING",
    "TORCHVISION_PREPROCESSING",
    "PretrainedWeights",
    "read_pretrained",
]


def _conv_layers(key):
    """``[(layer name, kernel size)]`` of configuration ``key``, named as ``vgg_backbone`` does."""
    layers = []
    for block_index, block in enumerate(CONFIGS[key], start=1):
        convs = [parse_layer(spec) for spec in block if parse_layer(spec) is not None]
        for conv_index, (kernel_size, _) in enumerate(convs, start=1):
            layers.append((f"block{block_index}_conv{conv_index}", kernel_size))
    return layers


def _torchvision_feature_indices(key):
    """Indices of the convolutions in torchvision's ``features`` (conv, ReLU, ..., MaxPool)."""
    indices, index = [], 0
    for block in CONFIGS[key]:
        for spec in block:
            if parse_layer(spec) is not None:
                indices.append(index)
                index += 2
        index += 1
    return indices


def _identify(kernel_sizes):
    """The configuration whose conv layers have these kernel sizes, in order, or None."""
    kernel_sizes = [int(size) for size in kernel_sizes]
    for key in _IDENTIFIABLE:
        if [size for _, size in _conv_layers(key)] == kernel_sizes:
            return key
    return None


def _describe_arch(key):
    return f"configuration {key} ({len(_conv_layers(key))} conv layers)"


@dataclasses.dataclass
class PretrainedWeights:
    """Weights read from a file, already in ``build_vgg``'s layout.

    ``layers`` maps layer names (``block{b}_conv{i}``, and ``fc6``, ``fc7``, ``fc8`` unless the
    file has no classifier) to ``[kernel, bias]`` float32 arrays; ``preprocessing`` holds the
    ``InputNormalization`` arguments the weights were trained with; ``input_shape`` the input
    whose pool5 map the file's fc6 reads whole.
    """

    path: str
    description: str
    arch: str
    layers: dict[str, list[np.ndarray]]
    preprocessing: dict
    input_shape: tuple[int, int, int] = (224, 224, 3)

    @property
    def has_top(self) -> bool:
        return "fc8" in self.layers

    @property
    def num_classes(self) -> int | None:
        return self.layers["fc8"][1].shape[0] if self.has_top else None

    def check_build_args(self, arch: str, *, include_top: bool,
                         preprocessing: str | dict | None) -> dict:
        """Refuse ``build_vgg`` arguments the file cannot fill; return the preprocessing to use.

        Runs before the model is built, so a wrong call fails before allocating the weights.
        """
        if arch != self.arch:
            hint = f"use build_vgg({self.arch!r}, weights=...)"
            if arch == "A-LRN" and self.arch == "A":
                hint = "A-LRN has an LRN layer these weights were not trained with; " + hint
            raise ValueError(
                f"{self.path}: this {self.description} is {_describe_arch(self.arch)}, but "
                f"build_vgg was asked for configuration {arch} ({len(_conv_layers(arch))} conv "
                f"layers); {hint}."
            )
        if include_top and not self.has_top:
            raise ValueError(
                f"{self.path}: this {self.description} has no classifier (fc6-fc8), only the conv "
                f"layers; build with include_top=False."
            )
        # Only the default is accepted: anything else asks for an input convention other than
        # the one the weights were trained with, which would silently give wrong predictions.
        if not (isinstance(preprocessing, str) and preprocessing == "imagenet"):
            raise ValueError(
                f"{self.path}: the {self.description} sets the model's input normalisation "
                f"itself ({_describe_preprocessing(self.preprocessing)}), so the model still "
                f"takes RGB in [0, 255]; leave preprocessing at its default "
                f"(got {preprocessing!r})."
            )
        return dict(self.preprocessing)

    def load_into(self, model: keras.Model, *, fresh: tuple[str, ...] = ()) -> None:
        """Set every conv (and, if the model has them, FC) layer of ``model`` from the file,
        but the layers named in ``fresh``, which keep their initialisation (a new fc8 for
        other classes).

        All shapes are checked before anything is assigned, so a mismatch leaves the model
        untouched. A model without the top takes only the conv layers.
        """
        has_top = any(layer.name == "fc8" for layer in model.layers)
        names = [name for name in self.layers
                 if (has_top or name not in HEAD) and name not in fresh]
        for name in names:
            try:
                layer = model.get_layer(name)
            except ValueError as exc:
                raise ValueError(f"{self.path}: the model has no layer {name!r} to fill.") from exc
            expected = [tuple(w.shape) for w in layer.weights]
            found = [tuple(v.shape) for v in self.layers[name]]
            if expected != found:
                raise ValueError(
                    f"{self.path}: layer {name!r} has weight shapes {found} in the file but "
                    f"{expected} in the model; {self._mismatch_hint(model, name, found, expected)}"
                )
        filled = set(names) | set(fresh) | {"normalization"}
        empty = [layer.name for layer in model.layers if layer.weights and layer.name not in filled]
        if empty:
            raise ValueError(f"{self.path}: the file has no weights for layers {empty}.")
        for name in names:
            model.get_layer(name).set_weights(self.layers[name])
        skipped = [name for name in self.layers if name not in names and name not in fresh]
        if skipped:
            log.info("%s: include_top=False, so %s were not loaded", self.path, ", ".join(skipped))
        if fresh:
            log.info("%s: %s not loaded, randomly initialised (the file's has %s outputs, the "
                     "model's %s)", self.path, ", ".join(fresh), self.num_classes,
                     model.get_layer("fc8").units if has_top else "none")
        log.info("Loaded %s %s into %s", self.description, self.path, model.name)

    def _mismatch_hint(self, model, name, found, expected):
        pool = tuple(model.get_layer("block5_pool").output.shape[1:])
        side = round((found[0][0] / pool[-1]) ** 0.5) if name == "fc6" else 0
        if side and found[0][1:] == expected[0][1:] and side * side * pool[-1] == found[0][0]:
            return (
                f"fc6 reads the whole pool5 map, which is {pool} for input_shape="
                f"{tuple(model.input_shape[1:])}; the file's fc6 reads a {side}x{side} map (inputs "
                f"of {32 * side} to {32 * side + 31} pixels). Build with input_shape=("
                f"{32 * side}, {32 * side}, 3), or include_top=False for other sizes."
            )
        if found[0] != expected[0]:
            return (
                "the file was made for other channel counts: build with the width it was "
                "trained with (1.0 for published weights)."
            )
        return "the file does not fit this model."


def _describe_preprocessing(preprocessing):
    mean = ", ".join(f"{v:g}" for v in preprocessing["mean"])
    text = f"{preprocessing['channel_order'].upper()} with mean ({mean})"
    if preprocessing["std"] is not None:
        text += " and std (" + ", ".join(f"{v:g}" for v in preprocessing["std"]) + ")"
    return text + " on the 0-255 scale"


def read_pretrained(path: str | os.PathLike) -> PretrainedWeights:
    """Read a torchvision state dict, a keras.applications HDF5 file or a keras-hub preset
    directory into build_vgg's layout.

    Raises FileNotFoundError for a missing file, ImportError when a ``.pth`` needs PyTorch and
    it is not installed, and ValueError, naming the file, for anything that is not a complete
    VGG weight file of a known layout.

    >>> pretrained = read_pretrained("vgg16-397923af.pth")      # doctest: +SKIP
    >>> pretrained.arch, pretrained.num_classes, pretrained.description   # doctest: +SKIP
    ('D', 1000, 'torchvision vgg16 state dict')
    """
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        hint = ("pass the path of a .pth or .h5 file or a keras-hub preset directory, or a "
                "released name: " + ", ".join(NAMES))
        raise FileNotFoundError(errno.ENOENT, f"No such weights file ({hint})", path)
    if os.path.isdir(path):
        return _read_keras_hub(path)
    with open(path, "rb") as file:
        head = file.read(8)
    if head.startswith(_ZIP_SIGNATURE):
        _check_torch_zip(path)
        return _read_torch(path, "zip")
    if head[:1] == b"\x80":
        # A pickle (protocol 2+): torch.save's format before PyTorch 1.6.
        return _read_torch(path, "pickle")
    if head == _HDF5_SIGNATURE or _is_hdf5(path):
        return _read_keras(path)
    raise ValueError(
        f"{path}: neither a PyTorch state dict nor a Keras HDF5 weight file (it starts with "
        f"{head!r}, not a zip, pickle or HDF5 signature)."
    )


def _is_hdf5(path):
    # HDF5 allows a user block before the signature; h5py knows where to look.
    import h5py

    try:
        return h5py.is_hdf5(path)
    except OSError:
        return False


def _check_torch_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ValueError(
            f"{path}: a zip archive that cannot be read ({exc}); the file is truncated or "
            f"corrupt."
        ) from exc
    if "config.json" in names and "model.weights.h5" in names:
        raise ValueError(
            f"{path}: a Keras model archive (.keras), not a weight file; load it with "
            f"keras.saving.load_model(path)."
        )
    if not any(name.endswith("data.pkl") for name in names):
        raise ValueError(f"{path}: a zip archive but not a PyTorch file (no data.pkl inside).")


def _read_torch(path, container):
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            f"{path} is a PyTorch file; reading it needs PyTorch: "
            f"pip install 'vgg_keras[torch]'"
        ) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ...
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            problem = ("it holds more than tensors (a whole pickled model?); save "
                       "model.state_dict() instead")
        else:
            problem = "the file is truncated or corrupt"
        raise ValueError(
            f"{path}: torch.load could not read this {container} file: {problem} "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})."
        ) from exc
    return _convert_torch(path, _unwrap_state_dict(path, state, torch))


def _unwrap_state_dict(path, state, torch):
    # Training scripts often save {"state_dict": ...} or {"model": ...}, and DataParallel
    # prefixes every key with "module.".
    if isinstance(state, dict) and len(state) >= 1:
        for key in ("state_dict", "model"):
            if isinstance(state.get(key), dict):
                state = state[key]
                break
    if not isinstance(state, dict) or not state:
        raise ValueError(
            f"{path}: the PyTorch file holds a {type(state).__name__}, not a state dict."
        )
    arrays = {}
    for key, value in state.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise ValueError(
                f"{path}: not a model state dict (entry {key!r} is a {type(value).__name__})."
            )
        key = key.removeprefix("module.")
        # float32 first: bfloat16 has no numpy dtype, and the Keras model is float32.
        arrays[key] = value.detach().to(torch.float32).numpy()
    return arrays


_FEATURE_KEY = re.compile(r"features\.(\d+)\.(weight|bias)")
_CLASSIFIER_KEY = re.compile(r"classifier\.(\d+)\.(weight|bias)")


def _convert_torch(path, arrays):
    if any(key.endswith(("running_mean", "running_var", "num_batches_tracked")) for key in arrays):
        raise ValueError(
            f"{path}: a batch-normalised VGG (torchvision vgg*_bn); batch normalisation is not "
            f"part of VGG as in the paper and build_vgg has no such layers. Use torchvision's "
            f"vgg11/vgg13/vgg16/vgg19 weights."
        )
    features, classifier, unknown = {}, {}, []
    for key, value in arrays.items():
        for pattern, table in ((_FEATURE_KEY, features), (_CLASSIFIER_KEY, classifier)):
            match = pattern.fullmatch(key)
            if match:
                table.setdefault(int(match.group(1)), {})[match.group(2)] = value
                break
        else:
            unknown.append(key)
    if unknown or not features:
        raise ValueError(
            f"{path}: not a torchvision VGG state dict (keys features.<i>.weight/bias and "
            f"classifier.<i>.weight/bias); unexpected keys: {sorted(unknown)[:8]}."
        )
    description = "torchvision state dict"
    indices = sorted(features)
    for index in indices:
        entry = features[index]
        weight = entry.get("weight")
        square = weight is not None and weight.ndim == 4 and weight.shape[2] == weight.shape[3]
        if set(entry) != {"weight", "bias"} or not square:
            raise ValueError(
                f"{path}: features.{index} is not a convolution with a square kernel and a bias "
                f"({ {k: v.shape for k, v in entry.items()} }); not a torchvision VGG."
            )
    arch = _identify(features[i]["weight"].shape[2] for i in indices)
    if arch is None:
        raise ValueError(
            f"{path}: {len(indices)} conv layers (kernel sizes "
            f"{[features[i]['weight'].shape[2] for i in indices]}) match no VGG configuration."
        )
    if indices != _torchvision_feature_indices(arch):
        raise ValueError(
            f"{path}: the conv layers sit at features indices {indices}, but torchvision's "
            f"{TORCHVISION_NAMES.get(arch, arch)} has them at {_torchvision_feature_indices(arch)}."
        )
    if arch in TORCHVISION_NAMES:
        description = f"torchvision {TORCHVISION_NAMES[arch]} state dict"

    layers = {}
    for (name, _), index in zip(_conv_layers(arch), indices):
        # PyTorch conv kernels are (out, in, h, w); Keras wants (h, w, in, out). Both compute a
        # cross-correlation, so no kernel flip is needed.
        layers[name] = [features[index]["weight"].transpose(2, 3, 1, 0), features[index]["bias"]]
    if classifier:
        if sorted(classifier) != [0, 3, 6] or any(set(e) != {"weight", "bias"}
                                                  for e in classifier.values()):
            raise ValueError(
                f"{path}: torchvision's classifier has Linear layers at indices 0, 3 and 6 "
                f"(weight and bias each); this file has "
                f"{ {i: sorted(e) for i, e in sorted(classifier.items())} }."
            )
        channels = features[indices[-1]]["weight"].shape[0]
        fc6 = classifier[0]["weight"]
        if fc6.ndim != 2 or fc6.shape[1] != channels * 49:
            raise ValueError(
                f"{path}: classifier.0.weight has shape {fc6.shape}; torchvision's fc6 reads the "
                f"7x7x{channels} map of AdaptiveAvgPool2d((7, 7)), i.e. {channels * 49} inputs."
            )
        # torchvision flattens pool5 as (C, 7, 7); Keras' Flatten is (7, 7, C): reorder fc6's
        # input rows so that each weight still meets the activation it was trained on.
        kernel = fc6.T.reshape(channels, 7, 7, -1).transpose(1, 2, 0, 3).reshape(49 * channels, -1)
        layers["fc6"] = [kernel, classifier[0]["bias"]]
        for name, index in (("fc7", 3), ("fc8", 6)):
            if classifier[index]["weight"].ndim != 2:
                raise ValueError(f"{path}: classifier.{index}.weight is not a Linear weight.")
            layers[name] = [classifier[index]["weight"].T, classifier[index]["bias"]]
    else:
        description += " (features only)"
    return PretrainedWeights(path, description, arch, layers, dict(TORCHVISION_PREPROCESSING))


def _read_keras(path):
    import h5py

    try:
        with h5py.File(path, "r") as file:
            layers, layout = _keras_layers(path, file)
    except OSError as exc:
        raise ValueError(
            f"{path}: an HDF5 file that cannot be read ({exc}); it is truncated or corrupt."
        ) from exc
    return _convert_keras(path, layers, layout)


def _attr_list(group, name):
    # Keras splits attributes over 64 KB into name0, name1, ... (HDF5's header limit).
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values.extend(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in values]


def _natural_key(name):
    base, _, number = name.rpartition("_")
    return (base, int(number)) if base and number.isdigit() else (name, 0)


def _keras_layers(path, file):
    """``[(layer name, [arrays])]`` in model order, for the layers that have weights."""
    import h5py

    group = file
    if "layer_names" not in file.attrs and "model_weights" in file:
        group = file["model_weights"]  # a whole model saved with the legacy model.save(".h5")
    if "layer_names" in group.attrs:
        layers = []
        for name in _attr_list(group, "layer_names"):
            if name not in group:
                raise ValueError(f"{path}: layer {name!r} is listed but has no group.")
            # Rely on the order within the group (kernel, bias), not on the weight names: the
            # 2016 downloads say "block1_conv1_W_1:0", later writers "block1_conv1/kernel".
            names = _attr_list(group[name], "weight_names")
            if names:
                layers.append((name, [np.asarray(group[name][w], dtype="float32") for w in names]))
        return layers, "legacy HDF5 weights"
    if isinstance(file.get("layers"), h5py.Group):
        layers = []
        for key in sorted(file["layers"], key=_natural_key):
            entry = file["layers"][key]
            extra = [k for k in entry if k != "vars"]
            if extra:
                raise ValueError(
                    f"{path}: layer group {key!r} holds {extra}; only plain layers are expected."
                )
            variables = entry.get("vars")
            if variables is None or not len(variables):
                continue
            name = variables.attrs.get("name", key)
            name = name.decode("utf8") if hasattr(name, "decode") else str(name)
            arrays = [np.asarray(variables[k], dtype="float32")
                      for k in sorted(variables, key=int)]
            layers.append((name, arrays))
        return layers, "Keras 3 .weights.h5"
    raise ValueError(
        f"{path}: an HDF5 file without Keras weights (no 'layer_names' attribute and no "
        f"'layers' group)."
    )


def _convert_keras(path, layers, layout):
    convs, denses = [], []
    for name, arrays in layers:
        shapes = [a.shape for a in arrays]
        if len(arrays) == 2 and arrays[1].ndim == 1 and arrays[0].ndim in (2, 4):
            (convs if arrays[0].ndim == 4 else denses).append((name, arrays))
            continue
        raise ValueError(
            f"{path}: layer {name!r} has weights of shapes {shapes}; a keras.applications VGG has "
            f"only convolutions and dense layers (kernel, bias). A file saved from a vgg_keras "
            f"model loads with model.load_weights(path)."
        )
    for name, (kernel, _) in convs:
        if kernel.shape[0] != kernel.shape[1]:
            raise ValueError(
                f"{path}: layer {name!r} has kernel shape {kernel.shape}, not (h, w, in, out); "
                f"Theano-ordered ('th_dim_ordering') files are not supported, use the "
                f"tf_dim_ordering_tf_kernels file."
            )
    arch = _identify(kernel.shape[0] for _, (kernel, _) in convs)
    if arch not in KERAS_NAMES:
        found = f"configuration {arch}" if arch else "no VGG configuration"
        raise ValueError(
            f"{path}: {len(convs)} conv layers, i.e. {found}; keras.applications has VGG16 (D) "
            f"and VGG19 (E) only, and the input convention of other files is unknown."
        )
    if len(denses) not in (0, 3):
        raise ValueError(
            f"{path}: {len(denses)} dense layers ({[n for n, _ in denses]}); a keras.applications "
            f"VGG has fc1, fc2 and predictions, or none in a _notop file."
        )
    top = "" if denses else " (notop)"
    description = f"keras.applications {KERAS_NAMES[arch]}{top} {layout}"
    # keras.applications and build_vgg both flatten pool5 as (h, w, c): no reordering.
    converted = {name: arrays for (name, _), (_, arrays) in zip(_conv_layers(arch), convs)}
    converted.update({name: arrays for name, (_, arrays) in zip(HEAD, denses)})
    return PretrainedWeights(path, description, arch, converted, dict(CAFFE_PREPROCESSING))


KERAS_HUB_CLASSES = {"backbone": "VGGBackbone", "task": "VGGImageClassifier"}


def _read_json(path, name):
    import json

    file = os.path.join(path, name)
    try:
        with open(file, encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{file}: not a readable JSON file ({exc}).") from exc
    if not isinstance(value, dict) or not isinstance(value.get("config"), dict):
        raise ValueError(f"{file}: not a keras-hub config (no 'class_name' and 'config').")
    return value


def _read_keras_hub(path):
    config_file = os.path.join(path, "config.json")
    if not os.path.isfile(config_file):
        raise ValueError(
            f"{path} is a directory but not a keras-hub preset (no config.json); pass a .pth or "
            f".h5 weight file, or a preset directory."
        )
    backbone = _read_json(path, "config.json")
    if backbone.get("class_name") != KERAS_HUB_CLASSES["backbone"]:
        raise ValueError(
            f"{config_file}: a keras-hub preset of {backbone.get('class_name')!r}, not a "
            f"VGGBackbone."
        )
    config = backbone["config"]
    repeats = list(config.get("stackwise_num_repeats", []))
    filters = list(config.get("stackwise_num_filters", []))
    arch = _identify([3] * sum(repeats)) if len(repeats) == len(filters) == 5 else None
    if arch is None or [len([s for s in block if parse_layer(s)]) for block in CONFIGS[arch]
                        ] != repeats:
        raise ValueError(
            f"{config_file}: stackwise_num_repeats {repeats} with filters {filters} is no "
            f"configuration of the paper (A [1, 1, 2, 2, 2], B [2, 2, 2, 2, 2], D [2, 2, 3, 3, 3], "
            f"E [2, 2, 4, 4, 4])."
        )
    width = filters[0] / 64
    expected = [max(1, int(round(c * width))) for c in (64, 128, 256, 512, 512)]
    if filters != expected:
        raise ValueError(
            f"{config_file}: stackwise_num_filters {filters} is not the paper's (64, 128, 256, "
            f"512, 512) scaled by one width ({width:g} gives {expected})."
        )
    weights_file = os.path.join(path, "model.weights.h5")
    if not os.path.isfile(weights_file):
        raise ValueError(f"{path}: the preset has config.json but no model.weights.h5.")
    variables = _keras3_variables(weights_file)
    layers = {}
    for name, _ in _conv_layers(arch):
        arrays = variables.get(name)
        if arrays is None or len(arrays) != 2:
            raise ValueError(f"{weights_file}: no kernel and bias for {name!r}.")
        layers[name] = arrays
    image_shape = config.get("image_shape") or [None, None, 3]
    input_shape = (224, 224, 3)
    description = f"keras-hub {TORCHVISION_NAMES[arch]} preset"
    if os.path.isfile(os.path.join(path, "task.json")):
        head, input_shape = _keras_hub_head(path, filters[-1], image_shape)
        layers.update(head)
    else:
        description += " (backbone only)"
    return PretrainedWeights(path, description, arch, layers, _keras_hub_preprocessing(path),
                             input_shape)


def _keras_hub_head(path, channels, image_shape):
    """fc6-fc8 of a ``VGGImageClassifier``'s head, and the input size its fc6 is made for."""
    task_file = os.path.join(path, "task.json")
    task = _read_json(path, "task.json")
    if task.get("class_name") != KERAS_HUB_CLASSES["task"]:
        raise ValueError(f"{task_file}: a {task.get('class_name')!r} task, not a "
                         f"VGGImageClassifier.")
    pooling = task["config"].get("pooling", "avg")
    weights_file = os.path.join(path, "task.weights.h5")
    if not os.path.isfile(weights_file):
        raise ValueError(f"{path}: the preset has task.json but no task.weights.h5.")
    variables = _keras3_variables(weights_file)
    missing = [name for name in ("fc1", "fc2", "predictions") if name not in variables]
    if missing:
        raise ValueError(f"{weights_file}: no weights for {missing} (a VGGImageClassifier head "
                         f"has fc1, fc2 and predictions).")
    (fc1, b1), (fc2, b2), (fc3, b3) = (variables[n] for n in ("fc1", "fc2", "predictions"))
    if pooling == "flatten":
        side = round((fc1.shape[0] / channels) ** 0.5)
        if fc1.ndim != 2 or side * side * channels != fc1.shape[0]:
            raise ValueError(f"{weights_file}: fc1 has shape {fc1.shape}, not a square "
                             f"pool5 map of {channels} channels flattened.")
        size = [32 * side if s is None else s for s in image_shape[:2]]
        input_shape = (*size, 3)
    elif fc1.ndim == 4 and fc1.shape[:2] == (7, 7) and fc2.shape[:2] == (1, 1):
        # fc1 is a 7x7 convolution over pool5 followed by global pooling, which at 224 pixels
        # is exactly fc6 reading the flattened 7x7 map (both flatten as height, width, channel).
        fc1, fc2 = fc1.reshape(-1, fc1.shape[-1]), fc2.reshape(fc2.shape[2:])
        input_shape = (224, 224, 3)
    else:
        raise ValueError(f"{weights_file}: pooling {pooling!r} with fc1 {fc1.shape}: not a head "
                         f"of VGGImageClassifier's two forms.")
    if task["config"].get("activation") not in (None, "linear"):
        log.info("%s: the preset's classifier applies %r; the loaded model returns logits",
                 path, task["config"]["activation"])
    return {"fc6": [fc1, b1], "fc7": [fc2, b2], "fc8": [fc3, b3]}, input_shape


def _keras_hub_preprocessing(path):
    """The preset's ``ImageConverter`` (``x * scale + offset`` on 0-255 RGB) as ``mean``/``std``
    on the 0-255 scale: ``mean = -offset / scale``, ``std = 1 / scale``."""
    converter = None
    for name in ("image_converter.json", "preprocessor.json"):
        if os.path.isfile(os.path.join(path, name)):
            config = _read_json(path, name)["config"]
            converter = config.get("image_converter", {}).get("config", config)
            break
    if converter is None:
        log.warning("%s: no image_converter.json; the model passes pixels on unnormalised", path)
        return {"mean": (0.0, 0.0, 0.0), "std": None, "channel_order": "rgb"}
    scale = np.broadcast_to(np.asarray(converter.get("scale") or 1.0, "float64"), (3,))
    offset = np.broadcast_to(np.asarray(converter.get("offset") or 0.0, "float64"), (3,))
    std = None if np.all(scale == 1.0) else tuple(float(v) for v in 1.0 / scale)
    return {"mean": tuple(float(v) for v in -offset / scale), "std": std, "channel_order": "rgb"}


def _keras3_variables(path):
    """``{layer name: [arrays]}`` of a Keras 3 ``.weights.h5`` file, nested models included
    (each layer's ``vars`` group carries its name); the optimizer's state is left out."""
    import h5py

    found = {}

    def visit(key, item):
        if (isinstance(item, h5py.Group) and key.rsplit("/", 1)[-1] == "vars"
                and not key.startswith("optimizer") and len(item)):
            name = item.attrs.get("name", key)
            name = name.decode("utf8") if hasattr(name, "decode") else str(name)
            if name in found:
                raise ValueError(f"{path}: two layers are named {name!r}.")
            found[name] = [np.asarray(item[k], dtype="float32") for k in sorted(item, key=int)]

    try:
        with h5py.File(path, "r") as file:
            file.visititems(visit)
    except OSError as exc:
        raise ValueError(f"{path}: an HDF5 file that cannot be read ({exc}).") from exc
    return found
