"""What every output format shares: which regions a person drew, the overlap test that keeps
detections off them, and the marker that lets a rerun replace only its own regions.

A region annotate writes carries two attributes: ``score`` (the model's confidence) and
``mrcnn`` (:data:`MARKER`), a fingerprint of its label and geometry as written. On a rerun over
the same project, a region whose fingerprint still matches is annotate's and unchanged: it is
replaced by the new detections of its image. Every other region is a person's: one without the
marker, and one annotate wrote that a person has since edited (moved a vertex, changed the
label), whose fingerprint no longer matches. Those are never removed nor changed, and a
detection whose mask IoU with one of them exceeds ``skip_iou`` is not written.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from mrcnn.datasets.regions import rasterize
from mrcnn.labelling.polygons import (
    DEFAULT_MIN_AREA,
    DEFAULT_TOLERANCE,
    Detection,
    Outline,
    outline,
)

#: The attribute holding the fingerprint of a region annotate wrote.
MARKER = "mrcnn"
#: The attribute holding a detection's score.
SCORE = "score"
#: Default mask IoU above which a detection overlapping a person's region is not written.
DEFAULT_SKIP_IOU = 0.5


def fingerprint(label: str, geometry: Any) -> str:
    """12 hex digits identifying a region's label and geometry as written in the file."""
    text = json.dumps([label, geometry], sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


@dataclass
class WriteOptions:
    """How detections become regions.

    Attributes:
        tolerance: polygon simplification, pixels (0: every border pixel).
        min_area: smallest part and smallest hole kept, pixels.
        skip_iou: a detection whose mask IoU with a person's region is above this is skipped.
        polygons_only: write polygons even for masks with holes (holes filled), so that every
            region can be edited vertex by vertex.
    """

    tolerance: float = DEFAULT_TOLERANCE
    min_area: int = DEFAULT_MIN_AREA
    skip_iou: float = DEFAULT_SKIP_IOU
    polygons_only: bool = False


@dataclass
class ImageRecord:
    """An image annotate ran on: its file, the name written into the project (relative to the
    annotation file's folder, ``/``-separated), and its (height, width) as read."""

    path: Path
    name: str
    height: int
    width: int


@dataclass
class HumanRegion:
    """A region of the project kept as it is; ``rle`` is its COCO RLE for the overlap test
    (None when our loaders cannot read its shape, e.g. a polyline)."""

    rle: dict | None


@dataclass
class ImageCounts:
    """What happened to one image's detections."""

    detections: int = 0
    written: int = 0
    overlapping: int = 0
    too_small: int = 0
    replaced: int = 0
    kept: int = 0
    holes_filled: int = 0
    notes: list[str] = field(default_factory=list)


class Project(ABC):
    """An annotation project in one format, read from a file (or empty), to which detections
    are added image by image and which is written back whole.

    Subclasses implement reading, the regions of an image, replacing annotate's regions of an
    image, and the output files.
    """

    #: The --format name.
    format: str = ""
    #: Whether a mask with holes can be written as a bitmap shape.
    bitmaps: bool = False

    def __init__(self, class_names: list[str], options: WriteOptions | None = None) -> None:
        self.class_names = list(class_names)
        self.options = options or WriteOptions()
        self.source: Path | None = None

    @abstractmethod
    def read(self, path: Path) -> None:
        """Load an existing project to merge into (ValueError, one line, when it is not one)."""

    @abstractmethod
    def regions(self, image: ImageRecord) -> tuple[list[HumanRegion], int]:
        """(the person's regions of ``image``, how many regions annotate wrote unchanged)."""

    @abstractmethod
    def replace(self, image: ImageRecord, written: list[tuple[Detection, Outline]]) -> None:
        """Drop annotate's unchanged regions of ``image`` and add these."""

    @abstractmethod
    def contents(self, output: Path) -> dict[Path, str]:
        """{file path: text} of the project written to ``output``."""

    def opening_note(self) -> str:
        """A line on opening the written project in its tool, where something needs doing."""
        return ""

    def add_image(self, image: ImageRecord, detections: list[Detection]) -> ImageCounts:
        """Add an image's detections: those overlapping a person's region, and those empty after
        cleaning, are not written; annotate's earlier regions of the image are replaced."""
        counts = ImageCounts(detections=len(detections))
        humans, counts.replaced = self.regions(image)
        counts.kept = len(humans)
        overlapping = self._overlapping(image, detections, humans)
        written = []
        for detection, skip in zip(detections, overlapping, strict=True):
            if skip:
                counts.overlapping += 1
                continue
            shape = outline(detection, self.options.tolerance, self.options.min_area)
            if not shape.rings:
                counts.too_small += 1
                continue
            if shape.holes and (self.options.polygons_only or not self.bitmaps):
                counts.holes_filled += 1
            written.append((detection, shape))
        counts.written = len(written)
        self.replace(image, written)
        return counts

    def _overlapping(
        self, image: ImageRecord, detections: list[Detection], humans: list[HumanRegion]
    ) -> list[bool]:
        """Per detection: whether its mask IoU with a person's region exceeds skip_iou."""
        human_rles = [h.rle for h in humans if h.rle is not None]
        if not detections or not human_rles:
            return [False] * len(detections)
        rles = [encode(d.full_mask(image.height, image.width)) for d in detections]
        ious = np.asarray(mask_utils.iou(rles, human_rles, [0] * len(human_rles)))
        return list(ious.reshape(len(rles), len(human_rles)).max(axis=1) > self.options.skip_iou)

    def uses_bitmap(self, shape: Outline) -> bool:
        """Whether a detection is written as a bitmap shape (it keeps a hole, the format has
        bitmaps, and polygons were not asked for)."""
        return bool(shape.holes) and self.bitmaps and not self.options.polygons_only


def encode(mask: np.ndarray) -> dict:
    """The compressed COCO RLE of a bool [H, W] mask."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools on numpy 2
        return mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))


def geometry_rle(geometry: dict, height: int, width: int) -> dict:
    """The RLE of one of our loaders' geometry dicts (:mod:`mrcnn.datasets.regions`)."""
    return encode(rasterize(geometry, height, width))


def name_key(name: str) -> str:
    """How image names of a project are matched to the images annotated: by file name."""
    return Path(str(name).replace("\\", "/")).name


def relative_name(path: Path, folder: Path) -> str:
    """``path`` relative to ``folder``, ``/``-separated (absolute when on another drive)."""
    try:
        return Path(os.path.relpath(Path(path).resolve(), Path(folder).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).resolve().as_posix()
