"""New content between keyframes: what changed since the keyframe where no carried mask is.

Between keyframes, masks are carried by optical flow; an object that comes in (or one the
keyframe's detection missed that starts to move) has no mask to carry, and only a new
detection finds it. :class:`NewContent` measures, frame by frame, how much of the frame is
new since the keyframe:

- the keyframe's grey frame is moved by the camera's motion since then (per frame a
  similarity transform fitted robustly to the background's optical flow,
  :func:`camera_motion`, composed frame after frame), so that a pan or a zoom is no change;
- pixels whose grey level differs from it by over ``change_grey`` count, away from the
  objects (the carried masks, where they are and where they were at the keyframe, widened)
  and from what the camera brought in since (no keyframe content to compare there).

Against the keyframe, not the previous frame: between two frames a plain-coloured object
that moves changes only a thin strip at its edges, while against the keyframe a newcomer
differs over its whole area. Grey levels, not flow lengths: on a plain background the flow
is noise, but nothing there changes.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["NewContent", "camera_motion"]

#: Pixels around the objects' masks left out: a mask's edge is a pixel or two off the
#: object's, and interpolation spreads the object's edge about as far.
OBJECT_MARGIN_PX = 4
#: Flow samples for the camera's motion: about this many over the frame (a robust fit to
#: more costs more and gains nothing).
CAMERA_SAMPLES = 800


def camera_motion(flow: np.ndarray, background: np.ndarray) -> np.ndarray:
    """float64 [3, 3] the similarity transform (rotation, scale, shift) from this frame's
    pixel coordinates (x, y, 1) to the previous frame's, fitted robustly (least median of
    squares) to the backward ``flow`` [H, W, 2] (dx, dy) sampled over bool ``background``
    [H, W]; the median flow as a shift when too little background is left for a fit."""
    stride = max(1, round(np.sqrt(background.size / CAMERA_SAMPLES)))
    ys, xs = np.nonzero(background[::stride, ::stride])
    ys, xs = ys * stride, xs * stride
    transform = np.eye(3)
    if len(xs) == 0:
        return transform
    here = np.stack([xs, ys], axis=1).astype(np.float32)
    there = here + flow[ys, xs]
    fitted = None
    if len(xs) >= 16:
        fitted, _ = cv2.estimateAffinePartial2D(here, there, method=cv2.LMEDS)
    if fitted is None:
        transform[:2, 2] = np.median(there - here, axis=0)
    else:
        transform[:2] = fitted
    return transform


class NewContent:
    """The share of the frame that is new since the keyframe (see the module docstring).

    Args:
        change_grey: grey levels (0-255) a pixel must differ by to count as changed.

    Call :meth:`keyed` on each keyframe, then the instance on each carried frame.
    """

    def __init__(self, change_grey: float = 30.0) -> None:
        self.change_grey = float(change_grey)
        self._key: np.ndarray | None = None

    def keyed(self, grey: np.ndarray, objects: np.ndarray) -> None:
        """A keyframe: grey uint8 [H, W] and the union of its masks, bool [H, W]."""
        self._key, self._key_objects = grey, objects.astype(np.uint8)
        self._to_key = np.eye(3)  # this frame's pixel coordinates -> the keyframe's

    def __call__(
        self, grey: np.ndarray, flow: np.ndarray, objects: np.ndarray, before: np.ndarray
    ) -> float:
        """Fraction of the frame that is new since the keyframe.

        Args:
            grey: this frame, grey uint8 [H, W].
            flow: float32 [H, W, 2] (dx, dy) backward flow to the previous frame.
            objects: bool [H, W] the carried masks in this frame.
            before: bool [H, W] the masks in the previous frame.
        """
        if self._key is None or self._key.shape != grey.shape:
            raise RuntimeError("NewContent: call keyed() with the keyframe first")
        away = ~_widened(objects | before)
        self._to_key = self._to_key @ camera_motion(flow, away)
        height, width = grey.shape
        matrix = self._to_key[:2]
        size, inverse = (width, height), cv2.WARP_INVERSE_MAP
        key = cv2.warpAffine(self._key, matrix, size, flags=cv2.INTER_LINEAR | inverse)
        seen = cv2.warpAffine(  # 1 where the keyframe saw this pixel, away from its objects
            1 - self._key_objects, matrix, size, flags=cv2.INTER_NEAREST | inverse
        )
        counted = away & ~_widened(seen == 0)
        changed = cv2.absdiff(grey, key) > self.change_grey
        return float(np.count_nonzero(changed & counted)) / counted.size


def _widened(mask: np.ndarray) -> np.ndarray:
    """bool ``mask`` [H, W] grown by :data:`OBJECT_MARGIN_PX` pixels every way."""
    kernel = np.ones((2 * OBJECT_MARGIN_PX + 1,) * 2, np.uint8)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)
