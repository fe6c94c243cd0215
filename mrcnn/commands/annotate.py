"""``mrcnn annotate``: a model's detections written as editable annotations (VIA 2 project,
LabelMe JSON files, COCO instances, CVAT for images 1.1 XML) for a person to correct in their
tool and train on.

The logic is :mod:`mrcnn.labelling`; this module parses the flags, picks the output path and
prints. Nothing a user owns is overwritten: an existing ``--output`` (or, with ``--merge
PROJECT`` and no ``--output``, the project itself) is left as it is and the result goes to the
next free name (``NAME_1.json``, or ``FOLDER_1`` for LabelMe), printed, unless ``--overwrite``
is given. Inputs (images, weights) are never written over.
"""

from __future__ import annotations

import argparse
import os
from contextlib import nullcontext
from pathlib import Path

from mrcnn.commands import common
from mrcnn.commands.common import (
    add_class_names_argument,
    add_config_arguments,
    add_model_arguments,
    class_names_for,
)
from mrcnn.labelling import (
    DEFAULT_MIN_AREA,
    DEFAULT_SKIP_IOU,
    DEFAULT_TOLERANCE,
    FORMATS,
    KEEPS_HOLES,
    WriteOptions,
    annotate_images,
    new_project,
)
from mrcnn.labelling.annotate import dataset_spec
from mrcnn.outputs import (
    IMAGE_SUFFIXES,
    OutputError,
    free_output_path,
    list_inputs,
    refuse_input,
    reserved_output,
    write_output,
)

