"""``mrcnn splash``: the color splash filter on images, a video, or a folder of both.

``--video`` takes a file, a camera index (``0``) or a stream URL (``rtsp://``, ``http://``,
``udp://``, ...: whatever FFmpeg opens); ``--max-frames`` and ``--duration`` stop a run, and
Ctrl-C ends a live one with its frames written as the output. Outputs are named
``<stem>_splash.png`` (images) and ``<stem>_splash.mp4`` (videos; ``camera0_splash.mp4`` or
``<host>_splash.mp4`` for a live source), in the current folder or in ``--output``. An existing
file is never replaced unless ``--overwrite``: the next free name ``<stem>_splash_1.png``,
``_2``, ... is used and printed instead.

``--input-dir`` under ``torchrun`` (or with ``--shard I/N``) is split across processes: each
splashes its share to ``<stem>_splash.png`` / ``.mp4`` and a rerun keeps what is written
(:mod:`mrcnn.deploy.shards`; docs/cli.md, "Folders across processes and machines").

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
    add_backend_argument,
    add_class_names_argument,
    add_config_arguments,
    add_model_arguments,
    add_precision_argument,
    add_shard_argument,
    add_video_mode_arguments,
    config_overrides,
    shard_say,
)
from mrcnn.deploy.shards import (
    Shard,
    ShardFolder,
    file_identity,
    file_shard,
    merged_records,
    prepare_process,
    run_key,
    shard_from_environment,
    splash_targets,
)
from mrcnn.outputs import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    check_writable_dir,
    list_inputs,
    protect_inputs,
    refuse_input,
)
from mrcnn.splash.filter import EFFECTS, check_splash_output_name, splash_image_file
from mrcnn.splash.live import VIDEO_OPTIONS, splash_source
from mrcnn.splash.network_input import NETWORK_INPUTS
from mrcnn.splash.preview import open_preview
from mrcnn.splash.sources import open_source, parse_source, require_frames
from mrcnn.tracking.analysis import VIDEO_MODES, video_analyser
from mrcnn.weights.resolve import resolve_weights

HELP = "color splash: keep detected objects in colour, gray (or blur, ...) the rest"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--image", metavar="PATH", help="one image file")
    source.add_argument(
        "--video",
        metavar="SOURCE",
        help="one video: a file, a camera index (0, 1, ...) or a stream URL (rtsp://, http://, "
        "udp://, ...: whatever FFmpeg opens)",
    )
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
    add_video_arguments(parser)
    add_class_names_argument(parser)
    add_model_arguments(parser)
    add_precision_argument(parser)
    add_backend_argument(parser)
    add_config_arguments(parser)
    add_shard_argument(parser, "--input-dir folder")


def add_video_arguments(parser: argparse.ArgumentParser) -> None:
    """--max-frames, --duration, --preview, --video-size and the tracking flags, for videos."""
    add_tracking_arguments(parser)
    parser.add_argument(
        "--max-frames", type=_positive(int), metavar="N", help="stop a video after N frames"
    )
    parser.add_argument(
        "--duration",
        type=_positive(float),
        metavar="SECONDS",
        help="stop a video after SECONDS of input (its frames' time, not the run's)",
    )
    parser.add_argument(
        "--preview",
        action="store_true",
        help="show the frames in a window as they are written (needs a display and an OpenCV "
        "with a GUI; otherwise the run says why and goes on headless); q or Esc stops",
    )
    parser.add_argument(
        "--video-size",
        choices=NETWORK_INPUTS,
        default="tight",
        help="network input of video frames: tight (the configuration's scale, padded only to "
        "multiples of 64: 1024x576 for a 640x360 frame under square 800/1024) or config (its "
        "IMAGE_RESIZE_MODE as is: 1024x1024) (default: tight)",
    )


def add_tracking_arguments(parser: argparse.ArgumentParser) -> None:
    """--video-mode, --keyframe-interval, --tracks and --draw-ids."""
    add_video_mode_arguments(parser, VIDEO_MODES, "stable")
    parser.add_argument(
        "--tracks",
        metavar="IDS",
        help="comma-separated track ids: only those stay in colour (see --draw-ids)",
    )
    parser.add_argument(
        "--draw-ids", action="store_true", help="write each instance's track id on the video"
    )


def _positive(kind):
    """An argparse type: a number of ``kind`` above 0."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0")
        return value

    return parse


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
    shard = shard_from_environment(args.shard)
    if shard is not None:
        return run_shard(args, shard)
    inputs = _inputs(args)
    weights = [args.weights] if Path(str(args.weights)).is_file() else []
    protect_inputs([*(path for path in inputs if isinstance(path, Path)), *weights])
    model = common.build_model(args)  # looked up at call time: tests replace it
    options = splash_options(args, common.class_names_for(model, args.weights, args.class_names))
    options.update(_video_options(args))
    options.update(_tracking_options(model, args))
    try:
        failures = _splash_all(model, inputs, args, options)
    finally:
        if options["preview"] is not None:
            options["preview"].close()
    if len(inputs) > 1:
        print(
            f"splashed {len(inputs) - failures} of {len(inputs)} files"
            + (f"; {failures} skipped or incomplete (see above)" if failures else "")
        )
    return 1 if failures else 0


