"""A splash that holds still: what a video run shows of each track, smoothed over time.

Detected frame by frame, an instance blinks: its score dips under the threshold for a frame,
the detector misses it once, or its mask's edge shifts by a pixel or two with each new box.
:class:`Stabiliser` takes each frame's detections with their track ids (from
:class:`~mrcnn.tracking.Tracker`) and decides, per track, what is shown:

- **Hysteresis on scores.** A track starts being shown when its score reaches ``on_score`` and
  stays shown while it keeps scoring at least ``off_score`` (lower). A score dip from 0.92 to
  0.6 under a 0.7 threshold no longer switches the colour off for a frame.
- **Minimum age.** A track is shown from its ``min_age``-th matched frame, unless it scores
  at least ``sure_score`` (by default half way from ``on_score`` to 1): a one-frame false
  positive of middling score is never coloured, and a sure detection is coloured at once
  (waiting a frame for every track cost more on the benchmark's clips than the false
  positives it kept out: each new track's first frame went missing).
- **Holding through dropouts** (off by default). A shown track the detector misses keeps its
  mask, moved with the track's motion, for up to ``hold_frames`` frames. On the benchmark's
  clips the hysteresis alone leaves no one-frame dropout, while held masks were mostly
  objects that had gone behind another or out of the frame: false positives.
- **Mask smoothing that follows motion.** Each track keeps a soft mask (float [H, W]): last
  frame's, moved by the object's motion since then (its optical flow, refined by aligning
  its edge: :meth:`~mrcnn.tracking.frame_motion.FrameStep.object_motion`; sub-pixel, so the
  memory stays where the object is, not where it was), blended with this frame's detected
  mask, ``soft = (1 - m) * detected + m * moved``, and shown where ``soft >= 0.5``. With
  ``mask_memory`` m = 0.8 a pixel of this frame's mask is shown when the moved memory holds
  at least 0.375 of it (new pixels need support from the frames before) and a pixel missing
  from this frame's mask stays while the memory holds at least 0.625 (a notch in the edge
  for a frame or two does not show). This is a vote over recent frames aligned by motion,
  not a blur over time: a moving object's edge does not smear behind it. On the benchmark's
  shapes clips m = 0.8 halves the 95th percentile of the frame-to-frame mask change against
  per-frame detection while the masks stay as close to the truth (0.67 took off only a third;
  0.85 and more start to lag behind changes of shape); see benchmarks/RESULTS.md.

Each is turned off by a setting: ``off_score = on_score`` (no hysteresis), ``min_age = 1``,
``hold_frames = 0`` (the default), ``mask_memory = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrcnn.tracking.detections import Detections, detections_from_masks
from mrcnn.tracking.frame_motion import FrameStep, shifted_soft
from mrcnn.tracking.tracker import FrameTracks, Track

__all__ = ["StableSettings", "Stabiliser"]

#: Where a soft mask counts as inside.
SHOWN_AT = 0.5


@dataclass(frozen=True)
class StableSettings:
    """What :class:`Stabiliser` smooths, and by how much (see the module docstring).

    Attributes:
        on_score: least score that starts showing a track.
        off_score: least score that keeps a shown track shown (<= on_score; equal: no
            hysteresis).
        min_age: matched frames a track needs before it is shown (1: at once), unless it
            scores at least ``sure_score``.
        sure_score: a track scoring at least this is shown from its first frame; None: half
            way from ``on_score`` to 1 (0.85 for 0.7); ``math.inf``: ``min_age`` for all.
        hold_frames: frames a shown track stays shown, carried by its motion, while the
            detector misses it (0: it disappears at once).
        mask_memory: weight in [0, 1) of the motion-moved previous mask against this frame's
            detected one (0: the detected mask as it is).
    """

    on_score: float = 0.7
    off_score: float = 0.3
    min_age: int = 2
    sure_score: float | None = None
    hold_frames: int = 0
    mask_memory: float = 0.8

    @property
    def start_score(self) -> float:
        """The score from which a new track is shown at once (see ``sure_score``)."""
        return (1.0 + self.on_score) / 2 if self.sure_score is None else float(self.sure_score)

    def __post_init__(self) -> None:
        problems = []
        if not 0.0 <= self.off_score <= self.on_score <= 1.0:
            problems.append("need 0 <= off_score <= on_score <= 1")
        if self.sure_score is not None and not self.sure_score >= self.on_score:
            problems.append("sure_score must be >= on_score (math.inf: never)")
        if int(self.min_age) != self.min_age or self.min_age < 1:
            problems.append("min_age must be a whole number >= 1")
        if int(self.hold_frames) != self.hold_frames or self.hold_frames < 0:
            problems.append("hold_frames must be a whole number >= 0")
        if not 0.0 <= self.mask_memory < 1.0:
            problems.append("mask_memory must be in [0, 1)")
        if problems:
            raise ValueError(f"StableSettings: {'; '.join(problems)} (got {self!r})")


@dataclass
class _Shown:
    """One track's memory: its soft mask float32 [H, W], whether it is shown, last class/score."""

    soft: np.ndarray
    shown: bool
    class_id: int
    score: float


