"""Frames/s of the color splash video path, and its overhead over the model's own detect time.

Generates a 640x360 clip (default 30 frames, mp4v), then in one process:

1. times ``model.detect`` on the decoded frames, IMAGES_PER_GPU at a time (after a warm-up);
2. times ``mrcnn.video.splash_video`` on the clip (decode, detect, splash, encode);
3. times ``splash_video`` again with the detections of 1 replayed instead of the model;

and prints 1 and 2 per frame, the overhead of the video path (2 - 1) in ms and % of 1, and 3,
the cost of the video path itself (decoding overlaps detection, so the overhead is at most 3).
On a busy machine 2 - 1 is noisy; take the best of ``--repeats``.
The model is TorchvisionCocoConfig-shaped with random weights unless ``--weights`` or
``--config`` say otherwise; ``--set`` overrides config values (e.g. a smaller IMAGE_MIN_DIM).

    .venv/bin/python benchmarks/splash_video.py [--frames 30] [--weights W] [--config C]
        [--set KEY=VALUE ...] [--device cpu] [--effect gray] [--repeats 1]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mrcnn.testing import photo_like_image  # noqa: E402

WIDTH, HEIGHT, FPS = 640, 360, 30.0


def write_clip(path: Path, frames: int) -> list[np.ndarray]:
    """A photo-like background with three rectangles moving across; returns the RGB frames as
    decoded back from the file."""
    backdrop = photo_like_image(HEIGHT, WIDTH, seed=3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for i in range(frames):
        frame = backdrop.copy()
        for k, color in enumerate([(220, 40, 40), (40, 200, 60), (30, 60, 230)]):
            x = (40 + 9 * i + 170 * k) % (WIDTH - 120)
            frame[60 + 80 * k : 160 + 80 * k, x : x + 110] = color
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    decoded = []
    while (got := capture.read())[0]:
        decoded.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    capture.release()
    return decoded


def build_model(args: argparse.Namespace):
    from mrcnn.commands.detect import build_model as build_with_weights
    from mrcnn.commands.detect import inference_config
    from mrcnn.model import MaskRCNN

    if args.weights:
        return build_with_weights(args)
    if args.config is None:
        args.weights = "coco"  # only picks TorchvisionCocoConfig; nothing is loaded
    config = inference_config(args)
    torch.manual_seed(0)
    return MaskRCNN("inference", config)


def sync(model) -> None:
    if getattr(model, "device", None) is not None and model.device.type == "cuda":
        torch.cuda.synchronize()


def time_detect(model, frames: list[np.ndarray]) -> tuple[float, list[dict]]:
    """(seconds per frame, results) of model.detect in batches of IMAGES_PER_GPU."""
    step = int(model.config.IMAGES_PER_GPU)
    sync(model)
    started, results = time.perf_counter(), []
    for i in range(0, len(frames), step):
        results += model.detect(frames[i : i + step])
    sync(model)
    return (time.perf_counter() - started) / len(frames), results


class ReplayModel:
    """Stands in for the model: returns recorded results, so only the video path is timed."""

    def __init__(self, config, results: list[dict]) -> None:
        self.config, self.results, self.next = config, results, 0

    def detect(self, images: list[np.ndarray]) -> list[dict]:
        out = self.results[self.next : self.next + len(images)]
        self.next += len(images)
        return out


def time_video(model, clip: Path, out: Path, effect: str) -> tuple[float, int]:
    """(seconds per frame, frames written) of splash_video on the clip, wall clock."""
    from mrcnn.video import splash_video

    sync(model)
    started = time.perf_counter()
    report = splash_video(model, clip, out, effect=effect, overwrite=True, progress=False)
    sync(model)
    return (time.perf_counter() - started) / max(1, report.frames_written), report.frames_written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--weights", default=None)
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default=None)
    parser.add_argument("--effect", default="gray")
    parser.add_argument("--repeats", type=int, default=1, help="best of N for both timings")
    args = parser.parse_args()

    model = build_model(args)
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"
        frames = write_clip(clip, args.frames)
        step = int(model.config.IMAGES_PER_GPU)
        model.detect(frames[:step])  # warm-up
        detect_s, video_s, alone_s = [], [], []
        for _ in range(args.repeats):
            seconds, results = time_detect(model, frames)
            detect_s.append(seconds)
            seconds, written = time_video(model, clip, Path(folder) / "out.mp4", args.effect)
            video_s.append(seconds)
            replay = ReplayModel(model.config, results)
            alone_s.append(time_video(replay, clip, Path(folder) / "out.mp4", args.effect)[0])
    instances = sum(len(r["scores"]) for r in results) / len(results)
    detect_best, video_best = min(detect_s), min(video_s)
    overhead = video_best - detect_best
    cfg = model.config
    print(
        f"device {model.device}, {type(cfg).__mro__[1].__name__}, BACKBONE {cfg.BACKBONE}, "
        f"{cfg.IMAGE_RESIZE_MODE} {cfg.IMAGE_MIN_DIM}/{cfg.IMAGE_MAX_DIM}, IMAGES_PER_GPU "
        f"{step}, torch threads {torch.get_num_threads()}"
    )
    print(
        f"clip {WIDTH}x{HEIGHT}, {written} frames, effect {args.effect}, "
        f"{instances:.1f} instances/frame"
    )
    print(f"detect only : {1000 * detect_best:8.1f} ms/frame  {1 / detect_best:6.2f} frames/s")
    print(f"video path  : {1000 * video_best:8.1f} ms/frame  {1 / video_best:6.2f} frames/s")
    print(
        f"overhead    : {1000 * overhead:8.1f} ms/frame  {100 * overhead / detect_best:6.1f} % "
        "of detect (video path - detect only)"
    )
    print(
        f"video path with recorded detections, no model: {1000 * min(alone_s):.1f} ms/frame "
        "(decode + splash + encode, the overhead's upper bound)"
    )


if __name__ == "__main__":
    main()
