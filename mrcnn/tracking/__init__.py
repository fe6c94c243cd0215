"""Tracking: a track id per detected instance, stable across the frames of a video.

:class:`Tracker` takes each frame's ``MaskRCNN.detect`` result and gives every detection the id
of its track (ByteTrack's two-pass association, a constant-velocity motion model, mask IoU where
masks exist). See docs/tracking.md.

Modules: :mod:`~mrcnn.tracking.tracker` (:class:`Tracker`, :class:`TrackerSettings`, the
results), :mod:`~mrcnn.tracking.association` (similarities and greedy matching),
:mod:`~mrcnn.tracking.motion` (motion models), :mod:`~mrcnn.tracking.detections` (input
checks), :mod:`~mrcnn.tracking.analysis` (frame analysers: the video modes),
:mod:`~mrcnn.tracking.stable` (the per-track smoothing of the stable mode),
:mod:`~mrcnn.tracking.keyframes` (optical flow and keyframes) and
:mod:`~mrcnn.tracking.mot` (MOT Challenge text and JSON track files).
"""

from __future__ import annotations

from mrcnn.tracking.association import (
    Association,
    BoxIoU,
    MaskOrBoxIoU,
    PredictedTracks,
    greedy_match,
)
from mrcnn.tracking.detections import Detections
from mrcnn.tracking.motion import ConstantVelocity, MotionModel, Stationary
from mrcnn.tracking.tracker import FrameTracks, Track, Tracker, TrackerSettings

__all__ = [
    "Association",
    "BoxIoU",
    "ConstantVelocity",
    "Detections",
    "FrameTracks",
    "MaskOrBoxIoU",
    "MotionModel",
    "PredictedTracks",
    "Stationary",
    "Track",
    "Tracker",
    "TrackerSettings",
    "greedy_match",
]
