"""A run seen, not only run: one self-contained HTML page per run directory.

``write_report(run_dir)`` writes ``run_dir/report.html``: the configuration, the learning
curves, the evaluation tables of ``summary.json``, the augmented training crops, validation
images with their top-5 classes, dense class-score heat maps, the most confused classes and, for
a localizer, the boxes of protocols 1 and 2. Images are embedded PNGs and the style is inline,
so the page opens offline. Each section needs only its own input: a run still training has its
configuration and curves, and a note where the model will be.

    python -m vgg_keras.report runs/cls-a-s72-96 runs/loc-scr-a-s72-96

The page is a view: :mod:`vgg_keras.figures` draws, ``templates/report.html`` lays it out, and
the boxes are the protocols' per-image results (:mod:`vgg_keras.localization.protocols`).

>>> from vgg_keras.report import write_report
>>> write_report("runs/cls-a-s72-96")          # a run directory  # doctest: +SKIP
PosixPath('runs/cls-a-s72-96/report.html')
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import logging
import math
import os
import string
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .boxes import DEFAULT_MERGE
from .options import test_scale
from .figures import (
    figure_png, plot_boxes, plot_confusion, plot_crops, plot_curves, plot_heat_maps,
    plot_predictions, plot_protocol2, plot_scene,
)
from .heads import is_localizer
from .inspection import (
    classify_validation, confusion_matrix, heat_maps, heat_scene, most_confused,
    protocol1_boxes, protocol2_boxes, run_examples, training_crops,
)
from .models import load_vgg
from .rundir import (
    CONFIG_FILE, HISTORY_FILE, SUMMARY_FILE, is_localizer_run, rating_classifier_path,
    read_history, read_json, run_scale,
)

if TYPE_CHECKING:
    from ._typing import PathLike

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
TEMPLATE = "templates/report.html"
"""The page's skeleton (``string.Template``), a file of the package."""
SECTIONS = {"config": "Configuration", "curves": "Learning curves", "evaluation": "Evaluation",
            "crops": "Augmented training crops", "predictions": "Predictions",
            "heatmap": "Heat maps", "confusion": "Confusion", "boxes": "Boxes"}
"""Section ids and headings, in page order (``boxes`` only for a localizer)."""


# -- the page ----------------------------------------------------------------------------------

def _escape(value):
    return html.escape(str(value), quote=True)


def _figure(fig, alt, caption):
    """A figure as an embedded PNG, and its caption (HTML)."""
    data = base64.b64encode(figure_png(fig)).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_escape(alt)}">' + _caption(caption)


def _note(text):
    return f'<p class="note">{_escape(text)}</p>'


def _caption(text):
    return f'<p class="caption">{text}</p>'


def _cell(value, digits=1):
    """A table cell: a number shown rounded, exact in ``data-value``; a list joined."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        shown = f"{value:.{digits}f}" if isinstance(value, float) else str(value)
        return f'<td class="num" data-value="{value!r}">{shown}</td>'
    if isinstance(value, (list, tuple)):
        value = (" + " if value and isinstance(value[0], str) else ", ").join(map(str, value))
    return f"<td>{_escape('' if value is None else value)}</td>"


def _table(header, rows, caption=None):
    head = "".join(f"<th>{_escape(h)}</th>" for h in header)
    body = "".join(f"<tr>{''.join(cells)}</tr>" for cells in rows)
    cap = f"<caption>{_escape(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


SUMMARY_TABLES = {
    "evaluation": ("Classification (summary.json: evaluation)", {
        "model(s)": "models", "method": "method", "test scale(s) Q": "scales",
        "images": "images", "top-1 error (%)": "top1", "top-5 error (%)": "top5"}),
    "protocol1": ("Localisation, protocol 1: central crop, ground-truth class (summary.json: "
                  "protocol1)", {
        "model": "model", "regression": "regression", "fine-tuned": "finetune", "Q": "scales",
        "images": "images", "skipped": "skipped", "error (%)": "error", "mean IoU": "mean_iou"}),
    "protocol2": ("Localisation, protocol 2: dense, greedy merging (summary.json: protocol2)", {
        "localizer(s)": "models", "classifier(s)": "classifiers", "Q": "scales",
        "images": "images", "top-1 loc (%)": "top1_loc", "top-5 loc (%)": "top5_loc",
        "top-1 cls (%)": "top1_cls", "top-5 cls (%)": "top5_cls"}),
}
"""summary.json's evaluation tables: caption and columns (heading: key of a row)."""
SUMMARY_FACTS = ("arch", "scale", "test_scale", "epochs", "best_epoch", "seconds",
                 "train_images", "classes", "regression", "finetune", "chance_top1_error")


