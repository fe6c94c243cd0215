"""A live preview window of a video run, where OpenCV has a GUI and there is a display.

The project depends on opencv-python-headless, which has no GUI (no HighGUI windows): there
:func:`open_preview` answers why the run stays headless, and the run goes on without a window.
With a GUI build of OpenCV (opencv-python installed in its place) and a display (``DISPLAY`` or
``WAYLAND_DISPLAY`` on Linux; always on macOS and Windows) it opens a window.

GUI toolkits want one thread, often the main one, so the window is drawn only from the thread
that runs detection (the caller's): the encoder hands each written frame over with
:meth:`Preview.offer` (any thread, it only keeps the latest) and the detection stage calls
:meth:`Preview.refresh` before each batch, which shows that frame and handles the window's
events. On the CPU the window so shows about one frame per batch. ``q`` or Esc in the window,
or closing it, ends the run (with the frames written, like a frame limit).
"""

from __future__ import annotations

import os
import sys

import cv2
import numpy as np

__all__ = ["Preview", "open_preview"]

#: Keys that end the run from the preview window: q, Q and Esc.
STOP_KEYS = (ord("q"), ord("Q"), 27)


class Preview:
    """One window showing the latest frame offered (BGR [H, W, 3] uint8), drawn by ``gui``
    (OpenCV's HighGUI functions: namedWindow, imshow, waitKey, getWindowProperty,
    destroyWindow)."""

    def __init__(self, title: str = "mrcnn splash", gui=cv2) -> None:
        self.title, self.gui = title, gui
        self._latest: np.ndarray | None = None
        self._shown: np.ndarray | None = None
        gui.namedWindow(title, gui.WINDOW_NORMAL)

    def offer(self, frame: np.ndarray) -> None:
        """Keep ``frame`` (BGR [H, W, 3] uint8) for the next refresh; any thread."""
        self._latest = frame

    def refresh(self) -> bool:
        """Show the latest frame offered and handle the window's events; False once the user
        asked to stop (q, Esc, or the window closed). Call it from one thread only."""
        frame = self._latest
        if frame is not None and frame is not self._shown:
            self.gui.imshow(self.title, frame)
            self._shown = frame
        key = self.gui.waitKey(1)
        if key != -1 and (key & 0xFF) in STOP_KEYS:
            return False
        return self.gui.getWindowProperty(self.title, self.gui.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        """Close the window (errors of a window already gone are ignored)."""
        try:
            self.gui.destroyWindow(self.title)
            self.gui.waitKey(1)
        except cv2.error:
            pass


def open_preview(title: str = "mrcnn splash", gui=cv2, environ=None) -> tuple[Preview | None, str]:
    """A :class:`Preview` window, or (None, one line saying why the run stays headless)."""
    environ = os.environ if environ is None else environ
    needs_display = sys.platform not in ("darwin", "win32")
    if needs_display and not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        return None, (
            "no preview: no display to show it on (DISPLAY and WAYLAND_DISPLAY are unset); "
            "running headless"
        )
    try:
        return Preview(title, gui), ""
    except cv2.error:
        return None, (
            "no preview: this OpenCV has no GUI (the project installs opencv-python-headless); "
            "running headless. For a window, install opencv-python in its place"
        )
