"""Where a video run's frames come from: a file, a camera or a stream, opened with OpenCV.

:func:`open_source` takes what ``mrcnn splash --video`` takes (see :func:`parse_source`):

- a video file's path;
- a camera: its index (``0``, or the string ``"0"``; OpenCV's numbering) or its device
  (``/dev/video0``, a character device);
- a stream: a URL whose protocol FFmpeg opens (``rtsp://``, ``http://``, ``https://``,
  ``udp://``, ``tcp://``, ``rtmp://``, ``srt://``, ...), or a named pipe (a FIFO another program
  writes a video into), read through OpenCV's FFmpeg backend.

A camera and a stream are *live*: they have no frame count (-1) and no end but the one the run
chooses (a frame or time limit, Ctrl-C) or the stream's; they have no file, so no sound track is
copied and the output is named after a label (``camera0``, the stream's host). A source that does
not report a usable frame rate is written at :data:`FALLBACK_FPS` (``VideoInfo.fps_guessed``).
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import cv2
import numpy as np

from mrcnn.outputs import IMAGE_SUFFIXES

__all__ = [
    "FALLBACK_FPS",
    "SourceSpec",
    "VideoInfo",
    "decoded_batches",
    "frame_limit",
    "open_source",
    "open_video",
    "parse_source",
    "require_frames",
]

#: Frame rate written when the input does not report a usable one.
FALLBACK_FPS = 30.0
#: How long FFmpeg may take to connect to a stream, and to deliver its next frame, before the
#: stream counts as unreachable or ended (milliseconds).
STREAM_OPEN_TIMEOUT_MS = 10_000
STREAM_READ_TIMEOUT_MS = 10_000
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class VideoInfo:
    """What the source says: size in pixels, frames per second, frame count (-1 if unknown).

    ``live``: a camera or a stream (no file, no known end). ``label``: a name for the source
    (the file's name, ``camera0``, the stream's host). ``fps_guessed``: the source gave no
    usable frame rate; ``fps`` is :data:`FALLBACK_FPS`.
    """

    width: int
    height: int
    fps: float
    frame_count: int
    live: bool = False
    label: str = ""
    fps_guessed: bool = False


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source: ``kind`` "file", "camera" or "stream"; ``target`` what OpenCV opens (a
    path, a camera index or device path, a URL); ``label`` as in :class:`VideoInfo`."""

    kind: str
    target: str | int
    label: str

    @property
    def live(self) -> bool:
        return self.kind != "file"


def parse_source(spec: str | int | os.PathLike) -> SourceSpec:
    """What ``spec`` names: a camera index (an int, or digits only: ``"0"``; write ``./0`` for a
    file named 0), a camera device (a character device such as ``/dev/video0``), a stream (a URL
    ``scheme://...``, or a named pipe), or else a file path. Nothing is opened."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
        index = int(spec)
        return SourceSpec("camera", index, f"camera{index}")
    text = os.fspath(spec)
    if isinstance(spec, str) and _URL.match(text):
        parts = urlsplit(text)
        label = re.sub(r"[^A-Za-z0-9._-]+", "_", parts.hostname or "").strip("_.")
        return SourceSpec("stream", text, label or parts.scheme.lower())
    try:
        mode = os.stat(text).st_mode
    except OSError:
        mode = 0
    if stat.S_ISCHR(mode):
        return SourceSpec("camera", text, Path(text).name)
    if stat.S_ISFIFO(mode):  # a named pipe another program writes a video into
        return SourceSpec("stream", text, Path(text).name)
    return SourceSpec("file", text, Path(text).name)


def open_source(spec: str | int | os.PathLike) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a file, camera or stream (see :func:`parse_source`): (capture, info).

    Raises:
        FileNotFoundError: a file that does not exist.
        ValueError: one line saying what could not be opened and what to check.
    """
    source = parse_source(spec)
    if source.kind == "file":
        return open_video(source.target)
    with _quiet_opencv():
        if source.kind == "camera":
            capture = cv2.VideoCapture(source.target)
        else:
            timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_OPEN_TIMEOUT_MS]
            timeouts += [cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_READ_TIMEOUT_MS]
            capture = cv2.VideoCapture(source.target, cv2.CAP_FFMPEG, timeouts)
    if not capture.isOpened():
        capture.release()
        raise ValueError(_open_failure(source))
    return capture, _info(capture, source)


