"""The color splash of any video source: a file, a camera or a stream, with the run's options.

:func:`splash_source` is :func:`mrcnn.splash.filter.splash_video` for every source
:func:`mrcnn.splash.sources.open_source` opens, with every option of
:func:`mrcnn.splash.video.process_video` (frame and time limits, a frame analyser, the network
input, a preview window). A live source has no file to name the output after: its default
output is ``<label>_splash.mp4`` in the current folder (``camera0_splash.mp4``, or
``<host>_splash.mp4`` for a stream), never replacing a file unless ``overwrite``.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from mrcnn.outputs import reserved_output
from mrcnn.splash.filter import check_splash_options, splash_detections, splash_output_path
from mrcnn.splash.sources import parse_source, require_frames
from mrcnn.splash.video import VideoReport, process_video

__all__ = ["VIDEO_OPTIONS", "draw_track_ids", "select_tracks", "splash_source"]

#: The keyword arguments of :func:`splash_source` that go to ``process_video``; the others go
#: to the filter (:func:`mrcnn.splash.filter.color_splash`).
VIDEO_OPTIONS = (
    "fourcc",
    "progress",
    "audio",
    "analyser",
    "max_frames",
    "duration",
    "network_input",
    "preview",
    "say",
)


def splash_source(
    model,
    source: str | int | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    effect: str = "gray",
    overwrite: bool = False,
    **options,
) -> VideoReport:
    """The color splash of a video file, a camera or a stream.

    Args:
        source: a video file, a camera index or device, or a stream URL
            (:func:`mrcnn.splash.sources.parse_source`).
        out: output file or folder (:func:`mrcnn.splash.filter.splash_output_path`); default
            ``<stem>_splash.mp4`` for a file, ``<label>_splash.mp4`` for a live source.
        effect: as in :func:`mrcnn.splash.filter.color_splash`.
        options: those named in :data:`VIDEO_OPTIONS` as in
            :func:`mrcnn.splash.video.process_video` (``analyser``: a
            :func:`mrcnn.tracking.analysis.video_analyser`, for track ids and a stable
            splash); ``tracks`` (track ids: only those stay in colour; needs an analyser
            that tracks) and ``draw_ids`` (write each instance's track id on it); the rest as
            in ``color_splash`` (classes, class_names, min_score, feather, blur_sigma,
            background_color, ...).
    Returns:
        the :class:`mrcnn.splash.video.VideoReport`.
    """
    video = {name: options.pop(name) for name in VIDEO_OPTIONS if name in options}
    tracks, draw_ids = options.pop("tracks", None), options.pop("draw_ids", False)
    spec = parse_source(source)
    if not spec.live:  # a live source is read once only (a pipe cannot be read twice)
        require_frames(source)
    check_splash_options(effect, options)

    def render(frame: np.ndarray, result: dict) -> np.ndarray:
        result = select_tracks(result, tracks)
        splashed = splash_detections(frame, result, effect, **options)
        return draw_track_ids(splashed, result) if draw_ids else splashed

    # A live source's output is named after its label: "<label>.live" has that stem.
    named = Path(f"{spec.label}.live") if spec.live else source
    with reserved_output(splash_output_path(named, out, overwrite, video=True)) as target:
        return process_video(model, source, target, render, **video)


def select_tracks(result: dict, tracks) -> dict:
    """``result`` with only the instances whose "track_ids" are in ``tracks`` (None: all).

    Raises:
        ValueError: ``tracks`` given but the result has no track ids (no tracking analyser).
    """
    if tracks is None:
        return result
    if "track_ids" not in result:
        raise ValueError(
            "choosing tracks needs track ids: run the video with a tracking analyser "
            "(--video-mode stable or tracked)"
        )
    keep = np.isin(np.asarray(result["track_ids"]), list(tracks))
    picked = {
        key: value[keep]
        for key, value in result.items()
        if key != "masks" and _per_instance(value, keep)
    }
    picked["masks"] = result["masks"][:, :, keep]
    return {**result, **picked}


def _per_instance(value, keep: np.ndarray) -> bool:
    return isinstance(value, np.ndarray) and value.ndim >= 1 and len(value) == len(keep)


def draw_track_ids(image: np.ndarray, result: dict) -> np.ndarray:
    """RGB ``image`` [H, W, 3] uint8 with each instance's track id written at its box's top
    left ("rois" (y1, x1, y2, x2)); instances without a track (-1) get none."""
    out = image.copy()
    scale = max(0.4, min(image.shape[:2]) / 720)
    for (y1, x1, _, _), track_id in zip(result["rois"], result.get("track_ids", []), strict=False):
        if track_id < 0:
            continue
        origin = (int(x1) + 2, max(int(y1) + int(14 * scale), int(14 * scale)))
        for color, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):  # outlined: readable anywhere
            cv2.putText(
                out,
                str(int(track_id)),
                origin,
                cv2.FONT_HERSHEY_SIMPLEX,
                scale,
                color,
                max(1, round(width * scale)),
                cv2.LINE_AA,
            )
    return out
