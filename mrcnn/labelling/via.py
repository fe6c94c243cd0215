"""Detections as a VIA 2 project (``--format via``), the file VGG Image Annotator 2 saves with
Project > Save and opens with Project > Load::

    {"_via_settings": {...}, "_via_img_metadata": {"<filename><size>": {"filename", "size",
     "regions": [{"shape_attributes": {"name": "polygon", "all_points_x": [...],
     "all_points_y": [...]}, "region_attributes": {"class": "balloon", "score": "0.981",
     "mrcnn": "<fingerprint>"}}], "file_attributes": {}}}, "_via_attributes": {"region": {...},
     "file": {}}, "_via_data_format_version": "2.0.10", "_via_image_id_list": [...]}

VIA has no bitmap shape and its polygons cannot cut holes: holes are filled, and each part of a
detection is its own region (VIA has no way to group them). Coordinates are whole pixels, as VIA
writes them. The class is the region attribute ``class_attribute`` (a dropdown declared in
``_via_attributes``), read back with ``via:FILE?class_attribute=class``.
"""

from __future__ import annotations

import json
from pathlib import Path

from mrcnn.datasets.loading import read_json
from mrcnn.datasets.regions import RegionError
from mrcnn.datasets.via import region_geometry
from mrcnn.datasets.via3 import is_via3_project
from mrcnn.labelling.merge import (
    MARKER,
    SCORE,
    HumanRegion,
    ImageRecord,
    Project,
    WriteOptions,
    fingerprint,
    geometry_rle,
    name_key,
)
from mrcnn.labelling.polygons import Detection, Outline

#: The data format version VIA 2.0.10 (and later 2.x) writes.
FORMAT_VERSION = "2.0.10"
#: Default name of the region attribute holding the class.
DEFAULT_CLASS_ATTRIBUTE = "class"


def default_settings(name: str, label_attribute: str) -> dict:
    """``_via_settings`` as VIA 2.0.10 saves them for a new project (regions labelled by
    ``label_attribute``)."""
    return {
        "ui": {
            "annotation_editor_height": 25,
            "annotation_editor_fontsize": 0.8,
            "leftsidebar_width": 18,
            "image_grid": {
                "img_height": 80,
                "rshape_fill": "none",
                "rshape_fill_opacity": 0.3,
                "rshape_stroke": "yellow",
                "rshape_stroke_width": 2,
                "show_region_shape": True,
                "show_image_policy": "all",
            },
            "image": {
                "region_label": label_attribute,
                "region_color": label_attribute,
                "region_label_font": "10px Sans",
                "on_image_annotation_editor_placement": "NEAR_REGION",
            },
        },
        "core": {"buffer_size": 18, "filepath": {}, "default_filepath": ""},
        "project": {"name": name},
    }


