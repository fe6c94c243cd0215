"""LabelMe annotations (``labelme:DIR``): one JSON file per image, as LabelMe saves them.

A file holds ``shapes`` (each with ``label``, ``points`` [[x, y], ...], ``shape_type``,
``group_id``), ``imagePath`` (the image, relative to the JSON file), ``imageData`` (the image
file's bytes in base64, or null) and ``imageHeight``/``imageWidth``.

Shapes: ``polygon``; ``rectangle`` (two opposite corners, both corner pixels inside, as LabelMe
draws it); ``circle`` (the centre and a point on the circle); ``mask`` (a base64 PNG bitmap whose
top-left corner is the first point). ``point``, ``points``, ``line`` and ``linestrip`` have no
area and are skipped with a warning. Shapes with the same label and ``group_id`` are one
instance. The class is the shape's label; names are collected from every file (all subsets) and
sorted, or fixed by ``class_names``.

The image is the file at ``imagePath`` when it exists, else the embedded ``imageData``.

Layouts: ``DIR/*.json`` (subsets by a deterministic ~90/10 split of the file names),
``DIR/<subset>/*.json`` (a folder per subset), or one JSON file.
"""

from __future__ import annotations

import base64
import binascii
import math
from pathlib import Path
from typing import Any

import numpy as np

from mrcnn.datasets.loading import LoadReport, check_split_subset, in_subset, read_json
from mrcnn.datasets.regions import (
    Region,
    RegionDataset,
    RegionError,
    bitmap_mask,
    circle,
    class_list,
    polygon,
    union,
)
from mrcnn.structures.image import decode_image

#: Shapes LabelMe draws that have no area.
_LINE_SHAPES = ("point", "points", "line", "linestrip")


class LabelmeDataset(RegionDataset):
    """Images and shapes from LabelMe JSON files."""

    def load_labelme(
        self,
        path: str | Path,
        subset: str | None = None,
        *,
        class_names: list[str] | None = None,
        images_dir: str | Path | None = None,
        keep_empty: bool = False,
        source: str = "labelme",
    ) -> LoadReport:
        """Add the images and shapes of LabelMe JSON files.

        Args:
            path: a folder of ``*.json`` files, a folder of ``<subset>/*.json`` folders, or one
                JSON file.
            subset: with a folder per subset, the folder to read (None: all of them); otherwise
                "train"/"val" select a deterministic ~90/10 split by file name (None: all).
            class_names: fix the classes and their order (ids 1..K); shapes with other labels
                are skipped. Default: every label found (all subsets), sorted.
            images_dir: look for the images here (by ``imagePath``'s file name) instead of
                beside the JSON files.
            keep_empty: keep images without shapes.
            source: the source name of the classes and images.
        """
        path = Path(path)
        files, family = find_labelme_files(path, subset)
        parsed = {f: _parse(f) for f in family}
        found = {r.class_name for file in family for r in parsed[file][1] if r.class_name}
        names = class_list(found, class_names, str(path))
        for class_id, name in enumerate(names, start=1):
            self.add_class(source, class_id, name)
        ids = {name: i for i, name in enumerate(names, start=1)}
        report = LoadReport(f"{source} {path} ({subset or 'all'})")
        for json_path, key, split in files:
            if in_subset(key, split):
                data, regions = parsed[json_path]
                self._add_file(
                    json_path, key, data, regions, ids, images_dir, keep_empty, source, report
                )
        return self.keep_report(report, f"{source} {path}", subset)

    def _add_file(
        self,
        json_path: Path,
        key: str,
        data: dict,
        regions: list[Region],
        ids: dict[str, int],
        images_dir: Any,
        keep_empty: bool,
        source: str,
        report: LoadReport,
    ) -> bool:
        where = str(json_path)
        image_path = _image_path(json_path, data, images_dir)
        size, embedded = None, False
        if not (image_path and image_path.is_file()) and data.get("imageData"):
            try:
                size = decode_image(_image_bytes(json_path), where).shape[:2]
            except ValueError as error:
                report.skip_image(where, "unreadable embedded image", str(error))
                return False
            image_path, embedded = json_path, True
        if image_path is None:
            report.skip_image(where, "no image", "neither imagePath nor imageData is set")
            return False
        declared = (data.get("imageHeight"), data.get("imageWidth"))
        return self.add_region_image(
            source,
            key,
            image_path,
            regions,
            ids,
            report,
            where=where,
            keep_empty=keep_empty,
            size=size,
            declared_size=declared if all(isinstance(v, int) for v in declared) else None,
            embedded=embedded,
        )

    def load_image(self, image_id: int) -> np.ndarray:
        """The image as H x W x 3 uint8 RGB; embedded ``imageData`` is decoded from the JSON."""
        info = self.image_info[image_id]
        if not info.get("embedded"):
            return super().load_image(image_id)
        json_path = Path(info["path"])
        return decode_image(_image_bytes(json_path), str(json_path))

    def image_reference(self, image_id: int) -> str:
        info = self.image_info[image_id]
        if info.get("embedded"):
            return f"{info['path']} (embedded image)"
        return super().image_reference(image_id)