HELP = "write a model's detections as editable annotations (VIA, LabelMe, COCO, CVAT)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--input", required=True, metavar="PATH", help="an image or a folder of images"
    )
    parser.add_argument(
        "--format",
        required=True,
        choices=tuple(FORMATS),
        help="via: a VIA 2 project JSON; labelme: a folder of LabelMe JSON files; coco: a COCO "
        "instances JSON; cvat: CVAT for images 1.1 XML. Holes: "
        + "; ".join(f"{k}: {v}" for k, v in KEEPS_HOLES.items()),
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="the file to write (a folder for labelme); when it exists, the next free name is "
        "used unless --overwrite (default with --merge: beside the project, a free name)",
    )
    parser.add_argument(
        "--merge",
        metavar="PROJECT",
        help="an existing project in --format to add the detections to: its regions drawn by a "
        "person are kept as they are and detections overlapping them are skipped; regions an "
        "earlier annotate run wrote (and nobody edited) are replaced",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write over an existing --output (or the --merge project itself); never an input",
    )
    _add_filter_arguments(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="run the model and print per-image counts and totals; write nothing",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_class_names_argument(parser)
    add_model_arguments(parser)
    add_config_arguments(parser)


def _add_filter_arguments(parser: argparse.ArgumentParser) -> None:
    """Which detections are written, and as what shapes."""
    parser.add_argument(
        "--min-score",
        type=float,
        default=0.5,
        metavar="S",
        help="keep detections scoring >= S (default: 0.5)",
    )
    parser.add_argument(
        "--classes", metavar="A,B", help="keep only these class names (default: all)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULT_TOLERANCE,
        metavar="PX",
        help="polygon simplification in pixels, 0 for every border pixel "
        f"(default: {DEFAULT_TOLERANCE:g})",
    )
    parser.add_argument(
        "--min-area",
        type=int,
        default=DEFAULT_MIN_AREA,
        metavar="PX",
        help="drop mask parts and fill holes smaller than this many pixels "
        f"(default: {DEFAULT_MIN_AREA})",
    )
    parser.add_argument(
        "--skip-iou",
        type=float,
        default=DEFAULT_SKIP_IOU,
        metavar="T",
        help="skip a detection whose mask IoU with a person's region is above T "
        f"(default: {DEFAULT_SKIP_IOU:g})",
    )
    parser.add_argument(
        "--polygons-only",
        action="store_true",
        help="write polygons for every detection (holes filled), never bitmap shapes, so that "
        "every region can be edited vertex by vertex",
    )
    parser.add_argument(
        "--class-attribute",
        metavar="NAME",
        help="via: the region attribute holding the class (default: the project's only "
        "dropdown attribute, else 'class')",
    )


def run(args: argparse.Namespace) -> int:
    paths = list_inputs(Path(args.input), IMAGE_SUFFIXES)
    options = _options(args)
    output = _planned_output(args)
    if args.merge:  # a broken or wrong-format project fails before the model loads
        new_project(args.format, [], options, args.class_attribute).read(Path(args.merge))
    inputs = [*paths, *([args.weights] if Path(str(args.weights)).is_file() else [])]
    if args.merge and not (args.overwrite and _same(output, Path(args.merge))):
        inputs.append(Path(args.merge))
    if output is not None and (args.overwrite or not output.exists()):
        refuse_input(output, inputs)  # an existing output is otherwise left alone
    model = common.build_model(args)
    class_names = class_names_for(model, args.weights, args.class_names)
    classes = _classes(args.classes, class_names)
    project = new_project(args.format, class_names[1:], options, args.class_attribute)
    if args.merge:
        project.read(Path(args.merge))
    folder = _annotation_folder(args.format, output or Path(args.input))
    summary = annotate_images(
        model,
        paths,
        project,
        class_names,
        folder,
        min_score=args.min_score,
        classes=classes,
        progress=not args.no_progress,
    )
    print(summary.line())
    if args.dry_run:
        print("dry run: nothing written")
        return 1 if summary.skipped else 0
    written = _write(project, output, args, inputs)
    spec = dataset_spec(args.format, written, getattr(project, "class_attribute", None))
    if note := project.opening_note():
        print(note)
    print(f"wrote {written}; train on it with --dataset '{spec}'")
    return 1 if summary.skipped else 0


def _options(args: argparse.Namespace) -> WriteOptions:
    for flag, value, low, high in (
        ("--min-score", args.min_score, 0.0, 1.0),
        ("--skip-iou", args.skip_iou, 0.0, 1.0),
        ("--tolerance", args.tolerance, 0.0, float("inf")),
        ("--min-area", args.min_area, 0, float("inf")),
    ):
        if not low <= value <= high:
            raise ValueError(
                f"{flag} {value} is out of range: give a value from {low:g} to {high:g}"
            )
    return WriteOptions(args.tolerance, args.min_area, args.skip_iou, args.polygons_only)


def _classes(given: str | None, class_names: list[str]) -> list[str] | None:
    if not given:
        return None
    names = [n.strip() for n in given.split(",") if n.strip()]
    unknown = [n for n in names if n not in class_names[1:]]
    if unknown:
        raise ValueError(
            f"--classes: unknown class {', '.join(map(repr, unknown))}; the model's classes are "
            f"{', '.join(class_names[1:])} (names from --class-names or the checkpoint)"
        )
    return names


def _planned_output(args: argparse.Namespace) -> Path | None:
    """The output as asked (--output, else the --merge project); None for a dry run without
    either. Whether it exists is settled when writing."""
    if args.output:
        return Path(args.output)
    if args.merge:
        return Path(args.merge)
    if args.dry_run:
        return None
    raise ValueError("give --output PATH (or --merge PROJECT to add to a project), or --dry-run")


def _annotation_folder(format_name: str, output: Path) -> Path:
    """The folder image names are written relative to: LabelMe's output folder, else the
    output file's folder."""
    if format_name == "labelme":
        return output if output.suffix.lower() != ".json" else output.parent
    return output.parent if output.suffix else output


def _same(a: Path | None, b: Path) -> bool:
    return a is not None and os.path.realpath(a) == os.path.realpath(b)


def _write(project, output: Path, args: argparse.Namespace, inputs: list) -> Path:
    """Write the project to ``output`` (or the next free name when it exists and --overwrite was
    not given); return the path written."""
    if args.format == "labelme":
        target = _free_folder(output, args.overwrite)
    else:
        if output.is_dir():
            raise OutputError(
                f"--output {output} is a folder; give a file name for --format {args.format}"
            )
        target = free_output_path(output, args.overwrite or not output.exists())
    if target != output:
        print(f"{output} exists: writing {target} instead (--overwrite replaces it)")
    with reserved_output(target) if target != output else nullcontext():
        for path, text in project.contents(target).items():
            write_output(path, text, inputs)
    return target


def _free_folder(folder: Path, overwrite: bool) -> Path:
    """``folder`` when it is missing, empty, or ``overwrite``; else the first free
    ``<folder>_<k>`` (created, so that no other run takes it)."""
    if overwrite or not folder.exists() or (folder.is_dir() and not any(folder.iterdir())):
        folder.mkdir(parents=True, exist_ok=True)
        return folder
    k = 1
    while True:
        candidate = folder.with_name(f"{folder.name}_{k}")
        try:
            candidate.mkdir(parents=True)
            return candidate
        except FileExistsError:
            k += 1
