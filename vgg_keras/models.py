"""The VGG family: one builder reading the configuration table, plus its dense form and the
paper's pre-initialisation of deeper nets from a trained A; and the localizer, the same graph
with the box head of :mod:`vgg_keras.heads` in place of fc8 (whose names this module
re-exports: ``BOX_LAYER``, ``PRIOR_BOX``, ``REGRESSIONS``, ``is_localizer``, ``regression_of``).
It also re-exports :mod:`vgg_keras.configs`' ``scaled`` (the width multiplier's channel
rounding) and ``identify_vgg`` (the configuration and width of a stack of conv kernels).

Model code uses ``keras`` and ``keras.ops`` only, so it runs on TensorFlow, JAX and PyTorch.
"""

from __future__ import annotations

import errno
import logging
import os
import zipfile
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import keras

from ._keras_compat import inbound_nodes
from .configs import (
    ARCHITECTURES, FC_UNITS, IMAGENET_MEAN_RGB, INITIALIZERS, MIN_INPUT_SIZE, canonical_arch,
    parse_layer,
)
from .heads import (
    BOX_LAYER, PRIOR_BOX, REGRESSIONS, BoxRegression, box_outputs, check_regression,
    is_localizer, regression_of,
)
from .layers import InputNormalization, LocalResponseNormalization, MinimumSpatialSize
from .released import is_release_name, resolve
from .configs import identify_vgg, scaled
from .weights import read_pretrained

if TYPE_CHECKING:
    from ._typing import PathLike

log = logging.getLogger(__name__)

__all__ = [
    "BOX_LAYER", "INITIALIZERS", "KINDS", "PREINIT_CONV_LAYERS", "PREPROCESSING", "PRIOR_BOX",
    "REGRESSIONS", "BoxRegression", "FINETUNE", "arch_of", "box_head", "build_localizer",
    "build_vgg", "freeze_for_finetune", "identify_vgg", "initialize_from", "input_normalization",
    "is_localizer",
    "load_vgg", "preinitialize", "regression_of", "scale_to_unit_output", "scaled", "to_dense",
    "vgg_backbone", "vgg_fc", "vgg_head", "vgg_layer_names",
]

PREPROCESSING = {
    "imagenet": {"mean": IMAGENET_MEAN_RGB, "std": None, "channel_order": "rgb"},
}
"""Named input normalisations; ``"imagenet"`` is the paper's mean-RGB subtraction."""

PREINIT_CONV_LAYERS = 4
"""The paper copies the first four conv layers and the three FC layers of a trained A."""


def _kernel_initializer(init):
    if init == "paper":
        # "10^-2 variance" in the text; Caffe's released prototxts use std 0.01.
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.01)
    if init == "glorot":
        return keras.initializers.GlorotUniform()
    if init == "xavier":
        # Caffe's XavierFiller: U(-sqrt(3 / fan_in), sqrt(3 / fan_in)) (variance_norm FAN_IN).
        return keras.initializers.VarianceScaling(1.0, mode="fan_in", distribution="uniform")
    raise ValueError(f"init must be one of {INITIALIZERS}, got {init!r}.")


def _normalization_layer(preprocessing):
    if isinstance(preprocessing, str):
        if preprocessing not in PREPROCESSING:
            raise ValueError(
                f"Unknown preprocessing {preprocessing!r}; valid ones are "
                f"{', '.join(PREPROCESSING)}, None, or a dict with 'mean' (and 'std', "
                f"'channel_order')."
            )
        preprocessing = PREPROCESSING[preprocessing]
    if not isinstance(preprocessing, dict):
        raise ValueError(f"preprocessing must be a name, a dict or None, got {preprocessing!r}.")
    # float32 even under mixed precision: 0-255 inputs lose too much in float16.
    return InputNormalization(**preprocessing, name="normalization", dtype="float32")


