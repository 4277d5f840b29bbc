"""Pretrained weight files for ``build_vgg(arch, weights=path)``, read into Keras layouts:
torchvision VGG state dicts (``.pth``; ``pip install 'vgg_keras[torch]'``), keras.applications
``VGG16``/``VGG19`` HDF5 files (legacy, ``_notop``, Keras 3) and keras-hub VGG preset folders.
The normalisation each was trained with goes into the model, which still takes RGB in [0, 255].

>>> from vgg_keras import build_vgg
>>> model = build_vgg("D", weights="vgg16-397923af.pth")       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import zipfile
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np

from .configs import ARCHITECTURES, identify_vgg
from .released import NAMES

if TYPE_CHECKING:
    import keras

    from ._typing import PathLike

log = logging.getLogger(__name__)

TORCHVISION_PREPROCESSING = {"mean": tuple(255.0 * m for m in (0.485, 0.456, 0.406)),
                             "std": tuple(255.0 * s for s in (0.229, 0.224, 0.225)),
                             "channel_order": "rgb"}
"""torchvision's ``Normalize`` of ``x / 255``, rewritten for inputs on the 0-255 scale."""

CAFFE_PREPROCESSING = {"mean": (103.939, 116.779, 123.68), "std": None, "channel_order": "bgr"}
"""keras.applications' ``preprocess_input`` for VGG (Caffe): BGR, mean BGR subtracted."""

TORCHVISION_NAMES = {"A": "vgg11", "B": "vgg13", "D": "vgg16", "E": "vgg19"}

Arrays = list[np.ndarray]  # one layer's [kernel, bias]

