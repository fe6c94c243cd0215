"""Detections as LabelMe JSON files (``--format labelme``): one ``<image stem>.json`` per image
in the output folder, as LabelMe saves them, its ``imagePath`` relative to that folder and no
embedded ``imageData``::

    {"version": "5.5.0", "flags": {}, "shapes": [{"label": "balloon", "points": [[x, y], ...],
     "group_id": null, "description": "", "shape_type": "polygon", "flags": {}, "mask": null,
     "score": 0.981, "mrcnn": "<fingerprint>"}], "imagePath": "../photos/a.jpg",
     "imageData": null, "imageHeight": 480, "imageWidth": 640}

A detection in several parts is one polygon per part sharing a ``group_id`` (our loader and
LabelMe's tools join them into one instance). A detection that keeps a hole is a ``mask`` shape:
a PNG bitmap whose top-left and bottom-right pixels are its two points (LabelMe 5.3 and later).
LabelMe keeps keys it does not know (``score``, ``mrcnn``) when it saves a file again.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import cv2
import numpy as np

from mrcnn.datasets.labelme import shape_geometry
from mrcnn.datasets.loading import read_json
from mrcnn.datasets.regions import RegionError
from mrcnn.labelling.merge import (
    MARKER,
    SCORE,
    HumanRegion,
    ImageRecord,
    Project,
    fingerprint,
    geometry_rle,
    name_key,
    relative_name,
)
from mrcnn.labelling.polygons import Detection, Outline

#: The LabelMe version written into new files (the first with ``mask`` shapes is 5.3).
LABELME_VERSION = "5.5.0"


class LabelmeProject(Project):
    """A folder of LabelMe JSON files."""

    format = "labelme"
    bitmaps = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        #: image name key -> [JSON file name, the file's folder (where imagePath starts), data]
        self.files: dict[str, list] = {}

    def read(self, path: Path) -> None:
        if not path.is_dir():
            raise ValueError(
                f"--merge {path}: a LabelMe project is a folder of JSON files; give the folder"
            )
        for json_path in sorted(path.glob("*.json")):
            data = read_json(json_path)
            if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
                raise ValueError(
                    f"{json_path} is not a LabelMe file (no 'shapes' list); --merge needs a "
                    "folder of LabelMe JSON files"
                )
            image = str(data.get("imagePath") or json_path.stem)
            self.files[name_key(image)] = [json_path.name, path, data]
        self.source = path

    def _file(self, image: ImageRecord, create: bool = False) -> dict | None:
        found = self.files.get(name_key(image.name))
        if found is not None or not create:
            return found[2] if found else None
        taken = {f[0] for f in self.files.values()}
        stem = Path(image.name).stem
        json_name = f"{stem}.json"
        if json_name in taken:
            json_name = f"{stem}_{Path(image.name).suffix.lstrip('.')}.json"
        data = {
            "version": LABELME_VERSION,
            "flags": {},
            "shapes": [],
            "imagePath": image.name,
            "imageData": None,
            "imageHeight": image.height,
            "imageWidth": image.width,
        }
        self.files[name_key(image.name)] = [json_name, None, data]
        return data

    @staticmethod
    def _is_ours(shape: dict) -> bool:
        if not isinstance(shape, dict) or MARKER not in shape:
            return False
        return shape[MARKER] == fingerprint(str(shape.get("label")), _geometry_fields(shape))

    def regions(self, image: ImageRecord) -> tuple[list[HumanRegion], int]:
        data = self._file(image)
        if data is None:
            return [], 0
        humans = []
        for shape in data["shapes"]:
            if self._is_ours(shape):
                continue
            try:
                geometry = shape_geometry(shape)
                humans.append(HumanRegion(geometry_rle(geometry, image.height, image.width)))
            except (RegionError, AttributeError, TypeError, ValueError):
                humans.append(HumanRegion(None))
        return humans, len(data["shapes"]) - len(humans)

    def replace(self, image: ImageRecord, written: list[tuple[Detection, Outline]]) -> None:
        data = self._file(image, create=True)
        data["shapes"] = [s for s in data["shapes"] if not self._is_ours(s)]
        groups = [s.get("group_id") for s in data["shapes"] if isinstance(s, dict)]
        next_group = max([g for g in groups if isinstance(g, int)], default=0) + 1
        for detection, shape in written:
            if self.uses_bitmap(shape):
                data["shapes"].append(self._shape(detection, *_mask_fields(shape)))
                continue
            group = None
            if len(shape.rings) > 1:
                group, next_group = next_group, next_group + 1
            for ring in shape.rings:
                data["shapes"].append(self._shape(detection, ring.tolist(), "polygon", None, group))

    @staticmethod
    def _shape(detection: Detection, points, kind: str, mask, group=None) -> dict:
        shape = {
            "label": detection.class_name,
            "points": points,
            "group_id": group,
            "description": "",
            "shape_type": kind,
            "flags": {},
            "mask": mask,
            SCORE: round(float(detection.score), 4),
        }
        shape[MARKER] = fingerprint(detection.class_name, _geometry_fields(shape))
        return shape

    def contents(self, output: Path) -> dict[Path, str]:
        out = {}
        for json_name, folder, data in self.files.values():
            if folder is not None and Path(folder).resolve() != output.resolve():
                data = {**data, "imagePath": _moved(data.get("imagePath"), folder, output)}
            out[output / json_name] = json.dumps(data, indent=2)
        return out


def _moved(image_path, old: Path, new: Path):
    """An ``imagePath`` of a file in ``old`` rewritten for the same image from ``new``."""
    if not isinstance(image_path, str) or not image_path:
        return image_path
    target = Path(old) / image_path.replace("\\", "/")
    return relative_name(target, new)


def _geometry_fields(shape: dict) -> dict:
    return {k: shape.get(k) for k in ("points", "shape_type", "mask")}


def _mask_fields(shape: Outline) -> tuple[list, str, str]:
    """(points, "mask", base64 PNG) of a bitmap shape: its top-left and bottom-right pixels."""
    height, width = shape.bitmap.shape
    ok, png = cv2.imencode(".png", shape.bitmap.astype(np.uint8) * 255)
    if not ok:
        raise ValueError("cannot encode a mask as PNG")
    points = [
        [float(shape.left), float(shape.top)],
        [float(shape.left + width - 1), float(shape.top + height - 1)],
    ]
    return points, "mask", base64.b64encode(png.tobytes()).decode("ascii")
