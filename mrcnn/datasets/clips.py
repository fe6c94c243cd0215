"""Synthetic video clips with ground truth, in the look of :mod:`mrcnn.datasets.shapes`.

Squares, circles and triangles drawn with its :func:`~mrcnn.datasets.shapes.draw_shape` on
plain backgrounds, in 128 x 128 frames, so that the demo's trained shapes model detects them.
Each clip is a function of a seed (and sizes): equal arguments give equal clips.

- ``crossing``: two or three shapes on their own straight paths, crossing and partly hidden;
- ``occlusion``: a shape passes behind a larger square, fully hidden for some frames;
- ``enter_leave``: shapes crossing the whole frame at different times;
- ``cut``: two unrelated scenes of drifting shapes (:attr:`Clip.cut_frame`);
- ``pan_zoom``: a camera panning and zooming in over a photo with shapes painted on it.

Ground truth per frame (:class:`Clip`): track ids, classes, visible masks, boxes, true motion
and visibility. An object showing under :data:`MIN_VISIBLE_PIXELS` pixels is left out.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mrcnn.datasets.shapes import MIN_CONTRAST, SHAPES, draw_shape
from mrcnn.outputs import atomic_output
from mrcnn.structures.boxes import broadcast_iou, extract_boxes_from_masks

#: Class names by class id: the shapes dataset's, and one class for a photo's own objects.
CLASS_NAMES = ("BG", *SHAPES, "object")
#: Class id of a photo's objects in :func:`pan_zoom`.
PHOTO_CLASS_ID = len(SHAPES) + 1
#: An object showing fewer visible pixels than this in a frame is absent from its ground truth.
MIN_VISIBLE_PIXELS = 20
DEFAULT_FRAMES, DEFAULT_SIZE = 40, 128  # frames and frame side (pixels) of a clip
#: Least colour distance (0-255 units, Euclidean) between two shapes of one scene.
MIN_SHAPE_CONTRAST = 60.0
#: In ``crossing``, every shape keeps at least this share of its pixels in sight.
CROSSING_VISIBILITY = 0.4


@dataclass
class Clip:
    """A generated clip and its ground truth, frame by frame.

    Attributes:
        kind, seed: what made it (``make_clip(kind, seed)`` makes it again).
        frames: uint8 [T, H, W, 3] RGB.
        track_ids: per frame, int64 [N_t]: each visible object's id (>= 1).
        class_ids: per frame, int32 [N_t] (see :data:`CLASS_NAMES`).
        masks: per frame, bool [H, W, N_t]: visible pixels only.
        shifts: per frame, float64 [N_t, 2] (dy, dx): the object's true motion since the
            frame before (whole pixels for shapes; for ``pan_zoom`` the move of its mask's
            centroid, NaN where it was absent the frame before); NaN at a scene's first frame.
        visibility: per frame, float64 [N_t]: the share of the object's pixels that is
            visible (not occluded, not off the frame), in (0, 1].
        cut_frame: the first frame of the second scene (``cut``), else None.
        boxes: per frame, int32 [N_t, 4] (y1, x1, y2, x2), exclusive y2/x2, around the masks.
    """

    kind: str
    seed: int
    frames: np.ndarray
    track_ids: list[np.ndarray]
    class_ids: list[np.ndarray]
    masks: list[np.ndarray]
    shifts: list[np.ndarray]
    visibility: list[np.ndarray]
    cut_frame: int | None = None
    class_names: tuple[str, ...] = CLASS_NAMES
    boxes: list[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.boxes = [extract_boxes_from_masks(m) for m in self.masks]

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.seed}"

    def __len__(self) -> int:
        return len(self.frames)

    def ground_truth(self, t: int) -> dict:
        """Frame ``t``'s ground truth as a ``MaskRCNN.detect``-style dict: "rois" int32 [N, 4]
        (y1, x1, y2, x2), "boxes" float32 [N, 4] (x1, y1, x2, y2), "class_ids", "scores" (all
        1), "masks" bool [H, W, N] and "track_ids" int64 [N]."""
        rois = self.boxes[t]
        return {
            "rois": rois,
            "boxes": rois[:, [1, 0, 3, 2]].astype(np.float32),
            "class_ids": self.class_ids[t],
            "scores": np.ones(len(rois), dtype=np.float32),
            "masks": self.masks[t],
            "track_ids": self.track_ids[t],
        }


@dataclass(frozen=True)
class _Mover:
    """One shape of a scene: its centre is ``path[t]`` (x, y), whole pixels, at frame t."""

    shape: str
    color: tuple[int, int, int]
    size: int
    path: np.ndarray  # int [T, 2]


class _Truth(list):
    """(frame, ids, classes, shifts, visibility, masks) of consecutive frames."""

    def add(self, frame, ids, classes, masks, shifts, visibility) -> None:
        keep = masks.sum(axis=(0, 1)) >= MIN_VISIBLE_PIXELS
        shifts = np.asarray(shifts, dtype=np.float64).reshape(-1, 2)
        visibility = np.minimum(1.0, np.asarray(visibility, dtype=np.float64))
        columns = (np.asarray(ids, np.int64), np.asarray(classes, np.int32), shifts, visibility)
        self.append((frame, *(c[keep] for c in columns), masks[:, :, keep]))

    def clip(self, kind: str, seed: int, cut_frame: int | None = None) -> Clip:
        frames, ids, classes, shifts, seen, masks = (list(c) for c in zip(*self, strict=True))
        return Clip(kind, seed, np.stack(frames), ids, classes, masks, shifts, seen, cut_frame)


# ------------------------------------------------------------------------------------------------
# The clips
# ------------------------------------------------------------------------------------------------
def crossing(
    seed: int, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE, count: int | None = None
) -> Clip:
    """Two or three (``count``) shapes on straight paths through the middle at different
    angles and speeds (1.5-3 px a frame): they cross, and the later-drawn one occludes the
    others in part, never below :data:`CROSSING_VISIBILITY` of a shape. Every shape stays
    wholly inside the frame."""
    rng = _rng(seed, "crossing")
    count = int(rng.integers(2, 4)) if count is None else int(count)
    background = _background(rng)
    colors = _colors(rng, background, count)
    for _ in range(100):  # paths until the shapes overlap, but none hides another
        truth = _render([(background, _crossing_paths(rng, colors, frames, size))], size)
        seen = [v.min() if len(v) == count else 0.0 for v in (t[4] for t in truth)]
        if CROSSING_VISIBILITY <= min(seen) < 0.9:
            break
    return truth.clip("crossing", seed)


def _crossing_paths(rng, colors: list, frames: int, size: int) -> list[_Mover]:
    middle = np.array([size / 2, size / 2]) + rng.uniform(-4, 4, 2)
    base_angle, spread = rng.uniform(0, 2 * math.pi, 2)
    movers = []
    for k, color in enumerate(colors):
        # directions spread over half a turn, every other one reversed: the starts spread too
        angle = base_angle + k * math.pi / len(colors) + math.pi * (k % 2) + rng.uniform(-0.2, 0.2)
        direction = np.array([math.cos(angle), math.sin(angle)])
        half = int(rng.integers(size // 8, size * 5 // 32 + 1))
        aside = spread + 2 * math.pi * k / len(colors)
        through = middle + rng.uniform(6, 14) * np.array([math.cos(aside), math.sin(aside)])
        when = frames // 2 + int(rng.integers(-3, 4))
        reach = _reach(through, direction, half, size)
        speed = min(rng.uniform(1.5, 3.0), reach / max(1, when, frames - 1 - when))
        steps = (np.arange(frames) - when)[:, None]
        path = np.round(through + direction * speed * steps).astype(np.int64)
        movers.append(_Mover(_random_shape(rng), color, half, path))
    return movers


def occlusion(
    seed: int, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE, hidden_frames: int = 6
) -> Clip:
    """A shape (track 2) passes behind a larger square (track 1, still) and is fully hidden
    for at least ``hidden_frames`` frames around the middle of the clip (one more when the
    count is even); a bystander (track 3) drifts above or below them."""
    if hidden_frames < 1:
        raise ValueError(f"occlusion: hidden_frames must be at least 1, got {hidden_frames}")
    rng = _rng(seed, "occlusion")
    background = _background(rng)
    colors = _colors(rng, background, 3)
    small = int(rng.integers(size // 8 - 2, size // 8 + 1))
    speed = int(max(1, min(2, (size // 2 - small - 2) // max(1, frames // 2))))
    big = small + speed * math.ceil((hidden_frames - 1) / 2)
    centre = np.array([size // 2, size // 2]) + rng.integers(-4, 5, 2)
    occluder = _Mover("square", colors[0], big, np.repeat(centre[None], frames, axis=0))
    steps = (np.arange(frames) - frames // 2)[:, None] * np.array([speed, 0])
    lane = centre + np.array([0, int(rng.integers(-(big - small) // 2, (big - small) // 2 + 1))])
    if rng.random() < 0.5:
        steps = -steps  # right to left
    hidden = _Mover(str(rng.choice(("circle", "square"))), colors[1], small, lane + steps)
    side = size // 8
    row = side + 2 if rng.random() < 0.5 else size - side - 3
    start = np.array([int(rng.integers(side + 2, size // 2)), row])
    drift = start + np.arange(frames)[:, None] * np.array([1, 0])
    bystander = _Mover(_random_shape(rng), colors[2], side, drift)
    # drawing order: the bystander, the hidden shape, the occluder in front
    truth = _render([(background, [bystander, hidden, occluder])], size, ids=[3, 2, 1])
    return truth.clip("occlusion", seed)


def enter_leave(
    seed: int, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE, count: int = 3
) -> Clip:
    """``count`` shapes crossing the whole frame (edge to opposite edge, 3-5 px a frame), at
    their own times: the first, third, ... enter during the clip, the others leave during it;
    each is in for at least 10 frames (of a clip of 20 or more)."""
    rng = _rng(seed, "enter_leave")
    background = _background(rng)
    colors = _colors(rng, background, count)
    movers = []
    for k in range(count):
        half = int(rng.integers(size // 8, size * 3 // 16 + 1))
        speed = rng.uniform(3.0, 5.0)
        duration = (size + 2 * half + 4) / speed  # frames from entering to gone
        start = rng.uniform(0, max(1, frames - 10))  # enters then
        if k % 2:
            start = rng.uniform(min(10, frames), frames) - duration  # leaves then
        along = -half - 2 + speed * (np.arange(frames) - start)
        lane = np.full(frames, int(rng.integers(half + 1, size - half - 1)))
        if rng.random() < 0.5:
            along = size - 1 - along  # the other way
        axis = int(rng.integers(0, 2))  # 0: moves along x, 1: along y
        path = np.stack([along, lane] if axis == 0 else [lane, along], axis=1)
        movers.append(_Mover(_random_shape(rng), colors[k], half, np.round(path).astype(np.int64)))
    return _render([(background, movers)], size).clip("enter_leave", seed)


def cut(seed: int, frames: int = DEFAULT_FRAMES, size: int = DEFAULT_SIZE) -> Clip:
    """Two unrelated scenes of drifting shapes (placed as in the shapes dataset, drifting up
    to 1.5 px a frame); the second starts at :attr:`Clip.cut_frame`, near the middle, and its
    objects have new track ids."""
    if frames < 4:
        raise ValueError(f"cut: a clip with a cut needs at least 4 frames, got {frames}")
    rng = _rng(seed, "cut")
    cut_frame = frames // 2 + int(rng.integers(-min(3, frames // 4), min(3, frames // 4) + 1))
    scenes = [_drifting_scene(rng, n, size) for n in (cut_frame, frames - cut_frame)]
    return _render(scenes, size).clip("cut", seed, cut_frame)


CLIP_KINDS = {"crossing": crossing, "occlusion": occlusion, "enter_leave": enter_leave, "cut": cut}


def make_clip(kind: str, seed: int, **options) -> Clip:
    """The clip of ``kind`` (a key of :data:`CLIP_KINDS`) and ``seed``; ``options`` go to its
    function (frames, size, ...)."""
    if kind not in CLIP_KINDS:
        raise ValueError(f"unknown clip kind {kind!r}; use one of {sorted(CLIP_KINDS)} or pan_zoom")
    return CLIP_KINDS[kind](seed, **options)


def pan_zoom(
    photo: np.ndarray,
    seed: int,
    frames: int = DEFAULT_FRAMES,
    size: int = DEFAULT_SIZE,
    *,
    photo_masks: np.ndarray | None = None,
    shapes: int = 3,
    zoom: tuple[float, float] = (1.3, 2.0),
) -> Clip:
    """A camera panning across ``photo`` and zooming in, with ``shapes`` shapes painted on it.

    The photo is scaled so that its shorter side is twice ``size`` (the canvas); the view,
    ``size`` / zoom canvas pixels wide, pans about 1.5 canvas pixels a frame while the zoom
    grows geometrically from ``zoom[0]`` to ``zoom[1]`` (bilinear resampling). The shapes (10-16
    canvas pixels, half-side or radius) sit where the view passes, over the photo's objects.

    Args:
        photo: RGB uint8 [h, w, 3], at least 32 pixels a side.
        photo_masks: optional bool [h, w, K]: the photo's own objects (e.g. balloons from
            their VIA polygons), ground truth of class :data:`PHOTO_CLASS_ID`, track ids after
            the shapes'.
    """
    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] != 3 or min(photo.shape[:2]) < 32:
        raise ValueError(f"pan_zoom: photo must be RGB [h, w, 3], h, w >= 32; got {photo.shape}")
    if photo_masks is not None and np.shape(photo_masks)[:2] != photo.shape[:2]:
        raise ValueError(f"pan_zoom: photo_masks {np.shape(photo_masks)} must be [h, w, K]")
    rng = _rng(seed, "pan_zoom")
    scale = 2 * size / min(photo.shape[:2])
    canvas_size = (round(photo.shape[1] * scale), round(photo.shape[0] * scale))  # (w, h)
    canvas = cv2.resize(np.ascontiguousarray(photo), canvas_size, interpolation=cv2.INTER_AREA)
    centres, zooms = _camera(rng, canvas.shape[:2], frames, size, zoom)
    objects, classes, areas = _painted_shapes(rng, canvas, centres, size / zooms.max(), shapes)
    if photo_masks is not None and np.shape(photo_masks)[2]:
        small = cv2.resize(np.asarray(photo_masks, np.uint8) * 255, canvas_size, cv2.INTER_AREA)
        small = small.reshape(*canvas.shape[:2], -1) >= 128
        covered = np.any(objects, axis=2, keepdims=True) if objects.shape[2] else False
        objects = np.concatenate([objects, small & ~covered], axis=2)
        classes += [PHOTO_CLASS_ID] * small.shape[2]
        areas += small.sum(axis=(0, 1)).tolist()
    truth, previous = _Truth(), {}
    for centre, z in zip(centres, zooms, strict=True):
        warp = np.array([[z, 0, size / 2 - z * centre[0]], [0, z, size / 2 - z * centre[1]]])
        frame = cv2.warpAffine(canvas, warp, (size, size), borderMode=cv2.BORDER_REFLECT_101)
        masks = _warped_masks(objects, warp, size)
        ids = np.arange(1, masks.shape[2] + 1)
        shifts = _centroid_shifts(masks, ids, previous)
        visibility = masks.sum(axis=(0, 1)) / np.maximum(1, np.asarray(areas) * z * z)
        truth.add(frame, ids, classes, masks, shifts, visibility)
    return truth.clip("pan_zoom", seed)


def write_clip(clip: Clip, path: str | os.PathLike, fps: float = 10.0) -> Path:
    """Write the clip's frames as a video (``.avi``: MJPG, else mp4v), atomically; return
    ``path``. The codecs are lossy: frames read back differ slightly from ``clip.frames``."""
    height, width = clip.frames.shape[1:3]
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if Path(path).suffix.lower() == ".avi" else "mp4v"))
    with atomic_output(path) as temporary:
        writer = cv2.VideoWriter(str(temporary), fourcc, float(fps), (width, height))
        try:
            for frame in clip.frames:
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return Path(path)


# ------------------------------------------------------------------------------------------------
# Scenes of shapes
# ------------------------------------------------------------------------------------------------
def _rng(seed: int, kind: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), zlib.crc32(kind.encode("ascii"))])


def _background(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _random_shape(rng: np.random.Generator) -> str:
    return SHAPES[int(rng.integers(0, len(SHAPES)))]


def _colors(rng: np.random.Generator, background, count: int) -> list[tuple[int, int, int]]:
    """``count`` colours, each contrasting with the background (MIN_CONTRAST) and with the
    others (MIN_SHAPE_CONTRAST), as far as 200 draws allow."""
    chosen: list[np.ndarray] = []
    for _ in range(count):
        for _ in range(200):
            color = rng.integers(0, 256, 3)
            if np.linalg.norm(color - np.asarray(background)) >= MIN_CONTRAST and all(
                np.linalg.norm(color - other) >= MIN_SHAPE_CONTRAST for other in chosen
            ):
                break
        chosen.append(color)
    return [tuple(int(c) for c in color) for color in chosen]


def _reach(point: np.ndarray, direction: np.ndarray, half: int, size: int) -> float:
    """How far a shape of half-size ``half`` centred at ``point`` (x, y) may go along
    ``direction`` and against it before it leaves the ``size`` x ``size`` frame."""
    low, high = half + 1, size - 2 - half
    reach = math.inf
    for coordinate, step in zip(point, direction, strict=True):
        if abs(step) > 1e-9:
            reach = min(reach, (high - coordinate) / abs(step), (coordinate - low) / abs(step))
    return max(0.0, reach)


def _drifting_scene(rng: np.random.Generator, frames: int, size: int):
    """(background, movers): two or three shapes placed apart, drifting in the frame."""
    background, movers, boxes = _background(rng), [], []
    for color in _colors(rng, background, int(rng.integers(2, 4))):
        half = int(rng.integers(size // 8, size // 5 + 1))
        place = _place_apart(boxes, half, rng.integers(half + 1, size - half - 1, (30, 2)))
        if place is None:
            continue  # crowded: fewer shapes
        low, high, last = half + 1, size - 2 - half, max(1, frames - 1)
        speed = np.clip(rng.uniform(-1.5, 1.5, 2), (low - place) / last, (high - place) / last)
        path = np.round(place + np.arange(frames)[:, None] * speed).astype(np.int64)
        movers.append(_Mover(_random_shape(rng), color, half, path))
    return background, movers


def _place_apart(boxes: list, half: int, candidates: np.ndarray) -> np.ndarray | None:
    """The first of the ``candidates`` [K, 2] centres (x, y) whose box (half-side ``half``)
    overlaps none of ``boxes`` (IoU < 0.05; it is appended to them); None if crowded."""
    for x, y in np.asarray(candidates, dtype=np.int64):
        box = np.array((x - half, y - half, x + half, y + half), dtype=np.float64)
        if not boxes or np.all(broadcast_iou(box, np.asarray(boxes)) < 0.05):
            boxes.append(box)
            return np.array([x, y])
    return None


def _render(scenes: Sequence[tuple], size: int, ids: Sequence[int] | None = None) -> _Truth:
    """Draw consecutive scenes (background, movers in drawing order) in ``size`` x ``size``
    frames; track ids are ``ids`` (one scene) or 1, 2, ... in drawing order, scene after
    scene."""
    truth, first = _Truth(), 1
    for background, movers in scenes:
        own = list(ids) if ids is not None else list(range(first, first + len(movers)))
        first += len(movers)
        classes = [SHAPES.index(m.shape) + 1 for m in movers]
        for t in range(len(movers[0].path)):
            frame = np.full((size, size, 3), background, dtype=np.uint8)
            masks, visibility = _draw(frame, movers, t)
            shifts = [(m.path[t] - m.path[t - 1])[::-1] if t else (np.nan, np.nan) for m in movers]
            truth.add(frame, own, classes, masks, shifts, visibility)
    return truth


def _draw(image: np.ndarray, movers: Sequence[_Mover], t: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw the movers at frame t on ``image`` (RGB uint8 [H, W, 3], in place), in order;
    return (their visible masks bool [H, W, N], the visible share of each, float [N])."""
    masks = np.zeros((*image.shape[:2], len(movers)), dtype=bool)
    canvas = np.zeros(image.shape[:2], dtype=np.uint8)
    for i, mover in enumerate(movers):
        dims = (*(int(v) for v in mover.path[t]), mover.size)
        draw_shape(image, mover.shape, dims, mover.color)
        canvas[:] = 0
        draw_shape(canvas, mover.shape, dims, 1)
        masks[:, :, i] = canvas.astype(bool)
    visible = _visible(masks)
    whole = [_area(m.shape, m.size) for m in movers]
    return visible, visible.sum(axis=(0, 1)) / np.maximum(1, whole)


