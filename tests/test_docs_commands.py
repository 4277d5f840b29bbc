"""Every command in README.md and docs/*.md runs as written.

The commands are read from the pages themselves: each line of a shell code block (```bash,
```sh, ```console or a plain fence, with backslash continuations joined and ``VAR=...``
assignments of the same block expanded) and each inline code span that starts with a command,
such as `python train_cls.py --help`. A command that invokes one of the project's entry points
(train_cls.py, train_loc.py, vgg-train-cls, vgg-train-loc, ``python -m vgg_keras.<module>``,
``python bench/<script>.py``) is handed to that entry point's own parser, which stops right
after parsing: an unknown or abbreviated flag, a value outside a flag's choices, a missing value
or a wrong type fails the test with the page, the line and argparse's message, e.g.
``docs/training.md:58: train_cls.py: error: unrecognized arguments: --eval-scale``.

The entry points of the package build their parsers in this process; scripts (``bench/``) run
in a subprocess of their own, since their module bodies choose the backend and import their
neighbours, and so do the slow tests that run each documented entry point's ``--help``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import os
import re
import runpy
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL_FENCES = {"", "bash", "sh", "shell", "console"}

CLS_ENTRIES = {"train_cls.py", "vgg-train-cls", "-m vgg_keras.train_cls"}
LOC_ENTRIES = {"train_loc.py", "vgg-train-loc", "-m vgg_keras.train_loc"}
CONSOLE_SCRIPTS = {"vgg-train-cls", "vgg-train-loc"}

# Words the pages use for a value the reader supplies ("host i of N"), and a value of the type
# the flag wants, so that the rest of the command is still checked.
PLACEHOLDER_VALUES = {"N": "2", "i": "0"}

MIN_COMMANDS = 40
"""The pages hold about 60 commands; far fewer means the reader lost them, not that they left."""
MAX_SKIPPED = 4
"""Lines in usage notation (`RUN_DIR [RUN_DIR ...]`) are not commands to run; a few at most."""

# Lines of docs/reproducing.md known to fail, as {("docs/reproducing.md", line): "the fix"}:
# each is expected to fail (strictly, so a fixed line must leave this list). Empty: it passes.
KNOWN_FAILURES: dict[tuple[str, int], str] = {}


# -- reading the commands -----------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class DocCommand:
    """One invocation of an entry point, where a page writes it."""

    page: str                # relative to the repository, e.g. "docs/training.md"
    line: int                # the line it starts on
    text: str                # the command as written (continuations joined)
    entry: str               # "train_cls.py", "vgg-train-cls", "-m vgg_keras.data", "bench/x.py"
    argv: tuple[str, ...]    # the arguments after the entry point
    prose: bool = False      # an inline span, which may name a command or flag incompletely

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def in_process(self) -> bool:
        return self.entry in CONSOLE_SCRIPTS or self.entry.startswith("-m vgg_keras.") \
            or self.entry in {"train_cls.py", "train_loc.py"}


@dataclasses.dataclass
class PageReading:
    commands: list[DocCommand]
    skipped: list[str]       # "page:line: text" of entry-point lines in usage notation


def shell_lines(markdown: str) -> Iterator[tuple[int, str, dict[str, str]]]:
    """``(line, text, variables)`` for every command line of the shell code blocks, backslash
    continuations joined; ``variables`` holds the block's ``VAR=value`` assignments so far."""
    fence, language, variables, pending = None, "", {}, None
    for number, raw in enumerate(markdown.splitlines(), 1):
        stripped = raw.strip()
        opening = re.match(r"(`{3,}|~{3,})\s*([\w+-]*)", stripped)
        if fence is None:
            if opening:
                fence, language, variables, pending = opening.group(1), opening.group(2), {}, None
            continue
        if stripped.startswith(fence) and not stripped[len(fence):].strip():
            fence = None
            continue
        if language.lower() not in SHELL_FENCES:
            continue
        if pending is None:
            if language.lower() == "console":
                if not stripped.startswith("$ "):
                    continue                               # a line of output
                raw = stripped[2:]
            pending = (number, "")
        start, text = pending
        raw = raw.strip()
        if raw.endswith("\\"):
            pending = (start, text + raw[:-1].rstrip() + " ")
            continue
        pending = None
        text = text + raw
        assignment = re.fullmatch(r"(?:export\s+)?([A-Za-z_]\w*)=(\S*)", text)
        if assignment:
            variables[assignment.group(1)] = " ".join(shlex.split(assignment.group(2)))
            continue
        yield start, text, dict(variables)


