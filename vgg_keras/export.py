"""Serving exports of a trained classifier or localizer: a TensorFlow SavedModel that takes image
files, an ONNX graph, or a ``.keras`` file.

>>> from vgg_keras import build_vgg
>>> from vgg_keras.export import export
>>> model = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125)   # or a trained one
>>> export(model, "served/vgg_a", format="saved_model")        # TF Serving, tf.saved_model.load
'served/vgg_a'
>>> export(model, "vgg_a.onnx", format="onnx")  # ONNX Runtime  # doctest: +SKIP
'vgg_a.onnx'
>>> export(model, "vgg_a.keras", format="keras")                # keras.saving.load_model
'vgg_a.keras'

The SavedModel holds the whole test-time preprocessing of the paper's single-scale central-crop
evaluation (decode, isotropic rescale of the shorter side to Q, central crop), so a server runs
it with no Python code of ours. Its signatures:

* ``serve`` (also ``serving_default``): ``image_bytes``, a ``(B,)`` tf.string batch of encoded
  JPEG, PNG, GIF or BMP files of any sizes;
* ``serve_uint8``: ``images``, ``(B, H, W, 3)`` uint8 RGB images of one size.

Both refuse images of more than ``max_pixels`` pixels (set at export, default
:data:`DEFAULT_MAX_PIXELS`, 50 megapixels). ``serve`` reads each file's size from its header
(:func:`header_size`) before decoding anything and refuses the whole batch with an
``InvalidArgumentError`` naming the image, its size and the limit, so a small file that claims
a huge image (a 1.2 MB PNG of 20000 x 20000 pixels takes 1.9 GB to decode) cannot exhaust the
server's memory. Files that are not JPEG, PNG, GIF or BMP, JPEG, PNG and BMP files cut short
(:func:`is_whole`), and empty batches, are refused the same way.

Both return, for a classifier, ``classes`` (int32 ``(B, k)``, best first), ``probabilities``
(float32 ``(B, k)``, softmax of the logits) and ``logits`` (float32 ``(B, C)``), with
``k = min(top, C)``. A localizer adds ``boxes``: float32 ``(B, K, 4)`` ``[ymin, xmin, ymax,
xmax]`` normalised to the original image (the crop's box mapped back through the crop and the
rescaling, then clipped to [0, 1]; multiply by the image's height and width for pixels). With a
``classifier`` its ``boxes[:, i]`` is the box of ``classes[:, i]`` (K = k); without one a
single-class (SCR) localizer gives its one box (K = 1) and a per-class (PCR) localizer every
class's box (K = C, box c for class c), and there are no class outputs.

The ONNX graph is the network alone: input ``image``, float32 ``(B, h, w, 3)`` RGB crops in
[0, 255] (the mean subtraction is inside; decoding, rescaling and cropping are the caller's),
output ``logits`` ``(B, C)``, or for a localizer ``boxes`` ``(B, 4)`` (SCR) or ``(B, 4 C)``
(PCR) as the model predicts them, ``[cx, cy, w, h]`` relative to the crop. It is written by
Keras's own ``model.export(format="onnx")`` on the torch backend (torch.onnx), in a subprocess
when Keras runs on another backend: the TensorFlow route (tf2onnx) needs over 20 GB of memory
for D. So it needs torch and onnx (``pip install "vgg_keras[onnx]"``), on any backend.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from . import boxes as B
from .configs import MAX_IMAGE_PIXELS
from .heads import is_localizer, regression_of
from .models import _load_if_path

if TYPE_CHECKING:
    import tensorflow as tf

    from ._typing import PathLike

# TensorFlow (and vgg_keras.data, which imports it) is imported inside the functions that build
# the serving graph: `import vgg_keras` imports this module, and must not need TensorFlow on the
# JAX and PyTorch backends (the .keras and ONNX exports run there).

FORMATS = ("saved_model", "onnx", "keras")
SERVE_BYTES = "serve"
"""The default signature (also exported as ``serving_default``): encoded image files."""
SERVE_UINT8 = "serve_uint8"
"""The signature taking decoded ``(B, H, W, 3)`` uint8 images."""
PAPER_SCALE_RATIO = 256 / 224
"""The paper's usual test scale for a 224 crop is Q = 256 (the model trained at S = 256)."""
DEFAULT_MAX_PIXELS = MAX_IMAGE_PIXELS
"""The largest image (height x width; for an animated GIF, every frame's pixels) the SavedModel
decodes unless ``export(..., max_pixels=...)`` says otherwise: the limit the training data's
file check applies too (:data:`vgg_keras.configs.MAX_IMAGE_PIXELS`)."""
ONNX_PACKAGES = ("torch", "onnx")
ONNX_INSTALL = 'pip install "vgg_keras[onnx]"'