def _open_failure(source: SourceSpec) -> str:
    if source.kind == "camera":
        return (
            f"cannot open camera {source.target}: OpenCV found no camera there (none connected, "
            "in use by another program, or no permission); list the cameras with "
            "v4l2-ctl --list-devices (Linux) and give another index or a file"
        )
    seconds = STREAM_OPEN_TIMEOUT_MS // 1000
    return (
        f"cannot open stream {source.target}: FFmpeg could not connect to it or read a video "
        f"from it within {seconds} s (host unreachable, wrong path or port, not a video, or a "
        "protocol this OpenCV's FFmpeg lacks); check the URL, e.g. with ffprobe"
    )


@contextmanager
def _quiet_opencv():
    """OpenCV's own warnings off (a camera index with no camera prints several lines)."""
    logging = cv2.utils.logging
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR - 1)  # fatal only
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _info(capture: cv2.VideoCapture, source: SourceSpec) -> VideoInfo:
    """The capture's size, frame rate and frame count (-1 for live sources), checked."""
    width = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    height = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    fps = float(capture.get(cv2.CAP_PROP_FPS))
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if not source.live else -1
    if width <= 0 or height <= 0:
        capture.release()
        what = "source" if source.live else "video file"
        raise ValueError(f"cannot read the frame size of {source.target}; is it a {what}?")
    guessed = not np.isfinite(fps) or fps <= 0 or fps > 1000
    return VideoInfo(
        width,
        height,
        FALLBACK_FPS if guessed else fps,
        count if count > 0 else -1,
        live=source.live,
        label=source.label,
        fps_guessed=guessed,
    )


def open_video(path: str | os.PathLike) -> tuple[cv2.VideoCapture, VideoInfo]:
    """Open a video file for reading: (capture, header info).

    Raises:
        FileNotFoundError: no such file.
        ValueError: an image file (by its extension), or OpenCV cannot open it or read its size.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    if path.suffix.lower() in IMAGE_SUFFIXES:  # why: OpenCV opens a photo as a 1-frame video
        raise ValueError(
            f"{path} is an image ({path.suffix}), not a video; splash or detect it as an image "
            "(mrcnn splash --image)"
        )
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise ValueError(
            f"cannot open video {path}: OpenCV found no readable stream (not a video, a codec "
            "OpenCV lacks, or an MP4 truncated before its index, the 'moov' atom, was written). "
            "Re-encode it, e.g. ffmpeg -i in.mov out.mp4"
        )
    return capture, _info(capture, SourceSpec("file", str(path), path.name))


def require_frames(spec: str | int | os.PathLike) -> VideoInfo:
    """:func:`open_source`'s info, once one frame decodes (a live source is opened, read once
    and closed again).

    Raises:
        ValueError: as :func:`open_source`, or "no frames": the source gives none that decode.
    """
    capture, info = open_source(spec)
    try:
        ok = capture.read()[0]
    finally:
        capture.release()
    if not ok:
        what = "source" if info.live else "video"
        fix = "check the source" if info.live else "check or re-encode the file"
        raise ValueError(
            f"{what} {spec} has no frames (OpenCV decodes none): nothing to process; {fix}"
        )
    return info


def frame_limit(
    info: VideoInfo, max_frames: int | None = None, duration: float | None = None
) -> int | None:
    """The frames a run reads at most: ``max_frames``, and the frames whose time (index / fps)
    is below ``duration`` seconds of input; None for no limit.

    Raises:
        ValueError: a limit below 1 frame or not above 0 seconds.
    """
    limits = []
    if max_frames is not None:
        if int(max_frames) < 1:
            raise ValueError(f"max_frames={max_frames}: give at least 1 frame, or no limit")
        limits.append(int(max_frames))
    if duration is not None:
        if not duration > 0:
            raise ValueError(f"duration={duration}: give seconds of input above 0, or no limit")
        limits.append(max(1, math.ceil(duration * info.fps - 1e-9)))
    return min(limits) if limits else None


def decoded_batches(
    capture: cv2.VideoCapture,
    size: int,
    limit: int | None = None,
    on_limit: Callable[[], None] | None = None,
) -> Iterator[list[np.ndarray]]:
    """Lists of up to ``size`` RGB frames [H, W, 3] uint8, in order, until the input ends or
    ``limit`` frames were read (then ``on_limit()`` is called). A read that raises ends the
    list there: the frames before it are still processed."""
    batch: list[np.ndarray] = []
    read = 0
    while limit is None or read < limit:
        try:
            ok, frame = capture.read()
            if not ok:
                break
            batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        except Exception:
            if batch:
                yield batch
            raise
        read += 1
        if len(batch) == size:
            yield batch
            batch = []
    else:
        if on_limit is not None:
            on_limit()
    if batch:
        yield batch