def input_normalization(model: keras.Model) -> dict[str, Any] | None:
    """The ``preprocessing`` dict (``mean``, ``std``, ``channel_order``) that ``model``'s
    normalisation layer applies, to build a model that takes inputs as ``model`` does; None
    when it has none.

    >>> input_normalization(build_vgg("A", 2, input_shape=(32, 32, 3), width=0.125))["mean"]
    (123.68, 116.779, 103.939)
    """
    layer = next((item for item in model.layers if isinstance(item, InputNormalization)), None)
    if layer is None:
        return None
    # float32 weights, read back as the shortest decimals that round to them (116.779, not
    # 116.77899932861328).
    values = [tuple(float(str(v)) for v in keras.ops.convert_to_numpy(w).astype("float32"))
              for w in (layer.mean_values, getattr(layer, "std_values", None)) if w is not None]
    return {"mean": values[0], "std": values[1] if len(values) > 1 else None,
            "channel_order": layer.channel_order}


def _check_input_shape(input_shape, include_top):
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (height, width, channels), got {input_shape}.")
    height, width, _ = input_shape
    for size in (height, width):
        if size is None:
            if include_top:
                raise ValueError(
                    "With include_top=True the input height and width must be known: fc6 reads "
                    "the whole pool5 map. Use include_top=False, or to_dense(model) for images "
                    "of any size."
                )
        elif size < MIN_INPUT_SIZE:
            raise ValueError(
                f"Input must be at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE} pixels (five 2x2 "
                f"pools); got input_shape={tuple(input_shape)}."
            )


def vgg_backbone(inputs: Any, arch: str, *, width: float = 1.0, init: str = "paper") -> Any:
    """Apply the conv blocks of ``arch`` to ``inputs`` and return the pool5 tensor.

    Layer names follow Caffe: ``block{b}_conv{i}``, ``block{b}_pool``, and ``lrn``.
    """
    x = inputs
    for block_index, block in enumerate(ARCHITECTURES[canonical_arch(arch)], start=1):
        conv_index = 0
        for spec in block:
            parsed = parse_layer(spec)
            if parsed is None:
                x = LocalResponseNormalization(name="lrn")(x)
                continue
            kernel_size, channels = parsed
            conv_index += 1
            x = keras.layers.Conv2D(
                scaled(channels, width), kernel_size, padding="same", activation="relu",
                kernel_initializer=_kernel_initializer(init), bias_initializer="zeros",
                name=f"block{block_index}_conv{conv_index}",
            )(x)
        x = keras.layers.MaxPooling2D(2, strides=2, name=f"block{block_index}_pool")(x)
    return x


def vgg_fc(x: Any, *, width: float = 1.0, dropout: float = 0.5, init: str = "paper") -> Any:
    """fc6 (reading the whole pool5 map) and fc7, each with dropout: the features both heads
    read (fc7's output)."""
    x = keras.layers.Flatten(name="flatten")(x)
    for index in (6, 7):
        x = keras.layers.Dense(
            scaled(FC_UNITS, width), activation="relu", name=f"fc{index}",
            kernel_initializer=_kernel_initializer(init), bias_initializer="zeros",
        )(x)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"drop{index}")(x)
    return x


def vgg_head(x: Any, outputs: int, *, width: float = 1.0, dropout: float = 0.5,
             init: str = "paper", output_name: str = "fc8", output_bias: Any = "zeros") -> Any:
    """fc6 (reading the whole pool5 map), fc7 with dropout, then a linear ``output_name`` layer."""
    x = vgg_fc(x, width=width, dropout=dropout, init=init)
    return keras.layers.Dense(
        outputs, name=output_name,
        kernel_initializer=_kernel_initializer(init), bias_initializer=output_bias,
    )(x)


def box_head(x: Any, regression: str, num_classes: int, *, width: float = 1.0,
             dropout: float = 0.5, init: str = "paper") -> Any:
    """fc6 and fc7 as :func:`vgg_head`, then the box regressor ``fc8_box``
    (:class:`~vgg_keras.heads.BoxRegression`, its kernel initialised by ``init``, its bias at
    the whole crop)."""
    x = vgg_fc(x, width=width, dropout=dropout, init=init)
    return BoxRegression(regression, num_classes, kernel_initializer=_kernel_initializer(init))(x)


