"""CVAT annotations in "CVAT for images 1.1" XML (``cvat:FILE``).

::

    <annotations>
      <version>1.1</version>
      <meta><task>... <labels><label><name>car</name>...</label></labels></task></meta>
      <image id="0" name="frames/a.jpg" width="640" height="480">
        <polygon label="car" points="10.5,20;30,40;50,60" .../>
        <box label="car" xtl="10" ytl="20" xbr="100" ybr="200" rotation="0" .../>
        <ellipse label="car" cx="50" cy="40" rx="10" ry="5" rotation="0" .../>
        <mask label="car" rle="3, 5, 7, ..." left="10" top="20" width="30" height="40" .../>
        <polyline .../> <points .../> <cuboid .../> <skeleton .../> <tag .../>
      </image>
    </annotations>

Instances come from ``polygon``, ``box`` (covering xbr - xtl pixels from xtl; ``rotation`` in
degrees, clockwise, about its centre), ``ellipse`` and ``mask`` (a bitmap of width x height
pixels at (left, top), run-length coded in row order starting with background). Polylines,
points, cuboids and skeletons are skipped with a warning; tags are image labels, not regions.
The class is the ``label``; the names declared under ``meta`` and those used are sorted into ids
1..K, or ``class_names`` fixes them.

Images are found by their ``name`` under ``images_dir``, by default the XML file's folder or
its ``images/`` folder (the layout of a CVAT dataset export, which ``cvat:FOLDER`` reads whole).
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Any

from mrcnn.datasets.loading import LoadReport, check_split_subset, in_subset
from mrcnn.datasets.regions import (
    Region,
    RegionDataset,
    RegionError,
    class_list,
    ellipse,
    finite,
    polygon,
    rectangle,
    run_length_mask,
)

#: The annotation file's name in a CVAT dataset export.
EXPORT_FILE = "annotations.xml"

#: Elements of an image that are annotations without area.
_SKIPPED = ("polyline", "points", "cuboid", "skeleton")
#: Elements of an image that are not shapes at all.
_NOT_SHAPES = ("tag",)


class CvatDataset(RegionDataset):
    """Images and shapes from a CVAT for images 1.1 XML file."""

    def load_cvat(
        self,
        path: str | Path,
        subset: str | None = None,
        *,
        class_names: list[str] | None = None,
        images_dir: str | Path | None = None,
        keep_empty: bool = False,
        source: str = "cvat",
    ) -> LoadReport:
        """Add the images and shapes of a CVAT XML file.

        Args:
            path: the annotations XML, or the folder of an unpacked CVAT export holding
                ``annotations.xml``.
            subset: "train"/"val" select a deterministic ~90/10 split by image name; None: all.
            class_names: fix the classes and their order (ids 1..K); shapes with other labels
                are skipped. Default: every label declared or used, sorted.
            images_dir: the folder the image names are relative to (default: the XML's folder,
                or its ``images/`` folder when the images are there).
            keep_empty: keep images without shapes (CVAT lists every image of a task).
            source: the source name of the classes and images.
        """
        path = Path(path)
        if path.is_dir():  # an unpacked CVAT export: annotations.xml and images/
            path = path / EXPORT_FILE
        check_split_subset(subset, str(path))
        root = read_xml(path)
        images = [_parse_image(element, path) for element in root.iter("image")]
        found = declared_labels(root) | {
            r.class_name for image in images for r in image["regions"] if r.class_name
        }
        names = class_list(found, class_names, str(path))
        for class_id, name in enumerate(names, start=1):
            self.add_class(source, class_id, name)
        ids = {name: i for i, name in enumerate(names, start=1)}
        folder = Path(images_dir) if images_dir else _default_images_dir(path, images)
        report = LoadReport(f"{source} {path} ({subset or 'all'})")
        seen: set[str] = set()
        for image in images:
            name, where = image["name"], f"{path} [{image['name']}]"
            if not in_subset(name, subset):
                continue
            if name in seen:
                report.skip_image(where, "duplicate image name")
                continue
            if self.add_region_image(
                source,
                name,
                folder / name,
                image["regions"],
                ids,
                report,
                where=where,
                keep_empty=keep_empty,
                declared_size=image["size"],
            ):
                seen.add(name)
        return self.keep_report(report, f"{source} {path}", subset)


# ------------------------------------------------------------------------------------------------
# The file
# ------------------------------------------------------------------------------------------------
def read_xml(path: Path) -> ElementTree.Element:
    """The root ``<annotations>`` element; ValueError with line and column for broken XML."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        line, column = error.position
        reason = str(error).split(":")[0]
        raise ValueError(
            f"{path}: malformed XML at line {line} column {column + 1}: {reason}"
        ) from None
    if root.tag != "annotations":
        raise ValueError(
            f"{path}: not a CVAT for images XML: the root element is <{root.tag}>, not "
            "<annotations> (export the task as 'CVAT for images 1.1')"
        )
    if root.find("track") is not None and root.find("image") is None:
        raise ValueError(
            f"{path}: a CVAT for video file (<track> elements); export as 'CVAT for images 1.1'"
        )
    return root


