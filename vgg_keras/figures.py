"""The figures of a run: matplotlib drawings of numpy arrays and protocol results.

Each ``plot_*`` function returns a matplotlib figure (Agg, no display needed) and computes
nothing but the drawing; :func:`figure_png` turns a figure into PNG bytes (a small palette PNG
for a page, or full colour). The run report (:mod:`vgg_keras.report`) and fitting.py's
``history.png`` draw with them, and so does ``docs/make_figures.py``.

>>> from vgg_keras.figures import figure_png, plot_curves
>>> history = [{"epoch": 1, "loss": 2.3, "val_loss": 2.2, "accuracy": 0.1, "learning_rate": 0.01},
...            {"epoch": 2, "loss": 1.9, "val_loss": 2.0, "accuracy": 0.3, "learning_rate": 0.01}]
>>> figure_png(plot_curves(history))[1:4]
b'PNG'
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .localization.protocols import Protocol1Image, Protocol2Image

GREEN = "#1a9641"
RED = "#d7191c"
GROUND_TRUTH = "#ffffff"
DPI = 90
"""Dots per inch of a figure's PNG unless a width in pixels is asked for."""


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_png(fig: Figure, *, dpi: float = DPI, width_px: int | None = None,
               colors: int | None = 256) -> bytes:
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
    entries = np.asarray((palette.getpalette() or [])[: 3 * colors], dtype=int).reshape(-1, 3)
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


def _name(class_names: Sequence[str], index: Any) -> str:
    index = int(index)
    return class_names[index] if class_names and 0 <= index < len(class_names) else str(index)


def _draw_box(axis: Axes, box: Any, size: tuple[int, ...], color: str, *, dashed: bool = False,
              width: float = 2.0) -> None:
    """``[ymin, xmin, ymax, xmax]`` relative to an image of ``size`` (height, width)."""
    from matplotlib.patches import Rectangle

    height, width_px = size[:2]
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    axis.add_patch(Rectangle((xmin * width_px - 0.5, ymin * height - 0.5),
                             (xmax - xmin) * width_px, (ymax - ymin) * height, fill=False,
                             edgecolor=color, linewidth=width,
                             linestyle=(0, (3, 2)) if dashed else "-"))


def _show(axis: Axes, image: np.ndarray) -> None:
    image = np.clip(np.asarray(image), 0, 255).astype("uint8")
    axis.imshow(image, interpolation="nearest")
    axis.set_xlim(-0.5, image.shape[1] - 0.5)
    axis.set_ylim(image.shape[0] - 0.5, -0.5)


def _frame(axis: Axes, color: str) -> None:
    axis.axis("on")
    axis.set_xticks([])
    axis.set_yticks([])
    for spine in axis.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(2.5)


def plot_curves(history: Sequence[Mapping[str, float]], *, best_epoch: int | None = None,
                width: float = 12.0) -> Figure:
    """Loss, accuracy (or box metrics) and learning rate per epoch from ``history``'s rows (one
    dict per epoch, as history.csv holds them); training solid, validation dashed, the kept
    epoch (numbered from 1) dotted."""
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


def plot_crops(images: np.ndarray, labels: Sequence[int], class_names: Sequence[str], *,
               boxes: np.ndarray | None = None, columns: int = 8) -> Figure:
    """Training crops with their class (and, for a localizer run, their training box in
    green; none where a row of ``boxes`` is NaN)."""
    fig, axes = _grid(len(images), columns)
    for i, (axis, image) in enumerate(zip(axes, images)):
        _show(axis, image)
        axis.set_title(_name(class_names, labels[i]), fontsize=8, pad=3)
        if boxes is not None and np.all(np.isfinite(boxes[i])):
            _draw_box(axis, boxes[i], image.shape, GREEN)
    return fig


def plot_predictions(images: np.ndarray, labels: Sequence[int], posteriors: np.ndarray,
                     class_names: Sequence[str], *, columns: int = 8, top: int = 5) -> Figure:
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


def upsample_map(values: np.ndarray, size: tuple[int, int], *, crop: int,
                 stride: int = 32) -> np.ndarray:
    """A dense output map ``(rows, cols)`` upsampled bilinearly to an image of ``size``
    (height, width): each location's value sits at the centre of the crop window it sees
    (``stride * i + crop / 2``), and is held beyond the outermost centres.

    >>> upsample_map(np.array([[0.0, 1.0]]), (1, 4), crop=2, stride=2)   # centres at x = 1, 3
    array([[0.  , 0.25, 0.75, 1.  ]])
    """
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


def plot_heat_maps(maps: Sequence[tuple[np.ndarray, int, int, np.ndarray]],
                   class_names: Sequence[str], *, crop: int, pairs_per_row: int = 3) -> Figure:
    """Each ``(image, label, predicted class, probability map)``: the whole image next to the
    soft-max probability of its predicted class over the dense score map (title green when the
    prediction is right), upsampled to the image."""
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


def plot_scene(scene: np.ndarray, classes: Sequence[int], probabilities: np.ndarray,
               class_names: Sequence[str], *, crop: int) -> Figure:
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


def plot_confusion(matrix: np.ndarray, classes: Sequence[int], class_names: Sequence[str], *,
                   width: float = 5.6) -> Figure:
    """The confusion matrix (rows true, columns predicted) restricted to ``classes``: counts,
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


def _ground_truth(axis, result):
    for box in result.ground_truth:
        _draw_box(axis, box, result.image.shape, GROUND_TRUTH, dashed=True, width=1.5)


def plot_boxes(results: Sequence[Protocol1Image], class_names: Sequence[str], *,
               columns: int = 8) -> Figure:
    """Protocol 1's results: each crop with its ground-truth boxes (white, dashed) and the
    predicted box, green when the protocol rated it right, red otherwise."""
    fig, axes = _grid(len(results), columns, title=0.34)
    for axis, result in zip(axes, results):
        _show(axis, result.image)
        _ground_truth(axis, result)
        color = GREEN if result.right else RED
        _draw_box(axis, result.box, result.image.shape, color)
        axis.set_title(f"{_name(class_names, result.label)}\nIoU {result.iou:.2f}", fontsize=7.5,
                       pad=3, color=color, linespacing=1.1)
    return fig


def plot_protocol2(results: Sequence[Protocol2Image], class_names: Sequence[str], *,
                   columns: int = 4) -> Figure:
    """Protocol 2's results: each whole image with its ground-truth boxes (white, dashed) and
    the box of the top-1 class, green when the protocol rated class and box right."""
    fig, axes = _grid(len(results), columns, panel=(1.8, 1.8), title=0.34)
    for axis, result in zip(axes, results):
        _show(axis, result.image)
        _ground_truth(axis, result)
        cls, box = result.guesses[0]
        color = GREEN if result.right else RED
        _draw_box(axis, box, result.image.shape, color)
        axis.set_title(f"{_name(class_names, cls)}\n(true: {_name(class_names, result.label)})",
                       fontsize=7.5, pad=3, color=color, linespacing=1.1)
    return fig
