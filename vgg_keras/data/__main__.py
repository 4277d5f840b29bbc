"""Command line: build the embedded dataset, describe a source, or compute its statistics.

    python -m vgg_keras.data build [--config small] [--data-dir DIR]
    python -m vgg_keras.data info vgg_shapes|imagenet2012|DIR [--split train]
    python -m vgg_keras.data stats vgg_shapes|DIR [--split train] [--max-images N]

``stats`` prints JSON: the mean RGB (0-255) to give ``build_vgg(preprocessing={"mean": ...})``
and the RGB eigenvalues/eigenvectors ([0, 1] scale) for the colour shift.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import logging
import time

from . import EMBEDDED_NAME, compute_statistics, info, load


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vgg_keras.data", description=__doc__.split(
        "\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the embedded dataset (no download)")
    build.add_argument("--config", default="default",
                       help="default, small, large, hard or hard_large")
    for name in ("info", "stats"):
        command = commands.add_parser(name)
        command.add_argument("source", nargs="?", default=EMBEDDED_NAME)
        command.add_argument("--split", default="train")
        command.add_argument("--manual-dir", default=None)
        if name == "stats":
            command.add_argument("--max-images", type=int, default=None)
            command.add_argument("--max-side", type=int, default=None)
    for command in commands.choices.values():
        command.add_argument("--data-dir", default=None, help="TFDS data directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.command == "build":
        start = time.perf_counter()
        dataset = load(f"{EMBEDDED_NAME}/{args.config}", "train", data_dir=args.data_dir)
        print(f"{EMBEDDED_NAME}/{args.config}: {info(dataset).num_examples} training images, "
              f"ready in {time.perf_counter() - start:.1f} s")
        return
    dataset = load(args.source, args.split, data_dir=args.data_dir, manual_dir=args.manual_dir)
    meta = info(dataset)
    if args.command == "info":
        print(json.dumps({
            "name": meta.name, "split": meta.split, "source": meta.source,
            "num_examples": meta.num_examples, "num_classes": meta.num_classes,
            "has_boxes": meta.has_boxes, "class_names": list(meta.class_names),
            "skipped": {k: len(v) for k, v in meta.skipped.items()},
            "box_problems": meta.box_problems,
        }, indent=2))
        return
    stats = compute_statistics(dataset, max_images=args.max_images, max_side=args.max_side)
    print(json.dumps(stats.as_dict(), indent=2))


if __name__ == "__main__":
    main()
