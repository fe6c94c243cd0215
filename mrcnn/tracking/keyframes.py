"""Keyframes: full detection on some frames, masks carried by optical flow between them.

Detection is the slow part of a video run; between two frames a mask mostly moves. With
keyframes, :class:`Keyframer` lets ``detect`` run only on every K-th frame (or, with
``interval="auto"``, as often as the measured motion needs), and on the frames between carries
the last frame's masks forward with dense optical flow (OpenCV's DIS by default, Farneback as
the alternative):

- **Direction.** The flow is computed from the *new* frame back to the previous one: for each
  pixel of the new frame, where it was before (``previous(x + flow(x)) ~ current(x)``). Each
  mask moves as a whole by minus the median of that flow over its inner part, read where the
  mask lands (:func:`carry_masks`); the flow the other way round, or its sign wrong, would
  move masks backwards.
- **Confidence.** A keyframe is forced, whatever the interval, when carrying masks stops being
  trustworthy:
  ``cut``: the new frame is not the previous one moved (the mean absolute difference between
  the new frame and the previous frame warped by the flow exceeds ``cut_difference`` grey
  levels; a scene cut, a flash);
  ``motion``: something new moves where no carried mask is: the part of the frame outside
  the masks that moves by over ``moving_px`` pixels against the background's own (median)
  motion has grown by more than ``new_motion_fraction`` of the frame since the first frame
  carried after the keyframe (an object coming in; motion that was there at the keyframe,
  such as a walker the model does not detect, does not force a keyframe on every frame);
  ``lost``: a carried mask has shrunk under ``lost_fraction`` of its area at the keyframe
  (leaving the frame), or the pixels under it no longer look like those it was carried from
  (mean grey difference over ``cut_difference``: the object went behind another, or the flow
  lost it).
- **Auto.** ``interval="auto"`` keys when the masks have moved ``drift_px`` pixels on average
  since the last keyframe (their mean flow, summed frame by frame): fast motion keys often,
  slow motion rarely, and never more than ``max_interval`` frames apart.

Carried detections keep their keyframe's class and score; boxes are the carried masks'.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mrcnn.tracking.detections import Detections, detections_from_masks

__all__ = [
    "DenseFlow",
    "FrameFlow",
    "KeyframeSettings",
    "Keyframer",
    "appearance_change",
    "carry_masks",
    "object_motion",
]

#: The reasons a frame is a keyframe, as ``result["keyframe"]`` gives them ("" otherwise).
REASONS = ("first", "interval", "auto", "cut", "motion", "lost")


class DenseFlow:
    """Dense optical flow between two frames, computed at most ``max_side`` pixels wide.

    Args:
        method: "dis" (OpenCV's DIS, medium preset: on flat-coloured objects its median flow
            is within 0.1 pixel of the true motion, the fast preset's within 0.3) or
            "farneback" (slower, and off by over a pixel on such objects).
        max_side: frames larger than this are shrunk before the flow and the flow scaled back
            (flow at full HD costs far more than it gains for masks).
    """

    def __init__(self, method: str = "dis", max_side: int = 512) -> None:
        if method not in ("dis", "farneback"):
            raise ValueError(f"flow method {method!r}: use 'dis' or 'farneback'")
        if max_side < 16:
            raise ValueError(f"max_side={max_side}: give at least 16 pixels")
        self.method, self.max_side = method, int(max_side)
        self._dis = None

    def backward(self, previous: np.ndarray, current: np.ndarray) -> np.ndarray:
        """float32 [H, W, 2] (dx, dy): for each pixel of ``current``, its offset to where it
        was in ``previous`` (both grey uint8 [H, W])."""
        height, width = current.shape
        scale = min(1.0, self.max_side / max(height, width))
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            current = cv2.resize(current, size, interpolation=cv2.INTER_AREA)
            previous = cv2.resize(previous, size, interpolation=cv2.INTER_AREA)
        flow = self._flow(current, previous)
        if scale < 1.0:
            flow = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR) / scale
        return flow

    def _flow(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        """OpenCV's flow from ``first`` to ``second``: first(x) ~ second(x + flow(x))."""
        if self.method == "farneback":
            return cv2.calcOpticalFlowFarneback(first, second, None, 0.5, 3, 15, 3, 5, 1.2, 0)
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return self._dis.calc(first, second, None)


def sampling_grid(flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(map_x, map_y) float32 [H, W] for ``cv2.remap``: each pixel plus its backward flow."""
    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs + flow[..., 0], ys + flow[..., 1]


#: Pixels taken off a mask's edge before its flow is read: DIS matches 8 x 8 patches, so
#: flow within half a patch of the edge mixes the object's motion with the background's.
EDGE_PX = 4


def object_motion(mask: np.ndarray, flow: np.ndarray) -> np.ndarray | None:
    """(dy, dx) float64 [2] the object under bool ``mask`` [H, W] (this frame's pixels) moved
    since the previous frame: minus the median backward ``flow`` [H, W, 2] over the mask's
    inner part (its edge mixes in the background's flow); None for an empty mask."""
    for edge in (EDGE_PX, 1, 0):
        if edge:
            kernel = np.ones((2 * edge + 1, 2 * edge + 1), np.uint8)
            inner = cv2.erode(  # the frame's edge counts as an edge: flow is poor there
                mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0
            ).astype(bool)
        else:
            inner = mask
        if inner.sum() >= 4 or (edge == 0 and inner.any()):
            dx, dy = np.median(flow[inner], axis=0)
            return np.array([-dy, -dx], dtype=np.float64)
    return None


def shifted_soft(soft: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """float32 [H, W] ``soft`` moved by ``shift`` (dy, dx) pixels, sub-pixel (bilinear); what
    moves out of the frame is lost, what comes in is 0."""
    dy, dx = float(shift[0]), float(shift[1])
    if dy == 0.0 and dx == 0.0:
        return soft
    height, width = soft.shape
    matrix = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]], dtype=np.float64)
    return cv2.warpAffine(
        soft, matrix, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT
    )


def carry_masks(soft: np.ndarray, flow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Soft masks of the previous frame moved into this one, each as a whole by its object's
    motion (:func:`object_motion`, measured where the mask lands: the backward ``flow``
    [H, W, 2] is defined on this frame's pixels). Moving masks whole keeps their edges sharp;
    warping every pixel by its own flow would drag the background's still flow into the
    object's edge, and the mask would smear and grow frame after frame.

    Args:
        soft: float32 [H, W, N] masks of the previous frame (inside where >= 0.5).
        flow: float32 [H, W, 2] (dx, dy) backward flow, this frame to the previous one.
    Returns:
        (float32 [H, W, N] moved masks, float64 [N, 2] (dy, dx) the move of each).
    """
    moved = np.zeros_like(soft)
    shifts = np.zeros((soft.shape[2], 2))
    for i in range(soft.shape[2]):
        mask = soft[:, :, i] >= 0.5
        for _ in range(2):  # read the flow where the mask is expected, then again
            found = object_motion(shifted_soft(mask.astype(np.float32), shifts[i]) >= 0.5, flow)
            if found is None:
                break
            shifts[i] = found
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
    current = current.astype(np.float32)
    for i in range(masks.shape[2]):
        inside = masks[:, :, i]
        if inside.any():
            moved = shifted_soft(previous.astype(np.float32), shifts[i])
            changes[i] = float(np.abs(current[inside] - moved[inside]).mean())
    return changes


class FrameFlow:
    """Consecutive frames -> (grey frame, backward flow to the previous frame or None).

    One per video run; the keyframer and the stabiliser share its flow.
    """

    def __init__(self, flow: DenseFlow | None = None) -> None:
        self.flow = flow if flow is not None else DenseFlow()
        self.reset()

    def reset(self) -> None:
        self._previous: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(grey uint8 [H, W], float32 [H, W, 2] backward flow or None) of RGB ``frame``
        [H, W, 3] uint8; None for the first frame, or one of another size."""
        grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return grey, None
        return grey, self.flow.backward(previous, grey)


@dataclass(frozen=True)
class KeyframeSettings:
    """When a keyframe is forced (see the module docstring); distances in pixels of the frame."""

    cut_difference: float = 20.0
    new_motion_fraction: float = 0.01
    moving_px: float = 1.5
    lost_fraction: float = 0.5
    drift_px: float = 6.0
    max_interval: int = 15

    def __post_init__(self) -> None:
        positive = ("cut_difference", "new_motion_fraction", "moving_px", "drift_px")
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
    flow between frames comes from the caller (:class:`FrameFlow`), who shares it.
    """

    def __init__(self, interval: int | str = 5, settings: KeyframeSettings | None = None) -> None:
        self.interval = parse_interval(interval)
        self.settings = settings if settings is not None else KeyframeSettings()
        self.reset()

    def reset(self) -> None:
        """Forget the video so far: the next frame is a keyframe."""
        self._grey: np.ndarray | None = None
        self._masks = self._class_ids = self._scores = self._key_areas = None
        self._since_key = 0
        self._drift = 0.0
        self._baseline_motion: float | None = None

    def carry(self, grey: np.ndarray, flow: np.ndarray | None) -> tuple[dict | None, str]:
        """(detect-style dict carried into this frame, "") or (None, reason) when it must be
        detected; reason is one of :data:`REASONS`.

        Args:
            grey: the frame, grey uint8 [H, W].
            flow: float32 [H, W, 2] backward flow from this frame to the previous one
                (:meth:`DenseFlow.backward`); None when there is no previous frame.
        """
        if self._grey is None or flow is None or self._grey.shape != grey.shape:
            return None, "first"
        due = self._due()
        if due:
            return None, due
        soft, shifts = carry_masks(self._masks, flow)
        moved = soft >= 0.5
        reason = self._distrust(grey, flow, moved, shifts)
        if reason:
            return None, reason
        self._grey, self._masks = grey, soft  # soft: sub-pixel moves add up, not round away
        self._since_key += 1
        return detections_from_masks(moved, self._class_ids.copy(), self._scores.copy()), ""

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
        union = moved.any(axis=2) if moved.shape[2] else np.zeros(grey.shape, bool)
        moving = _new_motion(flow, union, s.moving_px)
        if self._baseline_motion is None:  # motion the keyframe's detections left unexplained
            self._baseline_motion = moving
        elif moving > self._baseline_motion + s.new_motion_fraction:
            return "motion"
        if self.interval == "auto":
            self._drift += _mean_mask_motion(flow, moved)
            if self._drift > s.drift_px:
                return "auto"
        return ""


def _new_motion(flow: np.ndarray, union: np.ndarray, moving_px: float) -> float:
    """Fraction of the frame outside the (dilated) masks that moves by more than ``moving_px``
    against the background's median motion (the camera's)."""
    # Flow bleeds past a moving object's edge by about a DIS patch (8 pixels): not new motion.
    near = cv2.dilate(union.astype(np.uint8), np.ones((17, 17), np.uint8)).astype(bool)
    outside = ~near
    if not outside.any():
        return 0.0
    background = np.median(flow[outside], axis=0)
    residual = np.linalg.norm(flow - background, axis=2)
    return float(((residual > moving_px) & outside).sum()) / outside.size


def _mean_mask_motion(flow: np.ndarray, masks: np.ndarray) -> float:
    """Mean over masks of each mask's mean flow length, pixels; 0 without masks."""
    lengths = np.linalg.norm(flow, axis=2)
    motions = [
        lengths[masks[:, :, i]].mean() for i in range(masks.shape[2]) if masks[:, :, i].any()
    ]
    return float(np.mean(motions)) if motions else 0.0
