"""The run report (vgg_keras.report): a tiny classifier run and a tiny PCR localizer fine-tuned
from it, both reported by ``python -m vgg_keras.report``; the pages are self-contained, their
images decode, every section is there, and the evaluation tables are summary.json's."""

import base64
import io
import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow   # subprocesses and training: -m 'not slow' leaves them out

ROOT = Path(__file__).resolve().parents[1]
CLASSIFIER_SECTIONS = ["Configuration", "Learning curves", "Evaluation",
                       "Augmented training crops", "Predictions", "Heat maps", "Confusion"]
LOCALIZER_SECTIONS = CLASSIFIER_SECTIONS + ["Boxes"]
TINY = ["--arch", "A", "--width", "0.125", "--crop", "32", "--scale", "32:40", "--batch-size",
        "8", "--optimizer", "adam", "--lr", "1e-3", "--data", "vgg_shapes/small", "--quiet"]


def _run(args, env):
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def runs(tfds_dir, tmp_path_factory):
    """A 2-epoch classifier run, a 1-epoch PCR localizer run from it, and both reports."""
    base = tmp_path_factory.mktemp("report_runs")
    cls_run, loc_run = base / "cls", base / "loc"
    env = {**os.environ, "TFDS_DATA_DIR": str(tfds_dir), "TF_CPP_MIN_LOG_LEVEL": "2"}
    _run(["train_cls.py", *TINY, "--epochs", "2", "--init", "glorot", "--no-report",
          "--run-dir", str(cls_run)], env)
    _run(["train_loc.py", *TINY, "--epochs", "1", "--init-from", str(cls_run / "model.keras"),
          "--run-dir", str(loc_run)], env)
    # A run writes its report at the end, unless told not to; the command writes any run's.
    assert (loc_run / "report.html").exists() and not (cls_run / "report.html").exists()
    done = _run(["-m", "vgg_keras.report", str(cls_run), str(loc_run)], env)
    assert done.stdout.split() == [str(cls_run / "report.html"), str(loc_run / "report.html")]
    return cls_run, loc_run