# ------------------------------------------------------------------------------------------------
# Files
# ------------------------------------------------------------------------------------------------
def find_labelme_files(
    path: Path, subset: str | None
) -> tuple[list[tuple[Path, str, str | None]], list[Path]]:
    """(files, family): ``files`` are (json_path, image key, split subset or None) to read for
    ``subset``; ``family`` is every JSON file of the dataset, whose labels name the classes."""
    if path.is_file():
        check_split_subset(subset, str(path))
        return [(path, path.stem, subset)], [path]
    if not path.is_dir():
        raise FileNotFoundError(
            f"LabelMe annotations not found: {path} is neither a file nor a folder"
        )
    direct = sorted(path.glob("*.json"))
    if direct:
        check_split_subset(subset, str(path))
        return [(f, f.stem, subset) for f in direct], direct
    folders = {d.name: sorted(d.glob("*.json")) for d in sorted(path.iterdir()) if d.is_dir()}
    folders = {name: files for name, files in folders.items() if files}
    if not folders:
        raise FileNotFoundError(f"no LabelMe JSON files in {path} nor in its subfolders")
    family = [f for files in folders.values() for f in files]
    if subset is None:
        return [(f, f"{f.parent.name}/{f.stem}", None) for f in family], family
    if subset not in folders:
        raise FileNotFoundError(
            f"{path / subset} holds no LabelMe JSON files: {path} has the subsets "
            f"{', '.join(folders)}"
        )
    return [(f, f.stem, None) for f in folders[subset]], family


def _parse(json_path: Path) -> tuple[dict, list[Region]]:
    """The file's image fields (``imageData`` only as present or not) and its regions."""
    data = read_json(json_path)
    if not isinstance(data, dict) or not isinstance(data.get("shapes"), list):
        raise ValueError(
            f"{json_path}: not a LabelMe file: expected an object with a 'shapes' list"
        )
    fields = {k: data.get(k) for k in ("imagePath", "imageHeight", "imageWidth")}
    fields["imageData"] = bool(data.get("imageData"))  # decoded from the file when needed
    return fields, _regions(data["shapes"])


def _regions(shapes: list) -> list[Region]:
    """One region per shape, shapes with the same label and group_id merged into one."""
    regions: list[Region] = []
    groups: dict[tuple, list[int]] = {}
    for index, shape in enumerate(shapes):
        region = _shape_region(index, shape)
        group = shape.get("group_id") if isinstance(shape, dict) else None
        if group is not None and region.error is None:
            groups.setdefault((region.class_name, str(group)), []).append(len(regions))
        regions.append(region)
    merged = set()
    for members in groups.values():
        if len(members) > 1:
            first = regions[members[0]]
            names = "+".join(regions[i].name.split()[-1] for i in members)
            parts = [regions[i].geometry for i in members]
            regions[members[0]] = Region(f"shapes {names}", union(parts), first.class_name)
            merged.update(members[1:])
    return [r for i, r in enumerate(regions) if i not in merged]


def _shape_region(index: int, shape: Any) -> Region:
    name = f"shape {index}"
    try:
        if not isinstance(shape, dict):
            raise RegionError("not a shape object")
        label = shape.get("label")
        if not isinstance(label, str) or not label.strip():
            raise RegionError("no label")
        return Region(name, shape_geometry(shape), label.strip())
    except RegionError as error:
        return Region(name, error=error)


def shape_geometry(shape: dict) -> dict:
    """A LabelMe shape as a geometry dict (:mod:`mrcnn.datasets.regions`)."""
    kind = shape.get("shape_type") or "polygon"  # files of old LabelMe versions have none
    if kind in _LINE_SHAPES:
        raise RegionError(f"{kind} has no area")
    if kind not in ("polygon", "rectangle", "circle", "mask"):
        raise RegionError("unknown shape type", repr(kind))
    if kind == "polygon":
        return polygon(shape.get("points"))
    (x1, y1), (x2, y2) = _two_points(shape)
    if kind == "circle":
        return circle(x1, y1, math.hypot(x2 - x1, y2 - y1))
    if kind == "mask":
        return bitmap_mask(round(x1), round(y1), _mask_bitmap(shape.get("mask")))
    x1, x2, y1, y2 = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
    if x2 <= x1 or y2 <= y1:
        raise RegionError("rectangle without area", f"corners ({x1:g}, {y1:g}), ({x2:g}, {y2:g})")
    return {"type": "polygon", "points": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]}


def _two_points(shape: dict) -> list[list[float]]:
    points = shape.get("points")
    if not isinstance(points, list) or len(points) != 2:
        count = len(points) if isinstance(points, list) else 0
        raise RegionError(f"{shape.get('shape_type')} needs 2 points", f"{count} given")
    try:
        values = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise RegionError("bad points", "not all numbers") from None
    if values.shape != (2, 2) or not np.isfinite(values).all():
        raise RegionError("bad points", "expected [[x, y], [x, y]]")
    return values.tolist()


def _mask_bitmap(encoded: Any) -> np.ndarray:
    """bool [h, w] of a LabelMe mask shape (a base64 PNG)."""
    try:
        image = decode_image(base64.b64decode(str(encoded), validate=True), "mask")
    except (binascii.Error, ValueError):
        raise RegionError("bad mask", "not a base64 image") from None
    return image.max(axis=2) > 0


def _image_path(json_path: Path, data: dict, images_dir: Any) -> Path | None:
    name = data.get("imagePath")
    if not isinstance(name, str) or not name.strip():
        return None
    name = name.replace("\\", "/")  # LabelMe on Windows writes backslashes
    if images_dir:
        return Path(images_dir) / Path(name).name
    return json_path.parent / name


def _image_bytes(json_path: Path) -> bytes:
    """The bytes of the image embedded in a LabelMe file."""
    payload = read_json(json_path).get("imageData")
    try:
        return base64.b64decode(str(payload), validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"{json_path}: imageData is not base64 ({error})") from error
