"""Video analysis modes against ground truth: identity, flicker, accuracy and speed (issue 32).

Generated clips with known masks and identities (:mod:`mrcnn.datasets.clips`): shapes crossing
and occluding one another, one hidden behind another for some frames, shapes entering and
leaving, a hard cut, and a pan and zoom over a balloon photo (``--balloon``, the balloon
dataset's ``val`` photos; skipped with a printed reason when absent), ``--seeds`` of each. The
model is the demo's trained shapes model: ``--model``, else the cached
``~/.cache/mrcnn/benchmarks/shapes_demo.pt``, else trained with the demo's recipe
(``mrcnn.demo.run_demo``, about 5 minutes on 2 CPU cores) and cached.

Each mode of :data:`MODES` (a name and a frame-analyser factory; adding one is one line) runs
over every clip, ``IMAGES_PER_GPU`` frames a call, and is scored per clip kind and over the
shapes clips (all kinds but pan_zoom). Ground truth and predictions are matched frame by frame,
one to one, greedily by mask IoU, at IoU >= 0.5. An object less than ``--min-visibility``
(0.5) visible in a frame (mostly hidden, or mostly off the frame) counts neither way there: not
a miss when missed, and a prediction matching it is no false positive (MOT Challenge's rule for
its distractors); every figure below is over the other object-frames.

- **IDF1, MOTA, ID sw**: TrackEval's Identity and CLEAR metrics on mask IoU >= 0.5
  (:mod:`mrcnn.evaluation.tracking_metrics`); n/a for a mode that gives no track ids;
- **dropouts /100**: one-frame dropouts per 100 ground-truth object-frames: an object matched
  in frames t-1 and t+1, present but unmatched in frame t;
- **jitter p50 / p95**: for an object matched in frames t-1 and t, 1 - IoU(its predicted mask
  at t, its predicted mask at t-1 moved by the object's true motion); counted only where the
  ground truth itself is exactly that move (no occlusion or border change), and not on
  pan_zoom (a zoom is no move);
- **mask IoU**: mean mask IoU of the matched pairs; **matched**: the share of ground-truth
  object-frames matched;
- **frames/s**: frames over the wall-clock seconds inside the analyser's calls;
- **cut re-keyed**: on the cut clips, whether the analyser ran a full detection (a keyframe) at
  the cut or the frame after, for analysers that say which frames were keyframes (a non-empty
  ``result["keyframe"]``, or ``analyser.keyframes``: frame indexes since ``reset``); "-"
  otherwise. A mode that detects every frame re-keys at every frame.

    .venv/bin/python -m benchmarks.video_tracking [--model PATH] [--seeds 3] [--frames 40]
        [--kinds crossing,occlusion,enter_leave,cut,pan_zoom] [--modes per-frame,tracked]
        [--balloon DIR]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mrcnn.datasets import from_spec
from mrcnn.datasets.clips import CLIP_KINDS, Clip, make_clip, pan_zoom
from mrcnn.evaluation.overlaps import compute_overlaps_masks
from mrcnn.evaluation.tracking_metrics import MATCH_IOU, combined_scores, tracking_scores
from mrcnn.tracking import greedy_match
from mrcnn.tracking.analysis import PerFrame, Tracked, video_analyser
from mrcnn.tracking.motion import shifted_mask

REPO = Path(__file__).resolve().parents[1]
BALLOON = REPO.parent / "shared" / "data" / "balloon"
CACHE = Path("~/.cache/mrcnn/benchmarks/shapes_demo.pt").expanduser()
KINDS = ("crossing", "occlusion", "enter_leave", "cut", "pan_zoom")
#: (name, model -> frame analyser): the modes measured, in the table's order.
MODES: list[tuple[str, Callable]] = [
    ("per-frame", PerFrame),
    ("tracked", Tracked),
    ("stable", lambda model: video_analyser(model, "stable")),
    ("stable K=5", lambda model: video_analyser(model, "stable", keyframe_interval=5)),
    ("stable auto", lambda model: video_analyser(model, "stable", keyframe_interval="auto")),
]
#: Objects less visible than this (share of their pixels) count neither way.
MIN_VISIBILITY = 0.5
#: Ground truth counts as an exact move when its mask at t and its mask at t-1 moved by the
#: true shift have at least this IoU.
RIGID_IOU = 0.999


# ------------------------------------------------------------------------------------------------
# Clips and model
# ------------------------------------------------------------------------------------------------
def make_clips(
    kinds: Sequence[str], seeds: int, frames: int, balloon: Path | None = BALLOON
) -> list[Clip]:
    """``seeds`` clips of each kind (seeds 0, 1, ...); pan_zoom over the balloon photos."""
    out = []
    for kind in kinds:
        for seed in range(seeds):
            if kind == "pan_zoom":
                clip = balloon_clip(balloon, seed, frames)
                if clip is None:
                    break
                out.append(clip)
            else:
                out.append(make_clip(kind, seed, frames=frames))
    return out


def balloon_clip(folder: Path | None, seed: int, frames: int) -> Clip | None:
    """pan_zoom over the balloon ``val`` photo number ``seed`` (modulo their count), with its
    balloons' masks from the VIA polygons as ground truth; None (and a printed reason) when
    the photos are not there."""
    annotations = None if folder is None else Path(folder) / "val" / "via_region_data.json"
    if annotations is None or not annotations.is_file():
        print(f"pan_zoom skipped: no balloon photos ({annotations}); give --balloon DIR")
        return None
    dataset = from_spec(f"via:{folder}", subset="val")
    image_id = dataset.image_ids[seed % len(dataset.image_ids)]
    masks, _ = dataset.load_mask(image_id)
    return pan_zoom(dataset.load_image(image_id), seed, frames, photo_masks=masks)


def load_model(path: str | None, cache: Path = CACHE):
    """The demo's trained shapes model: ``path``, else the cache, else trained and cached."""
    from mrcnn.maskrcnn import MaskRCNN

    if path is None and not cache.is_file():
        train_demo_model(cache)
    return MaskRCNN.from_checkpoint(str(path or cache))


