"""VIA (VGG Image Annotator) annotations: the 1.x export and the 2.x project layout.

Layouts read:
    * 1.x: ``{"<filename><size>": {"filename", "size", "regions": {"0": region, ...}}}``
    * 2.x project: ``{"_via_img_metadata": {...same entries, "regions": [region, ...]}}``
      (a 2.x annotation export without the wrapper is read too).
    * a VIA 3 project (``project``, ``file``, ``metadata``) given as the file: read by
      :meth:`~mrcnn.datasets.via3.Via3Dataset.load_via3`.

A region is ``{"shape_attributes": {"name": shape, ...}, "region_attributes": {...}}`` with
shape ``polygon`` (all_points_x, all_points_y), ``rect`` (x, y, width, height), ``circle``
(cx, cy, r) or ``ellipse`` (cx, cy, rx, ry, theta in radians). ``polyline`` and ``point`` have no
area and are skipped with a warning. Regions are rasterised with OpenCV at the image's true size
(read from the file header, EXIF orientation applied), clipped to the image; vertices are pixel
centres and the pixels an outline passes through count as inside.

Classes come from a region attribute (``class_attribute="name"``; names collected from the
data, sorted, ids 1..K) or are one class for every region (``class_name``, by default the
dataset folder's name, as "balloon" for ``balloon/train/via_region_data.json``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mrcnn.datasets.loading import LoadReport, check_split_subset, in_subset, read_json
from mrcnn.datasets.regions import (
    Region,
    circle,
    default_class_name,
    ellipse,
    finite,
    geometry_bounds,
    polygon,
    rasterize,
    rectangle,
)
from mrcnn.datasets.regions import RegionError as _RegionError
from mrcnn.datasets.via3 import Via3Dataset, is_via3_project

__all__ = ["ViaDataset", "find_via_files", "geometry_bounds", "parse_via", "rasterize"]

#: The annotation file of one subset folder, as in the balloon blog post.
SUBSET_FILE = "via_region_data.json"


@dataclass
class ViaEntry:
    """One image entry of a VIA file: its key, file name and (index, region) pairs."""

    key: str
    filename: str
    regions: list[tuple[Any, Any]]


class ViaDataset(Via3Dataset):
    """Images and regions from VIA annotation files (VIA 3 projects through :meth:`load_via3`)."""

    def load_via(
        self,
        path: str | Path,
        subset: str | None = None,
        *,
        class_attribute: str | None = None,
        class_name: str | None = None,
        class_names: list[str] | None = None,
        images_dir: str | Path | None = None,
        keep_empty: bool = False,
        source: str = "via",
    ) -> LoadReport:
        """Add the images and regions of a VIA annotation file.

        Args:
            path: a JSON file, or a folder holding ``<subset>/via_region_data.json`` (the blog
                post's layout), ``via_region_data.json`` or a single ``*.json``.
            subset: with a folder per subset, the folder to read (None: all of them); otherwise
                "train"/"val" select a deterministic ~90/10 split by file name (None: all).
            class_attribute: region attribute holding the class name; None gives every region
                one class, ``class_name``.
            class_name: the single class's name (default: the dataset folder's name).
            class_names: fix the classes and their order (ids 1..K); regions of other classes
                are skipped. Default: every name found in the data (all subsets), sorted.
            images_dir: folder of the images (default: the JSON file's folder).
            keep_empty: keep images without regions (default: skip them, as they are usually
                images nobody annotated, not images without objects).
            source: the source name of the classes and images.
        Returns:
            the :class:`~mrcnn.dataset.LoadReport` (also appended to ``self.load_reports``).
        """
        files, family = find_via_files(path, subset)
        if len(family) == 1 and is_via3_project(read_json(family[0])):
            return self.load_via3(
                family[0],
                subset,
                class_attribute=class_attribute,
                class_name=class_name,
                class_names=class_names,
                images_dir=images_dir,
                keep_empty=keep_empty,
                source=source,
            )
        where = f"{source} {path}"
        names = _class_list(family, class_attribute, class_name, class_names)
        for class_id, name in enumerate(names, start=1):
            self.add_class(source, class_id, name)
        ids = {name: i for i, name in enumerate(names, start=1)}
        report = LoadReport(f"{where} ({subset or 'all'})")
        self._add_via_files(files, images_dir, class_attribute, ids, keep_empty, source, report)
        return self.keep_report(report, where, subset)

    def _add_via_files(
        self,
        files: list[tuple[Path, str | None]],
        images_dir: str | Path | None,
        class_attribute: str | None,
        ids: dict[str, int],
        keep_empty: bool,
        source: str,
        report: LoadReport,
    ) -> None:
        """Add the entries of each (json_path, split) file that fall in its split."""
        # Names already loaded from this source (an earlier subset or call) count as seen, so
        # that one image is never added twice.
        seen = {info["id"] for info in self.image_info if info["source"] == source}
        for json_path, split in files:
            folder = Path(images_dir) if images_dir else json_path.parent
            for entry in parse_via(read_json(json_path), json_path):
                if not in_subset(entry.filename, split):
                    continue
                if entry.filename in seen:
                    report.skip_image(f"{json_path} [{entry.filename}]", "duplicate file name")
                    continue
                added = self._add_via_entry(
                    entry, json_path, folder, class_attribute, ids, keep_empty, source, report
                )
                if added:
                    seen.add(entry.filename)

    def _add_via_entry(
        self,
        entry: ViaEntry,
        json_path: Path,
        folder: Path,
        class_attribute: str | None,
        ids: dict[str, int],
        keep_empty: bool,
        source: str,
        report: LoadReport,
    ) -> bool:
        regions = [
            _parsed_region(f"region {index}", region, class_attribute, next(iter(ids)))
            for index, region in entry.regions
        ]
        return self.add_region_image(
            source,
            entry.filename,
            folder / entry.filename,
            regions,
            ids,
            report,
            where=f"{json_path} [{entry.filename}]",
            keep_empty=keep_empty,
        )


# ------------------------------------------------------------------------------------------------
# Files and entries
# ------------------------------------------------------------------------------------------------
def find_via_files(
    path: str | Path, subset: str | None
) -> tuple[list[tuple[Path, str | None]], list[Path]]:
    """The annotation files to read for ``subset``.

    Returns:
        (files, family): ``files`` are (json_path, split) pairs, where ``split`` is the hash
        split subset to keep ("train"/"val") or None for every entry; ``family`` are all the
        annotation files of the dataset (every subset), from which class names are collected.
    """
    path = Path(path)
    if path.is_file():
        check_split_subset(subset, str(path))
        return [(path, subset)], [path]
    if not path.is_dir():
        raise FileNotFoundError(f"VIA annotations not found: {path} is neither a file nor a folder")
    subset_files = sorted(d / SUBSET_FILE for d in path.iterdir() if (d / SUBSET_FILE).is_file())
    if subset_files:
        if subset is None:
            return [(f, None) for f in subset_files], subset_files
        chosen = path / subset / SUBSET_FILE
        if chosen.is_file():
            return [(chosen, None)], subset_files
        found = ", ".join(f.parent.name for f in subset_files)
        raise FileNotFoundError(
            f"{chosen} not found: {path} has VIA annotations for the subsets {found}"
        )
    if (path / SUBSET_FILE).is_file():
        single = path / SUBSET_FILE
    else:
        candidates = sorted(path.glob("*.json"))
        if len(candidates) != 1:
            listed = ", ".join(c.name for c in candidates) or "none"
            raise FileNotFoundError(
                f"no VIA annotations chosen in {path}: expected {path}/<subset>/{SUBSET_FILE}, "
                f"{path}/{SUBSET_FILE} or exactly one *.json (found: {listed}); "
                "pass the JSON file itself"
            )
        single = candidates[0]
    check_split_subset(subset, str(single))
    return [(single, subset)], [single]


def parse_via(data: Any, json_path: str | Path) -> list[ViaEntry]:
    """The image entries of a parsed VIA file (1.x or 2.x/3.x project layout)."""
    if isinstance(data, dict) and "_via_img_metadata" in data:
        data = data["_via_img_metadata"]
    if is_via3_project(data):
        raise ValueError(
            f"{json_path} is a VIA 3 project (keys project/file/metadata) inside a folder of "
            "subsets; name the file itself: via3:FILE"
        )
    if not isinstance(data, dict):
        raise ValueError(
            f"{json_path}: not a VIA annotation file: expected a JSON object of image entries, "
            f"found a {type(data).__name__}"
        )
    entries = []
    for key, value in data.items():
        if not isinstance(value, dict) or "filename" not in value:
            raise ValueError(
                f"{json_path}: entry {key!r} is not a VIA image entry (no 'filename'); "
                "is this a VIA annotation export or project file?"
            )
        entries.append(ViaEntry(str(key), str(value["filename"]), _regions_of(value, json_path)))
    return entries


def _regions_of(entry: dict, json_path: str | Path) -> list[tuple[Any, Any]]:
    regions = entry.get("regions") or []
    if isinstance(regions, dict):
        # 1.x: keyed by index as a string; order by the number where it is one.
        keys = sorted(regions, key=lambda k: (0, int(k), "") if str(k).isdigit() else (1, 0, k))
        return [(k, regions[k]) for k in keys]
    if isinstance(regions, list):
        return list(enumerate(regions))
    raise ValueError(
        f"{json_path} [{entry['filename']}]: 'regions' must be a list or an object, "
        f"found {type(regions).__name__}"
    )


# ------------------------------------------------------------------------------------------------
# Classes
# ------------------------------------------------------------------------------------------------
def _class_list(
    family: list[Path],
    class_attribute: str | None,
    class_name: str | None,
    class_names: list[str] | None,
) -> list[str]:
    if class_names is not None:
        if not class_names or len(set(class_names)) != len(class_names):
            raise ValueError(f"class_names must be distinct names, got {class_names!r}")
        return [str(n) for n in class_names]
    if class_attribute is None:
        return [class_name or default_class_name(family[0])]
    names: set[str] = set()
    for json_path in family:
        data = read_json(json_path)
        names |= _declared_options(data, class_attribute)
        for entry in parse_via(data, json_path):
            for _, region in entry.regions:
                try:
                    names.add(_class_value(region, class_attribute))
                except _RegionError:
                    pass  # reported when the region is loaded
    if not names:
        raise ValueError(
            f"no region of {', '.join(map(str, family))} has a {class_attribute!r} attribute; "
            "check the attribute name (case matters) or omit class_attribute for one class"
        )
    return sorted(names)


def _declared_options(data: Any, attribute: str) -> set[str]:
    """Options of a dropdown/radio/checkbox region attribute declared in a 2.x project."""
    if not isinstance(data, dict):
        return set()
    declared = (data.get("_via_attributes") or {}).get("region", {}).get(attribute, {})
    options = declared.get("options") if isinstance(declared, dict) else None
    return {str(o) for o in options} if isinstance(options, dict) else set()


def _class_value(region: Any, attribute: str) -> str:
    attributes = region.get("region_attributes") if isinstance(region, dict) else None
    if not isinstance(attributes, dict) or attribute not in attributes:
        raise _RegionError(f"no {attribute!r} region attribute")
    value = attributes[attribute]
    if isinstance(value, dict):  # checkbox: {"option": true, ...}
        ticked = [k for k, v in value.items() if v]
        if len(ticked) != 1:
            raise _RegionError(f"{attribute!r} has {len(ticked)} options ticked, need one")
        value = ticked[0]
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, (dict, list)) or value is None or str(value).strip() == "":
        raise _RegionError(f"empty {attribute!r} region attribute")
    return str(value).strip()


# ------------------------------------------------------------------------------------------------
# Geometry
# ------------------------------------------------------------------------------------------------
def _parsed_region(
    name: str, region: Any, class_attribute: str | None, single_class: str
) -> Region:
    """One VIA region as a :class:`Region` (its geometry and class, or why it is unusable)."""
    try:
        if not isinstance(region, dict) or not isinstance(region.get("shape_attributes"), dict):
            raise _RegionError("no 'shape_attributes'")
        geometry = region_geometry(region["shape_attributes"])
        if class_attribute is None:
            return Region(name, geometry, single_class)
        return Region(name, geometry, _class_value(region, class_attribute))
    except _RegionError as error:
        return Region(name, error=error)


def region_geometry(shape: dict) -> dict:
    """VIA shape_attributes as a geometry dict (:mod:`mrcnn.datasets.regions`).

    Raises RegionError for shapes without area, unknown shapes and malformed values.
    """
    name = shape.get("name")
    if name == "polygon":
        xs, ys = _numbers(shape, "all_points_x"), _numbers(shape, "all_points_y")
        if len(xs) != len(ys):
            raise _RegionError("polygon x and y lists differ in length", f"{len(xs)} vs {len(ys)}")
        return polygon(list(zip(xs, ys, strict=True)))
    if name == "rect":
        x, y, w, h = (_number(shape, k) for k in ("x", "y", "width", "height"))
        if w <= 0 or h <= 0:
            raise _RegionError("rect without area", f"width {w:g}, height {h:g}")
        return rectangle(x, y, w, h)
    if name == "circle":
        return circle(*(_number(shape, k) for k in ("cx", "cy", "r")))
    if name == "ellipse":
        cx, cy, rx, ry = (_number(shape, k) for k in ("cx", "cy", "rx", "ry"))
        theta = _number(shape, "theta") if "theta" in shape else 0.0
        return ellipse(cx, cy, rx, ry, math.degrees(theta))
    if name in ("polyline", "point", "line"):
        raise _RegionError(f"{name} has no area")
    raise _RegionError("unknown shape type", repr(name))


def _number(shape: dict, key: str) -> float:
    return finite(shape.get(key), repr(key))


def _numbers(shape: dict, key: str) -> list[float]:
    values = shape.get(key)
    if not isinstance(values, list):
        raise _RegionError(f"bad {key!r}", f"expected a list, found {values!r}")
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        raise _RegionError(f"bad {key!r}", "not all numbers") from None
    if not all(math.isfinite(n) for n in numbers):
        raise _RegionError(f"bad {key!r}", "non-finite value")
    return numbers