__all__ = ["CAFFE_PREPROCESSING", "TORCHVISION_PREPROCESSING", "PretrainedWeights",
           "read_pretrained"]


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
            asked = sum(spec != "LRN" for block in ARCHITECTURES[arch] for spec in block)
            raise ValueError(f"{self.path}: this {self.description} is configuration {self.arch} "
                             f"({len(self.convs)} conv layers), but build_vgg was asked for "
                             f"configuration {arch} ({asked} conv layers); {hint}.")
        if include_top and not self.has_top:
            raise ValueError(f"{self.path}: this {self.description} has no classifier (fc6-fc8), "
                             f"only the conv layers; build with include_top=False.")
        # Any other value asks for an input convention other than the one the weights were
        # trained with, which would silently give wrong predictions.
        if preprocessing != "imagenet":
            stats = " and ".join(f"{key} {tuple(round(v, 3) for v in self.preprocessing[key])}"
                                 for key in ("mean", "std") if self.preprocessing[key] is not None)
            raise ValueError(
                f"{self.path}: the {self.description} sets the model's input normalisation itself "
                f"({self.preprocessing['channel_order'].upper()} with {stats} on the 0-255 scale), "
                f"so the model still takes RGB in [0, 255]; leave preprocessing at its default "
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
            raise ValueError(f"{self.path}: {len(self.convs)} conv and {len(self.head)} dense "
                             f"layers in the file, {len(convs)} and {len(denses)} in the model.")
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
        holds = f"the file holds configuration {self.arch} at width={self.width:g}"
        if not self.head:
            return holds + "."
        side = self.input_shape[0] // 32
        return (f"{holds} with an fc6 for a {side}x{side} pool5 map (inputs of {32 * side} to "
                f"{32 * side + 31} pixels a side): build with that width and input_shape="
                f"{self.input_shape}, or include_top=False for other sizes.")


def read_pretrained(path: PathLike) -> PretrainedWeights:
    """Read a torchvision state dict, a keras.applications HDF5 file or a keras-hub preset
    directory. Raises FileNotFoundError for a missing file, ImportError when a ``.pth`` needs
    PyTorch and it is not installed, and ValueError, naming the file, for anything that is not
    a complete VGG weight file of a known layout.

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
        signature = file.read(8)
    # torch.save writes a zip, or before PyTorch 1.6 a pickle (protocol 2+).
    if signature.startswith(b"PK\x03\x04") or signature[:1] == b"\x80":
        return _read_torch(path)
    # HDF5 allows a user block before its signature; h5py knows where to look.
    if signature == b"\x89HDF\r\n\x1a\n" or h5py.is_hdf5(path):
        return _read_keras(path)
    raise ValueError(f"{path}: neither a PyTorch state dict nor a Keras HDF5 weight file (it "
                     f"starts with {signature!r}, not a zip, pickle or HDF5 signature).")


def _identify(path: str, convs: list[Arrays]) -> tuple[str, float]:
    try:
        return identify_vgg([kernel.shape for kernel, _ in convs])
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None


def _read_torch(path: str) -> PretrainedWeights:
    # A zip must hold a pickle (data.pkl); a pickle, or a zip too damaged to list, is left to
    # torch.load to read or report.
    with contextlib.suppress(zipfile.BadZipFile, OSError), zipfile.ZipFile(path) as archive:
        names = archive.namelist()
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
        raise ValueError(f"{path}: torch.load could not read it: {problem} "
                         f"({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}).") from exc
    # Training scripts often save {"state_dict": ...} or {"model": ...}, and DataParallel
    # prefixes every key with "module.".
    if isinstance(state, dict):
        state = next((state[key] for key in ("state_dict", "model")
                      if isinstance(state.get(key), dict)), state)
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: the file holds a {type(state).__name__}, not a state dict.")
    for key, value in state.items():
        if not isinstance(key, str) or not torch.is_tensor(value):
            raise ValueError(f"{path}: not a state dict ({key!r} is a {type(value).__name__}).")
    # float32 first: bfloat16 has no numpy dtype, and the Keras model is float32.
    arrays = {key.removeprefix("module."): value.detach().float().numpy()
              for key, value in state.items()}
    if any(key.endswith(("running_mean", "running_var", "num_batches_tracked")) for key in arrays):
        raise ValueError(f"{path}: a batch-normalised VGG (torchvision vgg*_bn), which is not VGG "
                         f"as in the paper; use torchvision's vgg11/vgg13/vgg16/vgg19 weights.")
    kernels = sorted((int(key.split(".")[1]), value) for key, value in arrays.items()
                     if re.fullmatch(r"features\.\d+\.weight", key) and value.ndim == 4)
    if not kernels:
        raise ValueError(f"{path}: not a torchvision VGG state dict (no features.<i>.weight "
                         f"convolution kernels); its keys include {sorted(arrays)[:8]}.")
    # PyTorch conv kernels are (out, in, h, w); Keras wants (h, w, in, out). Both compute a
    # cross-correlation, so no kernel flip is needed.
    convs = [[k.transpose(2, 3, 1, 0), arrays.get(f"features.{i}.bias")] for i, k in kernels]
    arch, width = _identify(path, convs)
    # torchvision's features hold (conv, ReLU) per conv layer and a MaxPool after each block;
    # its classifier Linear layers are 0, 3 and 6, with ReLU and Dropout between.
    blocks = [len(block) for block in ARCHITECTURES[arch]]
    indices = [2 * (conv + sum(blocks[:b])) + b for b, n in enumerate(blocks) for conv in range(n)]
    has_top = any(key.startswith("classifier.") for key in arrays)
    layers = [f"features.{i}" for i in indices] + [f"classifier.{i}" for i in (0, 3, 6)] * has_top
    expected = {f"{layer}.{kind}" for layer in layers for kind in ("weight", "bias")}
    name = TORCHVISION_NAMES.get(arch)
    if arrays.keys() != expected:
        raise ValueError(f"{path}: not torchvision's {name or arch} (conv layers at features "
                         f"{indices}, Linear layers at classifier 0, 3 and 6): missing "
                         f"{sorted(expected - arrays.keys())}, unexpected "
                         f"{sorted(arrays.keys() - expected)}.")
    head = []
    if has_top:
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
    description = f"torchvision {name} state dict" if name else "torchvision state dict"
    return PretrainedWeights(path, description + ("" if has_top else " (features only)"), arch,
                             width, convs, head, dict(TORCHVISION_PREPROCESSING))


def _attr_list(group: Any, name: str) -> list[str]:
    return [v.decode("utf8") if hasattr(v, "decode") else str(v) for v in group.attrs.get(name, [])]


def _keras_layers(path: str) -> tuple[str, list[tuple[str, Arrays]]]:
    """``(layout, [(layer name, arrays)])`` of a Keras HDF5 weight file, layers in model order."""
    try:
        with h5py.File(path, "r") as file:
            group = file["model_weights"] if "model_weights" in file else file  # model.save's
            if "layer_names" in group.attrs:  # the legacy format
                # The order within a group is kernel, bias; the names differ between writers
                # ("block1_conv1_W_1:0" in the 2016 downloads, later "block1_conv1/kernel").
                layers = [(name, [np.asarray(group[name][w], "float32")
                                  for w in _attr_list(group[name], "weight_names")])
                          for name in _attr_list(group, "layer_names")]
                return "legacy HDF5 weights", [(name, arrays) for name, arrays in layers if arrays]
            if not hasattr(file.get("layers"), "keys"):
                raise ValueError(f"{path}: an HDF5 file without Keras weights (no 'layer_names' "
                                 f"attribute and no 'layers' group).")
            # Keras 3: each layer's "vars" group carries its name (nested models too), and the
            # groups are named conv2d, conv2d_1, ..., conv2d_12 in model order.
            keys: list[str] = []
            file.visit(lambda key: keys.append(key) if key.rsplit("/", 1)[-1] == "vars" else None)
            keys.sort(key=lambda k: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", k)])
            return "Keras 3 .weights.h5", [
                (str(file[key].attrs.get("name", key)),
                 [np.asarray(file[key][k], "float32") for k in sorted(file[key], key=int)])
                for key in keys if len(file[key]) and not key.startswith("optimizer")]
    except (OSError, KeyError) as exc:  # KeyError: a layer or weight it lists is missing
        raise ValueError(f"{path}: an HDF5 file that cannot be read ({exc}); it is truncated or "
                         f"corrupt.") from exc


def _split(path: str, layers: list[tuple[str, Arrays]]
           ) -> tuple[str, float, list[Arrays], list[Arrays]]:
    """``(arch, width, convs, denses)`` of a Keras file's layers, each list in model order."""
    for name, arrays in layers:
        kernel = arrays[0]
        if not (len(arrays) == 2 and arrays[1].ndim == 1 and kernel.ndim in (2, 4)
                and (kernel.ndim == 2 or kernel.shape[0] == kernel.shape[1])):
            raise ValueError(
                f"{path}: layer {name!r} has weights of shapes {[a.shape for a in arrays]}; a "
                f"keras.applications VGG has only square (h, w, in, out) convolutions and dense "
                f"layers, with biases (Theano-ordered 'th_dim_ordering' files are not supported). "
                f"A file saved from a vgg_keras model loads with model.load_weights(path).")
    convs = [arrays for _, arrays in layers if arrays[0].ndim == 4]
    denses = [arrays for _, arrays in layers if arrays[0].ndim == 2]
    return *_identify(path, convs), convs, denses


def _read_keras(path: str) -> PretrainedWeights:
    layout, layers = _keras_layers(path)
    arch, width, convs, denses = _split(path, layers)
    if arch not in ("D", "E"):
        raise ValueError(f"{path}: configuration {arch}; keras.applications has VGG16 (D) and "
                         f"VGG19 (E) only, and the input convention of other files is unknown.")
    if len(denses) not in (0, 3):
        raise ValueError(f"{path}: {len(denses)} dense layers; a keras.applications VGG has fc1, "
                         f"fc2 and predictions, or none in a _notop file.")
    name = TORCHVISION_NAMES[arch].upper() + ("" if denses else " (notop)")
    # keras.applications and build_vgg both flatten pool5 as (h, w, c): no reordering.
    return PretrainedWeights(path, f"keras.applications {name} {layout}", arch, width, convs,
                             denses, dict(CAFFE_PREPROCESSING))


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


def _read_keras_hub(path: str) -> PretrainedWeights:
    files = os.listdir(path)
    if "config.json" not in files:
        raise ValueError(f"{path} is a directory but not a keras-hub preset (no config.json); "
                         f"pass a .pth or .h5 weight file, or a preset directory.")
    for spec, weights in (("config.json", "model.weights.h5"), ("task.json", "task.weights.h5")):
        if spec in files and weights not in files:
            raise ValueError(f"{path}: the preset has {spec} but no {weights}.")
    config = _read_json(path, "config.json", "VGGBackbone")
    weights_file = os.path.join(path, "model.weights.h5")
    arch, width, convs, _ = _split(weights_file, _keras_layers(weights_file)[1])
    # The weights fix the net; a config that builds another one is a damaged preset.
    repeats = [len(block) for block in ARCHITECTURES[arch]]
    filters = [int(convs[sum(repeats[:b])][0].shape[-1]) for b in range(len(repeats))]
    found = [config.get("stackwise_num_repeats"), config.get("stackwise_num_filters")]
    if found != [repeats, filters]:
        raise ValueError(f"{os.path.join(path, 'config.json')}: stackwise_num_repeats and "
                         f"stackwise_num_filters {found} are not the paper's configuration "
                         f"{arch} at width {width:g}, {[repeats, filters]}, as in {weights_file}.")
    head, input_shape = (_keras_hub_head(path, filters[-1], config.get("image_shape"))
                         if "task.json" in files else ([], (224, 224, 3)))
    description = f"keras-hub {TORCHVISION_NAMES[arch]} preset{'' if head else ' (backbone only)'}"
    return PretrainedWeights(path, description, arch, width, convs, head,
                             _keras_hub_preprocessing(path, files), input_shape)


def _keras_hub_head(path: str, channels: int, image_shape: list[int | None] | None
                    ) -> tuple[list[Arrays], tuple[int, int, int]]:
    """fc6-fc8 of a ``VGGImageClassifier`` preset's head and the input size its fc6 is made for."""
    task = _read_json(path, "task.json", "VGGImageClassifier")
    weights_file = os.path.join(path, "task.weights.h5")
    variables = dict(_keras_layers(weights_file)[1])
    try:
        (fc1, b1), (fc2, b2), (fc3, b3) = (variables[n] for n in ("fc1", "fc2", "predictions"))
    except KeyError as missing:
        raise ValueError(f"{weights_file}: no weights for {missing} (a VGGImageClassifier head "
                         f"has fc1, fc2 and predictions).") from None
    # fc1 reads a side x side pool5 map flattened ("flatten" pooling), or as one 7x7
    # convolution whose single output global pooling passes on (fc2 then a 1x1 one): at 224
    # pixels exactly fc6 reading the flattened map, both flattening as height, width, channel.
    flatten, inputs = task.get("pooling") == "flatten", fc1[..., 0].size
    side = round((inputs / channels) ** 0.5)
    if (fc1.ndim == 2) != flatten or side * side * channels != inputs or not (flatten or side == 7):
        raise ValueError(f"{weights_file}: pooling {task.get('pooling')!r} with fc1 {fc1.shape}: "
                         f"not a head of VGGImageClassifier's two forms.")
    height, width = (image_shape or [None, None])[:2] if flatten else (224, 224)
    if task.get("activation") not in (None, "linear"):
        log.info("%s: the preset's classifier applies %r; the loaded model returns logits",
                 path, task["activation"])
    return [[fc1.reshape(-1, fc1.shape[-1]), b1], [fc2.reshape(-1, fc2.shape[-1]), b2],
            [fc3, b3]], (int(height or 32 * side), int(width or 32 * side), 3)


def _keras_hub_preprocessing(path: str, files: list[str]) -> dict[str, Any]:
    """The preset's ``ImageConverter`` (``x * scale + offset`` on 0-255 RGB) as ``mean``/``std``
    on the 0-255 scale: ``mean = -offset / scale``, ``std = 1 / scale``."""
    names = [name for name in ("image_converter.json", "preprocessor.json") if name in files]
    if not names:
        log.warning("%s: no image_converter.json; the model passes pixels on unnormalised", path)
        return {"mean": (0.0, 0.0, 0.0), "std": None, "channel_order": "rgb"}
    config = _read_json(path, names[0])
    converter = config.get("image_converter", {}).get("config", config)
    scale = np.broadcast_to(np.asarray(converter.get("scale") or 1.0, "float64"), (3,))
    offset = np.broadcast_to(np.asarray(converter.get("offset") or 0.0, "float64"), (3,))
    std = None if np.all(scale == 1.0) else tuple(float(v) for v in 1.0 / scale)
    return {"mean": tuple(float(v) for v in -offset / scale), "std": std, "channel_order": "rgb"}