class ViaProject(Project):
    """A VIA 2 project file."""

    format = "via"
    bitmaps = False

    def __init__(
        self,
        class_names: list[str],
        options: WriteOptions | None = None,
        class_attribute: str | None = None,
    ) -> None:
        super().__init__(class_names, options)
        self.chosen_attribute = class_attribute
        self.class_attribute = class_attribute or DEFAULT_CLASS_ATTRIBUTE
        #: Byte sizes of images that are not files on this disk (a photo sent to ``mrcnn
        #: serve``), by file name; the others' sizes are read from their files.
        self.file_sizes: dict[str, int] = {}
        self.data = {
            "_via_settings": default_settings("mrcnn_annotate", self.class_attribute),
            "_via_img_metadata": {},
            "_via_attributes": {"region": {}, "file": {}},
            "_via_data_format_version": FORMAT_VERSION,
            "_via_image_id_list": [],
        }

    def read(self, path: Path) -> None:
        data = read_json(path)
        if is_via3_project(data):
            raise ValueError(
                f"{path} is a VIA 3 project; annotate writes VIA 2 projects: give a VIA 2 "
                "project to --merge, or write a new file"
            )
        if _is_via1_export(data):  # the balloon layout: made a VIA 2 project, entries kept
            data = {"_via_img_metadata": data}
        if not isinstance(data, dict) or not isinstance(data.get("_via_img_metadata"), dict):
            raise ValueError(
                f"{path} is not a VIA 2 project (no '_via_img_metadata' object); "
                f"{_format_hint(data)}"
            )
        for key, entry in data["_via_img_metadata"].items():
            if not isinstance(entry, dict) or "filename" not in entry:
                raise ValueError(f"{path}: image entry {key!r} has no 'filename'")
            if isinstance(entry.get("regions"), dict):  # a 1.x layout inside: make it a list
                entry["regions"] = list(entry["regions"].values())
        data.setdefault("_via_settings", default_settings(path.stem, self.class_attribute))
        data.setdefault("_via_attributes", {"region": {}, "file": {}})
        data.setdefault("_via_image_id_list", list(data["_via_img_metadata"]))
        data.setdefault("_via_data_format_version", FORMAT_VERSION)
        self.data, self.source = data, path
        if self.chosen_attribute is None:
            self.class_attribute = _declared_class_attribute(data) or DEFAULT_CLASS_ATTRIBUTE

    def _entry(self, image: ImageRecord, create: bool = False) -> dict | None:
        metadata = self.data["_via_img_metadata"]
        for entry in metadata.values():
            if name_key(entry["filename"]) == name_key(image.name):
                return entry
        if not create:
            return None
        size = self.file_sizes.get(name_key(image.name))
        size = image.path.stat().st_size if size is None else size
        key = f"{image.name}{size}"
        metadata[key] = {"filename": image.name, "size": size, "regions": [], "file_attributes": {}}
        self.data["_via_image_id_list"].append(key)
        return metadata[key]

    def _is_ours(self, region: dict) -> bool:
        attributes = region.get("region_attributes") if isinstance(region, dict) else None
        if not isinstance(attributes, dict) or MARKER not in attributes:
            return False
        label = str(attributes.get(self.class_attribute, ""))
        return attributes[MARKER] == fingerprint(label, region.get("shape_attributes"))

    def regions(self, image: ImageRecord) -> tuple[list[HumanRegion], int]:
        entry = self._entry(image)
        if entry is None:
            return [], 0
        regions = entry.get("regions") or []
        humans = []
        for region in regions:
            if self._is_ours(region):
                continue
            try:
                geometry = region_geometry(region["shape_attributes"])
                humans.append(HumanRegion(geometry_rle(geometry, image.height, image.width)))
            except (RegionError, KeyError, TypeError):
                humans.append(HumanRegion(None))
        return humans, len(regions) - len(humans)

    def replace(self, image: ImageRecord, written: list[tuple[Detection, Outline]]) -> None:
        entry = self._entry(image, create=True)
        entry["regions"] = [r for r in entry.get("regions") or [] if not self._is_ours(r)]
        for detection, shape in written:
            for ring in shape.rings:
                entry["regions"].append(self._region(detection, ring))
        self._declare([d.class_name for d, _ in written])

    def _region(self, detection: Detection, ring) -> dict:
        points = ring.round().astype(int)
        shape = {
            "name": "polygon",
            "all_points_x": points[:, 0].tolist(),
            "all_points_y": points[:, 1].tolist(),
        }
        return {
            "shape_attributes": shape,
            "region_attributes": {
                self.class_attribute: detection.class_name,
                SCORE: f"{detection.score:.3f}",
                MARKER: fingerprint(detection.class_name, shape),
            },
        }

    def _declare(self, names: list[str]) -> None:
        """Declare the class dropdown (with every class used) and the two text attributes."""
        region = self.data["_via_attributes"].setdefault("region", {})
        declared = region.setdefault(
            self.class_attribute,
            {"type": "dropdown", "description": "", "options": {}, "default_options": {}},
        )
        if isinstance(declared.get("options"), dict):
            for name in names:
                declared["options"].setdefault(name, "")
        for name, description in ((SCORE, "model score"), (MARKER, "written by mrcnn annotate")):
            region.setdefault(
                name, {"type": "text", "description": description, "default_value": ""}
            )

    def contents(self, output: Path) -> dict[Path, str]:
        return {output: json.dumps(self.data)}

    def opening_note(self) -> str:
        # VIA's Add Files matches a chosen image to a project entry by its bare file name: an
        # entry named with a folder is never matched, and the image is added again, unlabelled.
        foldered = [
            e["filename"] for e in self.data["_via_img_metadata"].values() if "/" in e["filename"]
        ]
        if not foldered:
            return ""
        return (
            f"note: {len(foldered)} image names carry a folder (e.g. {foldered[0]!r}); VIA's "
            "Add Files matches images by bare file name and will not find them: write the "
            "project into the images' folder to correct it in VIA"
        )


def _declared_class_attribute(data: dict) -> str | None:
    """The project's only option (dropdown/radio/checkbox) region attribute, if it has one."""
    region = (data.get("_via_attributes") or {}).get("region") or {}
    options = [
        name
        for name, spec in region.items()
        if isinstance(spec, dict)
        and spec.get("type") in ("dropdown", "radio", "checkbox")
        and name not in (SCORE, MARKER)
    ]
    return options[0] if len(options) == 1 else None


def _format_hint(data) -> str:
    if isinstance(data, dict) and {"images", "annotations", "categories"} <= set(data):
        return "it looks like COCO: pass --format coco"
    if isinstance(data, dict) and "shapes" in data:
        return "it looks like a LabelMe file: pass --format labelme with its folder"
    return "give a project VIA 2 saved (Project > Save)"


def _is_via1_export(data) -> bool:
    """A VIA 1.x export (or 2.x annotation export): image entries at the top level."""
    return (
        isinstance(data, dict)
        and bool(data)
        and all(isinstance(v, dict) and "filename" in v for v in data.values())
    )
