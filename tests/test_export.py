"""vgg_keras.export: the SavedModel serving signatures (preprocessing included), ONNX, .keras.

The SavedModel's answers are checked against the Keras model applied to crops that this file
makes independently: decode the whole file, rescale it with ``tf.image.resize`` (bilinear) so the
shorter side is Q, slice the central crop. The export instead decodes and resamples only the
window the crop needs (``vgg_keras.data.ops.decode_rescale_crop``), so the comparison also checks
that the two agree.
"""

import io
import struct
import sys

import numpy as np
import pytest
import tensorflow as tf
import keras

import vgg_keras
from vgg_keras.export import (
    DEFAULT_MAX_PIXELS, SERVE_BYTES, SERVE_UINT8, export, header_size, is_whole,
)

CROP = 32
SCALE = 40          # Q: every image below is rescaled to shorter side 40, then cropped to 32
CLASSES = 6
# (height, width): landscape, portrait, shorter side exactly Q, smaller than the crop (upscaled).
SIZES = [(50, 70), (90, 47), (40, 64), (24, 30)]

# Tolerances. Logits: the serving crop is computed by tf.image.crop_and_resize on a window, the
# reference by tf.image.resize on the whole image; both are the same bilinear samples and agree
# to < 1e-3 grey levels (measured 5e-4), which moves these logits (|logit| < 1) by ~1e-6. The
# same bytes are decoded by the same libjpeg/libpng on both sides, so JPEG is held as tightly
# as PNG. A crop one pixel off moves the logits by 0.03-0.07 (measured), far above 1e-4.
LOGIT_TOL = 1e-4
# Boxes are affine in the localizer's outputs with factors <= crop / Q, so the logit tolerance.
BOX_TOL = 1e-4


def tiny_classifier(seed=0):
    keras.utils.set_random_seed(seed)
    return vgg_keras.build_vgg("A", CLASSES, input_shape=(CROP, CROP, 3), width=0.125,
                               init="glorot")


def tiny_localizer(classifier, regression, seed=1):
    """A localizer whose boxes lie inside the crop and vary with the image: a random fc8_box
    would give degenerate boxes that clipping flattens to 0 or 1, hiding mapping errors."""
    localizer = vgg_keras.build_localizer(classifier, regression=regression, init="glorot")
    layer = localizer.get_layer(vgg_keras.models.BOX_LAYER)
    kernel, bias = layer.get_weights()
    rng = np.random.default_rng(seed)
    per = bias.size // 4
    centres = rng.uniform(0.35, 0.65, (per, 2))
    sizes = rng.uniform(0.3, 0.6, (per, 2))
    bias = np.concatenate([centres, sizes], axis=1).reshape(-1).astype("float32")
    layer.set_weights([0.05 * kernel, bias])
    return localizer


def images(seed=0):
    """Smooth colour images (gradients plus noise) of the SIZES, uint8."""
    rng = np.random.default_rng(seed)
    result = []
    for height, width in SIZES:
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([255 * y / height, 255 * x / width, 128 + 0 * x], axis=-1)
        noisy = base + rng.normal(0, 20, base.shape)
        result.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return result


def encode(image, kind):
    return (tf.io.encode_png(image) if kind == "png" else tf.io.encode_jpeg(image, quality=90)
            ).numpy()


def reference_crop(image):
    """Whole-image rescale to shorter side SCALE, then the central CROP x CROP slice."""
    height, width = image.shape[:2]
    shorter = min(height, width)
    rescaled = [max(1, int(round(height * SCALE / shorter))),
                max(1, int(round(width * SCALE / shorter)))]
    big = tf.image.resize(tf.cast(image, tf.float32), rescaled, method="bilinear").numpy()
    top, left = (rescaled[0] - CROP) // 2, (rescaled[1] - CROP) // 2
    return big[top:top + CROP, left:left + CROP], np.array(rescaled), np.array([top, left])


