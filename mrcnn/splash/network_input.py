"""The network input of a video run: the configuration's scale with the least padding.

A video's frames all have one size, and padding costs as much compute as picture: under the
"square" mode (Matterport's default), a 640 x 360 frame at IMAGE_MIN_DIM 800 / IMAGE_MAX_DIM
1024 is scaled to 1024 x 576 and padded into 1024 x 1024, so 44% of the network's work is
padding. A video run detects in "square_pad64" instead: the same scale, padded (centred) only to
multiples of 64, 1024 x 576. The other modes pad little already and are kept.

:func:`video_resize_mode` chooses the mode, :func:`resize_mode` sets it on the model's config
for the run only, and :func:`network_input_note` says what was chosen, in one line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mrcnn.splash.sources import VideoInfo
from mrcnn.structures.resize_plan import inference_mode, plan_resize, tight_resize_mode

__all__ = ["NETWORK_INPUTS", "network_input_note", "resize_mode", "video_resize_mode"]

#: What a video is detected in: "tight" (the configuration's scale, least padding) or
#: "config" (the configuration's IMAGE_RESIZE_MODE as it is).
NETWORK_INPUTS = ("tight", "config")


def video_resize_mode(config, network_input: str = "tight") -> str | None:
    """The IMAGE_RESIZE_MODE a video run detects in: for "tight", the configuration's mode with
    the least padding at the same scale ("square" -> "square_pad64",
    :func:`mrcnn.structures.resize_plan.tight_resize_mode`); for "config", the configuration's.
    None for a config without IMAGE_RESIZE_MODE (a stand-in model's).

    Raises:
        ValueError: ``network_input`` is neither.
    """
    if network_input not in NETWORK_INPUTS:
        raise ValueError(
            f"network_input={network_input!r}: use 'tight' (least padding) or 'config' (the "
            "configuration's IMAGE_RESIZE_MODE as it is)"
        )
    mode = getattr(config, "IMAGE_RESIZE_MODE", None)
    return tight_resize_mode(mode) if network_input == "tight" and mode else mode


@contextmanager
def resize_mode(config, mode: str | None) -> Iterator[None]:
    """``config.IMAGE_RESIZE_MODE`` is ``mode`` inside the block and what it was after (an
    attribute the instance did not hold is removed again); None changes nothing. Whatever
    detects with this config meanwhile, on any thread, molds with ``mode``."""
    if mode is None or getattr(config, "IMAGE_RESIZE_MODE", None) == mode:
        yield
        return
    own, old = "IMAGE_RESIZE_MODE" in vars(config), config.IMAGE_RESIZE_MODE
    config.IMAGE_RESIZE_MODE = mode
    try:
        yield
    finally:
        if own:
            config.IMAGE_RESIZE_MODE = old
        else:
            del config.IMAGE_RESIZE_MODE


def network_input_note(config, info: VideoInfo, network_input: str = "tight") -> str:
    """One line saying what network input the frames of ``info`` get, e.g. "video input: 640x360
    frames -> 1024x576 network input (IMAGE_RESIZE_MODE square, padded to multiples of 64
    instead of 1024x1024)"."""
    configured = config.IMAGE_RESIZE_MODE
    used = video_resize_mode(config, network_input)
    height, width = _input_shape(config, info, used)
    line = (
        f"video input: {info.width}x{info.height} frames -> {width}x{height} network input "
        f"(IMAGE_RESIZE_MODE {configured}"
    )
    square_h, square_w = _input_shape(config, info, configured)
    if (square_h, square_w) == (height, width):
        return line + ")"
    return line + f", padded to multiples of 64 instead of {square_w}x{square_h})"


def _input_shape(config, info: VideoInfo, mode: str) -> tuple[int, int]:
    """(H, W) of the network input of a frame of ``info`` under ``mode`` (as detect molds)."""
    plan = plan_resize(
        info.height,
        info.width,
        inference_mode(mode),  # as detect molds it
        config.IMAGE_MIN_DIM,
        config.IMAGE_MAX_DIM,
        config.IMAGE_MIN_SCALE,
    )
    return plan.output_shape