def declared_labels(root: ElementTree.Element) -> set[str]:
    """Label names declared under <meta> (task, job or project)."""
    meta = root.find("meta")
    if meta is None:
        return set()
    return {
        name.text.strip()
        for label in meta.iter("label")
        if (name := label.find("name")) is not None and name.text and name.text.strip()
    }


def _parse_image(element: ElementTree.Element, path: Path) -> dict:
    name = element.get("name")
    where = f"{path}: <image id={element.get('id')!r}>"
    if not name:
        raise ValueError(f"{where} has no name attribute")
    try:
        size = (int(element.get("height", "")), int(element.get("width", "")))
    except ValueError:
        raise ValueError(f"{where} ({name}) lacks a whole-number width or height") from None
    # Numbered by position among the image's elements, as they appear in the file.
    regions = [
        _element_region(index, child)
        for index, child in enumerate(element)
        if child.tag not in _NOT_SHAPES
    ]
    return {"name": name, "size": size, "regions": regions}


def _default_images_dir(path: Path, images: list[dict]) -> Path:
    """The XML's folder, or its ``images/`` when the first image is only there."""
    folder = path.parent
    if images and not (folder / images[0]["name"]).is_file():
        if (folder / "images" / images[0]["name"]).is_file():
            return folder / "images"
    return folder


# ------------------------------------------------------------------------------------------------
# Shapes
# ------------------------------------------------------------------------------------------------
def _element_region(index: int, element: ElementTree.Element) -> Region:
    name = f"{element.tag} {index}"
    try:
        label = (element.get("label") or "").strip()
        if not label:
            raise RegionError("no label")
        return Region(name, element_geometry(element), label)
    except RegionError as error:
        return Region(name, error=error)


def element_geometry(element: ElementTree.Element) -> dict:
    """A CVAT shape element as a geometry dict (:mod:`mrcnn.datasets.regions`)."""
    tag = element.tag
    if tag in _SKIPPED:
        raise RegionError(f"{tag} has no area")
    if tag == "polygon":
        return polygon(_points(element.get("points")))
    if tag == "box":
        x1, y1, x2, y2 = (_number(element, k) for k in ("xtl", "ytl", "xbr", "ybr"))
        return rectangle(x1, y1, x2 - x1, y2 - y1, _rotation(element))
    if tag == "ellipse":
        cx, cy, rx, ry = (_number(element, k) for k in ("cx", "cy", "rx", "ry"))
        return ellipse(cx, cy, rx, ry, _rotation(element))
    if tag == "mask":
        left, top, width, height = (_whole(element, k) for k in ("left", "top", "width", "height"))
        return run_length_mask(left, top, width, height, _counts(element.get("rle")))
    raise RegionError("unknown shape type", repr(tag))


def _points(text: Any) -> list[list[float]]:
    """``"x1,y1;x2,y2;..."`` as [[x, y], ...]."""
    if not text:
        raise RegionError("bad 'points'", "missing")
    try:
        return [[float(v) for v in pair.split(",")] for pair in str(text).split(";") if pair]
    except ValueError:
        raise RegionError("bad 'points'", f"{text!r:.60}") from None


def _number(element: ElementTree.Element, key: str) -> float:
    return finite(element.get(key), repr(key))


def _whole(element: ElementTree.Element, key: str) -> int:
    value = _number(element, key)
    if value != math.floor(value):
        raise RegionError(f"bad {key!r}", f"{value:g} is not a whole number")
    return int(value)


def _rotation(element: ElementTree.Element) -> float:
    return _number(element, "rotation") if element.get("rotation") else 0.0


def _counts(text: Any) -> list[int]:
    try:
        return [int(v) for v in str(text or "").replace(" ", "").split(",") if v]
    except ValueError:
        raise RegionError("bad 'rle'", f"{text!r:.60}") from None