def default_scale(crop: int) -> int:
    """Q for a crop side when none is given: 256 for 224, in the same ratio for other crops.

    >>> default_scale(224), default_scale(64)
    (256, 73)
    """
    return int(round(crop * PAPER_SCALE_RATIO))


def export(model: keras.Model | PathLike, path: PathLike, format: str = "saved_model", *,
           classifier: keras.Model | PathLike | None = None, test_scale: int | None = None,
           top: int | None = None, max_pixels: int | None = None,
           verbose: bool = False) -> str:
    """Export ``model`` (a ``build_vgg`` classifier or a ``build_localizer`` localizer, or the
    path of its ``.keras`` file) for serving, in one of three formats.

    Args:
        model: the network (or ``.keras`` path). Its first layer subtracts the mean, so every
            format takes RGB values in [0, 255].
        path: a directory for ``"saved_model"``; a file ending in ``.onnx`` or ``.keras`` for
            the others.
        format: ``"saved_model"`` (TensorFlow backend only), ``"onnx"`` (needs the ``onnx``
            extra) or ``"keras"``. See the module docstring for each one's inputs and outputs.
        classifier: SavedModel of a localizer only: a classifier (model or ``.keras`` path) of
            the same input size whose top classes are reported and, for PCR, choose the boxes.
        test_scale: SavedModel only: the test scale Q, the shorter side images are rescaled to
            before the central crop. Default :func:`default_scale` (256 for a 224 crop); a model
            trained at S should get ``vgg_keras.options.test_scale(S)``.
        top: SavedModel only: how many classes to report, at most C (default 5).
        max_pixels: SavedModel only: the largest image, in pixels (height x width), the
            signatures accept; default :data:`DEFAULT_MAX_PIXELS` (50 megapixels). ``serve``
            reads every file's size from its header before decoding any and refuses the batch
            (``tf.errors.InvalidArgumentError``: which image, its size, the limit) if one is
            larger; ``serve_uint8`` refuses images larger than it. An animated GIF counts the
            pixels of all its frames, which TensorFlow's decoder holds at once. Raise it to
            serve bigger photographs: decoding costs up to ~4.5 bytes per pixel at its peak, per
            image being decoded (a batch's images are decoded a few at a time).
        verbose: print what Keras prints while exporting.

    Returns the path written, as a string.

    >>> import os, tempfile
    >>> import tensorflow as tf
    >>> from vgg_keras import build_vgg
    >>> model = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.125)
    >>> path = os.path.join(tempfile.mkdtemp(), "vgg_a")
    >>> export(model, path, test_scale=84, max_pixels=100_000) == path      # refuse > 0.1 MP
    True
    >>> served = tf.saved_model.load(path)
    >>> photo = tf.io.encode_jpeg(tf.zeros([240, 320, 3], tf.uint8))   # a file's bytes
    >>> outputs = served.signatures["serve"](image_bytes=tf.stack([photo, photo]))
    >>> {name: tuple(value.shape) for name, value in sorted(outputs.items())}
    {'classes': (2, 5), 'logits': (2, 10), 'probabilities': (2, 5)}
    >>> big = tf.io.encode_png(tf.zeros([400, 300, 3], tf.uint8))
    >>> served.signatures["serve"](image_bytes=tf.stack([photo, big]))
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...[image 1 of the batch is
    400 x 300 (120000 pixels to decode), more than the 100000 pixels this SavedModel accepts...
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
    path = os.fspath(path)
    _check_suffix(path, format)
    model = _load_if_path(model)
    _check_saved_model_only(format, classifier=classifier, test_scale=test_scale, top=top,
                            max_pixels=max_pixels)
    if format == "keras":
        model.save(path)
    elif format == "onnx":
        _export_onnx(model, path, verbose)
    else:
        _export_saved_model(model, path, classifier=classifier, scale=test_scale,
                            top=5 if top is None else top,
                            max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                            verbose=verbose)
    return path


def _check_saved_model_only(format, **options):
    """Refuse the SavedModel's options for the other formats."""
    given = [name for name, value in options.items() if value is not None]
    if format != "saved_model" and given:
        raise ValueError(
            f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to "
            f"format='saved_model' (the {format} export is the network alone); export a "
            "classifier separately.")