class Stabiliser:
    """Per-track smoothing of a tracked video's detections (see the module docstring).

    Call it once per frame, in order, with the frame's detections and the tracker's answer
    for them; :meth:`reset` before another video.
    """

    def __init__(self, settings: StableSettings | None = None) -> None:
        self.settings = settings if settings is not None else StableSettings()
        self.reset()

    def reset(self) -> None:
        """Forget every track (a new video)."""
        self._memory: dict[int, _Shown] = {}

    def __call__(
        self,
        detections: dict,
        tracks: FrameTracks,
        step: FrameStep | None = None,
        *,
        motions: np.ndarray | None = None,
    ) -> dict:
        """What to show this frame.

        Args:
            detections: the frame's ``MaskRCNN.detect`` dict (masks required: bool [H, W, N]).
            tracks: the tracker's :class:`~mrcnn.tracking.FrameTracks` for these detections.
            step: this frame and its optical flow to the previous one
                (:class:`~mrcnn.tracking.frame_motion.FrameFlow`); a seen track's memory
                moves by its object's motion
                (:meth:`~mrcnn.tracking.frame_motion.FrameStep.object_motion`). None: by the
                tracker's velocity (box centres, noisier).
            motions: float64 [N, 2] (dy, dx) each detection's move since the previous frame
                when already known (masks carried by the keyframer), used instead.
        Returns:
            a detect-style dict of the shown tracks, by track id: "rois" int32 [K, 4]
            (y1, x1, y2, x2, tight around the shown mask), "boxes" float32 [K, 4]
            (x1, y1, x2, y2), "class_ids" int32 [K], "scores" float32 [K] (the track's last
            detection's), "masks" bool [H, W, K] and "track_ids" int64 [K].
        Raises:
            ValueError: detections without masks.
        """
        found = Detections.from_dict(detections)
        if found.masks is None:
            raise ValueError(
                "Stabiliser needs masks: pass detect's dict with 'masks' bool [H, W, N] (for "
                "boxes alone, use the Tracker's ids without a Stabiliser)"
            )
        moves = _Moves(step, motions)
        memory = {}
        for track in tracks.tracks:
            kept = self._update(self._memory.get(track.track_id), track, found, moves)
            if kept is not None:
                memory[track.track_id] = kept
        self._memory = memory  # tracks the tracker forgot are forgotten here too
        return _shown_result(memory, found.masks.shape[:2])

    def _update(
        self, before: _Shown | None, track: Track, found: Detections, moves: _Moves
    ) -> _Shown | None:
        """The track's memory after this frame; None when there is nothing to keep."""
        if track.detection >= 0:
            return self._seen(before, track, found, moves)
        if before is None or not before.shown or track.lost_frames > self.settings.hold_frames:
            return None
        before.soft = shifted_soft(before.soft, track.velocity)  # held: carried by motion
        return before

    def _seen(
        self, before: _Shown | None, track: Track, found: Detections, moves: _Moves
    ) -> _Shown:
        s = self.settings
        mask = found.masks[:, :, track.detection]
        detected = mask.astype(np.float32)
        score = float(found.scores[track.detection])
        if before is None or s.mask_memory == 0:
            soft = detected
        else:
            # a track not shown yet needs no exact move: its memory only gathers votes
            moved = shifted_soft(before.soft, moves.of(track, mask, exact=before.shown))
            soft = (1.0 - s.mask_memory) * detected + s.mask_memory * moved
        if before is not None and before.shown:
            shown = score >= s.off_score
        else:
            old_enough = track.hits >= s.min_age or score >= s.start_score
            shown = score >= s.on_score and old_enough
        return _Shown(soft, shown, int(track.class_id), score)


@dataclass(frozen=True)
class _Moves:
    """How this frame's objects moved since the previous one."""

    step: FrameStep | None
    given: np.ndarray | None  # float64 [N, 2] (dy, dx) per detection, when known

    def of(self, track: Track, mask: np.ndarray, exact: bool = True) -> np.ndarray:
        """(dy, dx) of the object of ``track``, detected with bool ``mask`` [H, W]: as given,
        else measured in the frames (:meth:`FrameStep.object_motion`; the median flow alone,
        :meth:`FrameStep.flow_motion`, when not ``exact``), else the tracker's velocity (no
        flow, or no pixels)."""
        if self.given is not None:
            return np.asarray(self.given[track.detection], dtype=np.float64)
        measure = None
        if self.step is not None:
            measure = self.step.object_motion if exact else self.step.flow_motion
        found = None if measure is None else measure(mask)
        return track.velocity if found is None else found


def _shown_result(memory: dict[int, _Shown], shape: tuple[int, int]) -> dict:
    """The detect-style dict of the shown tracks with a non-empty mask, by track id."""
    ids = [i for i in sorted(memory) if memory[i].shown]
    masks = np.zeros((*shape, len(ids)), dtype=bool)
    for k, track_id in enumerate(ids):
        masks[:, :, k] = memory[track_id].soft >= SHOWN_AT
    keep = masks.any(axis=(0, 1))
    masks = masks[:, :, keep]
    ids = [i for i, k in zip(ids, keep, strict=True) if k]
    return detections_from_masks(
        masks,
        [memory[i].class_id for i in ids],
        [memory[i].score for i in ids],
        track_ids=np.array(ids, dtype=np.int64),
    )