def config_section(config: dict[str, Any] | None, pairs: int = 3) -> str:
    """The options of ``config.json`` in ``pairs`` columns, and the class names."""
    if config is None:
        return _note("No config.json: the run has not started.")
    classes = config.get("classes") or []
    items = [(key, value) for key, value in config.items() if key != "classes"]
    per_column = math.ceil(len(items) / pairs)
    rows = [[cell for key, value in items[r::per_column]
             for cell in (f"<th>{_escape(key)}</th>", f"<td>{_escape(json.dumps(value))}</td>")]
            for r in range(per_column)]
    parts = [_table(["option", "value"] * pairs, rows)]
    if classes:
        shown = " &middot; ".join(f"{i}&nbsp;{_escape(name)}"
                                  for i, name in enumerate(classes[:1000]))
        parts.append(f"<h3>Classes ({len(classes)})</h3><p>{shown}</p>")
    return "".join(parts)


def curves_section(history: Sequence[dict[str, float]], summary: dict[str, Any] | None) -> str:
    """The learning curves of ``history.csv``, the kept epoch marked."""
    if not history:
        return _note("No history.csv yet: no epoch has finished.")
    best = (summary or {}).get("best_epoch")  # numbered from 1, as history.csv's epochs
    best = best if isinstance(best, int) else None
    return _figure(plot_curves(history, best_epoch=best), "learning curves",
                   f"{len(history)} epoch(s) from <code>history.csv</code>; training solid, "
                   "validation dashed" + ("; the dotted line marks the epoch kept in model.keras."
                                          if best else "."))


def evaluation_section(summary: dict[str, Any] | None) -> str:
    """The facts and the evaluation tables of ``summary.json``."""
    if summary is None:
        return _note("No summary.json yet: the run has not finished its evaluation.")
    parts = [_table(["", "value"], [[f"<th>{_escape(k)}</th>", _cell(summary[k])]
                                    for k in SUMMARY_FACTS if k in summary])]
    for key, (caption, columns) in SUMMARY_TABLES.items():
        rows = summary.get(key) or []
        rows = [rows] if isinstance(rows, dict) else rows
        if rows:
            parts.append(_table(list(columns), [
                [_cell(str(r.get(k) or "").upper() if k == "regression" else r.get(k),
                       3 if k == "mean_iou" else 1) for k in columns.values()] for r in rows],
                caption))
    if len(parts) == 1:
        parts.append(_note("summary.json holds no evaluation table."))
    return "".join(parts)


class _Unavailable(Exception):
    """A section's input is missing; the page says so instead of drawing it."""