def decoded(data):
    return tf.io.decode_image(data, channels=3, expand_animations=False).numpy()


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def reference_boxes(raw, rescaled, offset):
    """Model outputs [cx, cy, w, h] relative to the crop (K, 4) -> yxyx of the whole image."""
    cx, cy, w, h = raw.reshape(-1, 4).T
    crop_yxyx = np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
    pixels = np.tile(offset, 2) + CROP * crop_yxyx
    return np.clip(pixels / np.tile(rescaled, 2), 0, 1)


def check_classifier_outputs(outputs, model, crops, top=5):
    logits = model.predict_on_batch(np.stack(crops))
    np.testing.assert_allclose(outputs["logits"], logits, rtol=0, atol=LOGIT_TOL)
    probabilities = softmax(logits)
    order = np.argsort(-probabilities, axis=-1, kind="stable")[:, :top]
    np.testing.assert_array_equal(outputs["classes"], order)
    np.testing.assert_allclose(outputs["probabilities"],
                               np.take_along_axis(probabilities, order, axis=-1),
                               rtol=0, atol=LOGIT_TOL)
    return order


def call(signature, **inputs):
    return {name: value.numpy() for name, value in signature(**inputs).items()}


# ----------------------------------------------------------------------------------------------
# SavedModel


@pytest.fixture(scope="module")
def classifier():
    return tiny_classifier()


