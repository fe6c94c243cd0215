"""The before/after picture of docs/splash.md: a band of consecutive frames of a generated clip,
splashed with per-frame detection (top row) and with the stable video mode (bottom row).

The band is the ``--frames`` consecutive frames where per-frame detection's shown masks change
the most from frame to frame (the flicker the stable mode removes), found by running both
modes over the clip; the picture names the frames it shows.

    .venv/bin/python -m tools.video_modes_figure [--model PATH] [--kind pan_zoom] [--seed 0]
        [--frames 6] [--out docs/images/video_modes.jpg]

The model is the demo's trained shapes model, as benchmarks/video_tracking.py finds it
(``--model``, else its cache, else trained with the demo's recipe).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import cv2
import numpy as np

from benchmarks.video_tracking import BALLOON, balloon_clip, load_model, run_mode
from mrcnn.datasets.clips import make_clip
from mrcnn.splash import color_splash
from mrcnn.splash.filter import write_image
from mrcnn.tracking.analysis import video_analyser

#: Each frame is drawn this many times larger (the clips are 128 pixels square).
ZOOM = 2
LABEL_HEIGHT = 22


def shown_union(result: dict) -> np.ndarray:
    """bool [H, W]: every shown instance's mask together."""
    masks = np.asarray(result["masks"])
    return masks.any(axis=2) if masks.shape[2] else np.zeros(masks.shape[:2], bool)


def flicker(results: list[dict]) -> np.ndarray:
    """float [T]: 1 - IoU of each frame's shown masks with the previous frame's (0 first)."""
    out = np.zeros(len(results))
    for t in range(1, len(results)):
        a, b = shown_union(results[t - 1]), shown_union(results[t])
        union = np.logical_or(a, b).sum()
        out[t] = 1.0 - np.logical_and(a, b).sum() / union if union else 0.0
    return out


def busiest_band(per_frame: list[dict], frames: int) -> int:
    """The first frame of the ``frames`` consecutive frames whose per-frame masks change most."""
    change = flicker(per_frame)
    sums = [change[t + 1 : t + frames].sum() for t in range(1, len(change) - frames + 1)]
    return 1 + int(np.argmax(sums))


def row(clip, results: list[dict], start: int, frames: int, label: str) -> np.ndarray:
    """RGB uint8: the label over the splashed frames start .. start + frames - 1."""
    tiles = []
    for t in range(start, start + frames):
        splashed = color_splash(clip.frames[t], np.asarray(results[t]["masks"]))
        tile = cv2.resize(splashed, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)
        cv2.putText(tile, f"frame {t}", (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255))
        tiles.append(np.pad(tile, ((0, 0), (0, 4), (0, 0)), constant_values=255))
    band = np.concatenate(tiles, axis=1)
    header = np.full((LABEL_HEIGHT, band.shape[1], 3), 255, np.uint8)
    cv2.putText(header, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1)
    return np.concatenate([header, band], axis=0)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.video_modes_figure")
    parser.add_argument("--model", help="the demo's trained checkpoint (default: the cache)")
    parser.add_argument(
        "--kind", default="pan_zoom", help="clip kind (default: pan_zoom, over a balloon photo)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=6, help="frames in the band")
    parser.add_argument("--out", default="docs/images/video_modes.jpg")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    if args.kind == "pan_zoom":
        clip = balloon_clip(BALLOON, args.seed, 40)
        if clip is None:
            raise SystemExit("pan_zoom needs the balloon photos; pick another --kind")
    else:
        clip = make_clip(args.kind, args.seed, frames=40)
    per_frame, _ = run_mode(video_analyser(model, "per-frame"), clip, 1)
    stable, _ = run_mode(video_analyser(model, "stable"), clip, 1)
    start = busiest_band(per_frame, args.frames)
    picture = np.concatenate(
        [
            row(
                clip, per_frame, start, args.frames, "per-frame detection (--video-mode per-frame)"
            ),
            row(clip, stable, start, args.frames, "stable (the default video mode)"),
        ],
        axis=0,
    )
    write_image(args.out, picture)
    changes = (
        flicker(per_frame)[start : start + args.frames],
        flicker(stable)[start : start + args.frames],
    )
    print(f"wrote {args.out}: {clip.name}, frames {start}-{start + args.frames - 1}")
    print("mask change frame to frame, per-frame:", np.round(changes[0], 3).tolist())
    print("mask change frame to frame, stable:   ", np.round(changes[1], 3).tolist())


if __name__ == "__main__":
    main()
