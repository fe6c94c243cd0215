"""Synthetic shapes: squares, circles and triangles on plain backgrounds.

Every image is described by a few numbers drawn from a random generator seeded with
``(seed, subset, image index)``, so the same arguments always give the same images and the
"train" and "val" subsets never share one. Pixels are drawn on the fly by ``load_image`` and
``load_mask``; nothing is stored. Classes: square = 1, circle = 2, triangle = 3.

Shapes are sized between 1/8 and 1/4 of the shorter image side (half-size or radius), kept
inside the image, and placed so that their boxes overlap little (IoU below
``MAX_BOX_IOU``); later shapes occlude earlier ones and masks hold the visible pixels only.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

from mrcnn.datasets.base import Dataset, image_loader, mask_loader
from mrcnn.datasets.loading import LoadReport
from mrcnn.structures.boxes import broadcast_iou

SHAPES = ("square", "circle", "triangle")

#: Largest box IoU between two shapes of one image.
MAX_BOX_IOU = 0.15

#: Smallest colour distance (Euclidean, 0-255 units) between a shape and the background.
MIN_CONTRAST = 80.0

#: Placement attempts per shape before giving up on it.
_TRIES = 30


class ShapesDataset(Dataset):
    """Generated images of squares, circles and triangles."""

    def load_shapes(
        self,
        count: int,
        height: int = 128,
        width: int = 128,
        *,
        seed: int = 0,
        subset: str | None = None,
        max_shapes: int = 4,
        source: str = "shapes",
    ) -> LoadReport:
        """Add ``count`` generated images of ``height`` x ``width`` pixels.

        Args:
            count: number of images.
            seed: base seed; equal arguments give equal images.
            subset: None or "train" give the training stream, "val" (or any other name) an
                independent stream of images.
            max_shapes: at most this many shapes per image (at least one).
        """
        if count < 1:
            raise ValueError(f"shapes: count must be at least 1, got {count}")
        if min(height, width) < 32:
            raise ValueError(f"shapes: images must be at least 32x32, got {width}x{height}")
        for class_id, name in enumerate(SHAPES, start=1):
            self.add_class(source, class_id, name)
        stream = _stream_code(subset)
        report = LoadReport(f"{source} (seed {seed}, {subset or 'train'})")
        for index in range(count):
            rng = np.random.default_rng([int(seed), stream, index])
            background, shapes = random_image_spec(rng, height, width, max_shapes)
            self.add_loaded_image(
                report,
                source,
                index,
                None,
                len(shapes),
                width=width,
                height=height,
                bg_color=background,
                shapes=shapes,
                format="shapes",
            )
        return self.keep_report(report)

    @image_loader("shapes")
    def load_shapes_image(self, image_id: int) -> np.ndarray:
        """The generated H x W x 3 uint8 RGB image."""
        info = self.image_info[image_id]
        image = np.empty((info["height"], info["width"], 3), dtype=np.uint8)
        image[:] = info["bg_color"]
        for name, color, dims in info["shapes"]:
            draw_shape(image, name, dims, tuple(int(c) for c in color))
        return image

    @mask_loader("shapes")
    def load_shapes_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """bool [H, W, N] visible-pixel masks and int32 [N] class ids, in drawing order."""
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        masks = np.zeros((height, width, len(info["shapes"])), dtype=bool)
        canvas = np.zeros((height, width), dtype=np.uint8)
        for i, (name, _, dims) in enumerate(info["shapes"]):
            canvas[:] = 0
            draw_shape(canvas, name, dims, 1)
            masks[:, :, i] = canvas.astype(bool)
        # Later shapes are drawn on top: remove what they cover from the earlier ones.
        covered_after = np.zeros((height, width), dtype=bool)
        for i in range(masks.shape[-1] - 1, -1, -1):
            own = masks[:, :, i].copy()
            masks[:, :, i] &= ~covered_after
            covered_after |= own
        class_ids = np.array(
            [
                self.map_source_class_id(f"{info['source']}.{SHAPES.index(name) + 1}")
                for name, _, _ in info["shapes"]
            ],
            dtype=np.int32,
        )
        keep = masks.any(axis=(0, 1))
        return masks[:, :, keep], class_ids[keep]

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        if info.get("format") == "shapes":
            return f"shapes image {info['id']}: " + ", ".join(s[0] for s in info["shapes"])
        return super().image_reference(image_id)


def _stream_code(subset: str | None) -> int:
    if subset in (None, "train"):
        return 0
    return 1 if subset == "val" else zlib.crc32(subset.encode("utf-8"))


def random_image_spec(
    rng: np.random.Generator, height: int, width: int, max_shapes: int
) -> tuple[tuple[int, int, int], list[tuple[str, tuple[int, int, int], tuple[int, int, int]]]]:
    """A background colour and a list of (shape name, RGB colour, (x, y, size)) where (x, y) is
    the centre and ``size`` the half-side or radius, in pixels."""
    background = tuple(int(c) for c in rng.integers(0, 256, 3))
    wanted = int(rng.integers(1, max(1, max_shapes) + 1))
    shapes: list = []
    boxes: list[tuple[float, float, float, float]] = []
    for _ in range(wanted):
        placed = _place(rng, height, width, boxes)
        if placed is None:
            continue  # crowded image: fewer shapes
        x, y, size = placed
        name = SHAPES[int(rng.integers(0, len(SHAPES)))]
        shapes.append((name, _contrasting_color(rng, background), (x, y, size)))
        boxes.append((x - size, y - size, x + size, y + size))
    if not shapes:  # the first shape always fits; kept for safety
        size = min(height, width) // 6
        color = _contrasting_color(rng, background)
        shapes.append(("square", color, (width // 2, height // 2, size)))
    return background, shapes


def _place(
    rng: np.random.Generator, height: int, width: int, boxes: list
) -> tuple[int, int, int] | None:
    side = min(height, width)
    low, high = max(4, side // 8), max(5, side // 4)
    for _ in range(_TRIES):
        size = int(rng.integers(low, high + 1))
        x = int(rng.integers(size, width - size))
        y = int(rng.integers(size, height - size))
        box = np.asarray((x - size, y - size, x + size, y + size), dtype=np.float64)
        if not boxes or np.all(broadcast_iou(box, np.asarray(boxes)) < MAX_BOX_IOU):
            return x, y, size
    return None


def _contrasting_color(rng: np.random.Generator, background: tuple) -> tuple[int, int, int]:
    color = rng.integers(0, 256, 3)
    for _ in range(_TRIES):
        if np.linalg.norm(color - np.asarray(background)) >= MIN_CONTRAST:
            break
        color = rng.integers(0, 256, 3)
    else:
        color = 255 - np.asarray(background)  # the complement always contrasts
    return tuple(int(c) for c in color)


def draw_shape(canvas: np.ndarray, name: str, dims: tuple, color) -> None:
    """Draw one filled shape into ``canvas`` ([H, W] or [H, W, 3] uint8) in place.

    ``dims`` is (x, y, size): centre and half-side (square), radius (circle) or circumradius
    (triangle, pointing up), in pixels.
    """
    x, y, size = (int(v) for v in dims)
    if name == "square":
        cv2.rectangle(canvas, (x - size, y - size), (x + size, y + size), color, -1)
    elif name == "circle":
        cv2.circle(canvas, (x, y), size, color, -1)
    elif name == "triangle":
        angles = np.deg2rad([-90.0, 30.0, 150.0])
        points = np.stack([x + size * np.cos(angles), y + size * np.sin(angles)], axis=1)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32).reshape(-1, 1, 2)], color)
    else:
        raise ValueError(f"unknown shape {name!r}; use one of {SHAPES}")


def shapes_spec_options(text: str) -> dict:
    """Options of a ``shapes[:COUNT[:SIZE]]`` spec tail, e.g. "200:256" -> count 200, 256 px."""
    parts = [p for p in text.split(":") if p] if text else []
    if len(parts) > 2 or not all(p.isdigit() for p in parts):
        raise ValueError(f"shapes spec must be shapes[:COUNT[:SIZE]], got 'shapes:{text}'")
    options: dict = {}
    if parts:
        options["count"] = int(parts[0])
    if len(parts) > 1:
        options["height"] = options["width"] = int(parts[1])
    return options
