"""Frame analysers: what a video run does with each frame, chosen once per run.

A frame analyser takes a video's frames in order, a batch at a time, and answers one
``MaskRCNN.detect``-style dict per frame with one more key, ``"track_ids"``: int64 [N], the
track id of each instance (>= 1), or -1 where an instance has none. It keeps state between
calls (tracks, the previous frame), so the frames of one video go through one analyser, in
order; :meth:`reset` starts a new video.

- :class:`PerFrame`: ``detect`` on every frame, nothing carried between frames (every id -1).
- :class:`Tracked`: ``detect`` on every frame, or on keyframes only with masks carried by
  optical flow between them (:mod:`~mrcnn.tracking.keyframes`); a
  :class:`~mrcnn.tracking.Tracker` gives ids, and a
  :class:`~mrcnn.tracking.stable.Stabiliser` may smooth what is shown per track.

:func:`video_analyser` builds the analyser of a video mode ("per-frame", "tracked", "stable")
with defaults from the model's config.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import numpy as np

from mrcnn.tracking.frame_motion import DenseFlow, FrameFlow, FrameStep
from mrcnn.tracking.keyframes import Keyframer, parse_interval
from mrcnn.tracking.stable import Stabiliser, StableSettings
from mrcnn.tracking.tracker import Tracker, TrackerSettings

__all__ = [
    "DEFAULT_KEYFRAME_INTERVAL",
    "VIDEO_MODES",
    "FrameAnalyser",
    "PerFrame",
    "Tracked",
    "detection_floor",
    "set_detection_threshold",
    "video_analyser",
]


class FrameAnalyser(Protocol):
    """Frames of one video, in order -> one detect-style dict per frame, with "track_ids"."""

    def reset(self) -> None:  # pragma: no cover - a protocol
        """Forget the video so far (tracks, previous frames): the next frame starts a new one."""
        ...

    def __call__(self, frames: Sequence[np.ndarray]) -> list[dict]:  # pragma: no cover
        """Analyse the next ``frames`` (RGB [H, W, 3] uint8, video order).

        Returns:
            per frame: "rois" int32 [N, 4] (y1, x1, y2, x2), "boxes" float32 [N, 4]
            (x1, y1, x2, y2), "class_ids" int32 [N], "scores" float32 [N], "masks" bool
            [H, W, N] (original-image pixels) and "track_ids" int64 [N] (-1: no track).
        """
        ...


class PerFrame:
    """Each frame detected on its own: ``model.detect``, every track id -1."""

    def __init__(self, model) -> None:
        self.model = model

    def reset(self) -> None:
        """Nothing is carried between frames."""

    def __call__(self, frames: Sequence[np.ndarray]) -> list[dict]:
        results = self.model.detect(list(frames))
        for result in results:
            result["track_ids"] = np.full(len(result["scores"]), -1, dtype=np.int64)
        return results


class Tracked:
    """Every frame (or only keyframes) detected, a tracker for ids, optionally a stabiliser.

    The pieces are chosen once:

    Args:
        model: has ``detect(list of RGB [H, W, 3] uint8) -> list of dicts`` and ``config``.
        tracker: gives the ids (:class:`~mrcnn.tracking.Tracker` defaults when None).
        stabiliser: smooths what is shown per track (None: the detections as detected, with
            their ids).
        keyframer: detects only keyframes and carries masks between them by optical flow
            (None: every frame is detected).
        score_floor: detection runs down to this score while the analyser detects (the
            model's DETECTION_MIN_CONFIDENCE is restored after each call), so that the
            tracker's second pass and the stabiliser's hysteresis see the weak detections;
            None keeps the model's threshold.
        flow: the optical flow between frames (DIS when None).
    """

    def __init__(
        self,
        model,
        tracker: Tracker | None = None,
        *,
        stabiliser: Stabiliser | None = None,
        keyframer: Keyframer | None = None,
        score_floor: float | None = None,
        flow: DenseFlow | None = None,
    ) -> None:
        self.model = model
        self.tracker = tracker if tracker is not None else Tracker()
        self.stabiliser = stabiliser
        self.keyframer = keyframer
        self.score_floor = score_floor
        # The flow between frames, shared by the keyframer and the stabiliser (which moves
        # its memory by it); not computed when neither is there.
        needs_flow = keyframer is not None or stabiliser is not None
        self.frame_flow = FrameFlow(flow) if needs_flow else None

    def reset(self) -> None:
        for part in (self.tracker, self.stabiliser, self.keyframer, self.frame_flow):
            if part is not None:
                part.reset()

    def __call__(self, frames: Sequence[np.ndarray]) -> list[dict]:
        if self.keyframer is not None:
            return [self._one(frame) for frame in frames]
        found = self._detect(frames)  # the whole batch in one call (IMAGES_PER_GPU)
        steps = [self._step(frame) for frame in frames]
        return [self._tracked(r, step, "every") for r, step in zip(found, steps, strict=True)]

    def _step(self, frame: np.ndarray) -> FrameStep | None:
        return None if self.frame_flow is None else self.frame_flow(frame)

    def _one(self, frame: np.ndarray) -> dict:
        """One frame: carried by flow, or detected when it is a keyframe."""
        step = self.frame_flow(frame)
        carried, reason = self.keyframer.carry(step)
        if carried is not None:
            return self._tracked(carried, step, "")
        result = self._detect([frame])[0]
        self.keyframer.keyed(step.grey, result)
        return self._tracked(result, step, reason)

    def _detect(self, frames: Sequence[np.ndarray]) -> list[dict]:
        with detection_floor(self.model, self.score_floor):
            return self.model.detect(list(frames))

    def _tracked(self, result: dict, step: FrameStep | None, keyframe: str) -> dict:
        """``result`` with track ids, or what the stabiliser shows of it; "keyframe" says why
        the frame was detected ("every": every frame is; "": carried by flow)."""
        motions = result.pop("motions", None)  # carried frames: each instance's move
        tracks = self.tracker.update(result)
        if self.stabiliser is None:
            result["track_ids"] = tracks.track_ids
        else:
            result = self.stabiliser(result, tracks, step, motions=motions)
        result["keyframe"] = keyframe
        return result


@contextmanager
def detection_floor(model, floor: float | None) -> Iterator[None]:
    """Within the block, ``model`` keeps detections down to ``floor`` (None: unchanged)."""
    before = float(model.config.DETECTION_MIN_CONFIDENCE)
    if floor is None or floor == before:
        yield
        return
    try:
        set_detection_threshold(model, floor)
        yield
    finally:
        set_detection_threshold(model, before)


def set_detection_threshold(model, threshold: float) -> None:
    """Make ``model`` keep detections scoring at least ``threshold`` from its next ``detect``:
    DETECTION_MIN_CONFIDENCE of its config (and of its network's, where that is another
    object), then the network reads its config again (the detection layer reads it once)."""
    config = model.config
    net = getattr(model, "net", None)
    for each in {id(c): c for c in (config, getattr(net, "config", config))}.values():
        each.DETECTION_MIN_CONFIDENCE = float(threshold)
    configure = getattr(net, "configure", None)
    if configure is not None:
        configure()


#: The video modes: what :func:`video_analyser` builds for each name.
VIDEO_MODES = ("per-frame", "tracked", "stable")
#: The keyframe interval of a video run unless one is given (see docs/splash.md).
DEFAULT_KEYFRAME_INTERVAL: int | str = 1


def video_analyser(
    model,
    mode: str = "stable",
    *,
    keyframe_interval: int | str = DEFAULT_KEYFRAME_INTERVAL,
    stable: StableSettings | None = None,
    tracker: TrackerSettings | None = None,
    flow: str = "dis",
) -> FrameAnalyser:
    """The frame analyser of a video mode, with defaults from the model's config.

    Args:
        model: a MaskRCNN (or anything with ``detect`` and ``config``).
        mode: "per-frame" (each frame detected alone, no ids), "tracked" (track ids on the
            detections as detected) or "stable" (track ids, and what is shown smoothed per
            track: :mod:`mrcnn.tracking.stable`).
        keyframe_interval: 1 detects every frame; K > 1 every K-th, or "auto": masks are
            carried by optical flow between keyframes (:mod:`mrcnn.tracking.keyframes`).
            Needs a tracked mode.
        stable: the stabiliser's settings; by default it shows tracks from the model's
            DETECTION_MIN_CONFIDENCE and keeps them down to half of it.
        tracker: the tracker's settings; by default its two score levels are the stabiliser's,
            and it confirms a track after ``stable.min_age`` matches ("tracked") or at once
            ("stable": the stabiliser decides when a track is shown).
        flow: "dis" or "farneback", the optical flow between keyframes.
    Raises:
        ValueError: an unknown mode, a bad interval, or keyframes with "per-frame".
    """
    if mode not in VIDEO_MODES:
        raise ValueError(f"video mode {mode!r}: use one of {', '.join(VIDEO_MODES)}")
    interval = parse_interval(keyframe_interval)
    if mode == "per-frame":
        if interval != 1:
            raise ValueError(
                "keyframes carry tracks between detections: use --video-mode stable or "
                "tracked with --keyframe-interval, or interval 1 with per-frame"
            )
        return PerFrame(model)
    on_score = float(model.config.DETECTION_MIN_CONFIDENCE)
    stable = stable if stable is not None else StableSettings(on_score, on_score / 2)
    if tracker is None:  # stable: the stabiliser decides when a track is old enough to show
        min_hits = 1 if mode == "stable" else stable.min_age
        tracker = TrackerSettings(
            high_score=stable.on_score, low_score=stable.off_score, min_hits=min_hits
        )
    return Tracked(
        model,
        Tracker(tracker),
        stabiliser=Stabiliser(stable) if mode == "stable" else None,
        keyframer=None if interval == 1 else Keyframer(interval),
        flow=DenseFlow(flow),
        score_floor=min(tracker.low_score, stable.off_score) if mode == "stable" else None,
    )