def train_demo_model(cache: Path, **demo_options) -> None:
    """Train with the demo's recipe (``mrcnn.demo.run_demo``, given ``demo_options``) and copy
    its last checkpoint to ``cache`` (atomically)."""
    from mrcnn.demo import ShapesDemoConfig, run_demo
    from mrcnn.maskrcnn import MaskRCNN
    from mrcnn.outputs import atomic_output

    print(f"no model given and none cached at {cache}: training the demo's (several minutes)")
    with tempfile.TemporaryDirectory() as folder:
        run_demo(Path(folder) / "demo", **demo_options)
        logs = Path(folder) / "demo" / "logs"
        last = MaskRCNN("inference", ShapesDemoConfig(), model_dir=logs).find_last()
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cache) as temporary:
            shutil.copyfile(last, temporary)
    print(f"cached the trained model at {cache}")


# ------------------------------------------------------------------------------------------------
# Running and scoring
# ------------------------------------------------------------------------------------------------
@dataclass
class ClipStats:
    """What one mode did on one clip, in counts and lists that pool across clips."""

    kind: str
    frames: int
    seconds: float
    object_frames: int = 0
    matched: int = 0
    dropouts: int = 0
    ious: list[float] = field(default_factory=list)
    jitters: list[float] = field(default_factory=list)
    scores: object = None  # TrackingScores, or None without track ids
    rekeyed: bool | None = None


def run_mode(analyser, clip: Clip, batch: int) -> tuple[list[dict], float]:
    """(one result per frame, seconds inside the analyser's calls) over the clip, ``batch``
    frames a call, from a reset."""
    analyser.reset()
    results, seconds = [], 0.0
    for start in range(0, len(clip), batch):
        frames = list(clip.frames[start : start + batch])
        tick = time.perf_counter()
        results += analyser(frames)
        seconds += time.perf_counter() - tick
    return results, seconds


def matches(similarity: np.ndarray) -> dict[int, int]:
    """{ground-truth index: prediction index}: one to one, greedily, IoU >= MATCH_IOU."""
    rows, columns = np.arange(similarity.shape[0]), np.arange(similarity.shape[1])
    return dict(greedy_match(similarity, rows, columns, MATCH_IOU))


