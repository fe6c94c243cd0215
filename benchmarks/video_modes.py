"""Frames/s of the video splash, end to end, in each video mode (issue 32).

On one 640 x 360 clip (``--video``, or the synthetic one of ``benchmarks.splash_video``: three
rectangles moving over a photo-like background, ``--seconds`` at ``--fps``), with the balloon
sample's inference configuration (``samples/balloon.py``; random weights unless ``--weights``;
``--precision`` sets INFERENCE_PRECISION), it runs :func:`mrcnn.splash.live.splash_source` (decode,
detect, splash, encode, at the video path's tight network input) once per mode, in one process,
and prints each mode's wall-clock frames/s, the frames it detected (keyframes) and its ratio to
per-frame detection. Modes: per-frame, stable (the default mode, every frame detected), and
stable with ``--intervals`` (default 5 and auto). The model is warmed up first.

    .venv/bin/python -m benchmarks.video_modes [--video V | --seconds 2 --fps 15]
        [--weights W] [--precision fp32|bf16] [--set KEY=VALUE ...] [--intervals 5,auto]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.splash_video import WARM_UP_CALLS, build_model, decoded_batches, write_clip
from mrcnn.modeling.precision import cpu_flags
from mrcnn.splash.live import splash_source
from mrcnn.tracking.analysis import video_analyser


class Counting:
    """The model, counting the frames ``detect`` is given."""

    def __init__(self, model) -> None:
        self.model, self.frames = model, 0

    def __getattr__(self, name):
        return getattr(self.model, name)

    def detect(self, images, *args, **kwargs):
        self.frames += len(images)
        return self.model.detect(images, *args, **kwargs)


def run_mode(model, clip: Path, out: Path, mode: str, interval) -> tuple[float, int, int]:
    """(seconds, frames written, frames detected) of the splash of ``clip`` in one mode."""
    counting = Counting(model)
    analyser = video_analyser(counting, mode, keyframe_interval=interval)
    started = time.perf_counter()
    report = splash_source(
        counting, clip, out, overwrite=True, progress=False, analyser=analyser, say=None
    )
    return time.perf_counter() - started, report.frames_written, counting.frames


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.video_modes")
    parser.add_argument("--video", type=Path, help="a clip (default: a synthetic 640 x 360 one)")
    parser.add_argument("--seconds", type=float, default=2.0, help="synthetic clip length")
    parser.add_argument("--fps", type=float, default=15.0, help="synthetic clip frame rate")
    parser.add_argument("--weights", help="a checkpoint (default: random weights)")
    parser.add_argument("--precision", choices=("fp32", "bf16"), help="INFERENCE_PRECISION")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default=None)
    parser.add_argument("--intervals", default="5,auto", help="keyframe intervals to measure")
    args = parser.parse_args()
    model = build_model(args)
    modes = [("per-frame", 1), ("stable", 1)]
    modes += [("stable", int(k) if k.isdigit() else k) for k in args.intervals.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        clip = args.video or Path(folder) / "clip.mp4"
        if args.video is None:
            write_clip(clip, round(args.seconds * args.fps), args.fps)
        first = next(decoded_batches(clip, 1))
        for _ in range(WARM_UP_CALLS):
            model.detect(first)
        rows = [(m, k, *run_mode(model, clip, Path(folder) / "out.mp4", m, k)) for m, k in modes]
    cfg = model.config
    flags = " ".join(sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}))
    print(
        f"BalloonConfig, {args.weights or 'random weights'}, precision "
        f"{getattr(cfg, 'INFERENCE_PRECISION', 'fp32')}, {os.cpu_count()} cpus ({flags}), "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, clip "
        f"{args.video or 'synthetic 640x360'}"
    )
    print("| mode | keyframe interval | frames | detected | seconds | frames/s | vs per-frame |")
    print("|---|---|---|---|---|---|---|")
    base = rows[0][3] / rows[0][2]
    for mode, interval, seconds, frames, detected in rows:
        fps = frames / seconds
        print(
            f"| {mode} | {interval} | {frames} | {detected} | {seconds:.1f} | {fps:.2f} | "
            f"{fps / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