class _Context:
    """What the sections share, loaded once and only when a section needs it."""

    def __init__(self, run_dir, config, images, validation_images):
        self.run_dir, self.config = Path(run_dir), config or {}
        self.images, self.validation_images = images, validation_images
        self.class_names = list(self.config.get("classes") or [])
        self.test_scale = test_scale(run_scale(self.config))
        self._cache = {}

    def _once(self, key, make):
        """``make()``, computed once; a failure is raised again to every section asking."""
        if key not in self._cache:
            try:
                self._cache[key] = (make(), None)
            except Exception as error:
                self._cache[key] = (None, error)
        value, failure = self._cache[key]
        if failure is not None:
            raise failure
        return value

    def splits(self):
        if not self.config:
            raise _Unavailable("no config.json")
        return self._once("splits", lambda: run_examples(self.config))

    def model(self):
        path = self.run_dir / "model.keras"
        if not path.exists():
            raise _Unavailable("no model.keras yet (it is written when training ends)")
        return self._once("model", lambda: load_vgg(path))

    def localizer(self):
        if not is_localizer(self.model()):
            raise _Unavailable("model.keras is a classifier, not a localizer")
        return self.model()

    def classifier(self):
        """The run's classifier, or the one a localizer run names (protocol 2's rater), and
        that one's path."""
        if not is_localizer(self.model()):
            return self.model(), None
        path = rating_classifier_path(self.config, self.run_dir)
        if not path:
            raise _Unavailable("a localizer has no class scores, and config.json names no "
                               "classifier to take them from (--classifier, or a classifier "
                               "as --init-from)")
        if not Path(path).exists():
            raise _Unavailable(f"the classifier {path} named in config.json is not there")

        def load():
            if is_localizer(found := load_vgg(path)):
                raise _Unavailable(f"{path} is a localizer, not a classifier")
            return found

        return self._once("classifier", load), path

    def validation(self):
        classifier, _ = self.classifier()
        crop = classifier.input_shape[1]
        return self._once("validation", lambda: classify_validation(
            classifier, self.splits()[1], test_scale=max(self.test_scale, crop), crop=crop,
            keep=self.images, mistakes=self.images // 2, limit=self.validation_images))


def _from_classifier(path):
    return _caption(f"A localizer has no class scores: these come from the classifier "
                    f"<code>{_escape(path)}</code> named in config.json (it rates protocol 2's "
                    "boxes).") if path else ""


def _crops_section(ctx):
    scale, config = run_scale(ctx.config), ctx.config
    images, labels, boxes = training_crops(
        ctx.splits()[0], scale=scale, crop=int(config.get("crop", 224)),
        seed=config.get("seed", 0), flip=config.get("flip", True),
        color_shift=config.get("color_shift", True), boxes=is_localizer_run(config),
        count=ctx.images)
    flags = [name for name, on in (("random flips", config.get("flip", True)),
                                   ("PCA colour shift", config.get("color_shift", True))) if on]
    return _figure(plot_crops(images, labels, ctx.class_names, boxes=boxes),
                   "augmented training crops", _escape(
        f"The first training batch of epoch 1 (seed {config.get('seed', 0)}): images rescaled "
        f"to S = {scale if isinstance(scale, int) else '%d..%d' % scale}, random "
        f"{config.get('crop')}-pixel crops" + "".join(", " + flag for flag in flags) + ".")
        + (" Green: the box each crop trains the regressor on (none where the crop cut the "
           "object away)." if boxes is not None else ""))


def _predictions_section(ctx):
    classifier, path = ctx.classifier()
    seen = ctx.validation()
    first, wrong, n = seen["first"], seen["mistakes"], len(seen["labels"])
    top1 = 100 * np.mean(np.argmax(seen["posteriors"], 1) != seen["labels"])
    page = _from_classifier(path) + _figure(
        plot_predictions(first["images"], first["labels"], first["posteriors"],
                         ctx.class_names), "validation predictions",
        f"The first {len(first['images'])} validation images, central "
        f"{classifier.input_shape[1]}-pixel crop at Q = {ctx.test_scale}, no flip, with the "
        "top-5 classes and their soft-max probability. Green frame: top-1 right; red: wrong. "
        f"The true class is in green wherever it ranks. Top-1 error on these {n} images: "
        f"{top1:.1f}% (summary.json's numbers average the flipped image too).")
    if not len(wrong["images"]):
        return page + _note(f"No mistake on these {n} images.")
    return page + "<h3>Mistakes</h3>" + _figure(
        plot_predictions(wrong["images"], wrong["labels"], wrong["posteriors"],
                         ctx.class_names), "misclassified validation images",
        f"The first {len(wrong['images'])} misclassified validation images.")


def _heatmap_section(ctx):
    classifier, path = ctx.classifier()
    val, crop = ctx.splits()[1], classifier.input_shape[1]
    q = max(ctx.test_scale, crop)
    maps = heat_maps(classifier, val, test_scale=q, count=6 if ctx.images >= 12 else 3)
    scene, classes, probabilities = heat_scene(classifier, val, test_scale=q)
    return _from_classifier(path) + _figure(
        plot_heat_maps(maps, ctx.class_names, crop=crop), "dense class-score heat maps",
        f"Dense evaluation (<code>vgg_keras.to_dense</code>): each whole validation image "
        f"rescaled to Q = {q}, and the soft-max probability of the class it predicts (title "
        "green when right) at each location of the score map (its size in the title). A "
        f"location sees a {crop}-pixel window, one every 32 pixels; its value sits at the "
        "window's centre, interpolated between centres.") + \
        "<h3>A scene of four images</h3>" + _figure(
        plot_scene(scene, classes, probabilities, ctx.class_names, crop=crop),
        "class-score maps over a scene",
        f"Four validation images of different classes (the central {q} x {q} square of each) "
        "side by side, and the probability of each one's class over the whole scene: the net, "
        "trained on single crops, finds each object where it is.")


def _confusion_section(ctx):
    classifier, path = ctx.classifier()
    seen = ctx.validation()
    matrix = confusion_matrix(seen["labels"], np.argmax(seen["posteriors"], 1),
                              classifier.output_shape[-1])
    classes, n = most_confused(matrix), len(seen["labels"])
    if not classes:
        return _from_classifier(path) + _note(
            f"No confusion: every one of the {n} validation images is classified right.")
    return _from_classifier(path) + _figure(
        plot_confusion(matrix, classes, ctx.class_names), "confusion matrix",
        f"Central crops of {n} validation images (Q = {ctx.test_scale}, no flip), restricted "
        f"to the {len(classes)} classes involved in most mistakes (as the truth or as the "
        "guess): counts, rows the true class, columns the predicted one; the diagonal (green) "
        "is right.")


def _boxes_section(ctx):
    localizer, val = ctx.localizer(), ctx.splits()[1]
    crop = localizer.input_shape[1]
    q = max(ctx.test_scale, crop)
    found = protocol1_boxes(localizer, val, test_scale=q, count=ctx.images)
    if not found:
        return _note("No validation image with a ground-truth box.")
    page = "<h3>Protocol 1</h3>" + _figure(
        plot_boxes(found, ctx.class_names), "protocol 1 boxes",
        f"The first {len(found)} validation images, central {crop}-pixel crop at Q = {q}: "
        "ground truth white and dashed, the predicted box of the ground-truth class green when "
        f"its IoU exceeds 0.5 ({sum(r.right for r in found)} of {len(found)}), red "
        "otherwise.") + "<h3>Protocol 2</h3>"
    try:
        classifier, path = ctx.classifier()
    except _Unavailable as why:
        return page + _note(f"Protocol 2 needs a classifier: {why}.")
    found = protocol2_boxes(localizer, classifier, val, test_scale=q, count=max(4, ctx.images // 2),
                            merge=ctx.config.get("merge") or DEFAULT_MERGE,
                            merge_threshold=ctx.config.get("merge_threshold"))
    return page + _figure(
        plot_protocol2(found, ctx.class_names), "protocol 2 boxes",
        f"The first {len(found)} whole validation images at Q = {q}: the localizer applied "
        f"densely, its boxes rated by the class scores of <code>{_escape(path)}</code> and "
        "merged greedily; the box of the top-1 class, green when class and box (IoU &gt; 0.5) "
        f"are both right ({sum(r.right for r in found)} of {len(found)}), red otherwise; "
        "ground truth white and dashed. One scale, no flip.")


def _section(key, build):
    """One ``<section>``: ``build()``'s HTML, or a note or an error where it cannot be drawn."""
    try:
        body = build()
    except _Unavailable as why:
        body = _note(f"Not shown: {why}.")
    except Exception as error:
        log.warning("report section %r failed:\n%s", key, traceback.format_exc())
        body = f'<p class="error">{_escape(f"{type(error).__name__}: {error}")}</p>'
    return f'<section id="{key}"><h2>{_escape(SECTIONS[key])}</h2>{body}</section>'


def write_report(run_dir: PathLike, *, images: int = 16, validation_images: int = 1000,
                 output: PathLike | None = None) -> Path:
    """Write ``run_dir/report.html`` (or ``output``) and return its path.

    ``images``: how many images the picture sections show (8-16 keeps a small model's report to
    seconds); ``validation_images``: how many the predictions and the confusion matrix classify
    (the first ones of the validation split). Each section is drawn from its own input; a
    missing input (no model yet, data that cannot be read) leaves a note in its place.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir} is not a run directory")
    if not (run_dir / CONFIG_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory: it has no config.json, "
                                "which train_cls.py and train_loc.py write first")
    started = time.time()
    config = read_json(run_dir / CONFIG_FILE)
    summary = read_json(run_dir / SUMMARY_FILE)
    history = read_history(run_dir / HISTORY_FILE)
    ctx = _Context(run_dir, config, images, validation_images)
    localizer_run = bool(config) and is_localizer_run(config) or \
        bool(summary and "protocol1" in summary)
    builders: dict[str, Callable[[], str]] = {
        "config": lambda: config_section(config),
        "curves": lambda: curves_section(history, summary),
        "evaluation": lambda: evaluation_section(summary),
        "crops": lambda: _crops_section(ctx), "predictions": lambda: _predictions_section(ctx),
        "heatmap": lambda: _heatmap_section(ctx), "confusion": lambda: _confusion_section(ctx)}
    if localizer_run:
        builders["boxes"] = lambda: _boxes_section(ctx)
    sections = "".join(_section(key, build) for key, build in builders.items())
    title = f"{run_dir.name}: VGG {'localisation' if localizer_run else 'classification'} run"
    template = resources.files("vgg_keras").joinpath(TEMPLATE).read_text(encoding="utf-8")
    page = string.Template(template).substitute(
        title=_escape(title), arch=_escape((config or {}).get("arch", "?")),
        run_dir=_escape(os.path.abspath(run_dir)), written=time.strftime("%Y-%m-%d %H:%M"),
        seconds=f"{time.time() - started:.1f}", sections=sections,
        nav=" ".join(f'<a href="#{key}">{_escape(SECTIONS[key])}</a>' for key in builders))
    path = Path(output) if output else run_dir / REPORT_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, path)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vgg_keras.report RUN_DIR...``: 0, or 2 when a folder is not a run (or its
    JSON is not whole), after reporting the others."""
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
