"""Instance masks as the shapes an annotation tool can edit: polygons and, for masks with holes,
bitmaps.

A mask is first cleaned (:func:`clean_mask`): parts smaller than ``min_area`` pixels are dropped
and holes smaller than ``min_area`` are filled. Its parts' outer borders are then traced with
OpenCV (:func:`outer_rings`) and simplified with ``cv2.approxPolyDP`` to ``tolerance`` pixels.

Vertices are pixel centres in (x, y) order, the convention of our loaders
(:mod:`mrcnn.datasets.regions`): filling a traced border with the pixels it passes through gives
the part back exactly at ``tolerance`` 0.

No polygon format our loaders read can cut a hole (VIA, LabelMe, CVAT and COCO polygons of one
instance are united), so a mask that keeps a hole after cleaning is written as a bitmap where the
format has one (:data:`KEEPS_HOLES`) and as its outer polygons, holes filled, where it has not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mrcnn.datasets.regions import rasterize

#: Default simplification, pixels: the largest distance between the traced border and the
#: polygon (``cv2.approxPolyDP``'s epsilon).
DEFAULT_TOLERANCE = 0.5
#: Default smallest part and smallest hole kept, pixels.
DEFAULT_MIN_AREA = 16

#: Whether each output format can hold a mask with holes (as a bitmap shape), and how.
KEEPS_HOLES = {
    "via": "no: VIA 2 has no bitmap shape and no polygon holes; holes are filled",
    "labelme": "yes: a LabelMe 'mask' shape (a PNG bitmap)",
    "coco": "yes: an RLE segmentation (COCO polygons cannot cut holes)",
    "cvat": "yes: a CVAT <mask> shape (run-length bitmap)",
}


@dataclass
class Detection:
    """One detected instance, its mask kept as the pixels of its box.

    Attributes:
        class_name: the class's name.
        score: the model's confidence in [0, 1].
        patch: bool [h, w] mask pixels of the box whose top-left pixel is (left, top).
        left, top: the patch's place in the image, pixels.
    """

    class_name: str
    score: float
    patch: np.ndarray
    left: int = 0
    top: int = 0

    @classmethod
    def from_mask(cls, mask: np.ndarray, class_name: str, score: float = 1.0) -> Detection:
        """A detection of a full-image bool [H, W] mask (cropped to its pixels' box)."""
        mask = np.asarray(mask, dtype=bool)
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if not len(rows):
            return cls(class_name, float(score), np.zeros((0, 0), dtype=bool))
        top, left = int(rows[0]), int(cols[0])
        patch = mask[top : rows[-1] + 1, left : cols[-1] + 1]
        return cls(class_name, float(score), patch.copy(), left, top)

    def full_mask(self, height: int, width: int) -> np.ndarray:
        """bool [height, width]: the patch pasted into the image (clipped to it)."""
        out = np.zeros((height, width), dtype=bool)
        h, w = self.patch.shape
        y1, x1 = max(self.top, 0), max(self.left, 0)
        y2, x2 = min(self.top + h, height), min(self.left + w, width)
        if y2 > y1 and x2 > x1:
            out[y1:y2, x1:x2] = self.patch[
                y1 - self.top : y2 - self.top, x1 - self.left : x2 - self.left
            ]
        return out


@dataclass
class Outline:
    """A cleaned detection mask, ready to be written.

    Attributes:
        rings: one float [K, 2] (x, y) image-pixel polygon per part (K >= 3), simplified.
        bitmap: bool [h, w] cleaned pixels whose top-left pixel is (left, top).
        holes: number of holes of at least ``min_area`` pixels kept in ``bitmap``.
    """

    rings: list[np.ndarray]
    bitmap: np.ndarray
    left: int
    top: int
    holes: int

    @property
    def empty(self) -> bool:
        return not self.rings and not self.bitmap.any()


def clean_mask(mask: np.ndarray, min_area: int) -> tuple[np.ndarray, int]:
    """(bool [h, w] mask, holes kept): parts (8-connected) under ``min_area`` pixels removed,
    holes (4-connected background not reaching the border) under ``min_area`` filled."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return mask.copy(), 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(
        mask.astype(np.uint8), connectivity=8
    )
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
    out = mask & ~np.isin(labels, small[small > 0])
    # Background components: pad so that everything outside the mask is one component.
    padded = np.pad(~out, 1, constant_values=True).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(padded, connectivity=4)
    outside = labels[0, 0]
    holes = [k for k in range(1, count) if k != outside]
    small_holes = [k for k in holes if stats[k, cv2.CC_STAT_AREA] < min_area]
    if small_holes:
        out |= np.isin(labels[1:-1, 1:-1], small_holes)
    return out, len(holes) - len(small_holes)


def outer_rings(
    mask: np.ndarray, tolerance: float, left: int = 0, top: int = 0
) -> list[np.ndarray]:
    """One simplified float [K, 2] (x, y) polygon per part of a bool [h, w] mask placed at
    (left, top), largest part first; parts whose polygon falls under 3 vertices are dropped."""
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    rings = []
    for contour in sorted(contours, key=lambda c: -cv2.contourArea(c)):
        if tolerance > 0:
            contour = cv2.approxPolyDP(contour, float(tolerance), True)
        ring = contour.reshape(-1, 2).astype(np.float64) + (left, top)
        ring = _without_repeats(ring)
        if len(ring) >= 3:
            rings.append(ring)
    return rings


def _without_repeats(ring: np.ndarray) -> np.ndarray:
    """The ring without consecutive duplicate vertices (a one-pixel-wide part traces back)."""
    if len(ring) < 2:
        return ring
    keep = np.any(ring != np.roll(ring, 1, axis=0), axis=1)
    return ring[keep] if keep.any() else ring[:1]


def outline(detection: Detection, tolerance: float, min_area: int) -> Outline:
    """The cleaned bitmap and simplified polygons of a detection (see the module's docstring)."""
    bitmap, holes = clean_mask(detection.patch, min_area)
    rows, cols = np.flatnonzero(bitmap.any(axis=1)), np.flatnonzero(bitmap.any(axis=0))
    if not len(rows):
        return Outline([], np.zeros((0, 0), dtype=bool), detection.left, detection.top, 0)
    bitmap = bitmap[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    left, top = detection.left + int(cols[0]), detection.top + int(rows[0])
    return Outline(outer_rings(bitmap, tolerance, left, top), bitmap, left, top, holes)


def rings_mask(rings: list[np.ndarray], height: int, width: int) -> np.ndarray:
    """bool [height, width]: the union of the filled polygons, by our loaders' rule
    (:func:`mrcnn.datasets.regions.rasterize`)."""
    out = np.zeros((height, width), dtype=bool)
    for ring in rings:
        out |= rasterize({"type": "polygon", "points": ring.tolist()}, height, width)
    return out


def bounding_box(bitmap: np.ndarray, left: int, top: int) -> list[float]:
    """[x, y, width, height] of a bitmap's pixels (COCO's bbox: pixel edges, not centres)."""
    rows, cols = np.flatnonzero(bitmap.any(axis=1)), np.flatnonzero(bitmap.any(axis=0))
    if not len(rows):
        return [float(left), float(top), 0.0, 0.0]
    return [
        float(left + cols[0]),
        float(top + rows[0]),
        float(cols[-1] - cols[0] + 1),
        float(rows[-1] - rows[0] + 1),
    ]


def pixel_edge_ring(ring: np.ndarray) -> np.ndarray:
    """A ring through border pixel centres moved out by half a pixel onto the pixels' outer
    edges, in COCO's continuous coordinates (pixel (x, y) covers [x, x + 1) x [y, y + 1)):
    pycocotools' rasteriser then gives back the traced pixels (exactly at tolerance 0)."""
    ring = np.asarray(ring, dtype=np.float64)
    x, y = ring[:, 0], ring[:, 1]
    turn = 1.0 if np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) >= 0 else -1.0
    before = ring - np.roll(ring, 1, axis=0)
    after = np.roll(ring, -1, axis=0) - ring
    normal_before, normal_after = _normals(before) * turn, _normals(after) * turn
    bisector = normal_before + normal_after
    bisector /= np.maximum(np.linalg.norm(bisector, axis=1, keepdims=True), 1e-9)
    # The corner moves along the bisector so that both edges move 0.5 (sharp corners capped).
    reach = 0.5 / np.maximum((bisector * normal_before).sum(axis=1), 0.5)
    return ring + bisector * reach[:, None] + 0.5


def _normals(edges: np.ndarray) -> np.ndarray:
    normals = np.stack([edges[:, 1], -edges[:, 0]], axis=1)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
