"""Annotated regions shared by the shape-based loaders (VIA, VIA 3, LabelMe, CVAT).

A loader turns each annotation into a *geometry dict*, validated here and stored in
``image_info["regions"]``; :class:`RegionDataset` rasterises them in ``load_mask``:

    * ``{"type": "polygon", "points": [[x, y], ...]}``: vertices are pixel centres; the pixels
      an outline passes through count as inside (OpenCV's fill).
    * ``{"type": "ellipse", "center": [cx, cy], "axes": [rx, ry], "angle": degrees}``
    * ``{"type": "mask", "box": [left, top, width, height], "counts": [n0, n1, ...]}``: a
      bitmap of ``height`` rows of ``width`` pixels at (left, top), run-length coded in row
      order, starting with a run of background (CVAT's ``<mask>``).
    * ``{"type": "union", "parts": [geometry, ...]}``: one instance drawn as several shapes.

Each stored geometry also has the source ``class_id``. Coordinates are (x, y) image pixels.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mrcnn.datasets.base import Dataset, mask_loader
from mrcnn.datasets.loading import DatasetWarning, LoadReport, read_image_size

#: Fixed-point bits for sub-pixel vertices in OpenCV's drawing functions.
_SHIFT = 4

#: Coordinates are clamped to this magnitude so that fixed-point values fit in int32.
_COORD_LIMIT = 2.0**20


class RegionError(Exception):
    """A region that cannot be used: ``reason`` is a short category, ``detail`` says more."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


@dataclass
class Region:
    """One parsed annotation of an image, before its image size is known.

    ``name`` says where it is in the file ("region 3", "polygon 2"); ``geometry`` and
    ``class_name`` are set when it parsed, ``error`` when it did not.
    """

    name: str
    geometry: dict | None = None
    class_name: str | None = None
    error: RegionError | None = None