@functools.lru_cache(maxsize=256)
def _area(shape: str, size: int) -> int:
    """Pixels of a whole shape of half-size ``size`` as draw_shape draws it."""
    canvas = np.zeros((2 * size + 3, 2 * size + 3), dtype=np.uint8)
    draw_shape(canvas, shape, (size + 1, size + 1, size), 1)
    return int(canvas.sum())


def _visible(masks: np.ndarray) -> np.ndarray:
    """bool [H, W, N] drawn in order: each keeps the pixels no later one covers."""
    covered = np.zeros(masks.shape[:2], dtype=bool)
    out = masks.copy()
    for i in range(masks.shape[2] - 1, -1, -1):
        out[:, :, i] &= ~covered
        covered |= masks[:, :, i]
    return out


# ------------------------------------------------------------------------------------------------
# The camera over a photo
# ------------------------------------------------------------------------------------------------
def _camera(rng, canvas_shape, frames: int, size: int, zoom: tuple[float, float]):
    """(centres float [T, 2] (x, y) in canvas pixels, zooms float [T]) of a view that pans
    about 1.5 canvas pixels a frame along the canvas's longer side and zooms in
    geometrically, staying inside the canvas."""
    height, width = canvas_shape
    z0, z1 = (float(z) for z in zoom)
    room = np.array([width, height]) / 2 - size / (2 * z0)  # the centre's leeway at zoom z0
    if not 0 < z0 <= z1 or np.any(room < 0):
        raise ValueError(f"pan_zoom: zoom {zoom} must grow and start where the photo fills it")
    zooms = z0 * (z1 / z0) ** (np.arange(frames) / max(1, frames - 1))
    travel = np.minimum(room, 0.75 * frames)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    start = np.array([width, height]) / 2 - sign * travel * np.array([1.0, 0.3])
    end = np.array([width, height]) / 2 + sign * travel * np.array([1.0, 0.3])
    steps = (np.arange(frames) / max(1, frames - 1))[:, None]
    return start + (end - start) * steps, zooms


