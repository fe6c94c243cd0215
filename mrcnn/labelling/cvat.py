"""Detections as "CVAT for images 1.1" XML (``--format cvat``), the file CVAT imports with
Actions > Upload annotations::

    <annotations>
      <version>1.1</version>
      <meta><task><name>mrcnn annotate</name><labels><label><name>balloon</name>
        <attributes><attribute><name>score</name>...</attribute>...</attributes>
      </label></labels></task></meta>
      <image id="0" name="photos/a.jpg" width="640" height="480">
        <polygon label="balloon" source="auto" occluded="0" points="10,20;30,40;..." z_order="0">
          <attribute name="score">0.981</attribute><attribute name="mrcnn">...</attribute>
        </polygon>
        <mask label="balloon" source="auto" occluded="0" rle="3, 5, ..." left="10" top="20"
              width="30" height="40" z_order="0">...</mask>
      </image>
    </annotations>

A detection in one part without holes is a ``<polygon>``; one that keeps a hole, or has several
parts, is a ``<mask>`` (CVAT 2's brush masks: row-major runs inside the box, background first),
as CVAT polygons neither cut holes nor group into one instance. Image names are relative to the
XML file's folder.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from pathlib import Path

from mrcnn.datasets.cvat import element_geometry, read_xml
from mrcnn.datasets.regions import RegionError, bitmap_mask
from mrcnn.labelling.merge import (
    MARKER,
    SCORE,
    HumanRegion,
    ImageRecord,
    Project,
    fingerprint,
    geometry_rle,
    name_key,
)
from mrcnn.labelling.polygons import Detection, Outline

#: Attributes of each shape element that make up its geometry.
_GEOMETRY = ("points", "rle", "left", "top", "width", "height")


class CvatProject(Project):
    """A CVAT for images 1.1 XML file."""

    format = "cvat"
    bitmaps = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.root = ElementTree.Element("annotations")
        ElementTree.SubElement(self.root, "version").text = "1.1"
        task = ElementTree.SubElement(ElementTree.SubElement(self.root, "meta"), "task")
        ElementTree.SubElement(task, "name").text = "mrcnn annotate"
        ElementTree.SubElement(task, "mode").text = "annotation"
        ElementTree.SubElement(task, "labels")
        for name in self.class_names:
            self._declare(name)

    def read(self, path: Path) -> None:
        try:
            self.root = read_xml(path)
        except FileNotFoundError:
            raise
        except ValueError as error:
            raise ValueError(f"{error}; --merge needs a CVAT for images 1.1 XML file") from None
        self.source = path

    def _labels(self) -> ElementTree.Element:
        labels = self.root.find("meta//labels")
        if labels is None:
            meta = self.root.find("meta")
            if meta is None:
                meta = ElementTree.SubElement(self.root, "meta")
            task = meta.find("task")
            if task is None:
                task = ElementTree.SubElement(meta, "task")
            labels = ElementTree.SubElement(task, "labels")
        return labels

    def _declare(self, name: str) -> None:
        labels = self._labels()
        if any((label.findtext("name") or "").strip() == name for label in labels):
            return
        label = ElementTree.SubElement(labels, "label")
        ElementTree.SubElement(label, "name").text = name
        ElementTree.SubElement(label, "type").text = "any"
        attributes = ElementTree.SubElement(label, "attributes")
        for attribute in (SCORE, MARKER):
            element = ElementTree.SubElement(attributes, "attribute")
            for key, value in (
                ("name", attribute),
                ("mutable", "False"),
                ("input_type", "text"),
                ("default_value", ""),
                ("values", ""),
            ):
                ElementTree.SubElement(element, key).text = value

    def _image(self, image: ImageRecord, create: bool = False) -> ElementTree.Element | None:
        for element in self.root.iter("image"):
            if name_key(element.get("name", "")) == name_key(image.name):
                return element
        if not create:
            return None
        ids = [int(e.get("id")) for e in self.root.iter("image") if (e.get("id") or "").isdigit()]
        return ElementTree.SubElement(
            self.root,
            "image",
            {
                "id": str(max(ids, default=-1) + 1),
                "name": image.name,
                "width": str(image.width),
                "height": str(image.height),
            },
        )

    @staticmethod
    def _is_ours(element: ElementTree.Element) -> bool:
        marker = next(
            (a.text for a in element.findall("attribute") if a.get("name") == MARKER), None
        )
        return marker is not None and marker == _fingerprint(element)

    def regions(self, image: ImageRecord) -> tuple[list[HumanRegion], int]:
        element = self._image(image)
        if element is None:
            return [], 0
        shapes = [child for child in element if child.tag != "tag"]
        humans = []
        for shape in shapes:
            if self._is_ours(shape):
                continue
            try:
                geometry = element_geometry(shape)
                humans.append(HumanRegion(geometry_rle(geometry, image.height, image.width)))
            except RegionError:
                humans.append(HumanRegion(None))
        return humans, len(shapes) - len(humans)

    def uses_bitmap(self, shape: Outline) -> bool:
        """Holes, or several parts (CVAT polygons do not group into one instance)."""
        several = shape.holes or len(shape.rings) > 1
        return bool(several) and not self.options.polygons_only

    def replace(self, image: ImageRecord, written: list[tuple[Detection, Outline]]) -> None:
        element = self._image(image, create=True)
        for child in [c for c in element if c.tag != "tag" and self._is_ours(c)]:
            element.remove(child)
        for detection, shape in written:
            self._declare(detection.class_name)
            if self.uses_bitmap(shape):
                runs = bitmap_mask(shape.left, shape.top, shape.bitmap)["counts"]
                height, width = shape.bitmap.shape
                geometry = {
                    "rle": ", ".join(str(r) for r in runs),
                    "left": str(shape.left),
                    "top": str(shape.top),
                    "width": str(width),
                    "height": str(height),
                }
                self._add(element, "mask", detection, geometry)
                continue
            for ring in shape.rings:
                points = ";".join(f"{x:g},{y:g}" for x, y in ring.tolist())
                self._add(element, "polygon", detection, {"points": points})

    @staticmethod
    def _add(parent, tag: str, detection: Detection, geometry: dict) -> None:
        attributes = {"label": detection.class_name, "source": "auto", "occluded": "0"}
        shape = ElementTree.SubElement(parent, tag, {**attributes, **geometry, "z_order": "0"})
        ElementTree.SubElement(shape, "attribute", {"name": SCORE}).text = f"{detection.score:.3f}"
        ElementTree.SubElement(shape, "attribute", {"name": MARKER}).text = _fingerprint(shape)

    def contents(self, output: Path) -> dict[Path, str]:
        ElementTree.indent(self.root, space="  ")
        text = ElementTree.tostring(self.root, encoding="unicode")
        return {output: '<?xml version="1.0" encoding="utf-8"?>\n' + text + "\n"}


def _fingerprint(element: ElementTree.Element) -> str:
    geometry = {key: element.get(key) for key in _GEOMETRY if element.get(key) is not None}
    return fingerprint(element.get("label", ""), {"tag": element.tag, **geometry})