@pytest.fixture(scope="module")
def served_classifier(classifier, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "classifier"
    assert export(classifier, path, test_scale=SCALE) == str(path)
    return tf.saved_model.load(str(path))


def test_saved_model_signatures_and_outputs(served_classifier):
    signatures = served_classifier.signatures
    assert set(signatures) == {SERVE_BYTES, SERVE_UINT8, "serving_default"}
    for name in (SERVE_BYTES, "serving_default"):
        (inputs,) = signatures[name].structured_input_signature[1].values()
        assert inputs.dtype == tf.string and inputs.shape.as_list() == [None]
    outputs = signatures[SERVE_BYTES].structured_outputs
    assert outputs["classes"].dtype == tf.int32 and outputs["classes"].shape[1] == 5
    assert outputs["probabilities"].dtype == tf.float32
    assert outputs["logits"].shape[1] == CLASSES


@pytest.mark.parametrize("kind", ["png", "jpeg"])
def test_bytes_signature_matches_keras_on_reference_crops(served_classifier, classifier, kind):
    files = [encode(image, kind) for image in images()]
    outputs = call(served_classifier.signatures[SERVE_BYTES], image_bytes=tf.constant(files))
    # The reference decodes the very same bytes (JPEG is lossy: never compare to the original).
    crops = [reference_crop(decoded(data))[0] for data in files]
    check_classifier_outputs(outputs, classifier, crops)


def test_uint8_signature_matches_keras_and_bytes(served_classifier, classifier):
    batch = np.stack(images(seed=3)[:1] * 2 + [images(seed=4)[0]])  # three 50x70 images
    outputs = call(served_classifier.signatures[SERVE_UINT8], images=tf.constant(batch))
    check_classifier_outputs(outputs, classifier, [reference_crop(image)[0] for image in batch])
    as_png = call(served_classifier.signatures[SERVE_BYTES],
                  image_bytes=tf.constant([encode(image, "png") for image in batch]))
    np.testing.assert_allclose(as_png["logits"], outputs["logits"], rtol=0, atol=LOGIT_TOL)


@pytest.mark.parametrize("regression,with_classifier", [("scr", False), ("pcr", True)])
def test_localizer_boxes_map_back_to_the_image(classifier, tmp_path, regression,
                                                with_classifier):
    localizer = tiny_localizer(classifier, regression)
    top = 3
    export(localizer, tmp_path / "loc", test_scale=SCALE, top=top,
           classifier=classifier if with_classifier else None)
    served = tf.saved_model.load(str(tmp_path / "loc"))
    files = [encode(image, "png") for image in images(seed=5)]
    outputs = call(served.signatures[SERVE_BYTES], image_bytes=tf.constant(files))
    references = [reference_crop(decoded(data)) for data in files]
    crops = [crop for crop, _, _ in references]
    raw = localizer.predict_on_batch(np.stack(crops))
    expected = np.stack([reference_boxes(r, rescaled, offset)
                         for r, (_, rescaled, offset) in zip(raw, references)])
    if with_classifier:
        order = check_classifier_outputs(outputs, classifier, crops, top=top)
        expected = np.take_along_axis(expected, order[:, :, None], axis=1)   # PCR: class boxes
    else:
        assert set(outputs) == {"boxes"}
    assert outputs["boxes"].shape == expected.shape
    assert 0 < expected.min() and expected.max() < 1      # not flattened by clipping
    np.testing.assert_allclose(outputs["boxes"], expected, rtol=0, atol=BOX_TOL)


def test_localizer_variants_shapes(classifier, tmp_path):
    """SCR with a classifier repeats its box per reported class, and top is capped at C;
    PCR alone gives all C boxes."""
    scr = tiny_localizer(classifier, "scr")
    pcr = tiny_localizer(classifier, "pcr")
    export(scr, tmp_path / "scr", classifier=classifier, test_scale=SCALE, top=50)
    export(pcr, tmp_path / "pcr", test_scale=SCALE)
    image = tf.constant(images()[0][None])
    with_classifier = call(tf.saved_model.load(str(tmp_path / "scr")).signatures[SERVE_UINT8],
                           images=image)
    assert with_classifier["classes"].shape == (1, CLASSES)
    np.testing.assert_allclose(with_classifier["probabilities"].sum(), 1.0, atol=1e-5)
    assert with_classifier["boxes"].shape == (1, CLASSES, 4)
    np.testing.assert_array_equal(with_classifier["boxes"][:, 1:],
                                  np.repeat(with_classifier["boxes"][:, :1], CLASSES - 1, axis=1))
    alone = call(tf.saved_model.load(str(tmp_path / "pcr")).signatures[SERVE_UINT8], images=image)
    assert set(alone) == {"boxes"} and alone["boxes"].shape == (1, CLASSES, 4)


# ----------------------------------------------------------------------------------------------
# Refusing what would exhaust memory

SMALL_LIMIT = 10_000   # pixels: a 100 x 100 image is at the limit, 120 x 120 over it


def pil_file(image, kind, **options):
    from PIL import Image

    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(
        buffer, kind, **options)
    return buffer.getvalue()


def noise(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def top_down_bmp(image):
    """A BMP stored top-down (negative height in the header, rows in display order), which PIL
    never writes: its bottom-up file with the height negated and the rows reversed."""
    data = bytearray(pil_file(image, "BMP"))
    offset, = struct.unpack_from("<I", data, 10)
    height, = struct.unpack_from("<i", data, 22)
    row = (len(data) - offset) // height
    rows = [data[offset + i * row: offset + (i + 1) * row] for i in range(height)]
    struct.pack_into("<i", data, 22, -height)
    return bytes(data[:offset] + b"".join(reversed(rows)))


def claiming(png, height, width):
    """``png`` with its IHDR rewritten to claim ``height`` x ``width`` pixels (the data, and the
    chunk's CRC, still those of the small image: decoding it would fail)."""
    data = bytearray(png)
    struct.pack_into(">II", data, 16, width, height)
    return bytes(data)


@pytest.fixture(scope="module")
def served_small(classifier, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "small_limit"
    export(classifier, path, test_scale=SCALE, max_pixels=SMALL_LIMIT)
    return tf.saved_model.load(str(path))


def test_header_size_reads_every_format_as_the_decoder_does():
    image = noise(37, 53)                   # not square: a swapped height and width would show
    files = {kind: pil_file(image, kind) for kind in ("PNG", "JPEG", "GIF", "BMP")}
    files["bottom-up BMP"] = files.pop("BMP")   # PIL's BMPs store the last row first
    files["top-down BMP"] = top_down_bmp(image)
    for kind, data in files.items():
        decoded_shape = tf.io.decode_image(data, channels=3, expand_animations=False).shape
        assert decoded_shape == (37, 53, 3), kind
        np.testing.assert_array_equal(header_size(data), [37, 53, 37 * 53], err_msg=kind)
    np.testing.assert_array_equal(  # the top-down file holds the same picture, not a mirror
        tf.io.decode_bmp(files["top-down BMP"], channels=3),
        tf.io.decode_bmp(files["bottom-up BMP"], channels=3))
    # A 16-bit greyscale PNG and a large GIF: the fields are read whole, not their low bytes.
    wide = tf.io.encode_png(tf.zeros([3, 300, 1], tf.uint16)).numpy()
    np.testing.assert_array_equal(header_size(wide), [3, 300, 900])
    np.testing.assert_array_equal(header_size(pil_file(noise(2, 700), "GIF")), [2, 700, 1400])
    np.testing.assert_array_equal(header_size(claiming(files["PNG"], 20000, 30000)),
                                  [20000, 30000, 600_000_000])


def test_header_size_counts_every_frame_of_an_animated_gif():
    from PIL import Image

    # Alternating colours, so every frame is stored whole (PIL drops repeats, crops to changes).
    frames = [Image.new("RGB", (40, 30), colour) for colour in ("red", "blue") * 3]
    data = pil_file(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert tf.io.decode_gif(data).shape[0] == 6
    # The decoder holds every frame although serving reads the first: 6 x 40 x 30 pixels.
    np.testing.assert_array_equal(header_size(data), [30, 40, 6 * 1200])


def test_header_size_of_other_bytes():
    np.testing.assert_array_equal(header_size(b"not an image"), [-1, -1, -1])
    np.testing.assert_array_equal(header_size(b""), [-1, -1, -1])
    # A PNG cut inside its header claims no pixels (decoding it then fails with TF's message).
    np.testing.assert_array_equal(header_size(pil_file(noise(9, 9), "PNG")[:18]), [0, 0, 0])


def test_serve_refuses_a_batch_with_an_image_over_max_pixels(served_small, classifier):
    serve = served_small.signatures[SERVE_BYTES]
    at_limit = pil_file(noise(100, 100), "JPEG", quality=90)    # 10000 pixels: accepted
    over = pil_file(noise(120, 120, seed=1), "PNG")             # 14400 pixels: refused
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"image 1 of the batch is 120 x 120 \(14400 pixels to decode\), "
                             r"more than the 10000 pixels.*max_pixels=N\) raises it"):
        serve(image_bytes=tf.constant([at_limit, over]))
    outputs = call(serve, image_bytes=tf.constant([at_limit]))
    check_classifier_outputs(outputs, classifier, [reference_crop(decoded(at_limit))[0]])


def test_serve_reads_the_header_before_decoding(served_classifier):
    """A 20000 x 20000 PNG header (1.2 GB to decode) on 300 bytes: refused by the default limit,
    before the decoder could allocate (its data is too short to decode at all, so an error
    naming PNG data would mean the decoder ran first)."""
    bomb = claiming(pil_file(noise(10, 10), "PNG"), 20000, 20000)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"image 0 of the batch is 20000 x 20000 .*more than the "
                             rf"{DEFAULT_MAX_PIXELS} pixels"):
        served_classifier.signatures[SERVE_BYTES](image_bytes=tf.constant([bomb]))
    # The default lets a 24-megapixel photograph through (6000 x 4000; header only, no decode).
    assert header_size(claiming(pil_file(noise(10, 10), "PNG"), 4000, 6000))[2] \
        <= DEFAULT_MAX_PIXELS


def test_serve_uint8_refuses_images_over_max_pixels(served_small):
    serve = served_small.signatures[SERVE_UINT8]
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"the images are 120 x 120, more than the 10000 pixels"):
        serve(images=tf.zeros([2, 120, 120, 3], tf.uint8))
    assert call(serve, images=tf.zeros([2, 100, 100, 3], tf.uint8))["logits"].shape == (2, CLASSES)


def test_empty_batches_and_undecodable_files_are_clear_errors(served_small):
    signatures = served_small.signatures
    # Many times: the checks that index the batch once raced the emptiness check and now and
    # then (1 call in 300 here, once in CI) answered with TensorFlow's "Reduction axis 0 is empty".
    for _ in range(100):
        with pytest.raises(tf.errors.InvalidArgumentError, match="empty batch: send at least one"):
            signatures[SERVE_BYTES](image_bytes=tf.constant([], tf.string))
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty batch: send at least one"):
        signatures[SERVE_UINT8](images=tf.zeros([0, 50, 50, 3], tf.uint8))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="the images are 0 x 0: each needs at least one pixel"):
        signatures[SERVE_UINT8](images=tf.zeros([2, 0, 0, 3], tf.uint8))
    good = pil_file(noise(50, 50), "PNG")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="image 1 of the batch is not a JPEG, PNG, GIF or BMP file"):
        signatures[SERVE_BYTES](image_bytes=tf.constant([good, b"<html>not found</html>"]))


