"""A run seen, not only run: one self-contained HTML page per run directory.

``write_report(run_dir)`` writes ``run_dir/report.html``: the configuration, the learning
curves, the evaluation tables of ``summary.json``, the augmented training crops as the network
saw them, validation images with their top-5 classes, dense class-score heat maps, the
confusion between the most confused classes and, for a localizer, predicted and ground-truth
boxes (protocols 1 and 2). Every image is an embedded PNG and the style is inline, so the page
opens offline, mailed or copied anywhere. Each section needs only its own input: a run still
training has its configuration and curves, and a note where the model will be.

    python -m vgg_keras.report runs/cls-a-s72-96 runs/loc-scr-a-s72-96

The drawing functions (``plot_curves``, ``plot_crops``, ``plot_predictions``,
``plot_heat_maps``, ``plot_scene``, ``plot_confusion``, ``plot_boxes``, ``plot_protocol2``)
take numpy arrays and return matplotlib figures (Agg); ``figure_png`` turns one into a small
palette PNG. The gatherers (``training_crops``, ``classify_validation``, ``heat_maps``,
``heat_scene``, ``confusion_matrix``/``most_confused``, ``protocol1_boxes``,
``protocol2_boxes``) compute what they show from a run's data and model.
``docs/make_figures.py`` draws the README's figures with both.

>>> from vgg_keras.report import write_report
>>> write_report("runs/cls-a-s72-96")          # a run directory  # doctest: +SKIP
PosixPath('runs/cls-a-s72-96/report.html')
"""

import argparse
import base64
import csv
import html
import io
import json
import logging
import math
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from . import boxes as B
from . import data as vdata
from .config import test_scale
from .evaluate import dense_scores, forward, softmax
from .heads import is_localizer, regression_of
from .localization.protocols import (
    dense_boxes, localization_errors, localize_image, location_rates,
)
from .models import load_vgg, to_dense

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
SECTIONS = {
    "config": "Configuration",
    "curves": "Learning curves",
    "evaluation": "Evaluation",
    "crops": "Augmented training crops",
    "predictions": "Predictions",
    "heatmap": "Heat maps",
    "confusion": "Confusion",
    "boxes": "Boxes",
}
"""Section ids and headings, in page order (``boxes`` only for a localizer)."""

GREEN = "#1a9641"
RED = "#d7191c"
GROUND_TRUTH = "#ffffff"
CONFUSED_CLASSES = 8
DPI = 90


# -- reading a run directory ------------------------------------------------------------------

def read_json(path):
    """A JSON file's content, or None when it is missing."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); it is not a file the run "
                         "wrote whole.") from error


def read_history(path):
    """``history.csv`` as a list of dicts of floats (empty cells dropped); [] when missing."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            values = {}
            for key, text in row.items():
                try:
                    values[key] = float(text)
                except (TypeError, ValueError):
                    continue
            rows.append(values)
    return rows


def run_scale(config):
    """The training scale S of a ``config.json``: an int, or a (Smin, Smax) tuple."""
    scale = config.get("scale", 256)
    return tuple(scale) if isinstance(scale, (list, tuple)) else int(scale)


def is_localizer_run(config):
    """Whether ``config.json`` is train_loc.py's (it has the regression option)."""
    return "regression" in config


def load_data(config):
    """``(train, report)`` examples of the run's data, split as the run split them (the
    pictures of predictions use the examples the run reported on)."""
    splits = vdata.run_splits(config.get("data"), val_fraction=config.get("val_fraction", 0.05),
                              data_dir=config.get("data_dir"), report=config.get("eval_split"))
    return splits.train, splits.report


def rating_classifier_path(config, run_dir=None):
    """The classifier a localizer run names (``--classifier``, else ``--init-from``), or None.

    A relative path is relative to where the run was started; when it is not found from here,
    that directory is worked out from ``run_dir`` and the ``run_dir`` config.json recorded
    (``/work/runs/loc`` recorded as ``runs/loc`` was started in ``/work``)."""
    paths = config.get("classifier")
    if isinstance(paths, str):
        paths = [paths]
    path = (paths or [None])[0] or config.get("init_from")
    if not path or Path(path).is_absolute() or Path(path).exists() or run_dir is None:
        return path
    recorded = Path(config.get("run_dir") or "")
    actual = Path(run_dir).resolve()
    if recorded.parts and not recorded.is_absolute() and \
            actual.parts[-len(recorded.parts):] == recorded.parts:
        started_in = Path(*actual.parts[:-len(recorded.parts)])
        if (started_in / path).exists():
            return str(started_in / path)
    return path


# -- gathering what the figures show ------------------------------------------------------------

def _numpy(x):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))


def training_crops(train, config, count=16):
    """One training batch as the network saw it: ``(images, labels, boxes or None)``.

    The run's scale, crop, seed, flips and colour shift, augmented on the host (the run may have
    done flips and colour on the device: the same distributions). ``boxes`` (a localizer run):
    the training box of each crop, ``[ymin, xmin, ymax, xmax]`` relative to it, NaN where the
    crop cut every box away.
    """

    boxes = is_localizer_run(config)
    batches = vdata.train_pipeline(
        train, scale=run_scale(config), crop=int(config.get("crop", 224)), batch_size=count,
        seed=config.get("seed", 0), augment_on="host", flip=config.get("flip", True),
        color_shift=config.get("color_shift", True), boxes=boxes)
    element = next(iter(batches), None)
    if element is None:
        raise ValueError(f"fewer than {count} training images: no batch to show")
    images = _numpy(element[0])
    if not boxes:
        return images, _numpy(element[1]).astype(int), None
    target, weight = element[1], element[2]
    box = _numpy(target["box"]).astype(np.float64)
    box[_numpy(weight["box"]) == 0] = np.nan
    return images, _numpy(target["label"]).astype(int), box