def build_vgg(arch: str, num_classes: int = 1000, *,
              input_shape: Sequence[int | None] = (224, 224, 3), include_top: bool = True,
              width: float = 1.0, dropout: float = 0.5, init: str = "paper",
              preprocessing: str | dict[str, Any] | None = "imagenet",
              weights: PathLike | None = None, name: str | None = None) -> keras.Model:
    """Build configuration ``arch`` of the paper's Table 1 as a Functional Keras model.

    The model takes RGB images with values in [0, 255] and normalises them itself in its first
    layer (``preprocessing``), so no separate ``preprocess_input`` is needed. With the top it
    returns logits; for probabilities apply ``keras.ops.softmax(model(images))`` or append a
    ``keras.layers.Softmax()``.

    Args:
        arch: "A", "A-LRN", "B", "C", "D", "E" or "B-5x5" (case-insensitive).
        num_classes: outputs of fc8.
        input_shape: (height, width, 3); at least 32x32. With the top, fc6 reads the whole pool5
            map (7x7 at 224), so smaller crops keep the same architecture.
        include_top: False returns the conv backbone (pool5 output); its height and width may
            then be None.
        width: multiplier on every channel count, conv and FC alike (1.0 is the paper).
        dropout: rate after fc6 and fc7 (0 removes the layers).
        init: "paper" (N(0, 0.01) weights, zero biases), "glorot" (Keras's Glorot uniform) or
            "xavier" (Caffe's "xavier" filler: uniform, variance 1 / fan_in).
        preprocessing: "imagenet" (subtract ImageNet's mean RGB), a dict of
            ``InputNormalization`` arguments (``mean``, ``std``, ``channel_order``), or None.
            With ``weights`` it must stay at its default: the file's convention replaces it.
        weights: None; ``"imagenet"`` for the configuration's released ImageNet weights
            (A, B, D, E; fetched once into Keras's cache, see :mod:`vgg_keras.released`;
            ``"imagenet-keras"``/``"imagenet-torchvision"`` choose the publisher); or the path
            of a weight file: a torchvision ``vgg11``/``vgg13``/``vgg16``/``vgg19`` state dict
            (``.pth``, configurations A, B, D, E; needs ``pip install 'vgg_keras[torch]'``), a
            keras.applications VGG16/VGG19 ``.h5`` file (D, E; ``_notop`` files need
            ``include_top=False``) or a keras-hub VGG preset directory (A, B, D, E; a
            backbone-only preset needs ``include_top=False``). The model's first layer then
            normalises as those weights were trained (torchvision: RGB mean/std; Keras:
            Caffe's BGR mean), so it still takes RGB in [0, 255]. A ``num_classes`` other than
            the file's gives a new, randomly initialised fc8 (fine-tuning on your classes);
            ``width`` must match the file's channel counts, and with the top the input must
            give a 7x7 pool5 (224 to 255 pixels); a mismatch is a ValueError naming the file
            and the layer. With ``include_top=False`` only the conv layers are loaded, at any
            input size.
        name: model name (default ``vgg_<arch>``).

    >>> model = build_vgg("D", num_classes=10, input_shape=(64, 64, 3), width=0.25)
    >>> tuple(model(keras.ops.zeros((2, 64, 64, 3))).shape)
    (2, 10)
    >>> vgg16 = build_vgg("D", weights="imagenet")                     # doctest: +SKIP
    >>> tuned = build_vgg("D", num_classes=5, weights="imagenet")      # new fc8  # doctest: +SKIP
    """
    key = canonical_arch(arch)
    _check_build_args(width=width, dropout=dropout, init=init, input_shape=input_shape,
                      include_top=include_top, num_classes=num_classes if include_top else None)
    pretrained = None
    if weights is not None:
        pretrained = read_pretrained(resolve(weights, key, include_top=include_top))
        preprocessing = pretrained.check_build_args(key, include_top=include_top,
                                                    preprocessing=preprocessing)

    def top(x):
        return vgg_head(x, int(num_classes), width=width, dropout=dropout, init=init)

    default_name = "vgg_" + key.lower().replace("-", "_") + ("" if include_top else "_backbone")
    model = _vgg_model(key, tuple(input_shape), top if include_top else None, width=width,
                       init=init, preprocessing=preprocessing, name=name or default_name)
    if pretrained is not None:
        new_head = include_top and int(num_classes) != pretrained.num_classes
        pretrained.load_into(model, fresh=("fc8",) if new_head else ())
    return model