#: The flags that change a splash: a rerun with others is another run (docs/cli.md).
SPLASH_SETTINGS = (
    *("effect", "classes", "min_score", "feather", "blur_sigma", "background_color"),
    *("dim_factor", "class_names", "config", "set", "precision", "backend", "video_mode"),
    *("keyframe_interval", "tracks", "draw_ids", "max_frames", "duration", "video_size"),
)


def run_shard(args: argparse.Namespace, shard: Shard) -> int:
    """One shard of ``--input-dir`` (:func:`mrcnn.deploy.shards.file_shard`): its files
    splashed to ``<stem>_splash.png|.mp4``, those a killed run wrote kept. Exit status 1 only
    from the process that finds every shard done and some file failed."""
    if not args.input_dir:
        raise ValueError(
            f"shard {shard.label}: shards split an --input-dir folder; splash --image or "
            "--video without torchrun and --shard"
        )
    inputs = list_inputs(Path(args.input_dir), IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    out = check_writable_dir(args.output or ".", "--output")
    args.device = prepare_process(shard, args.device)
    args.preview = False  # one window per process would be a crowd; the lines say the work
    args.weights = resolve_weights(args.weights, args.logs, config_overrides(args))
    settings = {name: getattr(args, name) for name in SPLASH_SETTINGS}
    key = run_key(inputs, file_identity(args.weights), settings, shard.count)
    weights = [Path(args.weights)] if Path(args.weights).is_file() else []
    protect_inputs([*inputs, *weights])
    out.mkdir(parents=True, exist_ok=True)
    folder = ShardFolder(out, "splash", shard, key)
    say, targets = shard_say(shard), splash_targets(inputs, out)
    work = _shard_work(args, inputs, targets, say)
    ran = file_shard(folder, inputs, targets, work, overwrite=args.overwrite, inputs=inputs)
    if ran.records is None:
        say(f"finished earlier ({folder.part_path()}): nothing to redo")
    else:
        failed = sum("error" in r for r in ran.records)
        say(
            f"splashed {ran.done - failed} files"
            + (f", kept {ran.reused} a killed run had written" if ran.reused else "")
            + (f"; {failed} skipped or incomplete (see above)" if failed else "")
        )
    if ran.parts is None:
        return 0
    failed = [r for r in merged_records(ran.parts, len(inputs)) if "error" in r]
    folder.tidy()
    for record in failed:
        print(f"failed {record['path']}: {record['error']}", file=sys.stderr)
    print(
        f"all {shard.count} shards done: splashed {len(inputs) - len(failed)} of {len(inputs)} "
        f"files into {out}" + (f"; {len(failed)} skipped or incomplete" if failed else "")
    )
    return 1 if failed else 0


def _shard_work(args: argparse.Namespace, inputs: list[Path], targets: list[Path], say):
    """work(index) of :func:`mrcnn.deploy.shards.file_shard`: splash input ``index`` to its
    target (the model is built at the first call: a finished shard needs none)."""
    loaded: list = []

    def work(index: int) -> dict:
        path, target = inputs[index], targets[index]
        if not loaded:
            model = common.build_model(args)  # looked up at call time: tests replace it
            options = splash_options(
                args, common.class_names_for(model, args.weights, args.class_names)
            )
            options.update(_video_options(args))
            loaded.extend([model, {**options, **_tracking_options(model, args)}])
        one = argparse.Namespace(**{**vars(args), "output": str(target), "overwrite": True})
        record = {"index": index, "path": str(path), "output": str(target)}
        try:
            if _splash_one(loaded[0], path, _is_video(args, path), one, dict(loaded[1]), say):
                return record
            return {**record, "error": "the video ended early (its frames are written)"}
        except (ValueError, OSError) as error:
            say(f"skipped {path}: {error}", file=sys.stderr)
            return {**record, "error": str(error)}

    return work


def _inputs(args: argparse.Namespace) -> list[Path | str]:
    """The files (or the live source, a string) to splash, checked before the model loads."""
    if args.input_dir:
        inputs = list_inputs(Path(args.input_dir), IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        if args.output:
            check_writable_dir(args.output, "--output").mkdir(parents=True, exist_ok=True)
        return inputs
    if args.video is not None and parse_source(args.video).live:
        return [_check_live_source(args.video, args.output)]
    flag = "--image" if args.image else "--video"
    path = Path(args.image or args.video)
    if path.is_dir():
        raise ValueError(f"{flag} {path} is a folder; use --input-dir {path}")
    if not path.is_file():
        raise FileNotFoundError(f"input not found: {flag} {path} does not exist")
    _check_output_file(args.output)
    check_splash_output_name(path, args.output, _is_video(args, path))
    if args.overwrite and args.output and Path(args.output).is_file():
        refuse_input(args.output, [path])  # an input is never written over
    if args.video:
        require_frames(path)  # an unreadable or empty video fails before the model
    return [path]


def _splash_all(model, inputs: list[Path | str], args, options: dict) -> int:
    """Splash each input; the number that failed or ended early."""
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
    return failures


def _check_live_source(spec: str, output: str | None) -> str:
    """A camera or stream given to --video, checked before the model loads: a camera must
    open (a stream is opened once only, by the run: a pipe cannot be read twice)."""
    source = parse_source(spec)
    _check_output_file(output)
    check_splash_output_name(f"{source.label}.live", output, True)
    if source.kind == "camera":
        capture, _ = open_source(spec)
        capture.release()
    return spec


def _video_options(args: argparse.Namespace) -> dict:
    """The keyword arguments of mrcnn.splash.live.splash_source that the video flags give."""
    preview = None
    if args.preview:
        preview, why_not = open_preview()
        if why_not:
            print(f"note: {why_not}", file=sys.stderr)
    return {
        "max_frames": args.max_frames,
        "duration": args.duration,
        "network_input": args.video_size,
        "preview": preview,
    }


def _tracking_options(model, args: argparse.Namespace) -> dict:
    """The analyser, --tracks and --draw-ids, as splash_source's keyword arguments."""
    tracks = None
    if args.tracks:
        try:
            tracks = [int(t) for t in args.tracks.split(",") if t.strip()]
        except ValueError as error:
            raise ValueError(f"--tracks {args.tracks!r}: give track ids, e.g. 1,4") from error
    if (tracks or args.draw_ids) and args.video_mode == "per-frame":
        raise ValueError(
            "--tracks and --draw-ids need track ids: use --video-mode stable or tracked"
        )
    analyser = video_analyser(model, args.video_mode, keyframe_interval=args.keyframe_interval)
    return {"analyser": analyser, "tracks": tracks, "draw_ids": args.draw_ids}


def _is_video(args: argparse.Namespace, path: Path | str) -> bool:
    """--video says so; otherwise a video extension (--image clip.mp4 is taken as a video)."""
    return args.video is not None or Path(path).suffix.lower() in VIDEO_SUFFIXES


def _check_output_file(output: str | None) -> None:
    """Refuse an --output whose folder cannot be written, before the model loads."""
    if output is None:
        return
    target = Path(output)
    is_folder = target.is_dir() or output.endswith(("/", "\\")) or not target.suffix
    check_writable_dir(target if is_folder else target.parent, "--output")


def _splash_one(model, path: Path | str, as_video: bool, args, options: dict, say=print) -> bool:
    """Splash one file or live source; False when a video ended early. ``say`` prints a line."""
    if not as_video:
        video_only = (*VIDEO_OPTIONS, "tracks", "draw_ids")
        options = {k: v for k, v in options.items() if k not in video_only}
        written = splash_image_file(
            model, path, args.output, effect=args.effect, overwrite=args.overwrite, **options
        )
        say(f"wrote {written}")
        return True
    report = splash_source(
        model,
        path,
        args.output,
        effect=args.effect,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        say=say,  # the network input, once the video is open
        **options,
    )
    say(report.summary(), file=sys.stdout if report.complete else sys.stderr)
    return report.complete