def classify_validation(model, val, *, scale, crop, keep=16, mistakes=8, limit=1000,
                        batch_size=16):
    """The classifier on the central crops of up to ``limit`` validation images (test scale
    ``scale``, no flip). Returns ``{"labels", "posteriors"}`` of every image seen, and the crops,
    labels and posteriors of the first ``keep`` images (``"first"``) and of the first
    ``mistakes`` wrong ones (``"mistakes"``)."""

    batches = vdata.eval_pipeline(val, scale=scale, mode="center", crop=crop,
                                  batch_size=batch_size)
    labels, posteriors = [], []
    first = {"images": [], "labels": [], "posteriors": []}
    wrong = {"images": [], "labels": [], "posteriors": []}
    seen = 0
    for images, batch_labels in batches:
        images = _numpy(images)
        batch_labels = _numpy(batch_labels).astype(int).reshape(-1)
        probs = softmax(forward(model, images))
        labels.append(batch_labels)
        posteriors.append(probs)
        for image, label, prob in zip(images, batch_labels, probs):
            if len(first["images"]) < keep:
                for key, value in zip(first, (image, label, prob)):
                    first[key].append(value)
            if int(np.argmax(prob)) != label and len(wrong["images"]) < mistakes:
                for key, value in zip(wrong, (image, label, prob)):
                    wrong[key].append(value)
        seen += len(batch_labels)
        if seen >= limit:
            break
    if not labels:
        raise ValueError("no validation image to classify")
    stack = {key: np.asarray(value) for key, value in first.items()}
    return {"labels": np.concatenate(labels)[:limit], "posteriors":
            np.concatenate(posteriors)[:limit], "first": stack,
            "mistakes": {key: np.asarray(value) for key, value in wrong.items()}}


def heat_maps(model, val, *, scale, count=4):
    """Dense evaluation of ``count`` whole validation images at test scale ``scale``: a list of
    ``(image, label, predicted class, probability map of that class)``; the prediction is the
    dense protocol's (soft-max of the spatially averaged score map, no flip)."""

    dense = to_dense(model)
    found = []
    for image, label in vdata.eval_pipeline(val, scale=scale, mode="dense").take(count):
        image = _numpy(image).astype("float32")
        score_maps, posteriors = dense_scores(dense, image, flip=False)   # one pass
        score_map, predicted = score_maps[0], int(np.argmax(posteriors[0]))
        found.append((image[0], int(_numpy(label).reshape(-1)[0]), predicted,
                      softmax(score_map)[..., predicted]))
    return found


def heat_scene(model, val, *, scale, tiles=4):
    """The first ``tiles`` (4) validation images of different classes, each the central Q x Q
    square of the image rescaled to Q = ``scale``, side by side in a 2 x 2 scene, and the
    soft-max of the dense score map over it: ``(scene, classes, probabilities (rows, cols,
    C))``. A map with several locations per image, even where a lone image at Q gives one."""

    chosen, classes = [], []
    for images, labels in vdata.eval_pipeline(val, scale=scale, mode="center", crop=scale,
                                              batch_size=32).take(8):
        for image, label in zip(_numpy(images), _numpy(labels).astype(int).reshape(-1)):
            if int(label) not in classes and len(chosen) < tiles:
                chosen.append(image)
                classes.append(int(label))
        if len(chosen) == tiles:
            break
    if not chosen:
        raise ValueError("no validation image to make a scene of")
    while len(chosen) < tiles:  # fewer classes than tiles among the first images
        chosen.append(chosen[0])
    half = tiles // 2
    scene = np.concatenate([np.concatenate(chosen[:half], axis=1),
                            np.concatenate(chosen[half:2 * half], axis=1)], axis=0)
    scores = forward(to_dense(model), scene[None].astype("float32"))[0]
    return scene, classes, softmax(scores)


