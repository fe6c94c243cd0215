"""The video splash against detection alone: does the pipelined video run at detection's speed?

On one clip (``--video``, or a synthetic one of ``--seconds`` at ``--fps``, 640 x 360 unless
``--width`` / ``--height``: three rectangles moving over a photo-like background), with the
balloon sample's inference configuration (``samples/balloon.py``: BalloonConfig,
IMAGES_PER_GPU 1 unless ``--set``), it times, in one process:

1. detection alone: ``model.detect`` on every frame, IMAGES_PER_GPU frames per call, as the
   video path batches them, on the main thread as in the video path (decoding is done before
   each call and not timed);
2. the whole video path: ``mrcnn.splash.filter.splash_video`` (decode, detect, splash, encode
   overlapping on threads), wall clock;
3. the video path without the model (the first batch's detections replayed): what decoding,
   splashing and encoding cost by themselves.

It prints the seconds and frames/s of each and the ratio 2 / 1 (target <= 1.05: the pipeline
hides everything but detection). Random weights unless ``--weights`` (they still give
detections: the splash has masks to paint). ``--precision fp32|bf16|fp16`` sets
INFERENCE_PRECISION (only when given; fp16 is for GPUs). On a busy machine take the best of
``--repeats``, or split the clip with ``--segments N``: the two timings then alternate segment
by segment (lossless copies of the clip's frames), so that a machine whose speed drifts during a
long run slows both alike. The default, 900 frames at 1024 x 1024 (BalloonConfig's square
resize), takes two full passes of detection: about twice 900 times one detect's time.

    .venv/bin/python -m benchmarks.splash_video [--video V | --seconds 30 --fps 30]
        [--width 640 --height 360] [--weights W] [--precision fp32|bf16|fp16]
        [--set KEY=VALUE ...] [--device cpu|cuda]
        [--effect gray] [--repeats 1] [--segments 1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from benchmarks._common import measure_bf16_as_asked, peak_rss_mib
from mrcnn.testing import photo_like_image

WIDTH, HEIGHT = 640, 360
#: detect calls before timing (the first calls of a process are slower: allocations, kernels)
WARM_UP_CALLS = 3


def write_clip(
    path: Path, frames: int, fps: float, width: int = WIDTH, height: int = HEIGHT
) -> None:
    """A width x height mp4v clip: three rectangles moving across a photo-like background."""
    backdrop = photo_like_image(height, width, seed=3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    scale = height / HEIGHT  # the rectangles' layout at 640 x 360, scaled
    for i in range(frames):
        frame = backdrop.copy()
        for k, color in enumerate([(220, 40, 40), (40, 200, 60), (30, 60, 230)]):
            x = round((40 + 3 * i + 170 * k) * scale) % (width - round(120 * scale))
            top, side = round((60 + 80 * k) * scale), round(100 * scale)
            frame[top : top + side, x : x + round(110 * scale)] = color
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def build_model(args: argparse.Namespace):
    """The balloon sample's inference model: random weights unless --weights."""
    from mrcnn.model import MaskRCNN
    from samples import balloon

    overrides = list(args.set)
    if args.precision:  # a config value of the bf16 work: set only when asked for
        overrides.append(f"INFERENCE_PRECISION={args.precision}")
    config = balloon.make_config(overrides, args.device, inference=True)
    if args.weights:
        return MaskRCNN.from_checkpoint(
            args.weights, config=config, mode="inference", on_note=balloon.print_note
        )
    torch.manual_seed(0)
    return MaskRCNN("inference", config)


def sync(model) -> None:
    device = getattr(model, "device", None)  # None: the replay model
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize()


def decoded_batches(clip: Path, size: int):
    """Lists of up to ``size`` RGB frames, in order: the batches the video path makes."""
    capture = cv2.VideoCapture(str(clip))
    batch: list[np.ndarray] = []
    try:
        while (got := capture.read())[0]:
            batch.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch
    finally:
        capture.release()


def time_detect(model, clip: Path) -> tuple[float, int, float]:
    """(seconds in detect, frames, instances per frame): detection alone, batch by batch, at
    the network input the video path uses (its tight size for video frames)."""
    from mrcnn.splash.network_input import resize_mode, video_resize_mode

    seconds, frames, instances = 0.0, 0, 0
    for batch in decoded_batches(clip, int(model.config.IMAGES_PER_GPU)):
        sync(model)
        started = time.perf_counter()
        with resize_mode(model.config, video_resize_mode(model.config)):
            results = model.detect(batch)
        sync(model)
        seconds += time.perf_counter() - started
        frames += len(batch)
        instances += sum(len(r["scores"]) for r in results)
    return seconds, frames, instances / max(1, frames)


def time_video(model, clip: Path, out: Path, effect: str) -> tuple[float, int]:
    """(seconds, frames written) of splash_video on the clip, wall clock."""
    from mrcnn.splash.filter import splash_video

    sync(model)
    started = time.perf_counter()
    report = splash_video(model, clip, out, effect=effect, overwrite=True, progress=False)
    sync(model)
    return time.perf_counter() - started, report.frames_written


class ReplayModel:
    """Stands in for the model: the first batch's detections, over and over (no network)."""

    def __init__(self, config, results: list[dict], device: torch.device) -> None:
        self.config, self.results = config, results
        self.device = device  # the video path renders as it would beside this device

    def detect(self, images: list[np.ndarray]) -> list[dict]:
        return [self.results[i % len(self.results)] for i in range(len(images))]


