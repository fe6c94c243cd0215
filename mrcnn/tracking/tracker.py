"""A multi-object tracker: one track id per object, stable from frame to frame of a video.

Feed :meth:`Tracker.update` the detections of each frame in order, as
:meth:`mrcnn.model.MaskRCNN.detect` returns them for one image; it answers with the track id of
every detection. The algorithm is ByteTrack's (Zhang et al., 2022), with a plain motion model:

1. Every live track's box is predicted for this frame: its last matched box moved by its
   smoothed velocity (:mod:`~mrcnn.tracking.motion`), and its last mask moved by as much.
2. Detections scoring at least ``high_score`` are matched to all live tracks, greedily, highest
   IoU first, one to one, no pair under ``match_iou`` and (``class_aware``) no pair of
   different classes. The IoU is the masks' where the track and the detection both have one,
   the boxes' elsewhere (:class:`~mrcnn.tracking.association.MaskOrBoxIoU`, pluggable).
3. ByteTrack's second pass: detections scoring in [``low_score``, ``high_score``) are matched
   to the tracks still unmatched (``low_match_iou``). An occluded or blurred object's score
   dips; this pass keeps its track going instead of starting a new one afterwards.
4. High-score detections left over start tentative tracks. A tentative track is confirmed, and
   only then given an id (1, 2, 3, ... in confirmation order, never reused), when it has been
   matched in ``min_hits`` consecutive frames, the first included; a tentative track that
   misses a frame is dropped (one-frame false positives never take an id). ``min_hits=1``
   confirms a track on its first frame. A confirmed track keeps its id for as long as it lives.
5. A track left unmatched is lost: its box keeps moving with its velocity and it can be matched
   again, keeping its id (an object that walks behind a pillar and out again), until it has
   missed more than ``max_lost_frames`` frames in a row; then it is forgotten.

Why written here rather than taken from a library: the two maintained ones on PyPI,
``trackers`` (2.6.1) and ``supervision`` (0.31.2), associate boxes only, never masks; and
``trackers`` pulls in opencv-python (a GUI build that clashes with our opencv-python-headless),
rich and requests, ``supervision`` pyyaml, requests, defusedxml, pydeprecate and scipy. The
whole algorithm is a couple of hundred lines of numpy on top of the project's own IoUs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from mrcnn.evaluation.overlaps import mask_windows
from mrcnn.tracking.association import (
    Association,
    MaskOrBoxIoU,
    PredictedTracks,
    greedy_match,
)
from mrcnn.tracking.detections import Detections
from mrcnn.tracking.motion import (
    ConstantVelocity,
    MaskPatch,
    MotionModel,
    box_centre,
    moved_box,
)


@dataclass(frozen=True)
class TrackerSettings:
    """The tracker's thresholds, given once.

    Attributes:
        high_score: detections scoring at least this are matched first and may start tracks.
        low_score: detections scoring in [low_score, high_score) only continue unmatched
            tracks (ByteTrack's second pass); lower scores are ignored. ``low_score ==
            high_score`` turns the second pass off.
        match_iou: least IoU of a first-pass match.
        low_match_iou: least IoU of a second-pass match (stricter: weak detections are
            trusted only where the track is expected).
        min_hits: consecutive matched frames that confirm a new track and give it an id.
        max_lost_frames: frames in a row a confirmed track may go unmatched and still be
            matched again with its id.
        class_aware: a track matches detections of its own class only.
    """

    high_score: float = 0.5
    low_score: float = 0.1
    match_iou: float = 0.3
    low_match_iou: float = 0.5
    min_hits: int = 2
    max_lost_frames: int = 30
    class_aware: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.low_score <= self.high_score <= 1.0:
            problems.append("need 0 <= low_score <= high_score <= 1")
        if not (0.0 < self.match_iou <= 1.0 and 0.0 < self.low_match_iou <= 1.0):
            problems.append("match_iou and low_match_iou must be in (0, 1]")
        if int(self.min_hits) != self.min_hits or self.min_hits < 1:
            problems.append("min_hits must be a whole number >= 1")
        if int(self.max_lost_frames) != self.max_lost_frames or self.max_lost_frames < 0:
            problems.append("max_lost_frames must be a whole number >= 0")
        if problems:
            raise ValueError(f"TrackerSettings: {'; '.join(problems)} (got {self!r})")


@dataclass(frozen=True)
class Track:
    """A confirmed track alive in the current frame.

    Attributes:
        track_id: its id (>= 1).
        class_id: class of the detection it was last matched to.
        box: float64 [4] (y1, x1, y2, x2) original-image pixels: this frame's detection box
            when seen, else the box the motion model predicts.
        score: score of the detection it was last matched to.
        detection: index of its detection in this frame's input, -1 when not seen (lost).
        lost_frames: frames in a row it has gone unmatched; 0 when seen this frame.
        hits: frames it has been matched in, in all.
        velocity: float64 [2] (dy, dx) pixels per frame, the motion model's (zeros until
            its second match).
    """

    track_id: int
    class_id: int
    box: np.ndarray
    score: float
    detection: int
    lost_frames: int
    hits: int
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(2))


@dataclass(frozen=True)
class FrameTracks:
    """The tracker's answer for one frame.

    Attributes:
        frame: index of the frame since the tracker was made or reset, from 0.
        track_ids: int64 [N] track id of each input detection, in input order; -1 for a
            detection with no confirmed track (tentative, low-score and unmatched, or scoring
            under ``low_score``).
        tracks: the confirmed tracks alive, seen this frame or lost, by id.
    """

    frame: int
    track_ids: np.ndarray
    tracks: list[Track] = field(default_factory=list)

    @property
    def lost(self) -> list[Track]:
        """The tracks not seen this frame (boxes predicted)."""
        return [t for t in self.tracks if t.lost_frames > 0]


@dataclass
class _State:
    """A live track's memory between frames (boxes (y1, x1, y2, x2) float64 [4])."""

    track_id: int  # -1 while tentative
    class_id: int
    box: np.ndarray  # last matched box
    score: float
    mask: MaskPatch | None  # the last matched mask, inside its window
    velocity: np.ndarray | None = None  # (dy, dx) per frame; None until the second match
    hits: int = 1
    missed: int = 0  # frames since the last match
    predicted: np.ndarray | None = None  # this frame's predicted box
    detection: int = -1  # this frame's detection index, -1 when unmatched

    def shift(self, frames: int) -> np.ndarray:
        """(dy, dx) the motion model expects ``frames`` frames after the last match."""
        return np.zeros(2) if self.velocity is None else self.velocity * frames