def inline_commands(markdown: str) -> Iterator[tuple[int, str]]:
    """``(line, text)`` of each inline code span outside code blocks that starts with a command:
    ``python ...``, a console script, or an entry point's file followed by flags."""
    in_block = False
    for number, line in enumerate(markdown.splitlines(), 1):
        if re.match(r"\s*(`{3,}|~{3,})", line):
            in_block = not in_block
            continue
        if in_block:
            continue
        for span in re.findall(r"(?<!`)`([^`]+)`(?!`)", line):
            if re.match(r"(python3?|vgg-train-(cls|loc))(\s|$)", span) or \
                    re.match(r"train_(cls|loc)\.py\s+-", span):
                yield number, span


def expand(text: str, variables: dict[str, str]) -> str:
    """``$VAR`` and ``${VAR}`` replaced by the block's assignments (others are left as written)."""
    return re.sub(r"\$\{?([A-Za-z_]\w*)\}?",
                  lambda m: variables.get(m.group(1), m.group(0)), text)


def shell_words(text: str) -> list[list[str]]:
    """The simple commands of a shell line (split at ``&&``, ``||``, ``;``, ``|``), each as
    its words, comments and redirections removed."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, words, tokens = [], [], list(lexer)
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token in {"&&", "||", ";", "|", "&"}:
            commands.append(words)
            words = []
        elif token[0] in "<>":
            index += 1                                      # and the redirection's target
            if words and words[-1].isdigit():
                words.pop()                                 # the 2 of 2>
        else:
            words.append(token)
        index += 1
    return [w for w in [*commands, words] if w]


def entry_point(words: list[str], prose: bool = False) -> tuple[str, list[str]] | None:
    """``(entry, arguments)`` when ``words`` invoke one of the project's entry points."""
    while words and re.match(r"[A-Za-z_]\w*=", words[0]):
        words = words[1:]                                   # KERAS_BACKEND=jax python ...
    if not words:
        return None
    program, rest = words[0], words[1:]
    if prose and program in {"train_cls.py", "train_loc.py"}:
        return program, rest
    if program in CONSOLE_SCRIPTS:
        return program, rest
    if not re.fullmatch(r"python(3(\.\d+)?)?", program) or not rest:
        return None
    if rest[0] == "-m":
        module = rest[1] if len(rest) > 1 else ""
        return (f"-m {module}", rest[2:]) if module.split(".")[0] == "vgg_keras" else None
    if rest[0].endswith(".py"):
        return rest[0].removeprefix("./"), rest[1:]
    return None


def doc_commands(page: str, markdown: str, skipped: list[str] | None = None) -> list[DocCommand]:
    """Every entry-point command of a page. Lines in usage notation (a ``...`` other than a
    trailing one) go to ``skipped``; a trailing ``...`` ("and more flags") is dropped and the
    rest checked."""
    found = [(n, expand(t, v), False) for n, t, v in shell_lines(markdown)]
    found += [(n, t, True) for n, t in inline_commands(markdown)]
    commands = []
    for number, text, inline in sorted(found, key=lambda f: f[0]):
        for words in shell_words(text):
            invoked = entry_point(words, prose=inline)
            if invoked is None:
                continue
            entry, argv = invoked
            if argv and argv[-1] == "...":
                argv = argv[:-1]
            if any("..." in word for word in argv):
                if skipped is not None:
                    skipped.append(f"{page}:{number}: {text}")
                continue
            argv = [PLACEHOLDER_VALUES.get(word, word) for word in argv]
            commands.append(DocCommand(page, number, text, entry, tuple(argv), inline))
    return commands


def read_pages(pages=PAGES) -> PageReading:
    reading = PageReading([], [])
    for path in pages:
        page = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else path.name
        reading.commands += doc_commands(page, path.read_text(encoding="utf-8"), reading.skipped)
    return reading


# -- parsing them as the entry point does -------------------------------------------------------

class Parsed(Exception):
    """Raised where a command would go on to its work: its arguments parsed."""

    def __init__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace):
        super().__init__(parser.prog)
        self.parser, self.namespace = parser, namespace


