"""Keyframes: full detection on some frames, masks carried by optical flow between them.

Detection is the slow part of a video run; between two frames a mask mostly moves. With
keyframes, :class:`Keyframer` lets ``detect`` run only on every K-th frame (or, with
``interval="auto"``, as often as the measured motion needs), and on the frames between carries
the last frame's masks forward with dense optical flow (OpenCV's DIS by default, Farneback as
the alternative; :mod:`~mrcnn.tracking.frame_motion`):

- **Direction.** The flow is computed from the *new* frame back to the previous one: for each
  pixel of the new frame, where it was before (``previous(x + flow(x)) ~ current(x)``). Each
  mask moves as a whole by minus the median of that flow over its inner part, read where the
  mask lands and refined by aligning the object's edge (:func:`carry_masks`); the flow the
  other way round, or its sign wrong, would move masks backwards.
- **Confidence.** A keyframe is forced, whatever the interval, when carrying masks stops being
  trustworthy:
  ``cut``: the new frame is not the previous one moved (the mean absolute difference between
  the new frame and the previous frame warped by the flow exceeds ``cut_difference`` grey
  levels; a scene cut, a flash);
  ``motion``: something new appeared where no carried mask is: the share of the frame that
  differs by over ``change_grey`` grey levels from the keyframe moved by the camera's motion
  (:class:`~mrcnn.tracking.new_content.NewContent`) has grown by more than
  ``new_motion_fraction`` of the frame since the first frame carried after the keyframe (an
  object coming in; a change that was there at the keyframe, such as a walker the model
  does not detect, does not force a keyframe on every frame);
  ``lost``: a carried mask has shrunk under ``lost_fraction`` of its area at the keyframe
  (leaving the frame), or the pixels under it no longer look like those it was carried from
  (mean grey difference over ``cut_difference``: the object went behind another, or the flow
  lost it).
- **Auto.** ``interval="auto"`` keys when the masks have moved ``drift_px`` pixels on average
  since the last keyframe (their mean move, summed frame by frame): fast motion keys often,
  slow motion rarely, and never more than ``max_interval`` frames apart.

Carried detections keep their keyframe's class and score; boxes are the carried masks'.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mrcnn.tracking.detections import Detections, detections_from_masks
from mrcnn.tracking.frame_motion import (
    FrameStep,
    sampling_grid,
    shifted_soft,
    shifted_window,
    window_of,
)
from mrcnn.tracking.new_content import NewContent

__all__ = [
    "KeyframeSettings",
    "Keyframer",
    "appearance_change",
    "carry_masks",
]

#: The reasons a frame is a keyframe, as ``result["keyframe"]`` gives them ("" otherwise).
REASONS = ("first", "interval", "auto", "cut", "motion", "lost")


def carry_masks(
    soft: np.ndarray, step: FrameStep, expected: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Soft masks of the previous frame moved into this one, each as a whole by its object's
    motion (:meth:`~mrcnn.tracking.frame_motion.FrameStep.object_motion`, measured where the
    mask lands: the backward flow is defined on this frame's pixels). Moving masks whole
    keeps their edges sharp; warping every pixel by its own flow would drag the background's
    still flow into the object's edge, and the mask would smear and grow frame after frame.

    Args:
        soft: float32 [H, W, N] masks of the previous frame (inside where >= 0.5).
        step: this frame and its backward flow to the previous one (a flow is needed).
        expected: float64 [N, 2] (dy, dx) the move each mask is expected to make (its last
            one), where its flow is read first; zeros when None.
    Returns:
        (float32 [H, W, N] moved masks, float64 [N, 2] (dy, dx) the move of each).
    """
    moved = np.zeros_like(soft)
    shifts = np.zeros((soft.shape[2], 2)) if expected is None else np.array(expected, float)
    for i in range(soft.shape[2]):
        mask = soft[:, :, i] >= 0.5
        landing = None
        for _ in range(2):  # read the flow where the mask is expected; again if it was not
            guess = shifts[i].copy()
            landing = shifted_soft(mask.astype(np.float32), guess) >= 0.5
            found = step.flow_motion(landing)
            if found is None:
                break
            shifts[i] = found
            if np.abs(found - guess).max() <= 0.5:
                break
        if landing is not None and landing.any():  # then its edge aligned, once
            shifts[i] = step.refine(landing, shifts[i])
        moved[:, :, i] = shifted_soft(soft[:, :, i], shifts[i])
    return moved, shifts


def appearance_change(
    previous: np.ndarray, current: np.ndarray, masks: np.ndarray, shifts: np.ndarray
) -> np.ndarray:
    """float64 [N] mean absolute grey difference inside each carried mask between this frame
    and the previous one moved by the mask's shift: small when the mask still lies on the
    object it was carried with, large when it landed on something else (the object left,
    went behind another, or the flow lost it)."""
    changes = np.zeros(masks.shape[2])
    previous = previous.astype(np.float32)
    for i in range(masks.shape[2]):
        window = window_of(masks[:, :, i], 0)
        if window is None:
            continue
        moved = shifted_window(previous, shifts[i], window)  # over the mask's window only
        inside = masks[:, :, i][window]
        here = current[window][inside].astype(np.float32)
        changes[i] = float(np.abs(here - moved[inside]).mean())
    return changes


@dataclass(frozen=True)
class KeyframeSettings:
    """When a keyframe is forced (see the module docstring); distances in pixels of the frame."""

    cut_difference: float = 20.0
    new_motion_fraction: float = 0.01
    change_grey: float = 30.0
    lost_fraction: float = 0.5
    drift_px: float = 6.0
    max_interval: int = 15

    def __post_init__(self) -> None:
        positive = ("cut_difference", "new_motion_fraction", "change_grey", "drift_px")
        bad = [name for name in positive if not getattr(self, name) > 0]
        if not 0 < self.lost_fraction < 1:
            bad.append("lost_fraction (in (0, 1))")
        if int(self.max_interval) != self.max_interval or self.max_interval < 1:
            bad.append("max_interval (a whole number >= 1)")
        if bad:
            raise ValueError(f"KeyframeSettings: bad {', '.join(bad)} (got {self!r})")