@pytest.mark.parametrize("kind", ["JPEG", "PNG", "BMP"])
def test_serve_names_the_file_cut_short(served_small, kind):
    whole = pil_file(noise(50, 60), kind)
    serve = served_small.signatures[SERVE_BYTES]
    for cut in (40, len(whole) // 2, len(whole) - 1):   # in the header, the data, the last byte
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=r"image 2 of the batch is cut short .*: send the whole file"):
            serve(image_bytes=tf.constant([whole, whole, whole[:cut]]))
    if kind != "BMP":   # (TensorFlow's BMP decoder wants the exact size)
        # Bytes after the end (a trailer some cameras write) are not a cut.
        outputs = call(serve, image_bytes=tf.constant([whole + b"\0" * 16]))
        assert outputs["logits"].shape == (1, CLASSES)


def test_is_whole_reads_the_end_of_every_format():
    for kind in ("JPEG", "PNG", "BMP", "GIF"):
        whole = pil_file(noise(30, 40), kind, **({"progressive": True} if kind == "JPEG" else {}))
        assert bool(is_whole(whole)), kind
        # A GIF cut short is left to its decoder (no end this check reads).
        assert [bool(is_whole(whole[:cut])) for cut in (20, len(whole) - 1)] == \
            [kind == "GIF"] * 2, kind
    # A JPEG holding a whole JPEG (an EXIF thumbnail) before its own scan, cut in that scan.
    thumb, main = pil_file(noise(8, 8), "JPEG"), pil_file(noise(30, 40, seed=1), "JPEG")
    nested = main[:2] + b"\xff\xe1" + struct.pack(">H", len(thumb) + 2) + thumb + main[2:]
    assert bool(is_whole(nested)) and not bool(is_whole(nested[:-100]))
    assert bool(is_whole(b"<html>not found</html>"))   # not an image: the format check says so