def split_clip(clip: Path, parts: int, step: int, folder: Path) -> list[Path]:
    """The clip as ``parts`` consecutive lossless (FFV1) clips of whole batches of ``step``."""
    capture = cv2.VideoCapture(str(clip))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    while (got := capture.read())[0]:
        frames.append(got[1])
    capture.release()
    size = -(-len(frames) // parts)
    size = -(-size // step) * step
    paths = []
    for start in range(0, len(frames), size):
        path = folder / f"segment{len(paths)}.avi"
        height, width = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
        for frame in frames[start : start + size]:
            writer.write(frame)
        writer.release()
        paths.append(path)
    return paths


def measure(model, replay, clips: list[Path], out: Path, effect: str) -> tuple:
    """Detection alone and the video path on each clip in turn, summed; the order of the two
    alternates from clip to clip, so that a change in machine speed during a long run weighs on
    both alike. Returns (detect seconds, frames, instances per frame, video seconds, frames
    written, seconds of the video path without the model)."""
    detect_s = video_s = alone_s = 0.0
    frames = written = 0
    instances = 0.0
    for i, clip in enumerate(clips):
        if i % 2:
            seconds, count = time_video(model, clip, out, effect)
        seconds_d, frames_d, per_frame = time_detect(model, clip)
        if not i % 2:
            seconds, count = time_video(model, clip, out, effect)
        detect_s, video_s = detect_s + seconds_d, video_s + seconds
        frames, written = frames + frames_d, written + count
        instances += per_frame * frames_d
        alone_s += time_video(replay, clip, out, effect)[0]
    return detect_s, frames, instances / max(1, frames), video_s, written, alone_s


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.splash_video", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--video", type=Path, help="a clip to use (default: a synthetic one)")
    parser.add_argument("--seconds", type=float, default=30.0, help="synthetic clip length")
    parser.add_argument("--fps", type=float, default=30.0, help="synthetic clip frame rate")
    parser.add_argument("--width", type=int, default=WIDTH, help="synthetic clip width")
    parser.add_argument("--height", type=int, default=HEIGHT, help="synthetic clip height")
    parser.add_argument("--weights", help="a checkpoint (default: random weights)")
    parser.add_argument(
        "--precision", choices=("fp32", "bf16", "fp16"), help="INFERENCE_PRECISION (fp16: GPU)"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default=None)
    parser.add_argument("--effect", default="gray")
    parser.add_argument("--repeats", type=int, default=1, help="best of N for each timing")
    parser.add_argument(
        "--segments",
        type=int,
        default=1,
        help="time detection alone and the video path segment by segment, alternating",
    )
    args = parser.parse_args()

    from mrcnn.splash.video import open_video

    bf16_note = measure_bf16_as_asked() if args.precision == "bf16" else None
    try:
        model = build_model(args)
    except ValueError as error:
        if args.precision and "INFERENCE_PRECISION" in str(error):
            sys.exit(f"error: --precision needs INFERENCE_PRECISION in mrcnn/config.py ({error})")
        raise
    cfg, step = model.config, int(model.config.IMAGES_PER_GPU)
    with tempfile.TemporaryDirectory() as folder:
        clip = args.video or Path(folder) / "clip.mp4"
        if args.video is None:
            write_clip(clip, round(args.seconds * args.fps), args.fps, args.width, args.height)
        capture, info = open_video(clip)
        capture.release()
        first = next(decoded_batches(clip, step))
        replay = ReplayModel(cfg, model.detect(first), model.device)
        for _ in range(WARM_UP_CALLS):
            model.detect(first)
        if info.frame_count % step:  # the last, shorter batch: its shapes warmed up too
            model.detect(first[: info.frame_count % step])
        out = Path(folder) / "out.mp4"
        parts = split_clip(clip, args.segments, step, Path(folder)) if args.segments > 1 else [clip]
        detect_s, video_s, alone_s = [], [], []
        for _ in range(args.repeats):
            totals = measure(model, replay, parts, out, args.effect)
            seconds, frames, instances, video_seconds, written, alone_seconds = totals
            detect_s.append(seconds)
            video_s.append(video_seconds)
            alone_s.append(alone_seconds)
    detect_best, video_best, alone_best = min(detect_s), min(video_s), min(alone_s)
    precision = getattr(cfg, "INFERENCE_PRECISION", "fp32 (no INFERENCE_PRECISION in config)")
    print(
        f"BalloonConfig (samples/balloon.py), {args.weights or 'random weights'}, "
        f"device {model.device}, precision {precision}, {cfg.IMAGE_RESIZE_MODE} "
        f"{cfg.IMAGE_MIN_DIM}/{cfg.IMAGE_MAX_DIM}, IMAGES_PER_GPU {step}, torch threads "
        f"{torch.get_num_threads()}"
    )
    if bf16_note:
        print(bf16_note)
    print(
        f"clip {args.video or 'synthetic'} {info.width}x{info.height} at {info.fps:g} fps, "
        f"{frames} frames, "
        f"{written} written, effect {args.effect}, {instances:.1f} instances/frame, best of "
        f"{args.repeats}, {len(parts)} segment(s) timed in turn"
    )
    print(f"detection alone : {detect_best:8.2f} s  {frames / detect_best:7.2f} frames/s")
    print(f"video path      : {video_best:8.2f} s  {written / video_best:7.2f} frames/s")
    ratio = video_best / detect_best
    print(f"ratio           : {ratio:8.3f}  (video path / detection alone; target <= 1.05)")
    print(
        f"video path without the model: {alone_best:.2f} s, {written / alone_best:.1f} frames/s "
        "(decode + splash + encode alone)"
    )
    print(f"peak RSS {peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
