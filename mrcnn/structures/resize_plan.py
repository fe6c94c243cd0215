"""How an image is resized, cropped and padded into the network input, and how to map back.

Pure arithmetic on sizes (no pixels, no torch), so that the ONNX runtime
(:mod:`mrcnn.deploy.runtime`) plans exactly as :mod:`mrcnn.structures.image` does without importing
torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Multiple the padded input of the "shortest_side" mode is rounded up to.
SHORTEST_SIDE_PAD = 32
#: An image that IMAGE_MIN_DIM scales up may give a network input of at most this many times
#: max(IMAGE_MIN_DIM, IMAGE_MAX_DIM)² pixels (a 1 x 4000 strip at IMAGE_MIN_DIM=800 would give
#: 800 x 3,200,000 pixels, some 30 GB as float32, and the process would be killed silently).
MAX_UPSCALED_AREA = 4
#: Largest side, pixels, of a network input an exported graph is made for: the export traces
#: the network on an example input of that size (100000 x 100000 would need some 120 GB).
MAX_EXPORT_SIDE = 8192


#: The modes that scale as Matterport's "square" (longer side at most IMAGE_MAX_DIM).
SQUARE_SCALED = ("square", "square_pad64")
#: The mode a video is detected in, for each configured mode that pads more than it must:
#: "square" pads a 640 x 360 frame into IMAGE_MAX_DIM x IMAGE_MAX_DIM; "square_pad64" has the
#: same scale and pads only to multiples of 64. Other modes are tight already.
TIGHT_MODE = {"square": "square_pad64"}


def inference_mode(mode: str) -> str:
    """The mode whole images are molded in for inference under the configured ``mode``: the
    training-only "crop" (random crops are an augmentation) molds them as "pad64"."""
    return "pad64" if mode == "crop" else mode


def tight_resize_mode(mode: str) -> str:
    """The mode with the same scale as ``mode`` and the least padding (see :data:`TIGHT_MODE`)."""
    return TIGHT_MODE.get(mode, mode)


class InputSizeError(ValueError):
    """An image whose network input, as the config molds it, would be unreasonably large."""


@dataclass(frozen=True)
class ImageMeta:
    """How one image was molded into the network input.

    Attributes:
        original_shape: (H, W) of the image given to the model.
        resized_shape: (h, w) after resizing, before padding.
        window: (x1, y1, x2, y2) of the resized image inside the padded input, in pixels.
        scale: (scale_y, scale_x) = resized / original size along each axis.
        crop: (y, x, h, w) crop of the resized image (``crop`` mode), else None.
    """

    original_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    window: tuple[int, int, int, int]
    scale: tuple[float, float]
    crop: tuple[int, int, int, int] | None = None

    def window_yxyx(self) -> np.ndarray:
        """The window as Matterport's int32 (y1, x1, y2, x2)."""
        x1, y1, x2, y2 = self.window
        return np.array([y1, x1, y2, x2], dtype=np.int32)


@dataclass(frozen=True)
class ResizePlan:
    """Geometry of molding one image: resize to ``resized_shape``, crop, then pad.

    ``padding`` is (top, bottom, left, right) in pixels.
    """

    original_shape: tuple[int, int]
    resized_shape: tuple[int, int]
    padding: tuple[int, int, int, int]
    crop: tuple[int, int, int, int] | None = None

    def meta(self) -> ImageMeta:
        top, _, left, _ = self.padding
        h, w = self.crop[2:] if self.crop else self.resized_shape
        scale = (
            self.resized_shape[0] / self.original_shape[0],
            self.resized_shape[1] / self.original_shape[1],
        )
        return ImageMeta(
            self.original_shape,
            self.resized_shape,
            (left, top, left + w, top + h),
            scale,
            self.crop,
        )

    @property
    def output_shape(self) -> tuple[int, int]:
        top, bottom, left, right = self.padding
        h, w = self.crop[2:] if self.crop else self.resized_shape
        return (h + top + bottom, w + left + right)