# ----------------------------------------------------------------------------------------------
# ONNX and .keras


def onnx_session(path):
    # Imported here so a missing package fails these tests (it is in the test extra) while the
    # rest of the file still runs.
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.slow
def test_onnx_classifier_matches_keras(classifier, tmp_path):
    path = export(classifier, tmp_path / "model.onnx", format="onnx")
    session = onnx_session(path)
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    assert session.get_inputs()[0].shape == ["batch", CROP, CROP, 3]
    rng = np.random.default_rng(0)
    for batch in (1, 3):   # the batch dimension is dynamic
        x = rng.uniform(0, 255, (batch, CROP, CROP, 3)).astype(np.float32)
        (logits,) = session.run(["logits"], {"image": x})
        expected = classifier.predict_on_batch(x)
        # Different conv kernels (ONNX Runtime vs oneDNN) sum in other orders: float32 rounding,
        # ~1e-6 of logits of order 1.
        np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_onnx_localizer_outputs_boxes(classifier, tmp_path):
    localizer = tiny_localizer(classifier, "pcr")
    session = onnx_session(export(localizer, tmp_path / "loc.onnx", format="onnx"))
    assert [o.name for o in session.get_outputs()] == ["boxes"]
    x = np.random.default_rng(1).uniform(0, 255, (2, CROP, CROP, 3)).astype(np.float32)
    (boxes,) = session.run(None, {"image": x})
    np.testing.assert_allclose(boxes, localizer.predict_on_batch(x), rtol=1e-4, atol=1e-4)
    assert boxes.shape == (2, 4 * CLASSES)