@contextlib.contextmanager
def parse_only():
    """Within it, a command stops with :class:`Parsed` once its outermost ``parse_args`` (or
    ``parse_known_args``) succeeds, and no parser accepts an abbreviated flag (``--eval-scale``
    for ``--eval-scales`` runs today and breaks when a second flag shares the prefix)."""
    cls = argparse.ArgumentParser
    originals = {name: getattr(cls, name) for name in ("__init__", "parse_args",
                                                         "parse_known_args")}
    depth = 0

    def strict_init(self, *args, **kwargs):
        originals["__init__"](self, *args, **{**kwargs, "allow_abbrev": False})

    def stopping(name):
        def parse(self, *args, **kwargs):
            nonlocal depth
            depth += 1
            try:
                result = originals[name](self, *args, **kwargs)
            finally:
                depth -= 1
            if depth == 0:
                raise Parsed(self, result[0] if name == "parse_known_args" else result)
            return result
        return parse

    cls.__init__ = strict_init
    cls.parse_args, cls.parse_known_args = stopping("parse_args"), stopping("parse_known_args")
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(cls, name, original)


def in_process_command(entry: str) -> Callable[[list[str]], object]:
    """The function behind an entry point of the package, taking its arguments."""
    from vgg_keras import cli

    if entry in CLS_ENTRIES:
        return lambda argv: cli.train_cls(argv, prog="train_cls.py")
    if entry in LOC_ENTRIES:
        return lambda argv: cli.train_loc(argv, prog="train_loc.py")
    module_name = entry.removeprefix("-m ")
    try:
        module = importlib.import_module(module_name + ".__main__")
    except ModuleNotFoundError:
        module = importlib.import_module(module_name)
    return module.main


@dataclasses.dataclass
class Outcome:
    error: str | None        # argparse's message, None when the command parses
    parser: argparse.ArgumentParser | None = None
    namespace: argparse.Namespace | None = None


def parse_in_process(entry: str, argv: list[str]) -> Outcome:
    try:
        run = in_process_command(entry)
    except (ImportError, AttributeError) as error:
        return Outcome(f"no entry point {entry}: {error}")
    output, errors = io.StringIO(), io.StringIO()
    with parse_only(), contextlib.redirect_stdout(output), contextlib.redirect_stderr(errors):
        try:
            run(list(argv))
        except Parsed as parsed:
            return Outcome(None, parsed.parser, parsed.namespace)
        except SystemExit as exit:
            if exit.code in (0, None) and "usage:" in output.getvalue():
                return Outcome(None)                         # --help
            return Outcome(errors.getvalue().strip().splitlines()[-1] if errors.getvalue()
                           else f"exited with status {exit.code} while parsing")
    return Outcome(f"{entry} ran to its end without parsing its arguments")


def run_script_parse_only(script: str, argv: list[str]) -> None:
    """In a process of its own: run ``script`` as ``python script argv`` does, up to parsing;
    exit status 0 when it parses, argparse's 2 (message on stderr) when not."""
    sys.argv = [script, *argv]
    sys.path[0] = str(Path(script).resolve().parent)        # as "python bench/x.py" sets it
    with parse_only():
        try:
            runpy.run_path(script, run_name="__main__")
        except Parsed:
            sys.exit(0)
    sys.exit(f"{script} ran to its end without parsing its arguments")


def parse_in_subprocess(script: str, argv: list[str]) -> Outcome:
    if not (ROOT / script).is_file():
        return Outcome(f"no script {script} in the repository")
    code = ("import sys; sys.path.append(sys.argv.pop(1)); "
            "from test_docs_commands import run_script_parse_only as run; "
            "run(sys.argv[1], sys.argv[2:])")
    done = subprocess.run([sys.executable, "-c", code, str(ROOT / "tests"), script, *argv],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**_environment(), "PYTHONPATH": str(ROOT)})
    if done.returncode == 0:
        return Outcome(None)
    lines = done.stderr.strip().splitlines()
    return Outcome(lines[-1] if lines else f"exit status {done.returncode}")


def _environment():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


# What a span of prose may leave out: it names a command or a flag without completing it
# (`python -m vgg_keras.report` on a folder, `train_cls.py --val-fraction`).
INCOMPLETE = re.compile(r"the following arguments are required|expected (one|at least one) "
                        r"argument")


def check(command: DocCommand) -> Outcome:
    """Parse ``command`` with its entry point's parser; in prose, an incomplete command passes
    as long as every flag it names is the parser's and every value it gives is allowed."""
    if command.in_process:
        outcome = parse_in_process(command.entry, list(command.argv))
    else:
        outcome = parse_in_subprocess(command.entry, list(command.argv))
    if command.prose and outcome.error and INCOMPLETE.search(outcome.error):
        outcome.error = None
    return outcome


