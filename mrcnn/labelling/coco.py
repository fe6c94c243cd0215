"""Detections as a COCO instances file (``--format coco``)::

    {"info": {...}, "images": [{"id", "file_name", "height", "width"}],
     "categories": [{"id", "name", "supercategory"}],
     "annotations": [{"id", "image_id", "category_id", "segmentation", "area", "bbox",
                      "iscrowd": 0, "score": 0.981,
                      "attributes": {"score": 0.981, "mrcnn": "<fingerprint>"}}]}

``segmentation`` is a list of polygons (one per part) on the pixels' outer edges, in COCO's
continuous coordinates, so that pycocotools gives the pixels back; a mask that keeps a hole is
an RLE (``{"size": [H, W], "counts": "..."}``, still ``iscrowd`` 0), as COCO polygons cannot
cut holes. ``file_name`` is relative to the JSON file's folder (``coco:FILE`` reads the images
from there). ``attributes`` is where CVAT and other tools keep per-annotation attributes.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from mrcnn.datasets.coco import _segmentation_problem, annotation_rle
from mrcnn.datasets.loading import read_json
from mrcnn.labelling.merge import (
    MARKER,
    SCORE,
    HumanRegion,
    ImageRecord,
    Project,
    encode,
    fingerprint,
    name_key,
)
from mrcnn.labelling.polygons import Detection, Outline, pixel_edge_ring


class CocoProject(Project):
    """A COCO instances JSON file."""

    format = "coco"
    bitmaps = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.data = {
            "info": {"description": "mrcnn annotate"},
            "images": [],
            "annotations": [],
            "categories": [],
        }
        for name in self.class_names:
            self._category(name)

    def read(self, path: Path) -> None:
        data = read_json(path)
        keys = ("images", "annotations", "categories")
        if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in keys):
            raise ValueError(
                f"{path} is not a COCO instances file (needs 'images', 'annotations' and "
                f"'categories' lists){_hint(data)}"
            )
        for image in data["images"]:
            if not isinstance(image, dict) or not {"id", "file_name"} <= set(image):
                raise ValueError(f"{path}: image entry {image!r:.80} lacks id or file_name")
        self.data, self.source = data, path

    def _category(self, name: str) -> int:
        categories = self.data["categories"]
        for category in categories:
            if category.get("name") == name:
                return category["id"]
        new_id = max([int(c["id"]) for c in categories], default=0) + 1
        categories.append({"id": new_id, "name": name, "supercategory": ""})
        return new_id

    def _image(self, image: ImageRecord, create: bool = False) -> dict | None:
        for entry in self.data["images"]:
            if name_key(entry["file_name"]) == name_key(image.name):
                return entry
        if not create:
            return None
        ids = [i["id"] for i in self.data["images"] if isinstance(i["id"], int)]
        entry = {
            "id": max(ids, default=0) + 1,
            "file_name": image.name,
            "height": image.height,
            "width": image.width,
        }
        self.data["images"].append(entry)
        return entry

    @staticmethod
    def _is_ours(annotation: dict) -> bool:
        attributes = annotation.get("attributes") if isinstance(annotation, dict) else None
        if not isinstance(attributes, dict) or MARKER not in attributes:
            return False
        expected = fingerprint(str(annotation.get("category_id")), annotation.get("segmentation"))
        return attributes[MARKER] == expected

    def _annotations(self, entry: dict | None) -> list[dict]:
        if entry is None:
            return []
        return [a for a in self.data["annotations"] if a.get("image_id") == entry["id"]]

    def regions(self, image: ImageRecord) -> tuple[list[HumanRegion], int]:
        annotations = self._annotations(self._image(image))
        humans = []
        for annotation in annotations:
            if self._is_ours(annotation):
                continue
            segmentation = annotation.get("segmentation")
            if _segmentation_problem(segmentation, image.height, image.width):
                humans.append(HumanRegion(None))
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools on numpy 2
                humans.append(HumanRegion(annotation_rle(segmentation, image.height, image.width)))
        return humans, len(annotations) - len(humans)

    def replace(self, image: ImageRecord, written: list[tuple[Detection, Outline]]) -> None:
        entry = self._image(image, create=True)
        ours = {id(a) for a in self._annotations(entry) if self._is_ours(a)}
        annotations = [a for a in self.data["annotations"] if id(a) not in ours]
        next_id = max([int(a.get("id", 0)) for a in annotations], default=0) + 1
        for k, (detection, shape) in enumerate(written):
            annotations.append(self._annotation(next_id + k, entry, detection, shape))
        self.data["annotations"] = annotations

    def _annotation(self, ann_id: int, entry: dict, detection: Detection, shape: Outline) -> dict:
        height, width = int(entry["height"]), int(entry["width"])
        if self.uses_bitmap(shape):
            full = Detection(detection.class_name, 0, shape.bitmap, shape.left, shape.top)
            rle = encode(full.full_mask(height, width))
            segmentation = {"size": [height, width], "counts": rle["counts"].decode("ascii")}
        else:
            segmentation = [
                np.round(pixel_edge_ring(ring), 2).ravel().tolist() for ring in shape.rings
            ]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools on numpy 2
            rle = annotation_rle(segmentation, height, width)
            area, bbox = float(mask_utils.area(rle)), mask_utils.toBbox(rle).tolist()
        category = self._category(detection.class_name)
        score = round(float(detection.score), 4)
        return {
            "id": ann_id,
            "image_id": entry["id"],
            "category_id": category,
            "segmentation": segmentation,
            "area": area,
            "bbox": [round(v, 2) for v in bbox],
            "iscrowd": 0,
            SCORE: score,
            "attributes": {SCORE: score, MARKER: fingerprint(str(category), segmentation)},
        }

    def contents(self, output: Path) -> dict[Path, str]:
        return {output: json.dumps(self.data)}


def _hint(data) -> str:
    if isinstance(data, dict) and "_via_img_metadata" in data:
        return "; it looks like a VIA project: pass --format via"
    if isinstance(data, dict) and "shapes" in data:
        return "; it looks like a LabelMe file: pass --format labelme with its folder"
    return ""