class Tracker:
    """ByteTrack-style multi-object tracker over ``MaskRCNN.detect`` results (see the module
    docstring for the algorithm).

    Args:
        settings: thresholds; :class:`TrackerSettings` defaults when None.
        association: similarity of predicted tracks and detections
            (:class:`~mrcnn.tracking.association.MaskOrBoxIoU` when None); any callable
            ``(PredictedTracks, Detections) -> float [T, D]`` in [0, 1].
        motion: how velocities follow the matched boxes
            (:class:`~mrcnn.tracking.motion.ConstantVelocity` when None).
    """

    def __init__(
        self,
        settings: TrackerSettings | None = None,
        *,
        association: Association | None = None,
        motion: MotionModel | None = None,
    ) -> None:
        self.settings = settings if settings is not None else TrackerSettings()
        self.association = association if association is not None else MaskOrBoxIoU()
        self.motion = motion if motion is not None else ConstantVelocity()
        self.reset()

    def reset(self) -> None:
        """Forget every track and the frame size, and count ids from 1 again (a new video)."""
        self._tracks: list[_State] = []
        self._next_id = 1
        self._frame = 0
        self._frame_shape: tuple[int, int] | None = None

    def update(self, detections: Mapping) -> FrameTracks:
        """Track one frame.

        Args:
            detections: one image's dict from ``MaskRCNN.detect``: "rois" int32 [N, 4]
                (y1, x1, y2, x2) and/or "boxes" float32 [N, 4] (x1, y1, x2, y2, preferred: not
                rounded), original-image pixels; "scores" float32 [N]; "class_ids" int32 [N];
                optional "masks" bool [H, W, N] (None or absent: boxes only). Frames come in
                video order; masks keep one (H, W) per video.
        Returns:
            :class:`FrameTracks`: int64 [N] ids aligned with the detections, and the live
            confirmed tracks.
        Raises:
            ValueError: malformed detections, or masks of another size than earlier frames'.
        """
        found = Detections.from_dict(detections, self._frame_shape)
        self._frame_shape = found.frame_shape or self._frame_shape
        similarity = self._similarity(self._predict(found), found)
        matches, unmatched = self._associate(similarity, found.scores)
        track_ids = np.full(len(found), -1, dtype=np.int64)
        patches = _patches(found, [d for _, d in matches] + [int(d) for d in unmatched])
        for t, d in matches:
            self._observe(self._tracks[t], found, d, patches.get(d))
        self._age_unmatched()
        for d in unmatched:
            self._start(found, int(d), patches.get(int(d)))
        for track in self._tracks:
            if track.detection >= 0:
                track_ids[track.detection] = track.track_id
        result = FrameTracks(self._frame, track_ids, self._report())
        self._frame += 1
        return result

    # -- prediction and association -------------------------------------------------------------
    def _predict(self, found: Detections) -> PredictedTracks:
        """Every track's box (and, when this frame has masks, mask) moved to this frame."""
        for track in self._tracks:
            track.predicted = moved_box(track.box, track.shift(track.missed + 1))
            track.detection = -1
        count = len(self._tracks)
        has_mask = np.array([t.mask is not None for t in self._tracks], dtype=bool)
        masks = None
        if found.masks is not None and has_mask.any():
            masks = np.zeros((*found.masks.shape[:2], count), dtype=bool)
            for i, track in enumerate(self._tracks):
                if track.mask is not None:
                    track.mask.paste_shifted(masks[:, :, i], track.shift(track.missed + 1))
        boxes = np.array([t.predicted for t in self._tracks], dtype=np.float64).reshape(-1, 4)
        class_ids = np.array([t.class_id for t in self._tracks], dtype=np.int64)
        return PredictedTracks(boxes, class_ids, masks, has_mask)

    def _similarity(self, predicted: PredictedTracks, found: Detections) -> np.ndarray:
        """float64 [T, D] association similarities, class-gated; -1 where a pair may not match."""
        similarity = np.asarray(self.association(predicted, found), dtype=np.float64)
        expected = (len(predicted), len(found))
        if similarity.shape != expected:
            raise ValueError(
                f"the association {self.association!r} returned shape {similarity.shape}, "
                f"expected [tracks, detections] = {list(expected)}"
            )
        allowed = np.isfinite(similarity)
        if self.settings.class_aware:
            allowed &= predicted.class_ids[:, None] == found.class_ids[None, :]
        return np.where(allowed, similarity, -1.0)

    def _associate(
        self, similarity: np.ndarray, scores: np.ndarray
    ) -> tuple[list[tuple[int, int]], np.ndarray]:
        """ByteTrack's two passes: (track, detection) matches, and the high-score detections
        left unmatched (int [K], input order)."""
        s = self.settings
        high = np.flatnonzero(scores >= s.high_score)
        low = np.flatnonzero((scores >= s.low_score) & (scores < s.high_score))
        first = greedy_match(similarity, np.arange(len(self._tracks)), high, s.match_iou)
        left = np.setdiff1d(np.arange(len(self._tracks)), [t for t, _ in first])
        second = greedy_match(similarity, left, low, s.low_match_iou)
        unmatched = np.setdiff1d(high, [d for _, d in first])
        return first + second, unmatched

    # -- track life -----------------------------------------------------------------------------
    def _observe(self, track: _State, found: Detections, d: int, mask: MaskPatch | None) -> None:
        """Move ``track`` to detection ``d`` (its ``mask``, None without masks): velocity,
        box, mask, and confirmation."""
        box = found.boxes[d]
        measured = (box_centre(box) - box_centre(track.box)) / (track.missed + 1)
        track.velocity = self.motion.velocity(track.velocity, measured)
        track.box, track.score = box.copy(), float(found.scores[d])
        track.class_id = int(found.class_ids[d])
        # A mask-less detection clears the old mask: a stale shape would mislead the next IoU.
        track.mask = mask
        track.hits += 1
        track.missed = 0
        track.detection = d
        if track.track_id < 0 and track.hits >= self.settings.min_hits:
            track.track_id = self._new_id()

    def _age_unmatched(self) -> None:
        """Unmatched tracks miss a frame; tentative ones and those lost too long go."""
        alive = []
        for track in self._tracks:
            if track.detection < 0:
                track.missed += 1
                if track.track_id < 0 or track.missed > self.settings.max_lost_frames:
                    continue
            alive.append(track)
        self._tracks = alive

    def _start(self, found: Detections, d: int, mask: MaskPatch | None) -> None:
        """A new track from high-score detection ``d`` (its ``mask``, None without masks);
        confirmed at once if min_hits is 1."""
        track = _State(
            track_id=-1,
            class_id=int(found.class_ids[d]),
            box=found.boxes[d].copy(),
            score=float(found.scores[d]),
            mask=mask,
            detection=d,
        )
        if self.settings.min_hits <= 1:
            track.track_id = self._new_id()
        self._tracks.append(track)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _report(self) -> list[Track]:
        """The confirmed tracks, by id, boxes as seen or as predicted."""
        confirmed = sorted((t for t in self._tracks if t.track_id > 0), key=lambda t: t.track_id)
        return [
            Track(
                track_id=t.track_id,
                class_id=t.class_id,
                box=(t.box if t.detection >= 0 else t.predicted).copy(),
                score=t.score,
                detection=t.detection,
                lost_frames=t.missed,
                hits=t.hits,
                velocity=t.shift(1).copy(),
            )
            for t in confirmed
        ]


def _patches(found: Detections, kept: list[int]) -> dict[int, MaskPatch]:
    """Detection index -> its mask inside its window, for the ``kept`` detections (those that
    go on in a track); {} when the detections have no masks."""
    if found.masks is None or not kept:
        return {}
    windows = mask_windows(found.masks)
    return {d: MaskPatch.of(found.masks, d, windows[d]) for d in kept}