def problem(command: DocCommand, outcome: Outcome) -> str:
    return f"{command.where}: {outcome.error}\n    {command.text}"


# -- the pages ----------------------------------------------------------------------------------

READING = read_pages()


def command_params():
    params = []
    seen: dict[str, int] = {}
    for command in READING.commands:
        seen[command.where] = seen.get(command.where, 0) + 1
        name = command.where + ("" if seen[command.where] == 1 else f"#{seen[command.where]}")
        marks = [] if command.in_process else [pytest.mark.slow]
        if (command.page, command.line) in KNOWN_FAILURES:
            marks.append(pytest.mark.xfail(strict=True,
                                           reason=KNOWN_FAILURES[(command.page, command.line)]))
        params.append(pytest.param(command, id=name, marks=marks))
    return params


def test_the_pages_hold_the_commands_to_check():
    pages = {c.page for c in READING.commands}
    assert len(READING.commands) >= MIN_COMMANDS, [c.where for c in READING.commands]
    assert {"README.md", "docs/training.md", "docs/localisation.md", "docs/evaluation.md",
            "docs/scale-out.md", "docs/data.md"} <= pages
    assert len(READING.skipped) <= MAX_SKIPPED, "\n".join(READING.skipped)
    assert set(KNOWN_FAILURES) <= {(c.page, c.line) for c in READING.commands}, \
        "a known failure names a line that holds no command"


@pytest.mark.parametrize("command", command_params())
def test_documented_command_parses(command):
    outcome = check(command)
    assert outcome.error is None, problem(command, outcome)


def unwritten_run_directories(commands: list[DocCommand]) -> tuple[list[str], int]:
    """The run directories (``runs/<name>``) that commands read but no command writes, each as
    a problem, and how many reads there were."""
    from vgg_keras.classification import ClassificationTask
    from vgg_keras.options import ClassificationConfig, LocalizationConfig, from_args
    from vgg_keras.localization.training import LocalizationTask
    from vgg_keras.run import Run

    tasks = [(CLS_ENTRIES, ClassificationConfig, ClassificationTask()),
             (LOC_ENTRIES, LocalizationConfig, LocalizationTask())]
    written, read = set(), []
    for command in commands:
        task = next((t for t in tasks if command.entry in t[0]), None)
        if task is None:
            continue
        outcome = parse_in_process(command.entry, list(command.argv))
        if outcome.namespace is None:
            continue                        # a parse error: test_documented_command_parses
        config = from_args(task[1], outcome.namespace)
        if not config.evaluate:
            written.add(Run(config, task[2]).run_dir.as_posix())
        read += [(command, "/".join(Path(word).parts[:2]))
                 for before, word in zip(("",) + command.argv, command.argv)
                 if word.startswith("runs/") and before != "--run-dir"]
    return [f"{c.where}: reads {run_dir}, which no command writes ({', '.join(sorted(written))})"
            f"\n    {c.text}" for c, run_dir in read if run_dir not in written], len(read)


def test_every_run_directory_a_command_reads_is_one_a_command_writes():
    """`--init-from runs/cls-d-s384/model.keras` runs only if a command on the pages trains
    into runs/cls-d-s384 (by --run-dir or by default)."""
    problems, reads = unwritten_run_directories(READING.commands)
    assert reads >= 10 and not problems, "\n".join(problems)


# -- the checker itself -------------------------------------------------------------------------

def _checked(markdown: str) -> list[str]:
    return [problem(c, o) for c in doc_commands("page.md", markdown)
            if (o := check(c)).error is not None]


