"""``mrcnn rank``: unlabelled photos ordered by how much labelling each should help, written as
a CSV with the reasons; the best ``--top N`` can be copied into a folder to label next.

The logic is :mod:`mrcnn.labelling.rank` (the rule is in its docstring and docs/training.md);
this module parses the flags, picks the output path and prints. Nothing is written over: an
existing ``--output`` is left as it is and the CSV goes to the next free name (printed) unless
``--overwrite``; a copy whose name is taken in ``--copy-to`` goes to the next free name, and a
photo an earlier run copied there (same bytes) is not copied again.
"""

from __future__ import annotations

import argparse
from contextlib import nullcontext
from pathlib import Path

from mrcnn.commands import common
from mrcnn.commands.common import (
    add_class_names_argument,
    add_config_arguments,
    add_model_arguments,
    class_names_for,
)
from mrcnn.datasets import from_spec
from mrcnn.labelling.rank import (
    already_labelled,
    copy_top,
    labelled_features,
    rank_images,
    write_csv,
)
from mrcnn.outputs import (
    IMAGE_SUFFIXES,
    OutputError,
    free_output_path,
    list_inputs,
    refuse_input,
    reserved_output,
    spec_files,
)

HELP = "order unlabelled photos by how much labelling each should help (a CSV with reasons)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", required=True, metavar="PATH", help="a folder of unlabelled photos (or one)"
    )
    parser.add_argument(
        "--labelled",
        metavar="SPEC",
        help="a dataset spec (via:PATH, coco:ANNOTATIONS[:IMAGES], ...) of the photos already "
        "labelled: photos like them rank lower, and those of them in --input are left out "
        "(default: diversity among the unlabelled photos only)",
    )
    parser.add_argument(
        "--output",
        metavar="CSV",
        help="the CSV to write (default: rank.csv in the --input folder); when it exists, the "
        "next free name is used unless --overwrite",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="write over an existing --output (never an input)"
    )
    parser.add_argument(
        "--top",
        type=int,
        metavar="N",
        help="print the N best photos (default: 10) and, with --copy-to, copy them",
    )
    parser.add_argument(
        "--copy-to",
        metavar="DIR",
        help="copy the --top N photos into DIR (created if missing); a name already there is "
        "never written over: the copy gets the next free name; a photo copied there before is "
        "not copied again",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_class_names_argument(parser)
    add_model_arguments(parser)
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.top is not None and args.top < 1:
        raise ValueError(f"--top {args.top}: give a number of photos, 1 or more")
    if args.copy_to and args.top is None:
        raise ValueError("--copy-to needs --top N: how many of the best photos to copy")
    source = Path(args.input)
    paths = list_inputs(source, IMAGE_SUFFIXES)
    labelled = from_spec(args.labelled, None) if args.labelled else None
    if labelled is not None:
        paths, known = already_labelled(paths, labelled)
        if known:
            print(f"left out {len(known)} photos of --labelled {args.labelled}")
        if not paths:
            raise ValueError(f"every photo in {source} is in --labelled: nothing to rank")
    output = Path(args.output) if args.output else _default_output(source)
    inputs = [*paths, *_weights_file(args.weights), *(spec_files(args.labelled or ""))]
    if args.overwrite or not output.exists():
        refuse_input(output, inputs)  # an existing output is otherwise left alone
    model = common.build_model(args)
    class_names = class_names_for(model, args.weights, args.class_names)
    reference, names = None, []
    if labelled is not None:
        reference, names = labelled_features(model, labelled, report=print)
        print(f"{len(names)} labelled photos as the diversity reference")
    ranking = rank_images(
        model,
        paths,
        reference,
        class_names,
        names,
        progress=not args.no_progress,
    )
    if ranking.skipped:
        print(f"{len(ranking.skipped)} photos skipped (unreadable)")
    if not ranking.rows:
        raise ValueError(f"no photo in {source} could be ranked; see the lines above")
    written = _write(output, ranking.rows, args.overwrite, inputs)
    print(f"wrote {written}: {len(ranking.rows)} photos, best first")
    _print_top(ranking.rows, args.top or 10)
    if args.copy_to:
        copies = copy_top(ranking.rows, args.top, Path(args.copy_to), inputs)
        renamed = [f"{a.name} as {b.name}" for a, b in copies if a.name != b.name]
        print(f"copied {len(copies)} photos to {args.copy_to}", end="")
        print(f" ({', '.join(renamed)}: the names were taken)" if renamed else "")
    return 1 if ranking.skipped else 0


def _default_output(source: Path) -> Path:
    return (source if source.is_dir() else source.parent) / "rank.csv"


def _weights_file(weights) -> list[Path]:
    return [Path(str(weights))] if weights and Path(str(weights)).is_file() else []


def _write(output: Path, rows, overwrite: bool, inputs: list) -> Path:
    """Write the CSV to ``output``, or to the next free name when it exists and ``overwrite``
    was not given; return the path written."""
    if output.is_dir():
        raise OutputError(f"--output {output} is a folder; give a file name such as rank.csv")
    target = free_output_path(output, overwrite or not output.exists())
    if target != output:
        print(f"{output} exists: writing {target} instead (--overwrite replaces it)")
    with reserved_output(target) if target != output else nullcontext():
        return write_csv(target, rows, inputs)


def _print_top(rows, count: int) -> None:
    for row in rows[:count]:
        print(f"{row.rank:>4}  {row.pick.score:.3f}  {row.path.name}: {row.reason}")
