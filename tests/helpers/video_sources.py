"""Helpers of the live-source tests: small clips, a local HTTP server streaming them, a named
pipe fed by a thread, and a model that finds nothing (for tests that need frames, not masks)."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np


def write_clip(
    path: Path, frames: int = 20, size: tuple[int, int] = (96, 64), fps: float = 10.0
) -> Path:
    """A clip of ``frames`` frames, ``size`` (width, height), a bright square moving right over
    a gradient whose level changes each frame (so frames differ); codec by extension (.avi:
    MJPG, else mp4v)."""
    width, height = size
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    assert writer.isOpened(), f"cannot write {path}"
    for i in range(frames):
        frame = np.full((height, width, 3), (30 + 9 * i) % 256, dtype=np.uint8)
        x = (4 + 3 * i) % max(1, width - 24)
        frame[height // 4 : height // 4 + 20, x : x + 20] = (0, 0, 220)
        writer.write(frame)
    writer.release()
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def served(folder: Path) -> Iterator[str]:
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) from a thread; yield the base URL
    (``http://127.0.0.1:PORT``), shut down after."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="test-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def fed_pipe(path: Path, data: bytes) -> Iterator[Path]:
    """A named pipe at ``path`` a thread writes ``data`` into (once a reader opens it)."""
    os.mkfifo(path)

    def feed() -> None:
        try:
            with open(path, "wb") as pipe:
                pipe.write(data)
        except BrokenPipeError:  # the reader stopped early
            pass

    thread = threading.Thread(target=feed, name="test-pipe", daemon=True)
    thread.start()
    try:
        yield path
    finally:
        if thread.is_alive():  # nobody opened it: open it once so that the writer returns
            with open(path, "rb") as pipe:
                pipe.read()
        thread.join(10)


class NothingFound:
    """A stand-in model that detects nothing (``IMAGES_PER_GPU`` frames a batch), recording the
    batch sizes it got."""

    def __init__(self, images_per_gpu: int = 4) -> None:
        self.config = type("Config", (), {"IMAGES_PER_GPU": images_per_gpu})()
        self.batches: list[int] = []

    def detect(self, images):
        self.batches.append(len(images))
        return [empty_result(image.shape[:2]) for image in images]


def empty_result(shape: tuple[int, int]) -> dict:
    """A detect-style dict with no instance for an image of ``shape`` (H, W)."""
    return {
        "rois": np.zeros((0, 4), np.int32),
        "boxes": np.zeros((0, 4), np.float32),
        "class_ids": np.zeros(0, np.int32),
        "scores": np.zeros(0, np.float32),
        "masks": np.zeros((*shape, 0), bool),
    }


def count_frames(path: Path) -> int:
    """Frames cv2.VideoCapture decodes from ``path``."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    frames = 0
    while capture.grab():
        frames += 1
    capture.release()
    return frames