def _check_build_args(*, width, dropout, num_classes, init, input_shape, include_top):
    """The arguments both builders share, checked in this order."""
    if not width > 0:
        raise ValueError(f"width must be positive, got {width}.")
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    if num_classes is not None and (int(num_classes) != num_classes or num_classes < 1):
        raise ValueError(f"num_classes must be a positive integer, got {num_classes}.")
    if init not in INITIALIZERS:
        raise ValueError(f"init must be one of {INITIALIZERS}, got {init!r}.")
    _check_input_shape(tuple(input_shape), include_top)


def _vgg_model(key, input_shape, top, *, width, init, preprocessing, name):
    """Normalisation, the conv blocks of ``key`` and ``top(pool5)`` (none when ``top`` is None)
    as a Functional model: the graph both builders share. ``top`` builds its layers when
    called, after the backbone's, so that seeded initialisers draw in layer order."""
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    if preprocessing is not None:
        x = _normalization_layer(preprocessing)(x)
    x = vgg_backbone(x, key, width=width, init=init)
    if top is not None:
        x = top(x)
    return keras.Model(inputs, x, name=name)


def _layer_chain(model):
    """The model's layers in order, checking that each one feeds only the next."""
    layers = model.layers
    for layer in layers:
        nodes = inbound_nodes(layer)
        if len(nodes) > 1:
            raise ValueError(f"Layer {layer.name!r} is used more than once; to_dense needs a "
                             "chain.")
        node = nodes[0] if nodes else None
        if node is not None and len(node.input_tensors) > 1:
            raise ValueError(
                f"Layer {layer.name!r} has several inputs; to_dense needs a chain of layers."
            )
    return layers


def to_dense(model: keras.Model | PathLike) -> keras.Model:
    """The fully convolutional form of ``model`` (or of the ``.keras`` file at that path) for
    dense evaluation (paper Section 3.2).

    fc6 becomes a convolution whose kernel covers the pool5 map the model was built for (7x7 at
    224), every later Dense layer a 1x1 convolution, all with the same weight values reshaped.
    The result accepts images of any size at least the model's input (height and width may
    differ) and returns the class score map, e.g. 2x2 at 256 and 6x6 at 384 for a 224 model.

    >>> dense = to_dense(build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25))
    >>> tuple(dense(keras.ops.zeros((1, 96, 128, 3))).shape)
    (1, 2, 3, 10)
    """
    model = _load_if_path(model)
    layers = _layer_chain(model)
    input_shape = model.input_shape
    height, width, channels = input_shape[1:]
    if height is None or width is None:
        raise ValueError("to_dense needs a model built for a fixed input size (include_top=True).")
    inputs = keras.Input(shape=(None, None, channels), name="image")
    x = MinimumSpatialSize(height, width, name="minimum_size")(inputs)
    flattened_shape = None
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Flatten):
            flattened_shape = tuple(layer.input.shape[1:])
            continue
        if isinstance(layer, keras.layers.Dense):
            kernel, bias = layer.get_weights()
            if flattened_shape is not None:
                kernel_size = flattened_shape[:2]
                # Flatten is row-major over (height, width, channels), so a reshape is exact.
                kernel = kernel.reshape(flattened_shape + (kernel.shape[-1],))
                flattened_shape = None
            else:
                kernel_size = (1, 1)
                kernel = kernel.reshape((1, 1) + kernel.shape)
            conv = keras.layers.Conv2D(
                layer.units, kernel_size, activation=layer.activation, name=layer.name,
                dtype=layer.dtype_policy,
            )
            x = conv(x)
            conv.set_weights([kernel, bias])
            continue
        clone = layer.__class__.from_config(layer.get_config())
        x = clone(x)
        clone.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=f"{model.name}_dense")


def _load_if_path(model_or_path):
    if isinstance(model_or_path, keras.Model):
        return model_or_path
    return load_vgg(model_or_path)


KINDS = ("classifier", "localizer")