def parse_interval(value: int | str) -> int | str:
    """A keyframe interval: a whole number >= 1, or "auto"."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(value).strip() not in (str(number), f"{number}.0"):
        raise ValueError(f"keyframe interval {value!r}: give a whole number >= 1, or 'auto'")
    return number


class Keyframer:
    """Decides, frame by frame, whether to detect or to carry the last masks by optical flow.

    Args:
        interval: detect every ``interval``-th frame (1: every frame), or "auto".
        settings: when confidence forces a keyframe (:class:`KeyframeSettings` when None).

    Per frame, in order: :meth:`carry` answers the carried detections, or None with the reason
    the frame must be detected; a detected frame is then given back with :meth:`keyed`. The
    flow between frames comes from the caller
    (:class:`~mrcnn.tracking.frame_motion.FrameFlow`), who shares it.
    """

    def __init__(self, interval: int | str = 5, settings: KeyframeSettings | None = None) -> None:
        self.interval = parse_interval(interval)
        self.settings = settings if settings is not None else KeyframeSettings()
        self._new_content = NewContent(self.settings.change_grey)
        self.reset()

    def reset(self) -> None:
        """Forget the video so far: the next frame is a keyframe."""
        self._grey: np.ndarray | None = None
        self._masks = self._class_ids = self._scores = self._key_areas = self._shifts = None
        self._since_key = 0
        self._drift = 0.0
        self._baseline_motion: float | None = None

    def carry(self, step: FrameStep) -> tuple[dict | None, str]:
        """(detect-style dict carried into this frame, "") or (None, reason) when it must be
        detected; reason is one of :data:`REASONS`. The carried dict has "motions" float64
        [N, 2] too: (dy, dx) each instance's move since the previous frame.

        Args:
            step: this frame and its flow to the previous one
                (:class:`~mrcnn.tracking.frame_motion.FrameFlow`).
        """
        grey, flow = step.grey, step.flow
        if self._grey is None or flow is None or self._grey.shape != grey.shape:
            return None, "first"
        due = self._due()
        if due:
            return None, due
        soft, shifts = carry_masks(self._masks, step, self._shifts)
        moved = soft >= 0.5
        reason = self._distrust(grey, flow, moved, shifts)
        if reason:
            return None, reason
        self._grey, self._masks = grey, soft  # soft: sub-pixel moves add up, not round away
        self._shifts = shifts
        self._since_key += 1
        carried = detections_from_masks(
            moved, self._class_ids.copy(), self._scores.copy(), motions=shifts.copy()
        )
        return carried, ""

    def keyed(self, grey: np.ndarray, result: dict) -> None:
        """Remember a detected frame (grey uint8 [H, W]) and its detect dict."""
        found = Detections.from_dict(result)
        if found.masks is None:
            raise ValueError("keyframes carry masks: the detections need 'masks' bool [H, W, N]")
        self._grey = grey
        self._masks = found.masks.astype(np.float32)
        self._class_ids = found.class_ids.astype(np.int32)
        self._scores = found.scores.astype(np.float32)
        self._key_areas = found.masks.sum(axis=(0, 1))
        self._shifts = None  # no move known yet for the new detections
        self._new_content.keyed(grey, _union(found.masks))
        self._since_key, self._drift = 0, 0.0
        self._baseline_motion: float | None = None

    def _due(self) -> str:
        """ "interval" or "auto" when the schedule alone calls for a keyframe now."""
        if self.interval == "auto":
            return "auto" if self._since_key + 1 >= self.settings.max_interval else ""
        return "interval" if self._since_key + 1 >= self.interval else ""

    def _distrust(
        self, grey: np.ndarray, flow: np.ndarray, moved: np.ndarray, shifts: np.ndarray
    ) -> str:
        """The reason carrying masks into this frame cannot be trusted, or ""."""
        s = self.settings
        map_x, map_y = sampling_grid(flow)
        warped = cv2.remap(
            self._grey, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        if np.abs(grey.astype(np.float32) - warped).mean() > s.cut_difference:
            return "cut"
        areas = moved.sum(axis=(0, 1))
        if np.any(areas < s.lost_fraction * self._key_areas):
            return "lost"
        if np.any(appearance_change(self._grey, grey, moved, shifts) > s.cut_difference):
            return "lost"
        changed = self._new_content(grey, flow, _union(moved), _union(self._masks >= 0.5))
        if self._baseline_motion is None:  # change the keyframe's detections left unexplained
            self._baseline_motion = changed
        elif changed > self._baseline_motion + s.new_motion_fraction:
            return "motion"
        if self.interval == "auto":
            self._drift += _mean_move(moved, shifts)
            if self._drift > s.drift_px:
                return "auto"
        return ""


def _union(masks: np.ndarray) -> np.ndarray:
    """bool [H, W]: inside any of bool ``masks`` [H, W, N]."""
    return masks.any(axis=2) if masks.shape[2] else np.zeros(masks.shape[:2], bool)


def _mean_move(masks: np.ndarray, shifts: np.ndarray) -> float:
    """Mean length in pixels of the moves ``shifts`` float [N, 2] of the non-empty bool
    ``masks`` [H, W, N]; 0 without any."""
    present = masks.any(axis=(0, 1)) if masks.shape[2] else np.zeros(0, bool)
    return float(np.linalg.norm(shifts[present], axis=1).mean()) if present.any() else 0.0