def confusion_matrix(labels, predictions, num_classes):
    """Counts: rows the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=int)
    np.add.at(matrix, (np.asarray(labels, int), np.asarray(predictions, int)), 1)
    return matrix


def most_confused(matrix, count=CONFUSED_CLASSES):
    """The ``count`` classes involved in most errors (wrong as the truth or as the guess), in
    class order; [] when there is no error."""
    off = matrix - np.diag(np.diag(matrix))
    involvement = off.sum(axis=0) + off.sum(axis=1)
    order = [int(c) for c in np.argsort(-involvement, kind="stable") if involvement[c] > 0]
    return sorted(order[:count])


def _valid_boxes(boxes, count):
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[: int(count)]
    return boxes[(boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])]


def protocol1_boxes(localizer, val, *, scale, count=16):
    """Protocol 1 on the central crops of the first ``count`` validation images: a list of
    ``(crop, label, ground-truth boxes (M, 4), predicted box, IoU)``, boxes ``[ymin, xmin,
    ymax, xmax]`` relative to the crop; the predicted box is the ground-truth class's (PCR) or
    the single one (SCR). Images without a usable ground-truth box are left out."""

    _, classes = regression_of(localizer)
    crop = localizer.input_shape[1]
    found = []
    batches = vdata.eval_pipeline(val, scale=scale, mode="center", crop=crop,
                                  batch_size=count, boxes=True)
    for images, targets in batches:
        images = _numpy(images)
        outputs = forward(localizer, images).reshape(len(images), -1, 4)
        labels = _numpy(targets["label"]).astype(int).reshape(-1)
        for i, image in enumerate(images):
            gt = _valid_boxes(_numpy(targets["boxes"][i]), _numpy(targets["num_boxes"][i]))
            if not len(gt):
                continue
            box = np.asarray(B.decode(outputs[i, labels[i] if classes else 0]), np.float64)
            found.append((image, int(labels[i]), gt, box, float(np.max(B.iou(box, gt)))))
            if len(found) == count:
                return found
    return found


def protocol2_boxes(localizer, classifier, val, *, scale, count=8):
    """Protocol 2 at one test scale on the first ``count`` whole validation images (no flip):
    the localizer applied densely, its boxes rated by the classifier's class scores and merged
    greedily. A list of ``(image, label, ground-truth boxes, guesses)``: ``guesses`` the top-5
    ``(class, box)``, boxes ``[ymin, xmin, ymax, xmax]`` relative to the image."""

    _, classes = regression_of(localizer)
    dense_loc, dense_cls = to_dense(localizer), to_dense(classifier)
    crop = localizer.input_shape[1]
    found = []
    for image, targets in vdata.eval_pipeline(val, scale=scale, mode="dense", boxes=True):
        gt = _valid_boxes(_numpy(targets["boxes"][0]), _numpy(targets["num_boxes"][0]))
        if not len(gt):
            continue
        image = _numpy(image).astype("float32")
        score_maps, posteriors = dense_scores(dense_cls, image, flip=False)
        score_map, posterior = score_maps[0], posteriors[0]
        box_map = forward(dense_loc, image)[0]
        box_map = box_map.reshape(box_map.shape[:2] + (classes or 1, 4))
        yxyx = dense_boxes(box_map, image.shape[1:3], crop)
        rates = location_rates(score_map, box_map.shape[:2])
        guesses = localize_image([(yxyx.reshape(-1, yxyx.shape[2], 4), rates)], posterior)
        found.append((image[0], int(_numpy(targets["label"]).reshape(-1)[0]), gt, guesses))
        if len(found) == count:
            break
    return found


# -- drawing -----------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig, *, dpi=DPI, width_px=None, colors=256):
    """A matplotlib figure as PNG bytes (the figure is closed). ``width_px`` sets the resolution
    from the wanted width (else ``dpi``); ``colors`` reduces it to a palette of that many
    colours (None: full colour), which keeps grids of photographs small."""
    from PIL import Image

    plt = _pyplot()
    if width_px:
        dpi = width_px / fig.get_figwidth()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    if not colors:
        return buffer.getvalue()
    image = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
    palette = image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    entries = np.asarray(palette.getpalette()[: 3 * colors], dtype=int).reshape(-1, 3)
    white = int(np.argmax(entries.sum(axis=1)))
    entries[white] = 255
    palette.putpalette(entries.astype("uint8").ravel().tolist())
    indices = np.asarray(image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG))
    # Pillow maps colours to the palette through a coarse cache: the white background (most of a
    # figure) would come out grey; it stays pure white.
    indices = np.where(np.all(np.asarray(image) == 255, axis=-1), white, indices)
    image = Image.fromarray(indices.astype("uint8"), mode="P")
    image.putpalette(entries.astype("uint8").ravel().tolist())
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def _as_uint8(image):
    return np.clip(np.asarray(image), 0, 255).astype("uint8")


def _grid(count, columns, *, panel=(1.0, 1.0), title=0.22, below=0.0, gap=0.06, right=0.0):
    """A figure of ``count`` image panels in rows of ``columns``, laid out in inches: each
    panel ``panel`` (width, height) with ``title`` above it and ``below`` under it (for text),
    ``gap`` between cells and ``right`` spare on the right (for a colour bar). Axes are off."""
    plt = _pyplot()
    columns = max(1, min(columns, count))
    rows = max(1, math.ceil(count / columns))
    cell_w, cell_h = panel[0] + gap, title + panel[1] + below + gap
    size = (columns * cell_w + gap + right, rows * cell_h + gap)
    fig = plt.figure(figsize=size)
    axes = []
    for n in range(rows * columns):
        r, c = divmod(n, columns)
        left = gap + c * cell_w
        bottom = size[1] - (r + 1) * cell_h + below + gap / 2
        axis = fig.add_axes((left / size[0], bottom / size[1], panel[0] / size[0],
                             panel[1] / size[1]))
        axis.axis("off")
        axes.append(axis)
    return fig, axes


def _name(class_names, index):
    index = int(index)
    return class_names[index] if class_names and 0 <= index < len(class_names) else str(index)


def _draw_box(axis, box, size, color, *, dashed=False, width=2.0):
    """``[ymin, xmin, ymax, xmax]`` relative to an image of ``size`` (height, width)."""
    from matplotlib.patches import Rectangle

    height, width_px = size
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    axis.add_patch(Rectangle((xmin * width_px - 0.5, ymin * height - 0.5),
                             (xmax - xmin) * width_px, (ymax - ymin) * height, fill=False,
                             edgecolor=color, linewidth=width,
                             linestyle=(0, (3, 2)) if dashed else "-"))


def _show(axis, image):
    image = _as_uint8(image)
    axis.imshow(image, interpolation="nearest")
    axis.set_xlim(-0.5, image.shape[1] - 0.5)
    axis.set_ylim(image.shape[0] - 0.5, -0.5)


def _frame(axis, color):
    axis.axis("on")
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2.5)


def plot_curves(history, *, best_epoch=None, width=12.0):
    """Loss, accuracy (or box metrics) and learning rate per epoch from ``history.csv``'s rows;
    training solid, validation dashed, the kept epoch (numbered from 1) dotted."""
    plt = _pyplot()
    keys = sorted({k for row in history for k in row if k != "epoch"})
    bases = sorted({k[4:] if k.startswith("val_") else k for k in keys})
    groups = [("loss", [b for b in bases if b == "loss"]),
              ("accuracy", [b for b in bases if "accuracy" in b or b.startswith("top")]),
              ("", [b for b in bases if b not in ("loss", "learning_rate")
                                 and "accuracy" not in b and not b.startswith("top")]),
              ("learning rate", [b for b in bases if b == "learning_rate"])]
    groups = [(title, members) for title, members in groups if members]
    fig, axes = plt.subplots(1, len(groups), figsize=(width, 3.1), squeeze=False)
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    color_cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, (title, members) in zip(axes[0], groups):
        for n, base in enumerate(members):
            color = color_cycle[n % len(color_cycle)]
            for key, style, label in ((base, "-", base), ("val_" + base, "--", "val " + base)):
                if key in keys:
                    values = [row.get(key, np.nan) for row in history]
                    axis.plot(epochs, values, style, marker="o", markersize=3, color=color,
                              label=label if base != "learning_rate" else None)
        if best_epoch is not None:
            axis.axvline(best_epoch, color="0.5", linestyle=":", linewidth=1.2,
                         label="kept epoch" if title == groups[0][0] else None)
        axis.set_title((title or ", ".join(members)).replace("_", " "))
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if len(epochs) < 12:
            axis.set_xticks(epochs)
        if title == "learning rate":
            axis.set_yscale("log")
        elif title == "accuracy":
            axis.set_ylim(-0.02, 1.02)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_crops(images, labels, class_names, *, boxes=None, columns=8):
    """Training crops with their class (and, for a localizer run, their training box in
    green)."""
    fig, axes = _grid(len(images), columns)
    for i, (axis, image) in enumerate(zip(axes, images)):
        _show(axis, image)
        axis.set_title(_name(class_names, labels[i]), fontsize=8, pad=3)
        if boxes is not None and np.all(np.isfinite(boxes[i])):
            _draw_box(axis, boxes[i], image.shape[:2], GREEN)
    return fig


def plot_predictions(images, labels, posteriors, class_names, *, columns=8, top=5):
    """Images with their top-``top`` classes and soft-max probabilities: frame and first line
    green when the first guess is right, red when wrong; the true class in bold green wherever
    it ranks."""
    top = min(top, np.shape(posteriors)[-1])
    fig, axes = _grid(len(images), columns, panel=(1.05, 1.05), below=0.13 * top + 0.05)
    for axis, image, label, posterior in zip(axes, images, labels, posteriors):
        _show(axis, image)
        order = np.argsort(-posterior, kind="stable")[:top]
        right = int(order[0]) == int(label)
        _frame(axis, GREEN if right else RED)
        axis.set_title(f"true: {_name(class_names, label)}", fontsize=7.5, pad=3)
        for rank, c in enumerate(order):
            true = int(c) == int(label)
            axis.annotate(f"{rank + 1}. {_name(class_names, c)} {100 * posterior[c]:.0f}%",
                          (0, 0), xycoords="axes fraction", xytext=(0, -3 - 9.4 * rank),
                          textcoords="offset points", fontsize=7, va="top",
                          color=GREEN if true else (RED if rank == 0 else "0.3"),
                          weight="bold" if true else "normal")
    return fig


def upsample_map(values, size, *, crop, stride=32):
    """A dense output map ``(rows, cols)`` upsampled bilinearly to an image of ``size``
    (height, width): each location's value sits at the centre of the crop window it sees
    (``stride * i + crop / 2``), and is held beyond the outermost centres."""
    values = np.asarray(values, dtype=np.float64)
    rows, cols = values.shape
    ys = np.clip((np.arange(size[0]) + 0.5 - crop / 2) / stride, 0, rows - 1)
    xs = np.clip((np.arange(size[1]) + 0.5 - crop / 2) / stride, 0, cols - 1)
    along_x = np.stack([np.interp(xs, np.arange(cols), row) for row in values])
    return np.stack([np.interp(ys, np.arange(rows), column) for column in along_x.T], axis=1)


def _overlay(axis, image, values, crop):
    _show(axis, image)
    return axis.imshow(upsample_map(values, image.shape[:2], crop=crop), cmap="magma", vmin=0,
                       vmax=1, alpha=0.6, interpolation="nearest",
                       extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5))


def _colorbar(fig, shown, height=1.2):
    """A colour bar in the spare right margin of a :func:`_grid` figure (``right`` >= 0.9)."""
    width, fig_height = fig.get_size_inches()
    height = min(height, 0.8 * fig_height)
    bar = fig.add_axes((1 - 0.8 / width, (fig_height - height) / 2 / fig_height, 0.1 / width,
                        height / fig_height))
    fig.colorbar(shown, cax=bar, label="probability")
    bar.tick_params(labelsize=7)


def plot_heat_maps(maps, class_names, *, crop, pairs_per_row=3):
    """Each whole image next to the soft-max probability of its predicted class over the
    dense score map (title green when the prediction is right), upsampled to the image."""
    fig, axes = _grid(2 * len(maps), 2 * pairs_per_row, panel=(1.35, 1.35), right=0.9)
    shown = None
    for n, (image, label, predicted, prob) in enumerate(maps):
        left, right = axes[2 * n], axes[2 * n + 1]
        _show(left, image)
        left.set_title(f"true: {_name(class_names, label)}", fontsize=8, pad=3)
        shown = _overlay(right, image, prob, crop)
        right.set_title(f"P({_name(class_names, predicted)}), {prob.shape[0]}x{prob.shape[1]}",
                        fontsize=8, pad=3, color=GREEN if predicted == label else RED)
    if shown is not None:
        _colorbar(fig, shown)
    return fig


def plot_scene(scene, classes, probabilities, class_names, *, crop):
    """A scene of tiles and, for each tile's class, its soft-max probability over the scene's
    dense score map (``probabilities`` ``(rows, cols, C)``)."""
    fig, axes = _grid(1 + len(classes), 1 + len(classes), panel=(1.6, 1.6), right=0.9)
    _show(axes[0], scene)
    axes[0].set_title(f"scene, map {probabilities.shape[0]}x{probabilities.shape[1]}",
                      fontsize=8, pad=3)
    shown = None
    for axis, c in zip(axes[1:], classes):
        shown = _overlay(axis, scene, probabilities[..., c], crop)
        axis.set_title(f"P({_name(class_names, c)})", fontsize=8, pad=3)
    if shown is not None:
        _colorbar(fig, shown)
    return fig


def plot_confusion(matrix, classes, class_names, *, width=5.6):
    """The confusion matrix restricted to ``classes``: counts, rows true, columns predicted;
    mistakes shaded red, the diagonal in green."""
    plt = _pyplot()
    sub = matrix[np.ix_(classes, classes)]
    names = [_name(class_names, c) for c in classes]
    fig, axis = plt.subplots(figsize=(width, width * 0.82))
    off = sub - np.diag(np.diag(sub))
    axis.imshow(off, cmap="Reds", vmin=0, vmax=max(1, off.max()))
    for i in range(len(classes)):
        for j in range(len(classes)):
            if sub[i, j]:
                axis.text(j, i, str(sub[i, j]), ha="center", va="center", fontsize=8,
                          color=GREEN if i == j else ("white" if off[i, j] > off.max() / 2
                                                      else "black"),
                          weight="bold" if i == j else "normal")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(names)), names, fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    fig.tight_layout()
    return fig


def plot_boxes(found, class_names, *, columns=8, threshold=0.5):
    """Protocol 1: each crop with its ground-truth boxes (white, dashed) and the predicted box,
    green when its IoU exceeds ``threshold``, red otherwise."""
    fig, axes = _grid(len(found), columns, title=0.34)
    for axis, (image, label, gt, box, overlap) in zip(axes, found):
        _show(axis, image)
        for g in gt:
            _draw_box(axis, g, image.shape[:2], GROUND_TRUTH, dashed=True, width=1.5)
        good = overlap > threshold
        _draw_box(axis, box, image.shape[:2], GREEN if good else RED)
        axis.set_title(f"{_name(class_names, label)}\nIoU {overlap:.2f}", fontsize=7.5, pad=3,
                       color=GREEN if good else RED, linespacing=1.1)
    return fig


def plot_protocol2(found, class_names, *, columns=4, threshold=0.5):
    """Protocol 2: each whole image with its ground-truth boxes (white, dashed) and the box of
    the top-1 class, green when class and box (IoU > ``threshold``) are both right."""

    fig, axes = _grid(len(found), columns, panel=(1.8, 1.8), title=0.34)
    for axis, (image, label, gt, guesses) in zip(axes, found):
        _show(axis, image)
        for g in gt:
            _draw_box(axis, g, image.shape[:2], GROUND_TRUTH, dashed=True, width=1.5)
        cls, box = guesses[0]
        good = localization_errors(guesses, label, gt, threshold)["top1"] == 0
        _draw_box(axis, box, image.shape[:2], GREEN if good else RED)
        axis.set_title(f"{_name(class_names, cls)}\n(true: {_name(class_names, label)})",
                       fontsize=7.5, pad=3, color=GREEN if good else RED, linespacing=1.1)
    return fig


# -- the page ----------------------------------------------------------------------------------

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 0 auto;
       max-width: 1150px; padding: 1em 2em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd;
     padding-bottom: 0.2em; margin-top: 1.6em; } h3 { font-size: 1.05em; }
nav a { margin-right: 1em; } .meta { color: #666; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.note, .error { padding: 0.4em 0.8em; border-left: 3px solid; }
.note { color: #7a5a00; background: #fff8e1; border-color: #f0b400; }
.error { color: #8a1010; background: #fdecea; border-color: #d7191c; }
.caption { color: #555; font-size: 0.92em; margin-top: 0; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""


def _escape(value):
    return html.escape(str(value), quote=True)


def _img(png, alt):
    data = base64.b64encode(png).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_escape(alt)}">'


def _note(text):
    return f'<p class="note">{_escape(text)}</p>'


def _caption(text):
    return f'<p class="caption">{text}</p>'


def _number(value, digits=1):
    """A table cell for a number: shown rounded, exact in ``data-value``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"<td>{_escape(value)}</td>"
    shown = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
    return f'<td class="num" data-value="{value!r}">{shown}</td>'