def _painted_shapes(rng, canvas: np.ndarray, centres: np.ndarray, view: float, count: int):
    """Paint ``count`` shapes on ``canvas`` (in place) where the view of side ``view`` passes;
    return (their visible masks bool [h, w, K], class ids [K], whole areas [K])."""
    height, width = canvas.shape[:2]
    movers, boxes = [], []
    for color in _colors(rng, tuple(int(c) for c in canvas.mean(axis=(0, 1))), count):
        half = int(rng.integers(10, 17))
        picked = centres[rng.integers(0, len(centres), 30)] + rng.uniform(-view, view, (30, 2)) / 3
        low, high = half + 1, np.array([width, height]) - half - 2
        place = _place_apart(boxes, half, np.clip(picked, low, high))
        if place is not None:
            movers.append(_Mover(_random_shape(rng), color, half, place[None]))
    classes, areas = (
        [SHAPES.index(m.shape) + 1 for m in movers],
        [_area(m.shape, m.size) for m in movers],
    )
    return _draw(canvas, movers, 0)[0], classes, areas


def _warped_masks(objects: np.ndarray, warp: np.ndarray, size: int) -> np.ndarray:
    """bool [size, size, K]: canvas masks [h, w, K] seen through the view ``warp`` (bilinear,
    half covered counts)."""
    out = np.zeros((size, size, objects.shape[2]), dtype=bool)
    for k in range(objects.shape[2]):
        seen = cv2.warpAffine(objects[:, :, k].astype(np.uint8) * 255, warp, (size, size))
        out[:, :, k] = seen >= 128  # bilinear (the default), zero outside the canvas
    return out


def _centroid_shifts(masks: np.ndarray, ids: np.ndarray, previous: dict) -> np.ndarray:
    """float [K, 2] (dy, dx): each mask's centroid move since the last call (NaN for a mask
    that was empty then or is now); ``previous`` (id -> centroid) is updated."""
    shifts = np.full((len(ids), 2), np.nan)
    for k, track_id in enumerate(ids):
        ys, xs = np.nonzero(masks[:, :, k])
        here = (ys.mean(), xs.mean()) if len(ys) >= MIN_VISIBLE_PIXELS else None
        if here is not None and previous.get(track_id) is not None:
            shifts[k] = np.subtract(here, previous[track_id])
        previous[track_id] = here
    return shifts