def clip_stats(
    clip: Clip,
    results: list[dict],
    seconds: float,
    analyser=None,
    min_visibility: float = MIN_VISIBILITY,
) -> ClipStats:
    """Score one mode's results on one clip (see the module's notes for the definitions)."""
    stats = ClipStats(clip.kind, len(clip), seconds)
    similarities = [
        compute_overlaps_masks(clip.masks[t], np.asarray(results[t]["masks"])).astype(np.float64)
        for t in range(len(clip))
    ]
    ignored = [seen < min_visibility for seen in clip.visibility]
    counted, matched = [], []  # per frame: {counted track ids}, {track id: prediction index}
    for t, similarity in enumerate(similarities):
        pairs = {g: p for g, p in matches(similarity).items() if not ignored[t][g]}
        counted.append(set(clip.track_ids[t][~ignored[t]].tolist()))
        matched.append({int(clip.track_ids[t][g]): p for g, p in pairs.items()})
        stats.ious += [float(similarity[g, p]) for g, p in pairs.items()]
    stats.object_frames = sum(len(ids) for ids in counted)
    stats.matched = len(stats.ious)
    stats.dropouts = count_dropouts(counted, matched)
    if clip.kind in CLIP_KINDS:  # true moves are exact only in the shapes clips
        stats.jitters = mask_jitters(clip, results, matched)
    predicted = [np.asarray(r["track_ids"]) for r in results]
    if any((ids >= 1).any() for ids in predicted):
        stats.scores = tracking_scores(clip.track_ids, predicted, similarities, ignored=ignored)
    keyframes = keyframes_of(results, analyser)
    if clip.cut_frame is not None and keyframes is not None:
        stats.rekeyed = bool({clip.cut_frame, clip.cut_frame + 1} & keyframes)
    return stats


def keyframes_of(results: list[dict], analyser=None) -> set[int] | None:
    """The frames the analyser ran a full detection on: those whose result has a non-empty
    "keyframe" (why it was detected), else the analyser's ``keyframes`` list; None when
    neither says."""
    if results and all("keyframe" in r for r in results):
        return {t for t, r in enumerate(results) if r["keyframe"]}
    keyframes = getattr(analyser, "keyframes", None)
    return None if keyframes is None else set(keyframes)


def count_dropouts(counted: list[set[int]], matched: list[dict[int, int]]) -> int:
    """Objects counted in frame t, unmatched there, but matched in frames t-1 and t+1."""
    return sum(
        track_id in matched[t - 1] and track_id in matched[t + 1] and track_id not in matched[t]
        for t in range(1, len(counted) - 1)
        for track_id in counted[t]
    )


def mask_jitters(clip: Clip, results: list[dict], matched: list[dict[int, int]]) -> list[float]:
    """1 - IoU(predicted mask at t, predicted mask at t-1 moved by the true shift), for each
    object matched in both frames whose ground truth is exactly that move."""
    out = []
    for t in range(1, len(clip)):
        for k, track_id in enumerate(clip.track_ids[t].tolist()):
            shift = clip.shifts[t][k]
            before = np.flatnonzero(clip.track_ids[t - 1] == track_id)
            if track_id not in matched[t] or track_id not in matched[t - 1] or not len(before):
                continue
            if not np.isfinite(shift).all() or np.any(shift != np.round(shift)):
                continue
            moved = shifted_mask(clip.masks[t - 1][:, :, before[0]], shift)
            if _iou(moved, clip.masks[t][:, :, k]) < RIGID_IOU:
                continue  # the truth is not a plain move here (occlusion, border, zoom)
            now = np.asarray(results[t]["masks"])[:, :, matched[t][track_id]]
            then = np.asarray(results[t - 1]["masks"])[:, :, matched[t - 1][track_id]]
            out.append(1.0 - _iou(now, shifted_mask(then, shift)))
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# ------------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------------
def pooled_row(mode: str, group: str, stats: list[ClipStats]) -> dict:
    """One table row: the clips' counts and lists pooled, the tracking scores combined."""
    frames, seconds = sum(s.frames for s in stats), sum(s.seconds for s in stats)
    objects = sum(s.object_frames for s in stats)
    ious = [v for s in stats for v in s.ious]
    jitters = [v for s in stats for v in s.jitters]
    tracked = [s.scores for s in stats if s.scores is not None]
    scores = combined_scores(tracked) if len(tracked) == len(stats) and tracked else None
    rekeyed = [s.rekeyed for s in stats if s.rekeyed is not None]
    return {
        "mode": mode,
        "clips": f"{group} ({len(stats)})",
        "IDF1": _number(scores and scores.idf1, 3),
        "MOTA": _number(scores and scores.mota, 3),
        "ID sw": "n/a" if scores is None else str(scores.id_switches),
        "dropouts /100": _number(100 * sum(s.dropouts for s in stats) / max(1, objects), 2),
        "jitter p50": _number(np.median(jitters) if jitters else None, 3),
        "jitter p95": _number(np.percentile(jitters, 95) if jitters else None, 3),
        "mask IoU": _number(np.mean(ious) if ious else None, 3),
        "matched": _number(sum(s.matched for s in stats) / max(1, objects), 3),
        "frames/s": _number(frames / seconds if seconds else None, 1),
        "cut re-keyed": f"{sum(rekeyed)}/{len(rekeyed)}" if rekeyed else "-",
    }