def _check_suffix(path, format):
    suffix = Path(path).suffix.lower()
    wanted = {"onnx": ".onnx", "keras": ".keras"}.get(format)
    if wanted is not None and suffix != wanted:
        raise ValueError(f"format={format!r} writes a {wanted} file; got the path {path!r}.")
    if format == "saved_model" and suffix in (".keras", ".onnx", ".h5", ".pb"):
        raise ValueError(
            f"format='saved_model' writes a directory, but {path!r} ends in {suffix}: pass a "
            f"directory name, or the format that matches the suffix.")


# ----------------------------------------------------------------------------------------------
# SavedModel


def _crop_side(model, what):
    height, width = model.input_shape[1:3]
    if height is None or width is None or height != width:
        raise ValueError(
            f"The SavedModel export cuts a square central crop, so the {what} must take square "
            f"images of a fixed size; {model.name} takes {model.input_shape[1:3]}.")
    return int(height)


def _export_saved_model(model, path, *, classifier, scale, top, max_pixels, verbose):
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "format='saved_model' needs the TensorFlow backend (the preprocessing and the "
            f"signatures are TensorFlow graphs); Keras is running on {keras.backend.backend()!r}. "
            "Set KERAS_BACKEND=tensorflow, or export format='onnx' or 'keras'.")
    import tensorflow as tf

    localizer, classifier = _serving_nets(model, classifier)
    crop, scale, top, max_pixels = _check_serving_args(model, classifier, scale, top, max_pixels)
    serve_bytes, serve_uint8 = _serving_functions(
        _predictor(localizer, classifier, top, crop), scale, crop, max_pixels)
    archive = keras.export.ExportArchive()
    archive.track(model)
    if classifier is not None and classifier is not model:
        archive.track(classifier)
    # The first endpoint is also written as "serving_default", the one TF Serving calls.
    archive.add_endpoint(SERVE_BYTES, serve_bytes,
                         input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    archive.add_endpoint(SERVE_UINT8, serve_uint8, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    archive.write_out(path, verbose=verbose)


def _serving_nets(model, classifier):
    """``(localizer or None, classifier or None)``: what the SavedModel runs."""
    if not is_localizer(model):
        if classifier is not None:
            raise ValueError("classifier= is for localizers; this model is a classifier.")
        return None, model
    if classifier is not None:
        classifier = _load_if_path(classifier)
        if is_localizer(classifier):
            raise ValueError(f"classifier= must be a classifier; {classifier.name} is a "
                             "localizer.")
    return model, classifier


def _check_serving_args(model, classifier, scale, top, max_pixels):
    """``(crop, scale, top, max_pixels)`` checked, ``scale`` defaulted from the crop."""
    crop = _crop_side(model, "model")
    if (classifier is not None and classifier is not model
            and _crop_side(classifier, "classifier") != crop):
        raise ValueError(f"The classifier takes {classifier.input_shape[1:3]} crops but the "
                         f"localizer {model.input_shape[1:3]}; they must share the crop.")
    scale = default_scale(crop) if scale is None else scale
    if int(scale) != scale or scale < crop:
        raise ValueError(f"scale (Q, the rescaled shorter side) must be an integer at least the "
                         f"crop {crop}, got {scale}.")
    if int(top) != top or top < 1:
        raise ValueError(f"top must be a positive integer, got {top}.")
    if isinstance(max_pixels, bool) or int(max_pixels) != max_pixels or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer (height x width), got "
                         f"{max_pixels!r}.")
    return crop, int(scale), int(top), int(max_pixels)


def _predictor(localizer, classifier, top, crop):
    """``predict(crops, rescaled, offsets) -> outputs``: the signatures' outputs for a batch of
    central crops and where they were cut."""
    import tensorflow as tf

    regression, box_classes = regression_of(localizer) if localizer is not None else (None, None)
    num_classes = classifier.output_shape[-1] if classifier is not None else None
    if regression == "pcr" and classifier is not None and num_classes != box_classes:
        raise ValueError(f"The localizer predicts boxes for {box_classes} classes but the "
                         f"classifier scores {num_classes}.")
    k = min(top, num_classes) if classifier is not None else None

    def predict(crops, rescaled, offsets):
        outputs = {}
        if classifier is not None:
            # float32 whatever the dtype policy: a server wants one output type.
            logits = tf.cast(classifier(crops, training=False), tf.float32)
            probabilities, classes = tf.math.top_k(tf.nn.softmax(logits), k=k)
            outputs.update(classes=tf.cast(classes, tf.int32), probabilities=probabilities,
                           logits=logits)
        if localizer is not None:
            raw = tf.cast(localizer(crops, training=False), tf.float32)
            boxes = tf.reshape(raw, [-1, box_classes or 1, 4])  # [cx, cy, w, h] per class
            if classifier is not None:
                boxes = (tf.gather(boxes, classes, batch_dims=1) if regression == "pcr"
                         else tf.repeat(boxes, k, axis=1))
            outputs["boxes"] = _boxes_in_image(boxes, rescaled, offsets, crop)
        return outputs

    return predict


def _serving_functions(predict, scale, crop, max_pixels):
    """The two signatures' functions, ``(serve_bytes, serve_uint8)``, around ``predict``: the
    central crop at ``scale`` cut as the evaluation pipeline cuts it."""
    import tensorflow as tf

    # vgg_keras.data.ops are the evaluation pipeline's own functions, so serving crops exactly
    # as the central-crop evaluation does.
    from .data import ops as image_ops

    def serve_bytes(image_bytes):
        # Every check passes before any image is decoded (image_bytes now depends on them).
        with tf.control_dependencies(_check_encoded(image_bytes, max_pixels)):
            image_bytes = tf.identity(image_bytes)
        crops, rescaled, offsets = tf.map_fn(
            lambda data: image_ops.decode_rescale_crop(data, scale, crop, image_ops.center_offset),
            image_bytes, fn_output_signature=(
                tf.TensorSpec([crop, crop, 3], tf.float32), tf.TensorSpec([2], tf.int32),
                tf.TensorSpec([2], tf.int32)))
        return predict(crops, rescaled, offsets)

    def serve_uint8(images):
        with tf.control_dependencies(_check_decoded(images, max_pixels)):
            images = tf.identity(images)
        # One size for the batch, so the geometry is computed once, as decode_rescale_crop
        # computes it per image: read the window the crop needs, resample it.
        rescaled, offset, window, first, step = image_ops.crop_geometry(
            tf.shape(images)[1:3], scale, crop, image_ops.center_offset)
        pixels = tf.slice(images, [0, window[0], window[1], 0], [-1, window[2], window[3], 3])
        crops = tf.map_fn(lambda image: image_ops.resample(image, first, step, crop), pixels,
                          fn_output_signature=tf.TensorSpec([crop, crop, 3], tf.float32))
        batch = tf.shape(images)[0]
        return predict(crops, tf.tile(rescaled[None], [batch, 1]),
                       tf.tile(offset[None], [batch, 1]))

    return serve_bytes, serve_uint8


# ----------------------------------------------------------------------------------------------
# Refusing what would exhaust memory


# The prefixes TensorFlow's decode_image sorts files by (decode_image_op.cc). JPEG XL and WebP,
# which it also decodes, are refused: their sizes are not read here, so they cannot be bounded.
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_GIF_MAGIC = b"GIF8"
_BMP_MAGIC = b"BM"
_JPEG, _PNG, _GIF, _BMP, _UNKNOWN = range(5)
# Zero bytes appended before reading a header, so a file shorter than its header reads as size 0
# (and then fails to decode with TensorFlow's own message) instead of failing to be indexed.
_HEADER_PAD = b"\0" * 32
FORMAT_NAMES = "JPEG, PNG, GIF or BMP"
EMPTY_BATCH = "empty batch: send at least one image"


def header_size(image_bytes: tf.Tensor | bytes) -> tf.Tensor:
    """``[height, width, pixels]`` (int64) of an encoded image, read from its header without
    decoding it; ``pixels`` is what decoding it holds in memory: height x width, or for a GIF
    the larger of that and the sum of its frames' pixels (giflib keeps every frame, though only
    the first is served). ``[-1, -1, -1]`` for a format other than JPEG, PNG, GIF and BMP.

    Where each format keeps its size: JPEG in its SOF marker (``tf.image.extract_jpeg_shape``);
    PNG in the IHDR chunk (big-endian uint32 width, height at bytes 16-24); GIF in the logical
    screen descriptor (little-endian uint16 width, height at bytes 6-10) and in each frame's
    image descriptor; BMP in the info header (little-endian int32 width, height at bytes
    18-26; a negative height means rows stored top-down).

    >>> import tensorflow as tf
    >>> header_size(tf.io.encode_png(tf.zeros([30, 40, 3], tf.uint8))).numpy()
    array([  30,   40, 1200])
    >>> header_size(b"not an image").numpy()
    array([-1, -1, -1])
    """
    import tensorflow as tf

    from .data.ops import is_jpeg

    padded = tf.strings.join([image_bytes, _HEADER_PAD])
    head = tf.cast(tf.io.decode_raw(tf.strings.substr(padded, 0, len(_HEADER_PAD)), tf.uint8),
                   tf.int64)

    def starts(magic):
        return tf.equal(tf.strings.substr(image_bytes, 0, len(magic)), magic)

    def size(height, width, pixels=None):
        return tf.stack([height, width, height * width if pixels is None else pixels])

    def jpeg():
        shape = tf.cast(tf.image.extract_jpeg_shape(image_bytes), tf.int64)
        return size(shape[0], shape[1])

    def png():
        return size(_big_endian(head, 20, 4), _big_endian(head, 16, 4))

    def gif():
        height, width = _little_endian(head, 8, 2), _little_endian(head, 6, 2)
        return size(height, width, tf.maximum(height * width, _gif_frame_pixels(image_bytes)))

    def bmp():
        def signed(value):
            return tf.where(value >= 2 ** 31, value - 2 ** 32, value)

        # TensorFlow's BMP decoder reads both as int32 and stores abs(height) rows.
        return size(tf.abs(signed(_little_endian(head, 22, 4))),
                    tf.abs(signed(_little_endian(head, 18, 4))))

    kind = tf.where(is_jpeg(image_bytes), _JPEG, tf.where(
        starts(_PNG_MAGIC), _PNG, tf.where(starts(_GIF_MAGIC), _GIF, tf.where(
            starts(_BMP_MAGIC), _BMP, _UNKNOWN))))
    return tf.switch_case(kind, [jpeg, png, gif, bmp,
                                 lambda: tf.constant([-1, -1, -1], tf.int64)])


def _big_endian(head, start, count):
    """The unsigned integer in bytes ``start`` to ``start + count`` of int64 bytes ``head``."""
    return sum(head[start + i] * 256 ** (count - 1 - i) for i in range(count))


def _little_endian(head, start, count):
    return sum(head[start + i] * 256 ** i for i in range(count))


_GIF_HOPS = 16
"""Sub-blocks skipped per loop step of the GIF walk: 16 cuts a 3 MB GIF's walk from 270 ms to
60 ms (a step's fixed cost dominates); more gains little."""


def _gif_frame_pixels(image_bytes):
    """The sum of the frames' pixels (width x height of each image descriptor) of a GIF.

    Walks the file's blocks: after the 13-byte header and logical screen descriptor and the
    optional global colour table come extensions (0x21, label, sub-blocks) and images (0x2C, a
    9-byte descriptor, an optional local colour table, the LZW code size, sub-blocks) up to the
    trailer (0x3B); sub-blocks are a length byte and that many bytes, ending with length 0.
    A loop step reads one block and hops over up to :data:`_GIF_HOPS` sub-blocks (a 3 MB GIF:
    ~60 ms, 3 times its decoding); every step moves forward, so it ends, on any bytes.
    """
    import tensorflow as tf

    data = tf.cast(tf.io.decode_raw(tf.strings.join([image_bytes, _HEADER_PAD]), tf.uint8),
                   tf.int64)
    length = tf.cast(tf.strings.length(image_bytes), tf.int64)

    last = tf.cast(tf.size(data), tf.int64) - 1

    def at(i):
        return tf.gather(data, tf.minimum(tf.cast(i, tf.int64), last))   # past the end: a 0

    def colour_table(packed):
        # Present when bit 7 is set; 3 * 2^(N + 1) bytes for N in bits 0-2.
        return tf.where(packed >= 128, 3 * tf.bitwise.left_shift(
            tf.constant(2, tf.int64), packed % 8), tf.constant(0, tf.int64))

    def step(position, total, in_sub_blocks, done):
        # Image data is a run of 255-byte sub-blocks: hop over several per loop step, since a
        # step's fixed cost (not its arithmetic) is what a long file pays for.
        for _ in range(_GIF_HOPS):
            size = at(position)
            hop = tf.logical_and(in_sub_blocks, position < length)
            position = tf.where(hop, position + size + 1, position)
            in_sub_blocks = tf.logical_and(in_sub_blocks,
                                           tf.logical_or(tf.logical_not(hop), size > 0))
        byte = at(position)
        is_image = tf.logical_and(tf.logical_not(in_sub_blocks), tf.equal(byte, 0x2C))
        is_extension = tf.logical_and(tf.logical_not(in_sub_blocks), tf.equal(byte, 0x21))
        area = (at(position + 5) + 256 * at(position + 6)) * (
            at(position + 7) + 256 * at(position + 8))
        position_next = tf.where(
            in_sub_blocks, position + byte + 1,
            tf.where(is_image, position + 11 + colour_table(at(position + 9)), position + 2))
        return (position_next, total + tf.where(is_image, area, tf.constant(0, tf.int64)),
                tf.where(in_sub_blocks, tf.not_equal(byte, 0), is_image | is_extension),
                tf.logical_not(in_sub_blocks | is_image | is_extension))   # trailer or junk

    _, total, _, _ = tf.while_loop(
        lambda position, total, in_sub_blocks, done: tf.logical_and(
            tf.logical_not(done), position < length),
        step, (13 + colour_table(at(10)), tf.constant(0, tf.int64), tf.constant(False),
               tf.constant(False)))
    return total


def _last(data, pattern):
    """The last index of the byte sequence ``pattern`` in uint8 ``data``, or -1."""
    import tensorflow as tf

    length = tf.size(data)
    padded = tf.concat([data, tf.zeros([len(pattern)], tf.uint8)], 0)
    found = tf.ones([length], tf.bool)
    for offset, byte in enumerate(pattern):
        found = tf.logical_and(found, tf.equal(padded[offset:offset + length], byte))
    return tf.reduce_max(tf.concat([[-1], tf.cast(tf.where(found)[:, 0], tf.int32)], 0))


def is_whole(image_bytes: tf.Tensor | bytes) -> tf.Tensor:
    """False for a JPEG, PNG or BMP file cut short: a JPEG with no end-of-image marker (FF D9)
    after its last scan (FF DA; the marker cannot occur inside a scan's data, where every FF
    byte is escaped), a PNG with no whole ``IEND`` chunk, a BMP shorter than the size its
    header states. True for whole files and for GIFs and other bytes, whose decoders say what
    is wrong with them.

    >>> import tensorflow as tf
    >>> photo = tf.io.encode_jpeg(tf.zeros([30, 40, 3], tf.uint8))
    >>> bool(is_whole(photo)), bool(is_whole(tf.strings.substr(photo, 0, 300)))
    (True, False)
    """
    import tensorflow as tf

    from .data.ops import is_jpeg

    def jpeg():
        data = tf.io.decode_raw(image_bytes, tf.uint8)
        last_scan = _last(data, b"\xff\xda")
        return tf.logical_and(last_scan >= 0, _last(data, b"\xff\xd9") > last_scan)

    def png():
        data = tf.io.decode_raw(image_bytes, tf.uint8)
        end = _last(data, b"IEND")  # then the chunk's 4-byte CRC
        return tf.logical_and(end >= 0, end + 8 <= tf.size(data))

    def bmp():
        head = tf.cast(tf.io.decode_raw(tf.strings.substr(
            tf.strings.join([image_bytes, _HEADER_PAD]), 0, len(_HEADER_PAD)), tf.uint8), tf.int64)
        return _little_endian(head, 2, 4) <= tf.cast(tf.strings.length(image_bytes), tf.int64)

    def starts(magic):
        return tf.equal(tf.strings.substr(image_bytes, 0, len(magic)), magic)

    return tf.case([(is_jpeg(image_bytes), jpeg), (starts(_PNG_MAGIC), png),
                    (starts(_BMP_MAGIC), bmp)], default=lambda: tf.constant(True))


def _too_big_message(what, max_pixels):
    return (f"{what}, more than the {max_pixels} pixels this SavedModel accepts (the limit "
            "set when it was exported: vgg_keras.export.export(..., max_pixels=N) raises it)")


def _check_encoded(image_bytes, max_pixels):
    """Assertions (ops) that the ``(B,)`` batch of files is not empty, that each is a format
    whose size :func:`header_size` reads, whole (:func:`is_whole`), and that none holds more
    than ``max_pixels``."""
    import tensorflow as tf

    count = tf.shape(image_bytes)[0]
    not_empty = tf.debugging.Assert(count > 0, [EMPTY_BATCH])
    # The checks below index the batch (argmax, gather), which fails on an empty one with
    # TensorFlow's own message if it runs first: they wait for this one.
    with tf.control_dependencies([not_empty]):
        cut = tf.logical_not(tf.map_fn(is_whole, image_bytes, fn_output_signature=tf.bool))
        whole = tf.debugging.Assert(tf.logical_not(tf.reduce_any(cut)), [tf.strings.format(
            "image {} of the batch is cut short (a JPEG without its end-of-image marker, a PNG "
            "without its IEND chunk, or a BMP shorter than its header says): send the whole file",
            [tf.argmax(tf.cast(cut, tf.int32), output_type=tf.int32)])])
    # A JPEG cut inside its header would fail header_size with TensorFlow's own message.
    with tf.control_dependencies([whole]):
        sizes = tf.map_fn(header_size, image_bytes,
                          fn_output_signature=tf.TensorSpec([3], tf.int64))
        unknown = sizes[:, 2] < 0
        # The first offender is named (index 0 when there is none: the message is then unused).
        first_unknown = tf.argmax(tf.cast(unknown, tf.int32), output_type=tf.int32)
        known_format = tf.debugging.Assert(tf.logical_not(tf.reduce_any(unknown)), [
            tf.strings.format(f"image {{}} of the batch is not a {FORMAT_NAMES} file: cannot "
                              "decode it", [first_unknown])])
        too_big = sizes[:, 2] > max_pixels
        first = tf.argmax(tf.cast(too_big, tf.int32), output_type=tf.int32)
        small_enough = tf.debugging.Assert(tf.logical_not(tf.reduce_any(too_big)), [
            tf.strings.format(_too_big_message("image {} of the batch is {} x {} ({} pixels to "
                                               "decode)", max_pixels),
                              [first, sizes[first, 0], sizes[first, 1], sizes[first, 2]])])
    return [not_empty, whole, known_format, small_enough]


def _check_decoded(images, max_pixels):
    """Assertions (ops) that the ``(B, H, W, 3)`` batch is not empty and H x W is at most
    ``max_pixels``."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(images), tf.int64)
    not_empty = tf.debugging.Assert(shape[0] > 0, [EMPTY_BATCH])
    has_pixels = tf.debugging.Assert(tf.logical_and(shape[1] > 0, shape[2] > 0), [
        tf.strings.format("the images are {} x {}: each needs at least one pixel",
                          [shape[1], shape[2]])])
    small_enough = tf.debugging.Assert(shape[1] * shape[2] <= max_pixels, [
        tf.strings.format(_too_big_message("the images are {} x {}", max_pixels),
                          [shape[1], shape[2]])])
    return [not_empty, has_pixels, small_enough]


def _boxes_in_image(boxes, rescaled, offsets, crop):
    """``[cx, cy, w, h]`` relative to the crop ``(B, K, 4)`` -> ``[ymin, xmin, ymax, xmax]``
    normalised to the whole image, clipped to [0, 1].

    A point at ``v`` (fraction of the crop) is at ``offset + crop * v`` pixels of the rescaled
    image, ``(offset + crop * v) / rescaled`` of it; rescaling maps the whole image onto the
    whole rescaled image, so that is also the fraction of the original image (the inverse of
    ``vgg_keras.data.ops.crop_boxes``: :func:`vgg_keras.boxes.from_crop`).
    """
    import tensorflow as tf

    yxyx = B.from_crop(B.decode(boxes, xp=tf), tf.cast(rescaled, tf.float32)[:, None, :],
                       tf.cast(offsets, tf.float32)[:, None, :], float(crop), xp=tf)
    return tf.clip_by_value(yxyx, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# ONNX


def _importable(name):
    if name in sys.modules:
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def _require_onnx():
    needed = ONNX_PACKAGES if keras.backend.backend() != "torch" else ("onnx",)
    missing = [name for name in needed if not _importable(name)]
    if missing:
        raise ImportError(f"format='onnx' needs {', '.join(missing)}: {ONNX_INSTALL} (the "
                          "'onnx' extra pins versions tested with this TensorFlow and Keras).")


def _export_onnx(model, path, verbose):
    _require_onnx()
    unsupported = sorted({layer.dtype_policy.name for layer in model.layers
                          if layer.dtype_policy.name != "float32"})
    if unsupported:
        raise ValueError(f"The ONNX export needs a float32 model; {model.name} has layers with "
                         f"the policy {', '.join(unsupported)}. Rebuild it under float32 and "
                         "load its weights.")
    if keras.backend.backend() == "torch":
        _export_onnx_here(model, path, verbose)
        return
    # Keras on TensorFlow converts with tf2onnx, which freezes the weights into a GraphDef and
    # runs grappler on it: over 20 GB of memory for D's 138M weights (7.5 GB for the frozen
    # graph alone). Keras on torch exports with torch.onnx in ~3 GB and 16 s, so the model is
    # handed to a torch-backend process through a .keras file (which holds all of it).
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = os.path.join(tmp, "model.keras")
        model.save(keras_path)
        package_parent = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "KERAS_BACKEND": "torch",
               "PYTHONPATH": os.pathsep.join(filter(None, [package_parent,
                                                           os.environ.get("PYTHONPATH")]))}
        code = ("import sys; from vgg_keras.export import _export_onnx_here; "
                "_export_onnx_here(sys.argv[1], sys.argv[2], sys.argv[3] == '1')")
        result = subprocess.run(
            [sys.executable, "-c", code, keras_path, os.path.abspath(path),
             "1" if verbose else "0"], env=env, capture_output=not verbose, text=True,
            check=False)
    if result.returncode:
        raise RuntimeError(f"The ONNX export (a KERAS_BACKEND=torch subprocess) failed with exit "
                           f"status {result.returncode}:\n{(result.stderr or '')[-4000:]}")


def _export_onnx_here(model, path, verbose):
    """Export with the current backend's Keras ONNX exporter (torch: torch.onnx)."""
    model = _load_if_path(model)
    height, width, channels = model.input_shape[1:]
    spec = keras.InputSpec(shape=(None, height, width, channels), dtype="float32", name="image")
    with warnings.catch_warnings():
        # torch.onnx's tracer warns about every shape it reads as a Python number; the shapes
        # are fixed but the batch, which stays dynamic.
        warnings.simplefilter("ignore")
        model.export(path, format="onnx", input_signature=[spec], verbose=verbose)
    _name_onnx_outputs(path, "boxes" if is_localizer(model) else "logits")


def _name_onnx_outputs(path, output_name):
    """Give the graph's output a meaningful name, so callers can ask for ``"logits"``, and its
    dynamic batch dimension the name ``batch``."""
    import onnx

    graph_model = onnx.load(path)
    graph = graph_model.graph
    (output,) = graph.output
    old = output.name
    for node in graph.node:
        node.output[:] = [output_name if name == old else name for name in node.output]
        node.input[:] = [output_name if name == old else name for name in node.input]
    output.name = output_name
    for value in list(graph.input) + list(graph.output):
        dim = value.type.tensor_type.shape.dim[0]
        if not dim.HasField("dim_value"):
            dim.dim_param = "batch"
    onnx.checker.check_model(graph_model)
    onnx.save(graph_model, path)