# ------------------------------------------------------------------------------------------------
# Geometry constructors (each raises RegionError for values that give no area)
# ------------------------------------------------------------------------------------------------
def finite(value: Any, what: str) -> float:
    """``value`` as a finite float, or RegionError("bad <what>")."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RegionError(f"bad {what}", repr(value)) from None
    if not math.isfinite(number):
        raise RegionError(f"bad {what}", repr(value))
    return number


def polygon(points: Any, what: str = "points") -> dict:
    """A polygon from [[x, y], ...] (three points or more)."""
    try:
        array = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise RegionError(f"bad {what}", "not all numbers") from None
    if array.ndim != 2 or array.shape[1] != 2:
        raise RegionError(f"bad {what}", "expected [[x, y], ...]")
    if not np.isfinite(array).all():
        raise RegionError(f"bad {what}", "non-finite value")
    if len(array) < 3:
        raise RegionError("polygon with fewer than 3 points", f"{len(array)} points")
    return {"type": "polygon", "points": array.tolist()}


def rectangle(x: float, y: float, width: float, height: float, angle: float = 0.0) -> dict:
    """A box covering ``width`` x ``height`` pixels from (x, y), turned by ``angle`` degrees
    (clockwise on the image) about its centre. Pixels x .. x + width - 1 are inside (VIA's
    rule: OpenCV fills the vertices' pixels)."""
    if width <= 0 or height <= 0:
        raise RegionError("rectangle without area", f"width {width:g}, height {height:g}")
    x2, y2 = x + max(width - 1, 0), y + max(height - 1, 0)
    corners = np.array([[x, y], [x2, y], [x2, y2], [x, y2]], dtype=np.float64)
    if angle:
        centre = corners.mean(axis=0)
        turn = math.radians(angle)
        rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
        corners = (corners - centre) @ rotation.T + centre
    return {"type": "polygon", "points": corners.tolist()}


def ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> dict:
    """An ellipse with semi-axes rx (along x before turning), ry, turned by ``angle`` degrees."""
    if rx <= 0 or ry <= 0:
        raise RegionError("ellipse without area", f"rx {rx:g}, ry {ry:g}")
    return {"type": "ellipse", "center": [cx, cy], "axes": [rx, ry], "angle": float(angle)}


def circle(cx: float, cy: float, r: float) -> dict:
    """A circle of radius r about (cx, cy)."""
    if r <= 0:
        raise RegionError("circle without area", f"r {r:g}")
    return ellipse(cx, cy, r, r)


def run_length_mask(left: int, top: int, width: int, height: int, counts: list[int]) -> dict:
    """A bitmap of width x height pixels at (left, top), its runs alternating background and
    foreground in row order (the first run is background and may be 0)."""
    if width <= 0 or height <= 0:
        raise RegionError("mask without area", f"width {width}, height {height}")
    if any(c < 0 for c in counts):
        raise RegionError("mask with a negative run length")
    if sum(counts) != width * height:
        raise RegionError(
            "mask runs do not fill its box", f"{sum(counts)} pixels for {width}x{height}"
        )
    if not any(counts[1::2]):
        raise RegionError("empty mask")
    return {"type": "mask", "box": [left, top, width, height], "counts": list(counts)}


def bitmap_mask(left: int, top: int, bitmap: np.ndarray) -> dict:
    """A bool [h, w] bitmap placed at (left, top), as a run-length mask geometry."""
    bitmap = np.asarray(bitmap, dtype=bool)
    if bitmap.ndim != 2 or bitmap.size == 0:
        raise RegionError("bad mask bitmap", f"shape {bitmap.shape}")
    flat = bitmap.ravel()
    edges = np.concatenate([[0], np.flatnonzero(flat[1:] != flat[:-1]) + 1, [flat.size]])
    counts = np.diff(edges).tolist()
    if flat[0]:
        counts.insert(0, 0)  # the runs start with background
    return run_length_mask(left, top, bitmap.shape[1], bitmap.shape[0], counts)


def union(parts: list[dict]) -> dict:
    """One instance made of several geometries (returned as is when there is one)."""
    return parts[0] if len(parts) == 1 else {"type": "union", "parts": parts}


# ------------------------------------------------------------------------------------------------
# Bounds and rasterisation
# ------------------------------------------------------------------------------------------------
def geometry_bounds(geometry: dict) -> tuple[float, float, float, float]:
    """(x1, y1, x2, y2) bounds of a geometry dict (conservative for turned ellipses)."""
    kind = geometry["type"]
    if kind == "polygon":
        points = np.asarray(geometry["points"], dtype=np.float64)
        return (*points.min(axis=0), *points.max(axis=0))
    if kind == "mask":
        left, top, width, height = geometry["box"]
        return left, top, left + width - 1, top + height - 1
    if kind == "union":
        bounds = np.array([geometry_bounds(part) for part in geometry["parts"]])
        return (*bounds[:, :2].min(axis=0), *bounds[:, 2:].max(axis=0))
    (cx, cy), radius = geometry["center"], max(geometry["axes"])
    return cx - radius, cy - radius, cx + radius, cy + radius


def check_inside(geometry: dict, height: int, width: int) -> None:
    """RegionError unless the geometry's bounds touch the height x width image."""
    x1, y1, x2, y2 = geometry_bounds(geometry)
    if x2 < 0 or y2 < 0 or x1 > width - 1 or y1 > height - 1:
        raise RegionError(
            "entirely outside the image",
            f"x {x1:g}..{x2:g}, y {y1:g}..{y2:g}, image {width}x{height}",
        )


def rasterize(geometry: dict, height: int, width: int) -> np.ndarray:
    """bool [height, width] mask of a geometry dict, clipped to the image. Vertices are pixel
    centres, in (x, y) order; sub-pixel values are kept."""
    kind = geometry["type"]
    if kind == "mask":
        return _paste_runs(geometry, height, width)
    if kind == "union":
        return np.logical_or.reduce([rasterize(p, height, width) for p in geometry["parts"]])
    canvas = np.zeros((height, width), dtype=np.uint8)
    if kind == "polygon":
        fixed = _fixed_point(geometry["points"]).reshape(-1, 1, 2)
        cv2.fillPoly(canvas, [fixed], 1, lineType=cv2.LINE_8, shift=_SHIFT)
    elif kind == "ellipse":
        center = tuple(int(v) for v in _fixed_point(geometry["center"]))
        axes = tuple(int(v) for v in _fixed_point(geometry["axes"]))
        angle = float(geometry["angle"])
        cv2.ellipse(canvas, center, axes, angle, 0, 360, 1, -1, cv2.LINE_8, _SHIFT)
    else:
        raise ValueError(f"unknown geometry type {kind!r}")
    return canvas.astype(bool)


def _paste_runs(geometry: dict, height: int, width: int) -> np.ndarray:
    left, top, box_width, box_height = (int(v) for v in geometry["box"])
    counts = np.asarray(geometry["counts"], dtype=np.int64)
    values = np.arange(len(counts)) % 2 == 1  # runs alternate background, foreground
    bitmap = np.repeat(values, counts).reshape(box_height, box_width)
    canvas = np.zeros((height, width), dtype=bool)
    y1, x1 = max(top, 0), max(left, 0)
    y2, x2 = min(top + box_height, height), min(left + box_width, width)
    if y2 > y1 and x2 > x1:
        canvas[y1:y2, x1:x2] = bitmap[y1 - top : y2 - top, x1 - left : x2 - left]
    return canvas


def _fixed_point(values) -> np.ndarray:
    """int32 values * 2**_SHIFT for OpenCV, clamped so that absurd coordinates cannot overflow."""
    clamped = np.clip(np.asarray(values, dtype=np.float64), -_COORD_LIMIT, _COORD_LIMIT)
    return np.round(clamped * (1 << _SHIFT)).astype(np.int32)


# ------------------------------------------------------------------------------------------------
# Classes
# ------------------------------------------------------------------------------------------------
#: Folder names that are subsets; the class name defaults to the folder above them.
_SUBSET_NAMES = {"train", "val", "valid", "validation", "test", "training", "eval"}


def default_class_name(annotation_path: Path) -> str:
    """The dataset folder's name: the annotation file's folder, or the one above a subset
    folder (``balloon`` for ``balloon/train/via_region_data.json``)."""
    folder = Path(annotation_path).resolve().parent
    if folder.name.lower() in _SUBSET_NAMES:
        folder = folder.parent
    return folder.name or "object"


def class_list(found: set[str], class_names: list[str] | None, where: str) -> list[str]:
    """The classes in id order 1..K: ``class_names`` when given, else every name found, sorted
    (collected over all subsets, so that train and val agree)."""
    if class_names is not None:
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names must be distinct names, got {class_names!r}")
        return [str(n) for n in class_names]
    if not found:
        raise ValueError(f"{where}: no labelled region found, so there are no classes")
    return sorted(found)


# ------------------------------------------------------------------------------------------------
# The dataset
# ------------------------------------------------------------------------------------------------
class RegionDataset(Dataset):
    """A dataset whose images carry geometry dicts (``format="regions"``)."""

    def add_region_image(
        self,
        source: str,
        image_id: str,
        path: Path,
        regions: list[Region],
        ids: dict[str, int],
        report: LoadReport,
        *,
        where: str,
        keep_empty: bool = False,
        size: tuple[int, int] | None = None,
        declared_size: tuple[int, int] | None = None,
        **info: Any,
    ) -> bool:
        """Validate an image's parsed regions and add it; count what is skipped in ``report``.

        Args:
            where: the file and image, for messages ("ann.xml [a.jpg]").
            size: (height, width) when known without the file (embedded image data); else
                read from ``path``'s header (EXIF orientation applied).
            declared_size: (height, width) the annotation file states; a different real size
                skips the image (its coordinates would not fit).
            info: kept in ``image_info``.
        Returns:
            whether the image was added.
        """
        size = _usable_image_size(path, size, declared_size, report, where)
        if size is None:
            return False
        height, width = size
        kept = _usable_regions(regions, ids, height, width, report, where)
        return self.add_loaded_image(
            report,
            source,
            image_id,
            str(path),
            len(kept),
            keep_empty=keep_empty,
            empty_reason="no usable regions" if regions else "no regions",
            where=where,
            width=width,
            height=height,
            regions=kept,
            format="regions",
            **info,
        )

    @mask_loader("regions")
    def load_region_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """bool [H, W, N] masks and int32 [N] class ids of an image with geometry regions."""
        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        regions = info["regions"]
        masks = np.zeros((height, width, len(regions)), dtype=bool)
        for i, geometry in enumerate(regions):
            masks[:, :, i] = rasterize(geometry, height, width)
        class_ids = np.array(
            [self.map_source_class_id(f"{info['source']}.{g['class_id']}") for g in regions],
            dtype=np.int32,
        )
        keep = masks.any(axis=(0, 1))
        if not keep.all():
            # The region's box touched the image but its area did not (e.g. a thin sliver).
            warnings.warn(
                f"{info['path']}: {int((~keep).sum())} region(s) cover no pixel; dropped",
                DatasetWarning,
                stacklevel=2,
            )
            masks, class_ids = masks[:, :, keep], class_ids[keep]
        return masks, class_ids


def _usable_image_size(
    path: Path,
    size: tuple[int, int] | None,
    declared_size: tuple[int, int] | None,
    report: LoadReport,
    where: str,
) -> tuple[int, int] | None:
    """The image's (height, width): ``size`` if given, else read from ``path``'s header; None
    (counted in ``report``) when the file is missing or unreadable, or its size is not the one
    the annotation declares (the coordinates would then not fit)."""
    if size is None:
        try:
            size = read_image_size(path)
        except FileNotFoundError:
            report.skip_image(where, "missing image file", str(path))
            return None
        except ValueError as error:
            report.skip_image(where, "unreadable image", str(error))
            return None
    height, width = size
    if declared_size is not None and tuple(declared_size) != (height, width):
        report.skip_image(
            where,
            "image size differs from the annotation's",
            f"file {width}x{height}, annotation {declared_size[1]}x{declared_size[0]}",
        )
        return None
    return size


def _usable_regions(
    regions: list[Region],
    ids: dict[str, int],
    height: int,
    width: int,
    report: LoadReport,
    where: str,
) -> list[dict]:
    """The geometry dicts of the regions that fit a height x width image; the others are
    counted in ``report`` so that one bad region does not cost the whole image."""
    kept = []
    for region in regions:
        try:
            kept.append(_checked(region, ids, height, width))
        except RegionError as error:
            report.skip_region(f"{where} {region.name}", error.reason, error.detail)
    return kept


def _checked(region: Region, ids: dict[str, int], height: int, width: int) -> dict:
    if region.error is not None:
        raise region.error
    if region.class_name not in ids:
        raise RegionError("class not in class_names", repr(region.class_name))
    check_inside(region.geometry, height, width)
    return {**region.geometry, "class_id": ids[region.class_name]}
