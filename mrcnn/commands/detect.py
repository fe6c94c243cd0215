"""``mrcnn detect``: detections of a model on images, as figures and COCO results JSON, or
on a video, tracked, as MOT Challenge text and JSON with RLE masks and track ids.

For every image of ``--input`` (a file or a folder, not recursive) it writes into ``--output``:
``<id>.png`` (the display_instances figure) and ``<id>.json`` (its detections), plus
``detections.json`` with the detections of all images, in COCO's results format::

    {"image_id": 397133, "category_id": 1, "category_name": "person",
     "bbox": [x, y, w, h], "score": 0.98, "segmentation": {"size": [H, W], "counts": "..."}}

``<id>`` is the file's stem; ``image_id`` is that stem as an int when it is all digits (COCO's
``000000397133.jpg`` gives 397133), else the stem string. Nothing is written over an input
file; existing outputs are replaced only with ``--overwrite`` (``--output`` may be the input
folder when no name collides). ``detections.json`` is written when at least one image was read.
The model is set up as for every command, by :func:`mrcnn.commands.common.build_model`.

Under ``torchrun`` (or with ``--shard I/N``) a folder is split across processes and machines:
each writes its images' outputs and a part file in ``<output>/.shards``, the last to finish
merges them into ``detections.json`` (the bytes one process writes), and a rerun skips
finished shards (:mod:`mrcnn.deploy.shards`, :mod:`mrcnn.deploy.folders`; docs/cli.md,
"Folders across processes and machines").

With ``--video PATH`` it runs the frame analyser of :func:`build_analyser` over the video
(``--video-mode tracked``, the default: the model's detections with track ids; ``stable``: what
the stable splash shows; ``--keyframe-interval`` as in ``mrcnn splash``) and writes
``<stem>_tracks.txt`` (MOT Challenge text) and ``<stem>_tracks.json`` (every detection with its
RLE mask and track id) into the ``--output`` folder, or ``NAME.txt`` and ``NAME.json`` when
``--output`` is ``NAME.txt`` or ``NAME.json`` (formats: :mod:`mrcnn.tracking.mot`). Both
appear only when the whole video has been read. Exit status 1 when the video ended before the
frame count its header announced (the frames read are written).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mrcnn.commands import common
from mrcnn.commands.common import (
    add_backend_argument,
    add_class_names_argument,
    add_config_arguments,
    add_model_arguments,
    add_precision_argument,
    add_shard_argument,
    add_video_mode_arguments,
    class_names_for,
    config_overrides,
    shard_say,
)
from mrcnn.deploy.folders import (  # noqa: F401 - coco_results, image_id_for: detect's API
    FIGURE_MAX_SIDE,
    SUMMARY_NAME,
    coco_results,
    detect_record,
    detect_shard,
    failures,
    image_id_for,
    image_outputs,
    merge_detections,
    output_keys,
    write_summary,
)
from mrcnn.deploy.runtime import OnnxMaskRCNN
from mrcnn.deploy.shards import (
    Shard,
    ShardFolder,
    file_identity,
    prepare_process,
    run_key,
    shard_from_environment,
)
from mrcnn.outputs import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    check_new_outputs,
    check_writable_dir,
    list_inputs,
    protect_inputs,
)
from mrcnn.splash.sources import VideoInfo, decoded_batches, open_video
from mrcnn.tracking.analysis import FrameAnalyser, video_analyser
from mrcnn.tracking.mot import MotWriter, TracksJsonWriter
from mrcnn.weights.resolve import resolve_weights

HELP = "detect instances in images (figures, COCO results JSON) or track them through a video"

#: The video modes of --video: both give track ids ("per-frame" gives none to write).
VIDEO_TRACK_MODES = ("tracked", "stable")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="PATH", help="an image file or a folder of images")
    source.add_argument(
        "--video",
        metavar="PATH",
        help="a video file (OpenCV-readable): track the instances through it and write "
        "<stem>_tracks.txt (MOT Challenge) and <stem>_tracks.json (RLE masks, track ids)",
    )
    parser.add_argument(
        "--output",
        required=True,
        metavar="PATH",
        help="folder for the figures and JSON files; with --video a folder, or NAME.txt / "
        "NAME.json to write NAME.txt and NAME.json",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace existing output files (never input files); default: refuse",
    )
    add_class_names_argument(parser)
    add_model_arguments(parser, weights_required=False)
    add_precision_argument(parser)
    add_backend_argument(parser)
    parser.add_argument(
        "--onnx",
        metavar="FILE",
        help="run an exported model (mrcnn export) with ONNX Runtime instead of --weights; "
        "needs onnxruntime",
    )
    add_config_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (--video)")
    add_video_mode_arguments(parser, VIDEO_TRACK_MODES, "tracked")
    add_shard_argument(parser, "--input folder")


def run(args: argparse.Namespace) -> int:
    shard = shard_from_environment(args.shard)
    if args.video is not None:
        if shard is not None:
            raise ValueError(
                f"shard {shard.label}: --video runs in one process; run mrcnn detect --video "
                "without torchrun and --shard (they split folders of images)"
            )
        return run_video(args)
    paths = list_inputs(Path(args.input), IMAGE_SUFFIXES)
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        raise ValueError(
            f"--input {paths[0]} is a video; mrcnn detect reads images with --input: track a "
            f"video's instances with mrcnn detect --video {paths[0]} (or splash it with mrcnn "
            f"splash --video {paths[0]})"
        )
    out = check_writable_dir(args.output, "--output")
    if shard is not None:
        return run_shard(args, paths, out, shard)
    from tqdm import tqdm

    keys = output_keys(paths)
    targets = [t for k in keys for t in image_outputs(out, k)]
    check_new_outputs([*targets, out / SUMMARY_NAME], [*paths, *_model_files(args)], args.overwrite)
    model, class_names, options = _load(args)
    out.mkdir(parents=True, exist_ok=True)
    records = []
    bar = tqdm(total=len(paths), unit="image", disable=len(paths) < 2, dynamic_ncols=True)
    for index, (path, key) in enumerate(zip(paths, keys, strict=True)):
        bar.update()
        records.append(
            detect_record(
                model, path, key, index, out, class_names, detect_options=options, say=bar.write
            )
        )
    bar.close()
    summary, count = write_summary(out, records)
    skipped = len(failures(records))
    written = f"{summary} ({count} detections)" if summary else f"no {SUMMARY_NAME}"
    print(
        f"wrote {len(paths) - skipped} figures and {written}"
        + (f"; skipped {skipped} of {len(paths)} files (see above)" if skipped else "")
    )
    return 1 if skipped else 0


def run_shard(args: argparse.Namespace, paths: list[Path], out: Path, shard: Shard) -> int:
    """One shard of a folder run (:func:`mrcnn.deploy.folders.detect_shard`); the process
    that finds every part written merges them into detections.json. Exit status 1 only from
    a merge that saw skipped images (a shard's own skips are said, and its status stays 0,
    so that torchrun does not stop the other shards)."""
    args.device = prepare_process(shard, args.device)
    if not args.onnx:
        args.weights = resolve_weights(
            _with_weights(args).weights, args.logs, config_overrides(args)
        )
    chosen = ("config", "set", "precision", "class_names", "backend")
    settings = {k: getattr(args, k) for k in chosen}
    key = run_key(paths, file_identity(args.onnx or args.weights), settings, shard.count)
    inputs = [*paths, *_model_files(args)]
    protect_inputs(inputs)
    out.mkdir(parents=True, exist_ok=True)
    folder = ShardFolder(out, "detections", shard, key)
    say = shard_say(shard)
    ran = detect_shard(
        folder, paths, out, lambda: _load(args), overwrite=args.overwrite, inputs=inputs, say=say
    )
    if ran.records is None:
        say(f"finished earlier ({folder.part_path()}): nothing to redo")
    else:
        skipped = len(failures(ran.records))
        say(
            f"wrote {ran.done - skipped} figures"
            + (f", kept {ran.reused} a killed run had written" if ran.reused else "")
            + (f"; skipped {skipped} of {len(ran.records)} files (see above)" if skipped else "")
        )
    if ran.parts is None:
        waiting = ", ".join(str(i) for i in folder.missing())
        say(f"{SUMMARY_NAME} comes when every shard is done (waiting for shard {waiting})")
        return 0
    summary, count, failed = merge_detections(folder, ran.parts, out, len(paths))
    written = f"{summary} ({count} detections)" if summary else f"no {SUMMARY_NAME}"
    for record in failed:
        print(f"skipped {record['path']}: {record['error']}", file=sys.stderr)
    print(
        f"merged {shard.count} shards: {len(paths) - len(failed)} images, wrote {written}"
        + (f"; skipped {len(failed)} of {len(paths)} files" if failed else "")
    )
    return 1 if failed else 0


def _model_files(args: argparse.Namespace) -> list[Path]:
    """The model files of the run (inputs no output may replace)."""
    return [Path(str(f)) for f in (args.weights, args.onnx) if f and Path(str(f)).is_file()]


def _load(args: argparse.Namespace) -> tuple:
    """(model, class names, options of its detect method) of --weights or --onnx."""
    model = _onnx_model(args) if args.onnx else common.build_model(_with_weights(args))
    class_names = class_names_for(model, args.weights, args.class_names)
    # memory bounded by the boxes (BoxMasks); an ONNX model returns dense masks
    return model, class_names, {} if args.onnx else {"mask_format": "boxes"}


# ------------------------------------------------------------------------------------------------
# --video: tracked detections, MOT Challenge text and JSON
# ------------------------------------------------------------------------------------------------
def build_analyser(model, args: argparse.Namespace) -> FrameAnalyser:
    """The frame analyser of a ``--video`` run (:func:`mrcnn.tracking.analysis.video_analyser`
    of --video-mode and --keyframe-interval)."""
    return video_analyser(model, args.video_mode, keyframe_interval=args.keyframe_interval)


def video_outputs(video: Path, output: str) -> tuple[Path, Path]:
    """(MOT text, JSON) paths of a ``--video`` run: ``<output>/<stem>_tracks.txt`` and
    ``.json`` for a folder; ``NAME.txt`` and ``NAME.json`` for an ``--output`` ending in
    ``.txt`` or ``.json``."""
    out = Path(output)
    if out.suffix.lower() in (".txt", ".json"):
        check_writable_dir(out.parent, "--output's folder")
        return out.with_suffix(".txt"), out.with_suffix(".json")
    check_writable_dir(out, "--output")
    return out / f"{video.stem}_tracks.txt", out / f"{video.stem}_tracks.json"


def run_video(args: argparse.Namespace) -> int:
    """``mrcnn detect --video``: returns 0, or 1 when the video ended early."""
    video = Path(args.video)
    capture, info = open_video(video)  # a missing or unreadable video fails before the model
    try:
        mot_path, json_path = video_outputs(video, args.output)
        check_new_outputs([mot_path, json_path], [video, *_model_files(args)], args.overwrite)
        model = _onnx_model(args) if args.onnx else common.build_model(_with_weights(args))
        class_names = class_names_for(model, args.weights, args.class_names)
        analyser = build_analyser(model, args)
        mot_path.parent.mkdir(parents=True, exist_ok=True)
        metadata = {
            "video": str(video),
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
        }
        with (
            MotWriter(mot_path, [video]) as mot,
            TracksJsonWriter(json_path, class_names, metadata, [video]) as tracks,
        ):
            batch = max(1, int(getattr(model.config, "IMAGES_PER_GPU", 1)))
            progress = not args.no_progress
            frames, seconds = _track_video(analyser, capture, info, [mot, tracks], batch, progress)
            if frames == 0:
                raise ValueError(f"no frame of {video} could be decoded; is it a video file?")
    finally:
        capture.release()
    print(
        f"wrote {mot_path} and {json_path}: {frames} frames, {mot.lines} tracked detections, "
        f"{len(mot.track_ids)} tracks ({frames / max(seconds, 1e-9):.1f} frames/s)"
    )
    if 0 < info.frame_count and frames < info.frame_count:
        print(
            f"input ended early: only {frames} of the {info.frame_count} frames announced "
            "could be decoded (truncated or corrupt file?); those frames are written",
            file=sys.stderr,
        )
        return 1
    return 0


def _track_video(
    analyser: FrameAnalyser, capture, info: VideoInfo, writers: list, size: int, progress: bool
) -> tuple[int, float]:
    """Run ``analyser`` over the video's frames, ``size`` at a time, and hand each frame's
    result to every writer; return (frames, seconds). Ctrl-C stops it, saying that nothing was
    written."""
    from tqdm import tqdm

    total = info.frame_count if info.frame_count > 0 else None
    bar = tqdm(total=total, unit="frame", disable=not progress, dynamic_ncols=True)
    analyser.reset()
    frames, start = 0, time.perf_counter()
    try:
        for batch in decoded_batches(capture, size):
            for result in analyser(batch):
                for writer in writers:
                    writer.add(frames, result)
                frames += 1
            bar.update(len(batch))
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"stopped after {frames} frames; no track file written") from None
    finally:
        bar.close()
    return frames, time.perf_counter() - start


def _with_weights(args: argparse.Namespace) -> argparse.Namespace:
    if not args.weights:
        raise ValueError("give --weights (a checkpoint, coco or last) or --onnx FILE")
    return args


def _onnx_model(args: argparse.Namespace):
    """The exported model of --onnx; its settings come from the file, not --config/--set."""
    if args.weights or args.config or args.set:
        raise ValueError(
            "--onnx runs the exported model with the settings stored in it: "
            "drop --weights, --config and --set"
        )
    if args.backend != "torch":
        raise ValueError(f"--onnx runs ONNX Runtime: drop --backend {args.backend}")
    return OnnxMaskRCNN(args.onnx)


# ------------------------------------------------------------------------------------------------
# Shared with `mrcnn splash`: inputs, model, class names
# ------------------------------------------------------------------------------------------------