def plan_resize(
    height: int,
    width: int,
    mode: str,
    min_dim: int,
    max_dim: int,
    min_scale: float = 0,
    rng: np.random.Generator | None = None,
) -> ResizePlan:
    """Work out how an image of ``height`` x ``width`` is resized and padded.

    Modes (Matterport's, plus torchvision's):
        none: no resize, no padding.
        square: scale up so the shorter side is at least ``min_dim`` and down so the longer side
            is at most ``max_dim``; pad to ``max_dim`` x ``max_dim`` (image centred).
        pad64: scale up so the shorter side is at least ``min_dim``; pad (centred) to multiples
            of 64.
        square_pad64: scale as "square", pad (centred) only to multiples of 64: the tight input
            for video (a 640 x 360 frame at 800/1024 becomes 1024 x 576, not 1024 x 1024); the
            network sees the same pixels at the same scale, less padding.
        crop: scale as pad64, then take a random ``min_dim`` x ``min_dim`` crop (training only;
            ``rng`` picks the corner).
        shortest_side: scale so the shorter side is ``min_dim`` unless the longer side would
            exceed ``max_dim``; sizes are floor(side * scale); pad bottom and right to multiples
            of 32 (torchvision's GeneralizedRCNNTransform).
    ``min_scale`` (IMAGE_MIN_SCALE) forces at least that scale in Matterport's modes.
    """
    if mode == "none":
        return ResizePlan((height, width), (height, width), (0, 0, 0, 0))
    if mode == "shortest_side":
        scale = min(min_dim / min(height, width), max_dim / max(height, width))
        # At least 1 pixel: an extreme aspect ratio (1 x 4000) would otherwise floor to 0.
        new_h, new_w = max(1, math.floor(height * scale)), max(1, math.floor(width * scale))
        pad_h = -new_h % SHORTEST_SIDE_PAD
        pad_w = -new_w % SHORTEST_SIDE_PAD
        return ResizePlan((height, width), (new_h, new_w), (0, pad_h, 0, pad_w))
    if mode not in ("square", "pad64", "crop", "square_pad64"):
        raise ValueError(f"unknown IMAGE_RESIZE_MODE {mode!r}")

    scale = matterport_scale(height, width, mode, min_dim, max_dim, min_scale)
    new_h, new_w = max(1, round(height * scale)), max(1, round(width * scale))  # as above
    if scale > max(1.0, min_scale or 0):  # IMAGE_MIN_DIM scales it up (not IMAGE_MIN_SCALE)
        check_upscaled_size((height, width), (new_h, new_w), mode, min_dim, max_dim)

    if mode == "square":
        top = (max_dim - new_h) // 2
        left = (max_dim - new_w) // 2
        padding = (top, max_dim - new_h - top, left, max_dim - new_w - left)
        return ResizePlan((height, width), (new_h, new_w), padding)
    if mode in ("pad64", "square_pad64"):
        pad_h, pad_w = -new_h % 64, -new_w % 64
        padding = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
        return ResizePlan((height, width), (new_h, new_w), padding)
    # crop
    rng = rng if rng is not None else np.random.default_rng()
    crop_h, crop_w = min(min_dim, new_h), min(min_dim, new_w)
    y = int(rng.integers(0, new_h - crop_h + 1))
    x = int(rng.integers(0, new_w - crop_w + 1))
    padding = (0, min_dim - crop_h, 0, min_dim - crop_w)
    return ResizePlan((height, width), (new_h, new_w), padding, crop=(y, x, crop_h, crop_w))


def check_upscaled_size(
    original: tuple[int, int], resized: tuple[int, int], mode: str, min_dim: int, max_dim: int
) -> None:
    """Refuse an image that scaling its short side up to ``min_dim`` makes larger than
    :data:`MAX_UPSCALED_AREA` x max(``min_dim``, ``max_dim``)² pixels (a thin strip in the
    "pad64" and "crop" modes, which do not bound the long side).

    Raises:
        InputSizeError: one line naming the shape, the mode and what to do.
    """
    limit = MAX_UPSCALED_AREA * max(min_dim, max_dim) ** 2
    if resized[0] * resized[1] <= limit:
        return
    raise InputSizeError(
        f"an image of {original[0]}x{original[1]} pixels would become a "
        f"{resized[0]}x{resized[1]} network input under IMAGE_RESIZE_MODE={mode!r} "
        f"(IMAGE_MIN_DIM={min_dim} scales its short side up), over the {limit} pixels "
        f"allowed ({MAX_UPSCALED_AREA} x max(IMAGE_MIN_DIM, IMAGE_MAX_DIM)^2): crop the image "
        "to a less extreme aspect ratio, or use IMAGE_RESIZE_MODE=square or shortest_side, "
        "which bound the long side"
    )


def matterport_scale(
    height: int, width: int, mode: str, min_dim: int, max_dim: int, min_scale: float = 0
) -> float:
    """The resize factor of Matterport's modes ("square", "pad64", "crop", and "square_pad64",
    which scales as "square"): up so the shorter side is at least ``min_dim``, at least
    ``min_scale``, and ("square", "square_pad64") down so the longer side is at most
    ``max_dim``."""
    scale = max(1.0, min_dim / min(height, width)) if min_dim else 1.0
    if min_scale and scale < min_scale:
        scale = float(min_scale)
    if max_dim and mode in SQUARE_SCALED and round(max(height, width) * scale) > max_dim:
        scale = max_dim / max(height, width)
    return scale


def plan_for_config(height: int, width: int, config, rng=None) -> ResizePlan:
    """:func:`plan_resize` with the IMAGE_* settings of a config."""
    return plan_resize(
        height,
        width,
        config.IMAGE_RESIZE_MODE,
        config.IMAGE_MIN_DIM,
        config.IMAGE_MAX_DIM,
        config.IMAGE_MIN_SCALE,
        rng,
    )