def load_vgg(path: PathLike, *, kind: str | None = None,
             arch: str | None = None) -> keras.Model:
    """A saved network: a ``.keras`` model, or pretrained weights that ``build_vgg`` reads
    (torchvision ``.pth``, keras.applications ``.h5``, a keras-hub ``VGGImageClassifier`` preset
    directory, or ``"imagenet"`` with ``arch`` for the released weights), built as the file's
    configuration and width with its classifier at the input size its fc6 was trained for
    (224 x 224 for published weights).

    ``kind="classifier"`` or ``"localizer"`` refuses the other kind. Errors name the file and
    what is wrong with it: missing, not a model file at all, or a model file that cannot be read.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "model.keras")
    >>> build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125).save(path)
    >>> load_vgg(path, kind="classifier").output_shape
    (None, 10)
    >>> vgg16 = load_vgg("vgg16-397923af.pth")                 # doctest: +SKIP
    >>> preset = "~/.cache/kagglehub/models/keras/vgg/keras/vgg_16_imagenet/3"
    >>> vgg16 = load_vgg(preset)                                # doctest: +SKIP
    """
    if kind not in (None, *KINDS):
        raise ValueError(f"kind must be None or one of {KINDS}, got {kind!r}.")
    if is_release_name(path):
        if arch is None:
            raise ValueError(f"{path!r} names released weights; say which configuration "
                             "(load_vgg(..., arch='D'), --arch D).")
        path = resolve(path, arch)
    path = os.path.expanduser(os.fspath(path))
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "No such model file", path)
    if not os.path.isdir(path) and _is_keras_archive(path):
        try:
            model = keras.saving.load_model(path, safe_mode=True, compile=False)
        except Exception as error:  # Keras raises many kinds for a damaged archive
            raise ValueError(f"{path}: the .keras file cannot be loaded ({type(error).__name__}:"
                             f" {error}).") from error
    elif path.lower().endswith(".keras"):
        raise ValueError(f"{path}: not a Keras model file (a .keras file is a zip archive with "
                         "config.json; this one is truncated, damaged or something else).")
    else:
        pretrained = read_pretrained(path)
        if pretrained.num_classes is None:
            raise ValueError(f"{path}: {pretrained.description} without the classifier (fc6-"
                             "fc8); build_vgg(..., include_top=False, weights=...) reads it.")
        model = build_vgg(pretrained.arch, pretrained.num_classes, width=pretrained.width,
                          weights=path, input_shape=pretrained.input_shape)
    found = "localizer" if is_localizer(model) else "classifier"
    if kind is not None and found != kind:
        other = {"classifier": "train_cls.py", "localizer": "train_loc.py"}[found]
        raise ValueError(f"{path} is a {found}, not a {kind} ({other} evaluates it).")
    return model


def _is_keras_archive(path):
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            return "config.json" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def arch_of(model: keras.Model) -> str | None:
    """The configuration (``"A"`` ... ``"E"``) of a model built by ``build_vgg`` or
    ``build_localizer``, read by :func:`~vgg_keras.configs.identify_vgg` from its ``block*``
    conv layers and its LRN; None for other models.

    >>> arch_of(build_localizer(build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25)))
    'A'
    """
    kernels = [layer.kernel.shape for layer in model.layers
               if isinstance(layer, keras.layers.Conv2D) and layer.name.startswith("block")]
    lrn = any(isinstance(layer, LocalResponseNormalization) for layer in model.layers)
    try:
        return identify_vgg(kernels, lrn=lrn)[0]
    except ValueError:
        return None


def vgg_layer_names(arch: str) -> list[str]:
    """Names of the backbone's layers for ``arch``, in order, as ``vgg_backbone`` names them."""
    names = []
    for block_index, block in enumerate(ARCHITECTURES[canonical_arch(arch)], start=1):
        conv_index = 0
        for spec in block:
            if parse_layer(spec) is None:
                names.append("lrn")
                continue
            conv_index += 1
            names.append(f"block{block_index}_conv{conv_index}")
        names.append(f"block{block_index}_pool")
    return names