class Page(HTMLParser):
    """What a report page holds: tags, attributes, headings, images and tables."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.attributes, self.images, self.headings = [], [], [], []
        self.tables, self.classes = [], []
        self._heading = self._cell = self._caption = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.attributes += [(tag, k, v or "") for k, v in attrs.items()]
        self.classes += (attrs.get("class") or "").split()
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "h2":
            self._heading = ""
        elif tag == "table":
            self.tables.append({"caption": "", "rows": []})
        elif tag == "caption":
            self._caption = ""
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = ["", attrs.get("data-value")]

    def handle_endtag(self, tag):
        if tag == "h2" and self._heading is not None:
            self.headings.append(self._heading.strip())
            self._heading = None
        elif tag == "caption" and self._caption is not None:
            self.tables[-1]["caption"] = self._caption.strip()
            self._caption = None
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append((self._cell[0].strip(), self._cell[1]))
            self._cell = None

    def handle_data(self, data):
        if self._heading is not None:
            self._heading += data
        if self._caption is not None:
            self._caption += data
        if self._cell is not None:
            self._cell[0] += data

    def table(self, caption_part):
        found = [t for t in self.tables if caption_part in t["caption"]]
        assert len(found) == 1, [t["caption"] for t in self.tables]
        return [row for row in found[0]["rows"] if row and row[0][1] is None and
                any(value is not None for _, value in row)]


def _check_page(path, sections):
    text = path.read_text(encoding="utf-8")
    page = Page(text)
    # Self-contained: no script, stylesheet link, frame or external reference of any kind.
    assert not {"script", "link", "iframe", "object", "embed", "base"} & set(page.tags)
    for tag, name, value in page.attributes:
        assert "://" not in value, (tag, name, value[:80])
        if name == "href":
            assert value.startswith("#"), value
        if name == "src":
            assert tag == "img" and value.startswith("data:image/png;base64,"), value[:80]
    assert "url(" not in text and "@import" not in text
    assert page.headings == sections
    assert "error" not in page.classes, "a section failed"  # failures show as class="error"
    assert len(page.images) >= len(sections) - 2   # config and evaluation are tables
    for src in page.images:
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG"
        image.load()
        assert image.size[0] >= 300 and image.size[1] >= 90, image.size
        assert len(image.convert("RGB").getcolors(1 << 16) or range(1 << 16)) > 16  # not blank
    return page


def _cells_match(cells, values):
    for (text, exact), value in zip(cells, values):
        assert float(exact) == value, (text, exact, value)
        assert text == (str(value) if isinstance(value, int) else f"{value:.1f}"), (text, value)


def test_classifier_report(runs):
    cls_run, _ = runs
    page = _check_page(cls_run / "report.html", CLASSIFIER_SECTIONS)
    summary = json.loads((cls_run / "summary.json").read_text())
    rows = page.table("summary.json: evaluation")
    # dense and center, each at the three test scales and over them
    assert len(rows) == len(summary["evaluation"]) == 8
    for row, expected in zip(rows, summary["evaluation"]):
        assert [text for text, _ in row[:3]] == [" + ".join(expected["models"]),
                                                 expected["method"],
                                                 ", ".join(map(str, expected["scales"]))]
        _cells_match(row[3:], [expected["images"], expected["top1"], expected["top5"]])
    config = json.loads((cls_run / "config.json").read_text())
    options = {text: value for row in page.tables[0]["rows"][1:] for (text, _), (value, _)
               in zip(row[::2], row[1::2])}
    assert options["width"] == "0.125" and options["scale"] == "[32, 40]"
    assert set(options) == set(config) - {"classes"}
    # fitting.py's history.png: the report's learning curves (12 x 3.1 inches), at 80 dpi.
    with Image.open(cls_run / "history.png") as image:
        assert image.format == "PNG" and image.size == (960, 248)


def test_localizer_report(runs):
    _, loc_run = runs
    page = _check_page(loc_run / "report.html", LOCALIZER_SECTIONS)
    summary = json.loads((loc_run / "summary.json").read_text())
    (row,) = page.table("protocol1")
    p1 = summary["protocol1"]
    assert [text for text, _ in row[:2]] == [p1["model"], p1["regression"].upper()] == \
        [p1["model"], "PCR"]
    _cells_match(row[4:7], [p1["images"], p1["skipped"], p1["error"]])
    assert float(row[7][1]) == p1["mean_iou"] and row[7][0] == f"{p1['mean_iou']:.3f}"
    rows = page.table("protocol2")
    assert len(rows) == len(summary["protocol2"]) == 1
    for row, expected in zip(rows, summary["protocol2"]):
        _cells_match(row[3:], [expected[k] for k in ("images", "top1_loc", "top5_loc",
                                                     "top1_cls", "top5_cls")])
    text = (loc_run / "report.html").read_text()
    assert "Protocol 1" in text and "Protocol 2" in text
    assert "rates protocol 2" in text   # class sections drawn by the --init-from classifier


def test_report_of_an_unfinished_run(runs, tmp_path):
    """Config and curves only (training still running): the page has every section, with a
    note where the model, the summary or the data will be."""
    from vgg_keras.report import write_report

    cls_run, _ = runs
    for name in ("config.json", "history.csv"):
        shutil.copy(cls_run / name, tmp_path / name)
    page = Page(write_report(tmp_path, images=8).read_text())
    assert page.headings == CLASSIFIER_SECTIONS
    assert "error" not in page.classes
    assert page.classes.count("note") == 4   # evaluation, predictions, heat maps, confusion
    assert len(page.images) == 2             # the curves and the augmented crops

    with pytest.raises(FileNotFoundError):
        write_report(tmp_path / "missing")


def test_folders_that_are_not_runs_are_refused(tmp_path, capsys):
    """An empty folder or a dataset folder gets no report.html; a config.json that is not
    JSON is named; each is exit status 2 from the command."""
    from vgg_keras.report import main

    empty, garbage = tmp_path / "empty", tmp_path / "garbage"
    empty.mkdir()
    garbage.mkdir()
    (garbage / "config.json").write_text("{not json")
    assert main([str(empty)]) == 2 and not (empty / "report.html").exists()
    assert main([str(garbage)]) == 2 and not (garbage / "report.html").exists()
    err = capsys.readouterr().err
    assert f"{empty} is not a run directory: it has no config.json" in err
    assert f"{garbage / 'config.json'} is not valid JSON" in err


def test_report_in_a_browser(runs, tmp_path):
    """Chromium, headless and offline, lays the page out with its images drawn."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("chromium is not installed")
    _, loc_run = runs
    url = (loc_run / "report.html").as_uri()
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
             "--disable-background-networking", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120)
    page = Page(dom.stdout)
    assert page.headings == LOCALIZER_SECTIONS, dom.stderr[-2000:]
    assert len(page.images) >= 8 and all(src.startswith("data:image/png") for src in page.images)
    shot = tmp_path / "page.png"
    subprocess.run([chromium, *flags, "--window-size=1200,5000", f"--screenshot={shot}", url],
                   capture_output=True, timeout=120)
    with Image.open(shot) as image:
        pixels = image.convert("RGB").resize((300, 1250))
    colors = pixels.getcolors(300 * 1250)
    white = sum(count for count, color in colors if min(color) > 245)
    assert len(colors) > 2000, "the images are not drawn"     # photographs, not text alone
    assert white < 0.9 * 300 * 1250