def _number(value, digits: int) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def table_rows(results: dict[str, list[ClipStats]]) -> list[dict]:
    """Per mode: a row per clip kind, then the shapes clips (all but pan_zoom) together."""
    rows = []
    for mode, stats in results.items():
        kinds = [k for k in KINDS if any(s.kind == k for s in stats)]
        for kind in kinds:
            rows.append(pooled_row(mode, kind, [s for s in stats if s.kind == kind]))
        shapes = [s for s in stats if s.kind in CLIP_KINDS]
        if len(kinds) > 1 and shapes:
            rows.append(pooled_row(mode, "**shapes clips**", shapes))
    return rows


def markdown(rows: list[dict]) -> str:
    heads = list(rows[0])
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row.values()) + " |" for row in rows])


def benchmark(
    model, clips: list[Clip], modes=MODES, min_visibility=MIN_VISIBILITY, progress=print
) -> dict[str, list[ClipStats]]:
    """Every mode over every clip: {mode: per-clip stats}."""
    batch = max(1, int(model.config.IMAGES_PER_GPU))
    model.detect(list(clips[0].frames[:batch]))  # warm-up, untimed
    analysers = [(name, factory(model)) for name, factory in modes]
    out: dict[str, list[ClipStats]] = {name: [] for name, _ in modes}
    for clip in clips:  # the modes take turns clip by clip: a machine's drift slows all alike
        for name, analyser in analysers:
            results, seconds = run_mode(analyser, clip, batch)
            out[name].append(clip_stats(clip, results, seconds, analyser, min_visibility))
        progress(f"{clip.name}: {len(clip)} frames, {len(modes)} modes done")
    return out


def machine() -> str:
    """The CPU's model name (Linux), else the platform's, with its core count."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(
            line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")
        )
    except (OSError, StopIteration):
        name = platform.processor() or platform.machine()
    return f"{name}, {os.cpu_count()} cores"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.video_tracking", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--model", help=f"the demo's trained checkpoint (default: {CACHE})")
    parser.add_argument("--seeds", type=int, default=3, help="clips of each kind")
    parser.add_argument("--frames", type=int, default=40, help="frames per clip")
    parser.add_argument("--kinds", default=",".join(KINDS), help="clip kinds, comma-separated")
    parser.add_argument("--modes", default=",".join(n for n, _ in MODES), help="modes to run")
    parser.add_argument("--balloon", type=Path, default=BALLOON, help="the balloon dataset")
    parser.add_argument(
        "--min-visibility",
        type=float,
        default=MIN_VISIBILITY,
        help="objects less visible than this count neither way",
    )
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    modes = [(n, f) for n, f in MODES if n in args.modes.split(",")]
    if set(kinds) - set(KINDS) or not modes:
        sys.exit(f"error: --kinds from {', '.join(KINDS)}; --modes from {[n for n, _ in MODES]}")
    start = time.perf_counter()
    model = load_model(args.model)
    clips = make_clips(kinds, args.seeds, args.frames, args.balloon)
    results = benchmark(model, clips, modes, args.min_visibility)
    print(
        f"\nmodel {args.model or CACHE}; {len(clips)} clips of {args.frames} frames, "
        f"objects under {args.min_visibility:g} visible ignored, "
        f"{model.config.IMAGE_MIN_DIM} px; {machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{time.perf_counter() - start:.0f} s in all\n"
    )
    print(markdown(table_rows(results)))


if __name__ == "__main__":
    main()
