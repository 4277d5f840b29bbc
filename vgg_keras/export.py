"""Serving exports of a trained classifier or localizer: a TensorFlow SavedModel that takes image
files, an ONNX graph, or a ``.keras`` file.

>>> from vgg_keras.export import export
>>> export(model, "served/vgg_d", format="saved_model")        # TF Serving, tf.saved_model.load
>>> export(model, "vgg_d.onnx", format="onnx")                  # ONNX Runtime
>>> export(model, "vgg_d.keras", format="keras")                # keras.saving.load_model

The SavedModel holds the whole test-time preprocessing of the paper's single-scale central-crop
evaluation (decode, isotropic rescale of the shorter side to Q, central crop), so a server runs
it with no Python code of ours. Its signatures:

* ``serve`` (also ``serving_default``): ``image_bytes``, a ``(B,)`` tf.string batch of encoded
  JPEG, PNG, GIF or BMP files of any sizes;
* ``serve_uint8``: ``images``, ``(B, H, W, 3)`` uint8 RGB images of one size.

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

import importlib.util
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import keras

from .boxes import decode
from .models import _load_if_path, is_localizer

FORMATS = ("saved_model", "onnx", "keras")
SERVE_BYTES = "serve"
"""The default signature (also exported as ``serving_default``): encoded image files."""
SERVE_UINT8 = "serve_uint8"
"""The signature taking decoded ``(B, H, W, 3)`` uint8 images."""
PAPER_SCALE_RATIO = 256 / 224
"""The paper's usual test scale for a 224 crop is Q = 256 (the model trained at S = 256)."""
ONNX_PACKAGES = ("torch", "onnx")
ONNX_INSTALL = 'pip install "vgg_keras[onnx]"'


def default_scale(crop):
    """Q for a crop side when none is given: 256 for 224, in the same ratio for other crops.

    >>> default_scale(224), default_scale(64)
    (256, 73)
    """
    return int(round(crop * PAPER_SCALE_RATIO))


def export(model, path, format="saved_model", *, classifier=None, scale=None, top=None,
           verbose=False):
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
        scale: SavedModel only: the test scale Q, the shorter side images are rescaled to before
            the central crop. Default :func:`default_scale` (256 for a 224 crop); a model trained
            at S should get ``vgg_keras.train.test_scale(S)``.
        top: SavedModel only: how many classes to report, at most C (default 5).
        verbose: print what Keras prints while exporting.

    Returns the path written, as a string.

    >>> model = build_vgg("A", 10, input_shape=(64, 64, 3), width=0.25)
    >>> export(model, "/tmp/vgg_a", scale=84)
    '/tmp/vgg_a'
    >>> served = tf.saved_model.load("/tmp/vgg_a")
    >>> served.signatures["serve"](image_bytes=tf.constant([open("cat.jpg", "rb").read()]))
    {'classes': <(1, 5) int32>, 'probabilities': <(1, 5) float32>, 'logits': <(1, 10) float32>}
    """
    if format not in FORMATS:
        raise ValueError(f"Unknown export format {format!r}; choose one of {', '.join(FORMATS)}.")
    path = os.fspath(path)
    _check_suffix(path, format)
    model = _load_if_path(model)
    if format != "saved_model":
        given = [name for name, value in (("classifier", classifier), ("scale", scale),
                                          ("top", top)) if value is not None]
        if given:
            raise ValueError(
                f"{', '.join(given)} only appl{'ies' if len(given) == 1 else 'y'} to "
                f"format='saved_model' (the {format} export is the network alone); export a "
                "classifier separately.")
    if format == "keras":
        model.save(path)
    elif format == "onnx":
        _export_onnx(model, path, verbose)
    else:
        _export_saved_model(model, path, classifier=classifier, scale=scale,
                            top=5 if top is None else top, verbose=verbose)
    return path


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


def _export_saved_model(model, path, *, classifier, scale, top, verbose):
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "format='saved_model' needs the TensorFlow backend (the preprocessing and the "
            f"signatures are TensorFlow graphs); Keras is running on {keras.backend.backend()!r}. "
            "Set KERAS_BACKEND=tensorflow, or export format='onnx' or 'keras'.")
    import tensorflow as tf

    # vgg_keras.data.ops are the evaluation pipeline's own functions, so serving crops exactly
    # as the central-crop evaluation does.
    from .data import ops as image_ops
    from .localization import regression_of

    localizer = model if is_localizer(model) else None
    if localizer is None:
        if classifier is not None:
            raise ValueError("classifier= is for localizers; this model is a classifier.")
        classifier = model
    elif classifier is not None:
        classifier = _load_if_path(classifier)
        if is_localizer(classifier):
            raise ValueError(f"classifier= must be a classifier; {classifier.name} is a "
                             "localizer.")
    crop = _crop_side(model, "model")
    if (classifier is not None and classifier is not model
            and _crop_side(classifier, "classifier") != crop):
        raise ValueError(f"The classifier takes {classifier.input_shape[1:3]} crops but the "
                         f"localizer {model.input_shape[1:3]}; they must share the crop.")
    scale = default_scale(crop) if scale is None else scale
    if int(scale) != scale or scale < crop:
        raise ValueError(f"scale (Q, the rescaled shorter side) must be an integer at least the "
                         f"crop {crop}, got {scale}.")
    scale = int(scale)
    if int(top) != top or top < 1:
        raise ValueError(f"top must be a positive integer, got {top}.")

    regression, box_classes = regression_of(localizer) if localizer is not None else (None, None)
    num_classes = classifier.output_shape[-1] if classifier is not None else None
    if regression == "pcr" and classifier is not None and num_classes != box_classes:
        raise ValueError(f"The localizer predicts boxes for {box_classes} classes but the "
                         f"classifier scores {num_classes}.")
    k = min(int(top), num_classes) if classifier is not None else None

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

    def serve_bytes(image_bytes):
        crops, rescaled, offsets = tf.map_fn(
            lambda data: image_ops.decode_rescale_crop(data, scale, crop, image_ops.center_offset),
            image_bytes, fn_output_signature=(
                tf.TensorSpec([crop, crop, 3], tf.float32), tf.TensorSpec([2], tf.int32),
                tf.TensorSpec([2], tf.int32)))
        return predict(crops, rescaled, offsets)

    def serve_uint8(images):
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


def _boxes_in_image(boxes, rescaled, offsets, crop):
    """``[cx, cy, w, h]`` relative to the crop ``(B, K, 4)`` -> ``[ymin, xmin, ymax, xmax]``
    normalised to the whole image, clipped to [0, 1].

    A point at ``v`` (fraction of the crop) is at ``offset + crop * v`` pixels of the rescaled
    image, ``(offset + crop * v) / rescaled`` of it; rescaling maps the whole image onto the
    whole rescaled image, so that is also the fraction of the original image (the inverse of
    ``vgg_keras.data.ops.crop_boxes``).
    """
    import tensorflow as tf

    yxyx = decode(boxes)
    offsets = tf.tile(tf.cast(offsets, tf.float32), [1, 2])[:, None, :]
    rescaled = tf.tile(tf.cast(rescaled, tf.float32), [1, 2])[:, None, :]
    return tf.clip_by_value((offsets + float(crop) * yxyx) / rescaled, 0.0, 1.0)


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
