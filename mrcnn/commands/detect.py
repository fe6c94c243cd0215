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
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from mrcnn.commands import common
from mrcnn.commands.common import (
    add_class_names_argument,
    add_config_arguments,
    add_model_arguments,
    add_precision_argument,
    add_video_mode_arguments,
    class_names_for,
)
from mrcnn.deploy.runtime import OnnxMaskRCNN
from mrcnn.evaluation import detections_to_coco
from mrcnn.outputs import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    check_new_outputs,
    check_writable_dir,
    list_inputs,
    write_output,
)
from mrcnn.splash.sources import VideoInfo, decoded_batches, open_video
from mrcnn.structures.image import read_image
from mrcnn.structures.resize_plan import InputSizeError
from mrcnn.tracking.analysis import FrameAnalyser, video_analyser
from mrcnn.tracking.mot import MotWriter, TracksJsonWriter

HELP = "detect instances in images (figures, COCO results JSON) or track them through a video"

#: Longest side, pixels, of the figures (larger images are drawn downscaled).
FIGURE_MAX_SIDE = 2000
#: The video modes of --video: both give track ids ("per-frame" gives none to write).
VIDEO_TRACK_MODES = ("tracked", "stable")
#: The file holding the detections of every image.
SUMMARY_NAME = "detections.json"


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
    parser.add_argument(
        "--onnx",
        metavar="FILE",
        help="run an exported model (mrcnn export) with ONNX Runtime instead of --weights; "
        "needs onnxruntime",
    )
    add_config_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (--video)")
    add_video_mode_arguments(parser, VIDEO_TRACK_MODES, "tracked")


def run(args: argparse.Namespace) -> int:
    if args.video is not None:
        return run_video(args)
    from tqdm import tqdm

    paths = list_inputs(Path(args.input), IMAGE_SUFFIXES)
    if len(paths) == 1 and paths[0].suffix.lower() in VIDEO_SUFFIXES:
        raise ValueError(
            f"--input {paths[0]} is a video; mrcnn detect reads images with --input: track a "
            f"video's instances with mrcnn detect --video {paths[0]} (or splash it with mrcnn "
            f"splash --video {paths[0]})"
        )
    out = check_writable_dir(args.output, "--output")
    keys = output_keys(paths)
    targets = [out / f"{k}{ext}" for k in keys for ext in (".json", ".png")]
    model_files = [f for f in (args.weights, args.onnx) if f and Path(str(f)).is_file()]
    check_new_outputs([*targets, out / SUMMARY_NAME], [*paths, *model_files], args.overwrite)
    model = _onnx_model(args) if args.onnx else common.build_model(_with_weights(args))
    class_names = class_names_for(model, args.weights, args.class_names)
    out.mkdir(parents=True, exist_ok=True)
    everything: list[dict] = []
    skipped = 0
    bar = tqdm(total=len(paths), unit="image", disable=len(paths) < 2, dynamic_ncols=True)
    for path, key in zip(paths, keys, strict=True):
        bar.update()
        try:
            image = read_image(path)
        except (ValueError, OSError) as error:
            bar.write(f"skipped {path}: {error}", file=sys.stderr)
            skipped += 1
            continue
        try:  # memory bounded by the boxes (BoxMasks); an ONNX model returns dense masks
            result = model.detect([image], **({} if args.onnx else {"mask_format": "boxes"}))[0]
        except InputSizeError as error:  # a thin strip the config would mold enormous
            bar.write(f"skipped {path}: {error}", file=sys.stderr)
            skipped += 1
            continue
        entries = coco_results(result, image_id_for(key), class_names)
        _write_json(out / f"{key}.json", entries)
        _write_figure(out / f"{key}.png", image, result, class_names)
        everything += entries
        bar.write(f"{path.name}: {len(entries)} instances")
    bar.close()
    done = len(paths) - skipped
    if done:
        _write_json(out / SUMMARY_NAME, everything)
        written = f"{out / SUMMARY_NAME} ({len(everything)} detections)"
    else:
        written = f"no {SUMMARY_NAME}"
    print(
        f"wrote {done} figures and {written}"
        + (f"; skipped {skipped} of {len(paths)} files (see above)" if skipped else "")
    )
    return 1 if skipped else 0


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
        model_files = [f for f in (args.weights, args.onnx) if f and Path(str(f)).is_file()]
        check_new_outputs([mot_path, json_path], [video, *model_files], args.overwrite)
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
    return OnnxMaskRCNN(args.onnx)


# ------------------------------------------------------------------------------------------------
# COCO results
# ------------------------------------------------------------------------------------------------
def coco_results(result: dict, image_id: int | str, class_names: list[str]) -> list[dict]:
    """One detect result as COCO results entries (:func:`mrcnn.evaluation.detections_to_coco`
    with the boxes unrounded and a "category_name" in each entry).

    Args:
        result: "boxes" float [N, 4] (x1, y1, x2, y2), "class_ids" [N], "scores" [N],
            "masks" bool [H, W, N] or :class:`mrcnn.structures.masks.BoxMasks`.
        image_id: the entries' image_id.
        class_names: names by class id (for "category_name").
    Returns:
        N dicts: image_id, category_id, category_name, bbox [x, y, w, h] floats, score,
        segmentation (RLE with "counts" as str).
    """
    return detections_to_coco([result], [image_id], class_names=class_names, decimals=None)


def image_id_for(key: str) -> int | str:
    """COCO image_id for an output key: int for an all-ASCII-digit stem, else the stem itself
    (``str.isdigit`` also accepts "²" and other digits ``int`` refuses)."""
    return int(key) if key.isascii() and key.isdigit() else key


def output_keys(paths: list[Path]) -> list[str]:
    """Output base names: the stems, with the extension kept where two files share a stem or
    the stem is that of the summary file (``detections``)."""
    stems = [p.stem for p in paths]
    reserved = Path(SUMMARY_NAME).stem
    return [
        p.stem
        if stems.count(p.stem) == 1 and p.stem != reserved
        else f"{p.stem}_{p.suffix.lstrip('.')}"
        for p in paths
    ]


def _write_json(path: Path, entries: list[dict]) -> None:
    write_output(path, json.dumps(entries))


def _write_figure(path: Path, image: np.ndarray, result: dict, class_names: list[str]) -> None:
    """display_instances of one result, drawn at most FIGURE_MAX_SIDE pixels wide or high (a
    108-megapixel photo would otherwise need a canvas and masks of its full size)."""
    # why here: mrcnn.drawing.figures imports matplotlib, start-up time of every `mrcnn --help`.
    from mrcnn.drawing import figures

    height, width = image.shape[:2]
    scale = min(1.0, FIGURE_MAX_SIDE / max(height, width))
    masks, rois = result["masks"], result["rois"]
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        rois = np.round(rois * scale).astype(np.int32)
    if hasattr(masks, "scaled"):
        masks = masks.scaled(image.shape[:2]).to_dense()
    elif scale < 1.0 and masks.shape[2]:
        small = cv2.resize(masks.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        masks = small.reshape(*image.shape[:2], -1).astype(bool)
    figsize = (max(4.0, image.shape[1] / 100), max(4.0, image.shape[0] / 100))
    figures.display_instances(
        image,
        rois,
        masks,
        result["class_ids"],
        class_names,
        result["scores"],
        title=path.stem,
        figsize=figsize,
        path=path,
    )


# ------------------------------------------------------------------------------------------------
# Shared with `mrcnn splash`: inputs, model, class names
# ------------------------------------------------------------------------------------------------