def preinitialize(model: keras.Model, source: keras.Model | PathLike, *,
                  conv_layers: int | None = PREINIT_CONV_LAYERS,
                  fc_layers: Sequence[str] = ("fc6", "fc7", "fc8")) -> list[str]:
    """Copy the paper's pre-initialisation from a trained (shallower) net into ``model``.

    The first ``conv_layers`` conv layers of ``source`` (for A: block1_conv1, block2_conv1,
    block3_conv1, block3_conv2) and its FC layers go into the layers of the same names in
    ``model``; everything else keeps its initialisation (``conv_layers=None``: every conv
    layer). ``source`` is a model or a ``.keras`` path. Returns the names copied, in order, and
    logs them.

    >>> a = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25)
    >>> d = build_vgg("D", 10, input_shape=(64, 64, 3), width=0.25)
    >>> preinitialize(d, a)
    ['block1_conv1', 'block2_conv1', 'block3_conv1', 'block3_conv2', 'fc6', 'fc7', 'fc8']
    """
    source = _load_if_path(source)
    convs = [layer.name for layer in source.layers if isinstance(layer, keras.layers.Conv2D)]
    names = convs[:conv_layers] + [name for name in fc_layers if _has_layer(source, name)]
    copied = []
    for name in names:
        if not _has_layer(model, name):
            raise ValueError(f"preinitialize: the target model has no layer {name!r} to copy into.")
        source_weights = source.get_layer(name).get_weights()
        target = model.get_layer(name)
        target_shapes = [tuple(w.shape) for w in target.get_weights()]
        source_shapes = [tuple(w.shape) for w in source_weights]
        if source_shapes != target_shapes:
            raise ValueError(
                f"preinitialize: layer {name!r} has weight shapes {source_shapes} in the source "
                f"but {target_shapes} in the target (different width, input size or classes?)."
            )
        target.set_weights(source_weights)
        copied.append(name)
    log.info("preinitialize: copied %s from %s into %s", ", ".join(copied), source.name, model.name)
    return copied


FINETUNE = ("all", "fc", "fc8")
"""Which layers train: every one; fc6, fc7 and the output layer (the paper's "first two FC
layers" for localisation); or the output layer alone (``fc8``, or ``fc8_box``)."""


def freeze_for_finetune(model: keras.Model, finetune: str) -> keras.Model:
    """Set which layers of ``model`` train (:data:`FINETUNE`); returns ``model``.

    >>> model = freeze_for_finetune(build_vgg("A", 3, input_shape=(32, 32, 3), width=0.125), "fc")
    >>> [layer.name for layer in model.layers if layer.trainable and layer.weights]
    ['fc6', 'fc7', 'fc8']
    """
    if finetune not in FINETUNE:
        raise ValueError(f"finetune must be one of {FINETUNE}, got {finetune!r}.")
    output = [layer.name for layer in model.layers if layer.weights][-1]
    trained = {"all": None, "fc": ("fc6", "fc7", output), "fc8": (output,)}[finetune]
    for layer in model.layers:
        layer.trainable = trained is None or layer.name in trained or not layer.weights
    if trained is not None:
        log.info("Training %s only; the other layers are frozen (--finetune %s).",
                 ", ".join(trained), finetune)
    return model


