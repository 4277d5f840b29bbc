"""A benchmark script's numbers for an earlier revision and the working tree, side by side.

Runs one benchmark script (default ``bench/pipeline.py``; ``bench/models.py`` works too) N times
in a clean ``git worktree`` of REV (the "before", checked out detached in a temporary folder and
removed at the end) and N times in the current working tree (the "after", uncommitted changes
included), interleaved before, after, before, after, ... so that background load falls on both
alike. Each run has ``PYTHONPATH`` and the working directory set to its own tree, so the
"before" runs import that revision's ``vgg_keras``, not the editable install (each run reports
the file it imported, and a run that imported the wrong tree is an error). Every run gets a
fresh, empty ``$VGG_KERAS_CACHE``.

Each run's markdown table rows are parsed (the columns headed ``images/s`` or ``img/s``, rows
matched between runs by their first cell), and one markdown table is printed: per row, the
median over the N runs before and after, their range, after/before, and whether the two ranges
are apart ("slower"/"faster") or overlap ("within noise"). ``--order abba`` runs before, after,
after, before, ... instead, which cancels a steady drift in the machine's speed. For each run it
also reports how many CPUs other processes kept busy meanwhile (from /proc/stat, less the run's
own CPU time). Before measuring, it waits until the 1-minute load average is below
``--quiet-load`` (polled every 20 s, for at most ``--max-wait`` seconds; then it measures anyway
and says so). The load average is checked only at the start; the per-run CPU figure shows whether
the machine stayed quiet.

``bench/pipeline.py`` lists its generated JPEGs with ``vgg_keras.data.load``, which since 724b33d
refuses a tree with a single class folder: the script fails at both revisions as it stands. So
for ``pipeline.py`` (``--second-class auto``) each run adds a second class folder holding a copy
of one generated image before the pipelines are built. Only the untimed set-up changes: (a), (c)
and (d) read the same 150 files as before, (b) and (b') one file more, and the rates are counted
in images, not passes.

    python bench/revisions.py --repeats 3 -- --images 150 --rounds 3
    python bench/revisions.py --rev 724b33d --script bench/models.py --repeats 2 -- --rounds 3
"""

import argparse
import hashlib
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE_COLUMN = re.compile(r"\b(images|img)\s*/\s*s\b", re.IGNORECASE)
NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?")
SEPARATOR = re.compile(r"^\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?$")
IMPORTED = "revisions.py: vgg_keras imported from "

# Run in each child (python -c): loads the script as a module so that, for pipeline.py, the
# image generator can be wrapped; then runs its main() with the script's own arguments.
RUNNER = r"""
import importlib.util, os, runpy, shutil, sys
path, second_class = os.path.abspath(sys.argv[1]), sys.argv[2] == "1"
sys.argv = [path] + sys.argv[3:]
sys.path.insert(0, os.path.dirname(path))  # as `python script.py` would
if second_class:
    spec = importlib.util.spec_from_file_location("__bench__", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["__bench__"] = module
    spec.loader.exec_module(module)
    original = module.make_images

    def make_images(directory, *args, **kwargs):
        folder, sizes = original(directory, *args, **kwargs)
        extra = os.path.join(directory, "second_class")
        os.makedirs(extra)
        first = sorted(os.listdir(folder))[0]
        shutil.copy2(os.path.join(folder, first), os.path.join(extra, first))
        return folder, sizes

    module.make_images = make_images
    module.main()
else:
    runpy.run_path(path, run_name="__main__")
package = sys.modules.get("vgg_keras")
print("%s%s" % (IMPORTED, getattr(package, "__file__", None)), file=sys.stderr, flush=True)
""".replace("IMPORTED", repr(IMPORTED))


def log(message):
    print(f"[revisions] {message}", file=sys.stderr, flush=True)


def git(*args, cwd=REPO):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout.strip()


# --------------------------------------------------------------------------- machine

def machine():
    name = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                name = line.split(":", 1)[1].strip()
                break
    except (OSError, subprocess.SubprocessError):
        pass
    name = name or platform.processor() or platform.machine()
    total = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else total
    cores = f"{total} logical CPUs" + (f" ({usable} usable)" if usable != total else "")
    return f"`lscpu` model name \"{name}\", {cores}"


def wait_until_quiet(threshold, max_wait, poll=20.0):
    """Seconds waited and whether the 1-minute load average went below ``threshold``."""
    start = time.monotonic()
    while True:
        load = os.getloadavg()[0]
        waited = time.monotonic() - start
        if load < threshold:
            log(f"load {load:.2f} < {threshold} after {waited:.0f} s: measuring")
            return waited, True, load
        if waited >= max_wait:
            log(f"load still {load:.2f} after {waited:.0f} s: measuring anyway")
            return waited, False, load
        log(f"load {load:.2f} >= {threshold}; waiting ({waited:.0f} of {max_wait:.0f} s)")
        time.sleep(min(poll, max(1.0, max_wait - waited)))