def test_a_wrong_flag_is_named_with_its_page_and_line():
    page = ("Intro.\n\n```bash\nQ=72\npython train_cls.py --arch A --scale $Q\n"
            "python train_cls.py --arch A \\\n    --eval-scale 256 384\n"
            "python train_loc.py --regression xyz   # comment --ignored\n"
            "KERAS_BACKEND=jax vgg-train-cls --arch Z\n"
            "python -m vgg_keras.data.service worker --port 1\n"
            "pip install -e . && python train_cls.py --no-such-flag 3\n```\n"
            "And `python train_loc.py --merge iou`, `train_cls.py --epoch`.\n")
    problems = _checked(page)
    assert len(problems) == 6, "\n".join(problems)
    assert problems[0].startswith("page.md:6: ") and "--eval-scale" in problems[0]
    assert problems[1].startswith("page.md:8: ") and "--regression" in problems[1] \
        and "'xyz'" in problems[1]
    assert problems[2].startswith("page.md:9: ") and "'Z'" in problems[2]
    assert problems[3].startswith("page.md:10: ") and "--dispatcher" in problems[3]
    assert problems[4].startswith("page.md:11: ") and "--no-such-flag" in problems[4]
    assert problems[5].startswith("page.md:13: ") and "--epoch" in problems[5]


def test_a_run_directory_no_command_writes_is_named():
    page = ("```bash\npython train_cls.py --arch A --scale 256 --run-dir runs/a\n"
            "python train_cls.py --arch D --init-from runs/a/model.keras\n"
            "python train_loc.py --init-from runs/cls-d-s256/model.keras --scale 288\n"
            "python train_loc.py --evaluate runs/loc-pcr-d-s256/model.keras\n```\n")
    problems, reads = unwritten_run_directories(doc_commands("page.md", page))
    assert reads == 3 and len(problems) == 1, problems
    assert problems[0].startswith("page.md:5: reads runs/loc-pcr-d-s256, which no command "
                                  "writes (runs/a, runs/cls-d-s256, runs/loc-pcr-d-s288)")


def test_the_reader_keeps_commands_and_leaves_the_rest():
    skipped: list[str] = []
    page = ("```console\n$ python train_cls.py --help\nusage: train_cls.py [-h]\n```\n"
            "```python\npython = 'train_cls.py --x'\n```\n"
            "```sh\nS=\"256:512\"\npython train_cls.py --scale $S \\\n    --arch D\n"
            "python -m pytest -m 'not slow'\n"
            "python train_cls.py --data x --data-service h:1 ...\n"
            "python -m vgg_keras.report RUN_DIR [RUN_DIR ...]\n```\n"
            "Names: `train_cls.py`, `python -m vgg_keras.train_cls`, `python -m vgg_keras.report` "
            "on a folder, `train_loc.py --merge`.\n")
    commands = doc_commands("page.md", page, skipped)
    assert [(c.line, c.entry, c.argv, c.prose) for c in commands] == [
        (2, "train_cls.py", ("--help",), False),
        (10, "train_cls.py", ("--scale", "256:512", "--arch", "D"), False),
        (13, "train_cls.py", ("--data", "x", "--data-service", "h:1"), False),
        (16, "-m vgg_keras.train_cls", (), True),
        (16, "-m vgg_keras.report", (), True),
        (16, "train_loc.py", ("--merge",), True)]
    assert skipped == ["page.md:14: python -m vgg_keras.report RUN_DIR [RUN_DIR ...]"]
    assert not _checked(page)
    # The same words in a code block are a command, and an incomplete one.
    assert "required: RUN_DIR" in _checked("```bash\npython -m vgg_keras.report\n```\n")[0]


# -- the entry points, run -----------------------------------------------------------------------

def help_runs():
    """Each documented entry point (with its first argument, the subcommand if it has them),
    and the flags the pages give it."""
    runs: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for command in READING.commands:
        leading = command.argv[:1] if command.argv and command.argv[0][0] != "-" else ()
        flags = {w.split("=")[0] for w in command.argv if w.startswith("--") and w != "--help"}
        runs.setdefault((command.entry, tuple(leading)), set()).update(flags)
    return [pytest.param(entry, leading, sorted(flags), id=" ".join([entry, *leading]))
            for (entry, leading), flags in sorted(runs.items())]


@pytest.mark.slow   # each starts TensorFlow: python -m pytest -m 'not slow' leaves them out
@pytest.mark.parametrize("entry, leading, flags", help_runs())
def test_documented_entry_point_answers_help(entry, leading, flags):
    if entry in CONSOLE_SCRIPTS:
        command = [str(Path(sys.executable).parent / entry)]
    else:
        command = [sys.executable, *entry.split()]
    done = subprocess.run([*command, *leading, "--help"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=_environment())
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("usage:"), done.stdout[:500]
    offered = set(re.findall(r"(?<![\w-])--\w[\w-]*", done.stdout))
    assert not set(flags) - offered, f"{entry} --help lacks {sorted(set(flags) - offered)}"
