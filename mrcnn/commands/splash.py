"""``mrcnn splash``: the color splash filter on images, a video, or a folder of both.

Outputs are named ``<stem>_splash.png`` (images) and ``<stem>_splash.mp4`` (videos), in the
current folder or in ``--output``. An existing file is never replaced unless ``--overwrite``:
the next free name ``<stem>_splash_1.png``, ``_2``, ... is used and printed instead.

Exit status: 0 when everything was written; 1 when an input could not be read, or a video ended
early (truncated or corrupt: its frames up to there are written as a playable video).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from mrcnn.commands import common
from mrcnn.commands.common import (
    add_class_names_argument,
    add_config_arguments,
    add_model_arguments,
    add_precision_argument,
)
from mrcnn.outputs import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    check_writable_dir,
    list_inputs,
    protect_inputs,
    refuse_input,
)
from mrcnn.splash.filter import EFFECTS, check_splash_output_name, splash_image_file, splash_video
from mrcnn.splash.video import require_frames

HELP = "color splash: keep detected objects in colour, gray (or blur, ...) the rest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="PATH", help="one image file")
    source.add_argument("--video", metavar="PATH", help="one video file (OpenCV-readable)")
    source.add_argument(
        "--input-dir", metavar="DIR", help="every image and video file in DIR (not recursive)"
    )
    parser.add_argument(
        "--output",
        metavar="PATH",
        help="output file (--image/--video) or folder (default: the current folder, "
        "<stem>_splash.png / <stem>_splash.mp4)",
    )
    add_effect_arguments(parser)
    parser.add_argument(
        "--overwrite", action="store_true", help="replace existing outputs (default: add _1, _2)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar for videos")
    add_class_names_argument(parser)
    add_model_arguments(parser)
    add_precision_argument(parser)
    add_config_arguments(parser)


def add_effect_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--effect", default="gray", choices=EFFECTS, help="what the background gets (gray)"
    )
    parser.add_argument(
        "--classes",
        nargs="+",
        metavar="CLASS",
        help="keep only these classes in colour: names (see --class-names) or ids",
    )
    parser.add_argument(
        "--min-score", type=float, default=0.0, metavar="S", help="keep instances scoring >= S"
    )
    parser.add_argument(
        "--feather", type=float, default=0.0, metavar="PX", help="soft mask edges, sigma in px"
    )
    parser.add_argument(
        "--blur-sigma", type=float, metavar="PX", help="blur strength (default min(H, W) / 50)"
    )
    parser.add_argument(
        "--background-color",
        default="0,0,0",
        metavar="R,G,B",
        help="background of --effect color (default 0,0,0)",
    )
    parser.add_argument(
        "--dim-factor", type=float, default=0.35, metavar="F", help="brightness kept by dim"
    )


def splash_options(args: argparse.Namespace, class_names: list[str]) -> dict:
    """The keyword arguments of mrcnn.splash.filter.color_splash that the flags give."""
    classes = None
    if args.classes:
        items = [c.strip() for item in args.classes for c in item.split(",") if c.strip()]
        classes = [int(c) if c.isdigit() else c for c in items]
    try:
        color = tuple(int(v) for v in args.background_color.split(","))
    except ValueError as error:
        raise ValueError(
            f"--background-color {args.background_color!r}: give R,G,B integers"
        ) from error
    return {
        "classes": classes,
        "class_names": class_names,
        "min_score": args.min_score,
        "feather": args.feather,
        "blur_sigma": args.blur_sigma,
        "background_color": color,
        "dim_factor": args.dim_factor,
    }


def run(args: argparse.Namespace) -> int:
    if args.input_dir:
        inputs = list_inputs(Path(args.input_dir), IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        if args.output:
            check_writable_dir(args.output, "--output").mkdir(parents=True, exist_ok=True)
    else:
        flag = "--image" if args.image else "--video"
        inputs = [Path(args.image or args.video)]
        if inputs[0].is_dir():
            raise ValueError(f"{flag} {inputs[0]} is a folder; use --input-dir {inputs[0]}")
        if not inputs[0].is_file():
            raise FileNotFoundError(f"input not found: {flag} {inputs[0]} does not exist")
        _check_output_file(args.output)
        check_splash_output_name(inputs[0], args.output, _is_video(args, inputs[0]))
        if args.overwrite and args.output and Path(args.output).is_file():
            refuse_input(args.output, inputs)  # an input is never written over
        if args.video:
            require_frames(inputs[0])  # an unreadable or empty video fails before the model
    weights = [args.weights] if Path(str(args.weights)).is_file() else []
    protect_inputs([*inputs, *weights])
    model = common.build_model(args)  # looked up at call time: tests replace it
    options = splash_options(args, common.class_names_for(model, args.weights, args.class_names))
    failures = 0
    bar = tqdm(total=len(inputs), unit="file", disable=len(inputs) < 2, dynamic_ncols=True)
    for path in inputs:
        bar.update()
        try:
            ok = _splash_one(model, path, _is_video(args, path), args, options, bar.write)
        except (ValueError, OSError) as error:
            if len(inputs) == 1:
                raise
            bar.write(f"skipped {path}: {error}", file=sys.stderr)
            ok = False
        failures += not ok
    bar.close()
    if len(inputs) > 1:
        print(
            f"splashed {len(inputs) - failures} of {len(inputs)} files"
            + (f"; {failures} skipped or incomplete (see above)" if failures else "")
        )
    return 1 if failures else 0


def _is_video(args: argparse.Namespace, path: Path) -> bool:
    """--video says so; otherwise a video extension (--image clip.mp4 is taken as a video)."""
    return args.video is not None or path.suffix.lower() in VIDEO_SUFFIXES


def _check_output_file(output: str | None) -> None:
    """Refuse an --output whose folder cannot be written, before the model loads."""
    if output is None:
        return
    target = Path(output)
    is_folder = target.is_dir() or output.endswith(("/", "\\")) or not target.suffix
    check_writable_dir(target if is_folder else target.parent, "--output")


def _splash_one(model, path: Path, as_video: bool, args, options: dict, say=print) -> bool:
    """Splash one file; False when a video ended early. ``say`` prints a line."""
    if not as_video:
        written = splash_image_file(
            model, path, args.output, effect=args.effect, overwrite=args.overwrite, **options
        )
        say(f"wrote {written}")
        return True
    report = splash_video(
        model,
        path,
        args.output,
        effect=args.effect,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        **options,
    )
    say(report.summary(), file=sys.stdout if report.complete else sys.stderr)
    return report.complete
