"""Motion models: where a track's box should be now, from the boxes it was matched to.

A track keeps its last matched box (y1, x1, y2, x2) and a velocity, the per-frame move of the
box centre (dy, dx) in pixels. The prediction ``frames`` frames after the last match is the
last box moved by ``velocity * frames``; its size stays the last one, so that a lost object's
box does not grow or vanish through 30 frames of extrapolated size noise.

A motion model only decides how the velocity follows the measured moves:
:class:`ConstantVelocity` (the default) smooths them exponentially; :class:`Stationary` keeps
the velocity at zero (a box is predicted where it was last seen), the baseline that shows what
the motion is for: without it, two objects that cross trade ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


class MotionModel(Protocol):
    """How a track's velocity (dy, dx) pixels per frame follows its matched boxes."""

    def velocity(
        self, previous: np.ndarray | None, measured: np.ndarray
    ) -> np.ndarray:  # pragma: no cover - a protocol
        """The new float64 [2] velocity (dy, dx).

        Args:
            previous: the track's velocity [2] so far; None at its first move (second match).
            measured: the centre's move [2] (dy, dx) per frame since the last match.
        """
        ...


@dataclass(frozen=True)
class ConstantVelocity:
    """Constant velocity, smoothed: ``v = alpha * measured + (1 - alpha) * v``.

    The first move is taken as it is (there is nothing to smooth it with), so a track knows its
    speed from its second frame on. ``alpha`` in (0, 1]: 1 follows each move, small values ride
    out detector jitter but turn slowly.
    """

    alpha: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"ConstantVelocity(alpha={self.alpha}): alpha must be in (0, 1]")

    def velocity(self, previous: np.ndarray | None, measured: np.ndarray) -> np.ndarray:
        if previous is None:
            return np.asarray(measured, dtype=np.float64)
        return self.alpha * measured + (1.0 - self.alpha) * previous


@dataclass(frozen=True)
class Stationary:
    """No motion: every box is predicted where its track was last matched."""

    def velocity(self, previous: np.ndarray | None, measured: np.ndarray) -> np.ndarray:
        return np.zeros(2)


def box_centre(box: np.ndarray) -> np.ndarray:
    """float64 [2] (y, x) centre of a (y1, x1, y2, x2) box [4]."""
    return np.array([box[0] + box[2], box[1] + box[3]], dtype=np.float64) / 2.0


def moved_box(box: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """float64 [4] (y1, x1, y2, x2) box moved by ``shift`` (dy, dx) pixels."""
    dy, dx = float(shift[0]), float(shift[1])
    return np.asarray(box, dtype=np.float64) + np.array([dy, dx, dy, dx])


def shifted_mask(mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """bool [H, W] ``mask`` moved by ``shift`` (dy, dx) rounded to whole pixels; what moves
    out of the frame is lost, what comes in is empty (slicing, not np.roll, which would wrap
    an object leaving on the right back in on the left)."""
    out = np.zeros_like(mask)
    MaskPatch(0, 0, mask).paste_shifted(out, shift)
    return out


@dataclass(frozen=True)
class MaskPatch:
    """A bool mask kept as its bounding window: ``pixels`` bool [h, w] with its top-left corner
    at (``top``, ``left``) of the frame (memory and copies cost the object, not the frame)."""

    top: int
    left: int
    pixels: np.ndarray

    @classmethod
    def of(cls, masks: np.ndarray, index: int, window) -> MaskPatch:
        """Mask ``index`` of bool ``masks`` [H, W, N] inside its ``window`` (top, left,
        bottom, right; :func:`mrcnn.evaluation.overlaps.mask_windows`), copied."""
        top, left, bottom, right = (int(v) for v in window)
        return cls(top, left, masks[top:bottom, left:right, index].copy())

    def paste_shifted(self, canvas: np.ndarray, shift: np.ndarray) -> None:
        """Write the mask moved by ``shift`` (dy, dx) rounded to whole pixels into the empty
        bool ``canvas`` [H, W], clipped to it: :func:`shifted_mask` of the full mask."""
        dy, dx = (int(round(float(s))) for s in shift)
        paste_window(canvas, self.pixels, self.top + dy, self.left + dx)


def paste_window(canvas: np.ndarray, patch: np.ndarray, y0: int, x0: int) -> None:
    """Write ``patch`` [h, w] into ``canvas`` [H, W] with its top-left corner at (y0, x0),
    what falls outside the canvas cut off."""
    height, width = canvas.shape[:2]
    y1, x1 = max(0, y0), max(0, x0)
    y2, x2 = min(height, y0 + patch.shape[0]), min(width, x0 + patch.shape[1])
    if y2 > y1 and x2 > x1:
        canvas[y1:y2, x1:x2] = patch[y1 - y0 : y2 - y0, x1 - x0 : x2 - x0]