def _join(value):
    if isinstance(value, (list, tuple)):
        return " + ".join(str(v) for v in value) if value and isinstance(value[0], str) \
            else ", ".join(str(v) for v in value)
    return "" if value is None else str(value)


def _table(header, rows, caption=None):
    head = "".join(f"<th>{_escape(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    cap = f"<caption>{_escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def config_section(config, pairs=3):
    if config is None:
        return _note("No config.json: the run has not started.")
    classes = config.get("classes") or []
    items = [(key, value) for key, value in config.items() if key != "classes"]
    rows = []
    per_column = math.ceil(len(items) / pairs)
    for r in range(per_column):
        cells = []
        for key, value in items[r::per_column]:
            cells += [f"<th>{_escape(key)}</th>", f"<td>{_escape(json.dumps(value))}</td>"]
        rows.append(cells)
    parts = [_table(["option", "value"] * pairs, rows)]
    if classes:
        shown = " &middot; ".join(f"{i}&nbsp;{_escape(name)}"
                                  for i, name in enumerate(classes[:1000]))
        parts.append(f"<h3>Classes ({len(classes)})</h3><p>{shown}</p>")
    return "".join(parts)


def curves_section(history, summary):
    if not history:
        return _note("No history.csv yet: no epoch has finished.")
    best = (summary or {}).get("best_epoch")  # numbered from 1, as history.csv's epochs
    best = best if isinstance(best, int) else None
    png = figure_png(plot_curves(history, best_epoch=best))
    return (_img(png, "learning curves") + _caption(
        f"{len(history)} epoch(s) from <code>history.csv</code>; training solid, validation "
        "dashed" + ("; the dotted line marks the epoch kept in model.keras." if best else ".")))


def evaluation_section(summary):
    if summary is None:
        return _note("No summary.json yet: the run has not finished its evaluation.")
    facts = [(k, summary[k]) for k in ("arch", "scale", "test_scale", "epochs", "best_epoch",
                                       "seconds", "train_images", "classes", "regression",
                                       "finetune", "chance_top1_error") if k in summary]
    parts = [_table(["", "value"], [[f"<th>{_escape(k)}</th>", _number(v)
                                      if isinstance(v, (int, float)) else
                                      f"<td>{_escape(_join(v))}</td>"] for k, v in facts])]
    if summary.get("evaluation"):
        rows = [[f"<td>{_escape(_join(r.get('models')))}</td>",
                 f"<td>{_escape(r.get('method'))}</td>",
                 f"<td>{_escape(_join(r.get('scales')))}</td>",
                 _number(r.get("images")), _number(r.get("top1")), _number(r.get("top5"))]
                for r in summary["evaluation"]]
        parts.append(_table(["model(s)", "method", "test scale(s) Q", "images",
                             "top-1 error (%)", "top-5 error (%)"], rows,
                            "Classification (summary.json: evaluation)"))
    if summary.get("protocol1"):
        r = summary["protocol1"]
        parts.append(_table(["model", "regression", "fine-tuned", "Q", "images", "skipped",
                             "error (%)", "mean IoU"],
                            [[f"<td>{_escape(r.get('model'))}</td>",
                              f"<td>{_escape(str(r.get('regression', '')).upper())}</td>",
                              f"<td>{_escape(r.get('finetune', ''))}</td>",
                              f"<td>{_escape(_join(r.get('scales')))}</td>",
                              _number(r.get("images")), _number(r.get("skipped", 0)),
                              _number(r.get("error")), _number(r.get("mean_iou"), 3)]],
                            "Localisation, protocol 1: central crop, ground-truth class "
                            "(summary.json: protocol1)"))
    if summary.get("protocol2"):
        rows = [[f"<td>{_escape(_join(r.get('models')))}</td>",
                 f"<td>{_escape(_join(r.get('classifiers')))}</td>",
                 f"<td>{_escape(_join(r.get('scales')))}</td>", _number(r.get("images")),
                 _number(r.get("top1_loc")), _number(r.get("top5_loc")),
                 _number(r.get("top1_cls")), _number(r.get("top5_cls"))]
                for r in summary["protocol2"]]
        parts.append(_table(["localizer(s)", "classifier(s)", "Q", "images", "top-1 loc (%)",
                             "top-5 loc (%)", "top-1 cls (%)", "top-5 cls (%)"], rows,
                            "Localisation, protocol 2: dense, greedy merging (summary.json: "
                            "protocol2)"))
    if not any(summary.get(k) for k in ("evaluation", "protocol1", "protocol2")):
        parts.append(_note("summary.json holds no evaluation table."))
    return "".join(parts)


class _Context:
    """What the sections share, loaded once and only when a section needs it."""

    def __init__(self, run_dir, config, images, validation_images):
        self.run_dir = Path(run_dir)
        self.config = config or {}
        self.images = images
        self.validation_images = validation_images
        self.class_names = list(self.config.get("classes") or [])
        self._cache = {}

    def _once(self, key, make):
        """``make()``, computed once; a failure is raised again to every section asking."""
        if key not in self._cache:
            try:
                self._cache[key] = (make(), None)
            except Exception as error:
                self._cache[key] = (None, error)
        value, error = self._cache[key]
        if error is not None:
            raise error
        return value

    def splits(self):
        if not self.config:
            raise _Unavailable("no config.json")
        return self._once("splits", lambda: load_data(self.config))

    def model(self):
        path = self.run_dir / "model.keras"
        if not path.exists():
            raise _Unavailable("no model.keras yet (it is written when training ends)")

        def load():
            return load_vgg(path)

        return self._once("model", load)

    def localizer(self):

        model = self.model()
        if not is_localizer(model):
            raise _Unavailable("model.keras is a classifier, not a localizer")
        return model

    def classifier(self):
        """The run's classifier, or the one a localizer run names (protocol 2's rater)."""

        model = self.model()
        if not is_localizer(model):
            return model, None
        path = rating_classifier_path(self.config, self.run_dir)
        if not path:
            raise _Unavailable("a localizer has no class scores, and config.json names no "
                               "classifier to take them from (--classifier, or a classifier "
                               "as --init-from)")
        if not Path(path).exists():
            raise _Unavailable(f"the classifier {path} named in config.json is not there")

        def load():
            found = load_vgg(path)
            if is_localizer(found):
                raise _Unavailable(f"{path} is a localizer, not a classifier")
            return found

        return self._once("classifier", load), path

    def test_scale(self):

        return test_scale(run_scale(self.config))

    def validation(self):
        classifier, _ = self.classifier()
        crop = classifier.input_shape[1]
        return self._once("validation", lambda: classify_validation(
            classifier, self.splits()[1], scale=max(self.test_scale(), crop), crop=crop,
            keep=self.images, mistakes=self.images // 2, limit=self.validation_images))


class _Unavailable(Exception):
    """A section's input is missing; the page says so instead of drawing it."""


def _from_classifier_note(path):
    return _caption(f"A localizer has no class scores: these come from the classifier "
                    f"<code>{_escape(path)}</code> named in config.json (it rates protocol 2's "
                    "boxes).") if path else ""


def crops_section(ctx):
    train, _ = ctx.splits()
    images, labels, boxes = training_crops(train, ctx.config, count=ctx.images)
    png = figure_png(plot_crops(images, labels, ctx.class_names, boxes=boxes))
    scale = run_scale(ctx.config)
    flags = [name for name, on in (("random flips", ctx.config.get("flip", True)),
                                   ("PCA colour shift", ctx.config.get("color_shift", True)))
             if on]
    return _img(png, "augmented training crops") + _caption(
        f"The first training batch of epoch 1 (seed {_escape(ctx.config.get('seed', 0))}): "
        f"images rescaled to S = {_escape(scale if isinstance(scale, int) else '%d..%d' % scale)}"
        f", random {_escape(ctx.config.get('crop'))}-pixel crops"
        + (", " + ", ".join(flags) if flags else "") + "."
        + (" Green: the box each crop trains the regressor on (none where the crop cut the "
           "object away)." if boxes is not None else ""))


def predictions_section(ctx):
    classifier, path = ctx.classifier()
    result = ctx.validation()
    first, wrong = result["first"], result["mistakes"]
    top1 = 100 * np.mean(np.argmax(result["posteriors"], 1) != result["labels"])
    parts = [_from_classifier_note(path),
             _img(figure_png(plot_predictions(first["images"], first["labels"],
                                              first["posteriors"], ctx.class_names)),
                  "validation predictions"),
             _caption(f"The first {len(first['images'])} validation images, central "
                      f"{classifier.input_shape[1]}-pixel crop at Q = {ctx.test_scale()}, "
                      "no flip, with the top-5 classes and their soft-max probability. Green "
                      "frame: top-1 right; red: wrong. The true class is in green wherever it "
                      f"ranks. Top-1 error on these {len(result['labels'])} images: "
                      f"{top1:.1f}% (summary.json's numbers average the flipped image too).")]
    if len(wrong["images"]):
        parts += ["<h3>Mistakes</h3>",
                  _img(figure_png(plot_predictions(wrong["images"], wrong["labels"],
                                                   wrong["posteriors"], ctx.class_names)),
                       "misclassified validation images"),
                  _caption(f"The first {len(wrong['images'])} misclassified validation "
                           "images.")]
    else:
        parts.append(_note(f"No mistake on these {len(result['labels'])} images."))
    return "".join(parts)


def heatmap_section(ctx):
    classifier, path = ctx.classifier()
    _, val = ctx.splits()
    crop = classifier.input_shape[1]
    q = max(ctx.test_scale(), crop)
    maps = heat_maps(classifier, val, scale=q, count=6 if ctx.images >= 12 else 3)
    parts = [_from_classifier_note(path),
             _img(figure_png(plot_heat_maps(maps, ctx.class_names, crop=crop)),
                  "dense class-score heat maps"),
             _caption(f"Dense evaluation (<code>vgg_keras.to_dense</code>): each whole "
                      f"validation image rescaled to Q = {q}, and the soft-max probability of "
                      "the class it predicts (title green when right) at each location of the "
                      f"score map (its size in the title). A location sees a {crop}-pixel "
                      "window, one every 32 pixels; its value sits at the window's centre, "
                      "interpolated between centres.")]
    scene, classes, probabilities = heat_scene(classifier, val, scale=q)
    parts += ["<h3>A scene of four images</h3>",
              _img(figure_png(plot_scene(scene, classes, probabilities, ctx.class_names,
                                         crop=crop)), "class-score maps over a scene"),
              _caption(f"Four validation images of different classes (the central {q} x {q} "
                       "square of each) side by side, and the probability of each one's class "
                       "over the whole scene: the net, trained on single crops, finds each "
                       "object where it is.")]
    return "".join(parts)


def confusion_section(ctx):
    classifier, path = ctx.classifier()
    result = ctx.validation()
    num_classes = classifier.output_shape[-1]
    matrix = confusion_matrix(result["labels"], np.argmax(result["posteriors"], 1),
                              num_classes)
    classes = most_confused(matrix)
    n = len(result["labels"])
    if not classes:
        return _from_classifier_note(path) + _note(
            f"No confusion: every one of the {n} validation images is classified right.")
    png = figure_png(plot_confusion(matrix, classes, ctx.class_names))
    return _from_classifier_note(path) + _img(png, "confusion matrix") + _caption(
        f"Central crops of {n} validation images (Q = {ctx.test_scale()}, no flip), restricted "
        f"to the {len(classes)} classes involved in most mistakes (as the truth or as the "
        "guess): counts, rows the true class, columns the predicted one; the diagonal (green) "
        "is right.")


def boxes_section(ctx):
    localizer = ctx.localizer()
    _, val = ctx.splits()
    q = max(ctx.test_scale(), localizer.input_shape[1])
    found = protocol1_boxes(localizer, val, scale=q, count=ctx.images)
    if not found:
        return _note("No validation image with a ground-truth box.")
    right = sum(f[4] > 0.5 for f in found)
    parts = ["<h3>Protocol 1</h3>",
             _img(figure_png(plot_boxes(found, ctx.class_names)), "protocol 1 boxes"),
             _caption(f"The first {len(found)} validation images, central "
                      f"{localizer.input_shape[1]}-pixel crop at Q = {q}: ground truth white "
                      "and dashed, the predicted box of the ground-truth class green when its "
                      f"IoU exceeds 0.5 ({right} of {len(found)}), red otherwise.")]
    parts.append("<h3>Protocol 2</h3>")
    try:
        classifier, path = ctx.classifier()
    except _Unavailable as why:
        return "".join(parts) + _note(f"Protocol 2 needs a classifier: {why}.")
    found2 = protocol2_boxes(localizer, classifier, val, scale=q,
                             count=max(4, ctx.images // 2))
    good = sum(localization_top1_right(f) for f in found2)
    parts += [_img(figure_png(plot_protocol2(found2, ctx.class_names)), "protocol 2 boxes"),
              _caption(f"The first {len(found2)} whole validation images at Q = {q}: the "
                       "localizer applied densely, its boxes rated by the class scores of "
                       f"<code>{_escape(path)}</code> and merged greedily; the box of the top-1 "
                       f"class, green when class and box (IoU &gt; 0.5) are both right "
                       f"({good} of {len(found2)}), red otherwise; ground truth white and "
                       "dashed. One scale, no flip.")]
    return "".join(parts)


def localization_top1_right(found, threshold=0.5):
    """Whether protocol 2's top-1 guess of one :func:`protocol2_boxes` item is right."""

    _, label, gt, guesses = found
    return localization_errors(guesses, label, gt, threshold)["top1"] == 0


def _section(key, body):
    return f'<section id="{key}"><h2>{_escape(SECTIONS[key])}</h2>{body}</section>'


def write_report(run_dir, *, images=16, validation_images=1000, output=None):
    """Write ``run_dir/report.html`` (or ``output``) and return its path.

    ``images``: how many images the picture sections show (8-16 keeps a small model's report to
    seconds); ``validation_images``: how many the predictions and the confusion matrix classify
    (the first ones of the validation split). Each section is drawn from its own input; a
    missing input (no model yet, data that cannot be read) leaves a note in its place.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run directory")
    if not (run_dir / "config.json").is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json, "
                                "which train_cls.py and train_loc.py write first")
    started = time.time()
    config = read_json(run_dir / "config.json")
    summary = read_json(run_dir / "summary.json")
    history = read_history(run_dir / "history.csv")
    ctx = _Context(run_dir, config, images, validation_images)
    localizer_run = bool(config) and is_localizer_run(config) or \
        bool(summary and "protocol1" in summary)
    builders = [("config", lambda: config_section(config)),
                ("curves", lambda: curves_section(history, summary)),
                ("evaluation", lambda: evaluation_section(summary)),
                ("crops", lambda: crops_section(ctx)),
                ("predictions", lambda: predictions_section(ctx)),
                ("heatmap", lambda: heatmap_section(ctx)),
                ("confusion", lambda: confusion_section(ctx))]
    if localizer_run:
        builders.append(("boxes", lambda: boxes_section(ctx)))
    sections = []
    for key, build in builders:
        try:
            body = build()
        except _Unavailable as why:
            body = _note(f"Not shown: {why}.")
        except Exception as error:
            log.warning("report section %r failed:\n%s", key, traceback.format_exc())
            body = f'<p class="error">{_escape(f"{type(error).__name__}: {error}")}</p>'
        sections.append(_section(key, body))
    kind = "localisation" if localizer_run else "classification"
    title = f"{run_dir.name}: VGG {kind} run"
    arch = (config or {}).get("arch", "?")
    nav = " ".join(f'<a href="#{key}">{_escape(SECTIONS[key])}</a>' for key, _ in builders)
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_escape(title)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{_escape(title)}</h1>"
            f'<p class="meta">Configuration {_escape(arch)}, run directory '
            f"<code>{_escape(os.path.abspath(run_dir))}</code>; report written "
            f"{time.strftime('%Y-%m-%d %H:%M')} in {{seconds}} s.</p>"
            f"<nav>{nav}</nav>{''.join(sections)}</body></html>\n")
    page = page.replace("{seconds}", f"{time.time() - started:.1f}", 1)
    path = Path(output) if output else run_dir / REPORT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m vgg_keras.report",
        description="Write RUN_DIR/report.html for each run directory: configuration, learning "
                    "curves, evaluation, augmented crops, predictions, heat maps, confusion and "
                    "boxes, in one self-contained page.")
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--images", type=int, default=16,
                        help="images per picture section")
    parser.add_argument("--validation-images", type=int, default=1000,
                        help="validation images the predictions and the confusion matrix "
                             "classify (the first ones)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    status = 0
    for run_dir in args.run_dirs:
        try:
            print(write_report(run_dir, images=args.images,
                               validation_images=args.validation_images), flush=True)
        except (OSError, ValueError) as error:   # missing, not a run, unreadable, read-only
            print(f"error: {error}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
