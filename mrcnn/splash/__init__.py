"""The colour splash for images and video, and the local web page that serves it.

Modules: :mod:`~mrcnn.splash.filter` (the filter and the image/video entry points),
:mod:`~mrcnn.splash.video` (reading, running and writing video), :mod:`~mrcnn.splash.pipeline`
(the threads a video runs on), :mod:`~mrcnn.splash.audio` (carrying the sound track over),
:mod:`~mrcnn.splash.service` (one photo in, detections and a splash out) and
:mod:`~mrcnn.splash.web` (the page, ``mrcnn serve``). This package face re-exports the filter's
public functions, the names Matterport's balloon sample and our docs use.
"""

from __future__ import annotations

from mrcnn.splash.filter import (
    EFFECTS,
    color_splash,
    detect_and_color_splash,
    select_instances,
    splash_background,
    splash_detections,
    splash_video,
)

__all__ = [
    "EFFECTS",
    "color_splash",
    "detect_and_color_splash",
    "select_instances",
    "splash_background",
    "splash_detections",
    "splash_video",
]