def busy_seconds():
    """CPU seconds all processes have spent busy (from /proc/stat), or None off Linux."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def children_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def tree_digests(root, paths):
    """{file: sha256} of the package and script files as they are now (to notice edits made
    to the working tree while it is measured)."""
    files = git("ls-files", "-co", "--exclude-standard", "-z", "--", *paths, cwd=root)
    digests = {}
    for name in sorted(f for f in files.split("\0") if f):
        try:
            with open(os.path.join(root, name), "rb") as handle:
                digests[name] = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            digests[name] = None
    return digests


def changed_files(old, new):
    return sorted(name for name in set(old) | set(new) if old.get(name) != new.get(name))


# --------------------------------------------------------------------------- parsing

def cells(line):
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|"):
        line = line[:-1]
    return [" ".join(cell.split()) for cell in line.split("|")]


def parse_rates(text):
    """{(first cell, rate column header): value} from every markdown table in ``text`` with a
    column headed images/s or img/s, and the first header cell of the first such table. A row
    label seen again later (another table) keeps its first value."""
    lines = [line.strip() for line in text.splitlines()]
    rates, label = {}, None
    index = 0
    while index < len(lines):
        line = lines[index]
        if (line.startswith("|") and index + 1 < len(lines)
                and SEPARATOR.match(lines[index + 1])):
            header = cells(line)
            columns = [i for i, name in enumerate(header) if i and RATE_COLUMN.search(name)]
            index += 2
            while index < len(lines) and lines[index].startswith("|"):
                row = cells(lines[index])
                for column in columns:
                    if column < len(row):
                        match = NUMBER.search(row[column])
                        if match and row[0]:
                            key = (row[0], header[column])
                            rates.setdefault(key, float(match.group().replace(",", "")))
                index += 1
            if columns and label is None:
                label = header[0]
            continue
        index += 1
    return rates, label


# --------------------------------------------------------------------------- running

def run_once(tree, script, script_args, second_class, log_dir, tag):
    env = dict(os.environ)
    env["PYTHONPATH"] = tree
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cache = tempfile.mkdtemp(prefix="vgg_keras_cache_")
    env["VGG_KERAS_CACHE"] = cache
    command = [sys.executable, "-c", RUNNER, script, "1" if second_class else "0", *script_args]
    start, busy, own = time.perf_counter(), busy_seconds(), children_seconds()
    try:
        result = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    seconds = time.perf_counter() - start
    # CPUs kept busy by everything but this run, on average over it (load from other work).
    others = None
    if busy is not None:
        others = max(0.0, (busy_seconds() - busy) - (children_seconds() - own)) / seconds
    if log_dir:
        for stream, text in (("out", result.stdout), ("err", result.stderr)):
            with open(os.path.join(log_dir, f"{tag}.{stream}"), "w") as handle:
                handle.write(text)
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-25:])
        raise SystemExit(f"{tag}: {script} exited with {result.returncode} in {tree}:\n{tail}")
    imported = [line[len(IMPORTED):] for line in result.stderr.splitlines()
                if line.startswith(IMPORTED)]
    where = imported[-1] if imported else "None"
    if where != "None" and not os.path.realpath(where).startswith(
            os.path.realpath(tree) + os.sep):
        raise SystemExit(f"{tag}: imported vgg_keras from {where}, not from {tree}")
    rates, label = parse_rates(result.stdout)
    if not rates:
        raise SystemExit(f"{tag}: no markdown table with an images/s or img/s column in the "
                         f"output of {script}:\n{result.stdout[-3000:]}")
    return rates, label, seconds, where, others


def summarise(values):
    return statistics.median(values), min(values), max(values)


def fmt(value):
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def main():
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        usage="%(prog)s [options] [-- SCRIPT ARGUMENTS]")
    parser.add_argument("--rev", default="724b33d", help="the 'before' revision")
    parser.add_argument("--script", default="bench/pipeline.py",
                        help="benchmark script, relative to the repository root")
    parser.add_argument("--repeats", type=int, default=3, help="runs per revision")
    parser.add_argument("--script-from", choices=("each", "current"), default="each",
                        help="'each': every tree runs its own copy of the script; 'current': "
                             "both run the working tree's copy (only the package differs)")
    parser.add_argument("--second-class", choices=("auto", "on", "off"), default="auto",
                        help="add a second class folder to pipeline.py's generated images "
                             "(auto: on for pipeline.py)")
    parser.add_argument("--quiet-load", type=float, default=1.2,
                        help="wait until the 1-minute load average is below this")
    parser.add_argument("--max-wait", type=float, default=900.0,
                        help="seconds to wait for a quiet machine before measuring anyway")
    parser.add_argument("--order", choices=("abab", "abba"), default="abab",
                        help="abab: before, after, before, after, ...; abba: before, after, "
                             "after, before, ... (cancels a steady drift in machine speed)")
    parser.add_argument("--log-dir", default=None,
                        help="keep every run's stdout and stderr in this folder")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args, script_args = parser.parse_args(argv[:split]), argv[split + 1:]
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    script = os.path.normpath(args.script)
    if os.path.isabs(script):
        script = os.path.relpath(script, REPO)
    if not os.path.isfile(os.path.join(REPO, script)):
        parser.error(f"{script} is not a file in {REPO}")
    second_class = (args.second_class == "on" or
                    (args.second_class == "auto" and os.path.basename(script) == "pipeline.py"))
    if args.log_dir:
        os.makedirs(args.log_dir, exist_ok=True)

    # A terminated run still removes its worktree (the finally below).
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    wall = time.perf_counter()
    sha = git("rev-parse", "--verify", f"{args.rev}^{{commit}}")
    subject = git("log", "-1", "--format=%s", sha)
    head = git("rev-parse", "HEAD")
    changed = [line for line in git("status", "--porcelain", "--untracked-files=all").splitlines()
               if line.strip()]

    waited, quiet, load_before = wait_until_quiet(args.quiet_load, args.max_wait)

    holder = tempfile.mkdtemp(prefix="revisions_")
    worktree = os.path.join(holder, sha[:12])
    notes = []
    try:
        git("worktree", "add", "--detach", worktree, sha)
        log(f"worktree of {sha[:12]} at {worktree}")
        old_script = os.path.join(worktree, script)
        if args.script_from == "current":
            old_script = os.path.join(REPO, script)
        elif not os.path.isfile(old_script):
            raise SystemExit(f"{script} does not exist at {sha[:12]}; try --script-from current")
        new_script = os.path.join(REPO, script)
        with open(old_script, "rb") as a, open(new_script, "rb") as b:
            if a.read() != b.read():
                notes.append(f"`{script}` differs between the two trees; each ran its own copy.")
        trees = {"before": (worktree, old_script), "after": (REPO, new_script)}
        watched = ["vgg_keras", script]
        digests = tree_digests(REPO, watched)
        edits = []  # (after which run, files changed since the previous check)

        runs = {"before": [], "after": []}
        seconds = {"before": [], "after": []}
        loads, others = [], []
        label = None
        for repeat in range(args.repeats):
            order = ("before", "after")
            if args.order == "abba" and repeat % 2:
                order = order[::-1]
            for side in order:
                tree, path = trees[side]
                tag = f"{side}{repeat + 1}"
                log(f"{tag}: {script} {' '.join(script_args)} in {tree} ...")
                rates, row_label, took, where, busy = run_once(
                    tree, path, script_args, second_class, args.log_dir, tag)
                runs[side].append(rates)
                seconds[side].append(took)
                loads.append(os.getloadavg()[0])
                others.append((tag, busy))
                label = label or row_label
                now = tree_digests(REPO, watched)
                if now != digests:
                    edits.append((tag, changed_files(digests, now)))
                    log(f"working tree changed during or before {tag}: {edits[-1][1]}")
                    digests = now
                log(f"{tag}: {took:.0f} s, vgg_keras from {where}, 1-min load {loads[-1]:.2f}, "
                    f"other processes {busy if busy is not None else float('nan'):.2f} CPUs; "
                    + "; ".join(f"{key[0][:28]}: {fmt(value)}" for key, value in rates.items()))
        if edits:
            notes.append("**Warning:** the working tree changed while it was measured, so the "
                         "'after' runs may mix versions: " + "; ".join(
                             f"by the end of {tag}: " + ", ".join(f"`{f}`" for f in files[:8])
                             + (f" and {len(files) - 8} more" if len(files) > 8 else "")
                             for tag, files in edits))
    finally:
        try:
            git("worktree", "remove", "--force", worktree)
        except subprocess.CalledProcessError as error:
            log(f"could not remove the worktree: {error.stderr.strip()}")
        git("worktree", "prune")
        shutil.rmtree(holder, ignore_errors=True)

    # Rows in the order of the last 'after' run, then any seen only before.
    keys = []
    for rates in runs["after"][::-1] + runs["before"]:
        keys += [key for key in rates if key not in keys]
    columns = list(dict.fromkeys(key[1] for key in keys))
    missing = [key for key in keys
               if any(key not in rates for rates in runs["before"] + runs["after"])]
    total = time.perf_counter() - wall

    sequence = "before, after, after, before, ..." if args.order == "abba" else \
        "before, after, before, after, ..."
    print(f"**{script} {' '.join(script_args)}**, {args.repeats} "
          f"run{'s' if args.repeats > 1 else ''} per revision, interleaved ({sequence}).\n")
    print(f"- before: `{sha[:7]}` ({subject[:80]}{'...' if len(subject) > 80 else ''}), in a "
          f"clean `git worktree`")
    print(f"- after: working tree of {REPO}: HEAD `{head[:7]}`"
          + (f" plus {len(changed)} changed or new files, uncommitted" if changed else
             ", no uncommitted changes")
          + (" (the same commit as before)" if head == sha else ""))
    print(f"- machine: {machine()}; Python {platform.python_version()}")
    state = (f"1-min load {load_before:.2f} < {args.quiet_load} after waiting {waited:.0f} s"
             if quiet else
             f"**machine not quiet**: 1-min load still {load_before:.2f} after waiting "
             f"{waited:.0f} s, measured anyway")
    print(f"- {state}; 1-min load after each run (this benchmark's own included): "
          + ", ".join(f"{value:.2f}" for value in loads))
    if all(value is not None for _, value in others):
        print("- CPUs kept busy by other processes during each run (average): "
              + ", ".join(f"{tag} {value:.2f}" for tag, value in others))
    print(f"- seconds per run: before {', '.join(f'{s:.0f}' for s in seconds['before'])}; after "
          f"{', '.join(f'{s:.0f}' for s in seconds['after'])}; total wall time {total:.0f} s")
    if second_class:
        print(f"- `{script}` as it stands fails at `data.load` (one class folder, refused since "
              "724b33d); each run added a second class folder holding a copy of one image "
              "(untimed set-up only)")
    for note in notes:
        print(f"- {note}")
    print()
    print("Median of the runs' figures (each run's own figure as it prints it), range over the "
          "runs in brackets; 'slower'/'faster' when the before and after ranges do not overlap.")
    print()
    many = len(columns) > 1
    head_cells = [label or "row"] + (["column"] if many else []) + [
        "before", "after", "after/before", "verdict"]
    unit = "" if many else f" ({columns[0]})"
    head_cells[-4] += unit
    head_cells[-3] += unit
    print("| " + " | ".join(head_cells) + " |")
    print("|" + "---|" * (1 + many) + "---:|---:|---:|---|")
    spreads = {"before": [], "after": []}
    for key in keys:
        values = {side: [rates[key] for rates in runs[side] if key in rates]
                  for side in ("before", "after")}
        cells_out = [key[0]] + ([key[1]] if many else [])
        if not values["before"] or not values["after"]:
            side = "before" if values["before"] else "after"
            median, low, high = summarise(values[side])
            text = f"{fmt(median)} ({fmt(low)}-{fmt(high)})"
            cells_out += ([text, "-"] if side == "before" else ["-", text]) + ["-", "only one side"]
            print("| " + " | ".join(cells_out) + " |")
            continue
        stats = {side: summarise(values[side]) for side in values}
        for side, (median, low, high) in stats.items():
            if median:
                spreads[side].append(((high - low) / median, key))
        (b, b_low, b_high), (a, a_low, a_high) = stats["before"], stats["after"]
        verdict = ("n/a (one run each)" if args.repeats < 2 else "slower" if a_high < b_low
                   else "faster" if a_low > b_high else "within noise")
        ratio = f"{a / b:.2f}" if b else "-"
        cells_out += [f"{fmt(b)} ({fmt(b_low)}-{fmt(b_high)})",
                      f"{fmt(a)} ({fmt(a_low)}-{fmt(a_high)})", ratio, verdict]
        print("| " + " | ".join(cells_out) + " |")
    print()
    parts = []
    for side in ("before", "after"):
        if spreads[side]:
            worst, key = max(spreads[side])
            parts.append(f"{side} up to {100 * worst:.0f}% ({key[0][:40]}), median "
                         f"{100 * statistics.median(s for s, _ in spreads[side]):.0f}%")
    if parts and args.repeats > 1:
        print("Run-to-run spread between repeats of the same revision, (max - min) / median "
              "per row: " + "; ".join(parts) + ".")
    if missing:
        print(f"Rows missing from some runs: {', '.join(k[0] for k in missing)}.")
    print(f"\n```bash\npython bench/revisions.py --rev {args.rev} --script {script} "
          f"--repeats {args.repeats}" + (" --order abba" if args.order == "abba" else "")
          + (f" -- {' '.join(script_args)}" if script_args else "")
          + "\n```")


if __name__ == "__main__":
    main()