def initialize_from(model: keras.Model, source: keras.Model,
                    path: PathLike | None = None) -> str | list[str]:
    """Start ``model`` from the trained classifier ``source``, as fine-tuning or as the paper's
    pre-initialisation; returns ``"all"`` when every layer was copied, else the names copied.

    Of the same configuration and width, every conv layer is copied, and every FC layer whose
    shape matches: fc8 starts fresh when the classes differ (fine-tuning on other classes), fc6
    when the input size does (it reads the whole pool5 map). Of another configuration (a
    trained A for a deeper net), :func:`preinitialize` copies the paper's layers. The log says
    what was copied and what is new.

    >>> source = build_vgg("A", 20, input_shape=(32, 32, 3), width=0.125)
    >>> model = build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125)
    >>> initialize_from(model, source)[-2:]
    ['fc6', 'fc7']
    """
    path = path or source.name
    fresh = {}
    for name in ("fc6", "fc8"):
        if _has_layer(model, name) and _has_layer(source, name):
            ours, theirs = model.get_layer(name).kernel.shape, source.get_layer(name).kernel.shape
            if tuple(ours) != tuple(theirs):
                fresh[name] = (f"{theirs[1]} classes in the source, {ours[1]} here" if name == "fc8"
                               else f"the source's inputs are {source.input_shape[1:3]}, these "
                                    f"{model.input_shape[1:3]}")
    same = arch_of(source) == arch_of(model)
    # The same net: every conv layer; a shallower one: the paper's first four.
    copied = preinitialize(model, source, conv_layers=None if same else PREINIT_CONV_LAYERS,
                           fc_layers=[name for name in ("fc6", "fc7", "fc8") if name not in fresh])
    if same and not fresh:
        log.info("Initialised every layer from %s (fine-tuning).", path)
        return "all"
    log.info("%s from %s: copied %s; new, randomly initialised: %s.",
             "Fine-tuning" if same else "Pre-initialised", path, ", ".join(copied),
             "; ".join([f"{name} ({why})" for name, why in fresh.items()]
                       + ([] if same else ["the other layers"])))
    return copied


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def scale_to_unit_output(model: keras.Model, images: Any, *, skip: Sequence[str] = (),
                         batch_size: int = 32) -> dict[str, float]:
    """Rescale each conv and FC kernel so that its output has unit root mean square on ``images``.

    Layer-sequential unit-variance initialisation (Mishkin & Matas, ICLR 2016), done in place,
    first layer first, each measured after the ones before it are rescaled: with it SGD trains a
    randomly initialised plain VGG from scratch where Glorot's start does not (Glorot's
    fan-average variance halves the signal at every ReLU layer; see bench/RESULTS.md, "Plain VGG
    from scratch"). Layers named in ``skip`` (those copied from another net) keep their weights
    but pass their output on. ``images`` are model inputs (RGB in [0, 255], a batch of training
    crops). Returns the factor each kernel was divided by.

    >>> model = build_vgg("A", 10, input_shape=(32, 32, 3), width=0.125, init="glorot")
    >>> images = keras.random.uniform((8, 32, 32, 3), maxval=255.0, seed=1)
    >>> factors = scale_to_unit_output(model, images)
    >>> list(factors)[:2], len(factors)
    (['block1_conv1', 'block2_conv1'], 11)
    >>> rms = keras.ops.sqrt(keras.ops.mean(keras.ops.square(model(images))))
    >>> round(float(rms), 3)
    1.0
    """
    layers = _layer_chain(model)
    images = keras.ops.convert_to_numpy(images)
    activations = [keras.ops.convert_to_tensor(images[start:start + batch_size])
                   for start in range(0, len(images), batch_size)]
    factors = {}
    for layer in layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        outputs = [layer(x, training=False) for x in activations]
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) and layer.name not in skip:
            squares = sum(float(keras.ops.sum(keras.ops.square(keras.ops.cast(y, "float32"))))
                          for y in outputs)
            rms = (squares / sum(int(keras.ops.size(y)) for y in outputs)) ** 0.5
            if not rms > 0:
                raise ValueError(f"scale_to_unit_output: {layer.name!r} outputs only zeros on "
                                 f"these images; cannot rescale it.")
            layer.kernel.assign(layer.kernel / rms)
            factors[layer.name] = rms
            outputs = [layer(x, training=False) for x in activations]
        activations = outputs
    log.info("Kernels rescaled to unit output on %d images: %s", len(images),
             ", ".join(f"{name} /{factor:.3g}" for name, factor in factors.items()))
    return factors