def test_keras_format_round_trips_with_safe_mode(classifier, tmp_path):
    path = export(classifier, tmp_path / "model.keras", format="keras")
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = np.random.default_rng(2).uniform(0, 255, (2, CROP, CROP, 3)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_on_batch(x), classifier.predict_on_batch(x))
    # A .keras path is accepted wherever a model is.
    again = export(path, tmp_path / "again.keras", format="keras")
    np.testing.assert_array_equal(keras.saving.load_model(again).predict_on_batch(x),
                                  classifier.predict_on_batch(x))


# ----------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("format,name,match", [
    ("tflite", "m", "Unknown export format 'tflite'"),
    ("onnx", "m.keras", r"format='onnx' writes a \.onnx file"),
    ("keras", "m.onnx", r"format='keras' writes a \.keras file"),
    ("keras", "m", r"\.keras file"),
    ("saved_model", "m.keras", "writes a directory"),
])
def test_format_and_suffix_errors(classifier, tmp_path, format, name, match):
    with pytest.raises(ValueError, match=match):
        export(classifier, tmp_path / name, format=format)
    assert not (tmp_path / name).exists()


def test_argument_errors(classifier, tmp_path):
    with pytest.raises(ValueError, match="only applies to format='saved_model'"):
        export(classifier, tmp_path / "m.onnx", format="onnx", test_scale=40)
    with pytest.raises(ValueError, match="classifier= is for localizers"):
        export(classifier, tmp_path / "m", classifier=classifier)
    with pytest.raises(ValueError, match="at least the crop 32"):
        export(classifier, tmp_path / "m", test_scale=24)
    with pytest.raises(ValueError, match="top must be a positive integer"):
        export(classifier, tmp_path / "m", top=0)
    with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
        export(classifier, tmp_path / "m", max_pixels=0)
    with pytest.raises(ValueError, match="max_pixels only applies to format='saved_model'"):
        export(classifier, tmp_path / "m.keras", format="keras", max_pixels=10_000)
    other = vgg_keras.build_vgg("A", CLASSES + 1, input_shape=(CROP, CROP, 3), width=0.125)
    with pytest.raises(ValueError, match="boxes for 6 classes but the classifier scores 7"):
        export(tiny_localizer(classifier, "pcr"), tmp_path / "m", classifier=other)
    bigger = vgg_keras.build_vgg("A", CLASSES, input_shape=(48, 48, 3), width=0.125)
    with pytest.raises(ValueError, match="they must share the crop"):
        export(tiny_localizer(classifier, "scr"), tmp_path / "m", classifier=bigger)
    oblong = vgg_keras.build_vgg("A", CLASSES, input_shape=(32, 48, 3), width=0.125)
    with pytest.raises(ValueError, match="square"):
        export(oblong, tmp_path / "m")


def test_saved_model_needs_the_tensorflow_backend(classifier, tmp_path, monkeypatch):
    # Stands in for KERAS_BACKEND=jax / torch (a subprocess would spend ~15 s importing).
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(RuntimeError, match="needs the TensorFlow backend.*'jax'"):
        export(classifier, tmp_path / "m")


@pytest.mark.parametrize("package", ["onnx", "torch"])
def test_missing_onnx_packages_name_the_extra(classifier, tmp_path, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)   # what Python does for a blocked import
    with pytest.raises(ImportError, match=rf"needs {package}: pip install \"vgg_keras\[onnx\]\""):
        export(classifier, tmp_path / "m.onnx", format="onnx")
    assert not (tmp_path / "m.onnx").exists()