def build_localizer(source: str | keras.Model | PathLike = "D", num_classes: int | None = None,
                    *, regression: str = "pcr", input_shape: Sequence[int | None] = (224, 224, 3),
                    width: float = 1.0, dropout: float = 0.5, init: str = "paper",
                    preprocessing: str | dict[str, Any] | None = "imagenet",
                    name: str | None = None) -> keras.Model:
    """The localisation net of the paper's Appendix A: the classification net with its last FC
    layer replaced by a linear box regressor ``fc8_box``.

    It predicts boxes as ``[cx, cy, w, h]`` relative to the input crop: 4 outputs for
    single-class regression (``"scr"``), 4 x C for per-class regression (``"pcr"``, class c's box
    at outputs ``4c:4c+4``, i.e. ``reshape(-1, C, 4)``). ``fc8_box`` is a
    :class:`~vgg_keras.heads.BoxRegression` layer, which saves the regression and the class
    count with the model (:func:`~vgg_keras.heads.regression_of` reads them).

    Args:
        source: a trained classification model (or a path to its ``.keras`` file), whose conv
            and fc6/fc7 weights are copied (fine-tuning, as in the paper), or a configuration
            name ("A" ... "E") to build from random initialisation.
        num_classes: classes C (PCR needs it); from a classifier it defaults to its fc8 width
            (another count: the data's classes, when the classifier was trained on others).
        regression: "scr" or "pcr".
        input_shape, width, dropout, init, preprocessing: as :func:`build_vgg`, used when
            ``source`` is a configuration name (a classifier brings its own); ``init`` also
            initialises ``fc8_box``.

    The new ``fc8_box`` layer's kernel is randomly initialised (``init``) and its bias starts at
    the whole-crop box (:data:`PRIOR_BOX`) for every class. The result shares no layer with
    ``source``.

    >>> cls = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25)
    >>> build_localizer(cls, regression="pcr").output_shape
    (None, 40)
    """
    regression = check_regression(regression)
    if init not in INITIALIZERS:
        raise ValueError(f"init must be one of {INITIALIZERS}, got {init!r}.")
    if isinstance(source, str) and source.upper() in {k.upper() for k in ARCHITECTURES}:
        return _localizer_from_scratch(
            canonical_arch(source), num_classes, regression, input_shape=input_shape,
            width=width, dropout=dropout, init=init, preprocessing=preprocessing, name=name)
    return _localizer_from_classifier(_load_if_path(source), num_classes, regression,
                                      init=init, name=name)


def _localizer_from_scratch(key, num_classes, regression, *, input_shape, width, dropout, init,
                            preprocessing, name):
    box_outputs(regression, num_classes)  # PCR needs num_classes
    _check_build_args(width=width, dropout=dropout, num_classes=num_classes, init=init,
                      input_shape=input_shape, include_top=True)

    def top(x):
        return box_head(x, regression, num_classes, width=width, dropout=dropout, init=init)

    default = "vgg_" + key.lower().replace("-", "_") + f"_loc_{regression}"
    return _vgg_model(key, tuple(input_shape), top, width=width, init=init,
                      preprocessing=preprocessing, name=name or default)


def _localizer_from_classifier(classifier, num_classes, regression, *, init, name):
    if not _has_layer(classifier, "fc8"):
        raise ValueError(
            f"build_localizer: {classifier.name!r} has no 'fc8' layer to replace; pass a "
            f"classification model from build_vgg / train_cls.py, or a configuration name.")
    classes = int(num_classes or classifier.get_layer("fc8").units)
    # A structural copy, so that training the localizer leaves the classifier untouched.
    copy = keras.models.clone_model(classifier)
    copy.set_weights(classifier.get_weights())
    box = BoxRegression(regression, classes, kernel_initializer=_kernel_initializer(init))
    return keras.Model(copy.input, box(copy.get_layer("fc8").input),
                       name=name or f"{classifier.name}_loc_{regression}")


# -- the names torchvision and timm use -------------------------------------------------------


def _named(arch, name, known_as):
    def build(num_classes: int = 1000, **kwargs: Any) -> keras.Model:
        return build_vgg(arch, num_classes, name=kwargs.pop("name", name), **kwargs)

    build.__name__ = build.__qualname__ = name
    build.__doc__ = (f"Configuration {arch} of the paper's Table 1 ({known_as}): "
                     f"``build_vgg({arch!r}, num_classes, **kwargs)``.\n\n"
                     f"    >>> model = {name}(num_classes=10, input_shape=(64, 64, 3), "
                     "width=0.25)\n")
    return build


vgg11 = _named("A", "vgg11", "11 weight layers; torchvision's and timm's vgg11")
vgg11_lrn = _named("A-LRN", "vgg11_lrn", "A with local response normalisation after conv1")
vgg13 = _named("B", "vgg13", "13 weight layers; torchvision's and timm's vgg13")
vgg16_1x1 = _named("C", "vgg16_1x1", "16 weight layers, three of them 1x1 convolutions")
vgg16 = _named("D", "vgg16", "16 weight layers; torchvision's vgg16, keras.applications.VGG16")
vgg19 = _named("E", "vgg19", "19 weight layers; torchvision's vgg19, keras.applications.VGG19")
