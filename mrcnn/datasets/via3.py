"""VIA 3 project files (``via3:FILE``; ``via:FILE`` reads them too).

A VIA 3 project is one JSON object::

    {"project": {...}, "config": {"file": {"loc_prefix": {"1": "", ...}}, ...},
     "attribute": {"1": {"aname": "kind", "anchor_id": "FILE1_Z0_XY1", "type": 3,
                         "options": {"0": "cat", "1": "dog"}, ...}},
     "file": {"1": {"fid": "1", "fname": "a.jpg", "type": 2, "loc": 1, "src": "a.jpg"}},
     "view": {"1": {"fid_list": ["1"]}},
     "metadata": {"1_x7": {"vid": "1", "z": [], "xy": [7, x1, y1, x2, y2, ...], "av": {"1": "0"}}}}

A region is a metadata entry with a shape in ``xy``: its first number is the shape, the rest
its coordinates: 2 rectangle (x, y, width, height), 3 circle (cx, cy, r), 4 ellipse (cx, cy, rx,
ry), 7 polygon (x1, y1, x2, y2, ...), 8 extreme rectangle (4 points on the box's sides),
9 extreme circle (3 points on the circle). Points (1), lines (5) and polylines (6) have no area
and are skipped with a warning, as are regions on video frames (``z`` not empty). Metadata
without a shape (file attributes, temporal segments) is not a region.

Classes come from a region attribute: ``class_attribute`` names it (its ``aname``); by default
the project's only region attribute with options (radio, dropdown or checkbox) is used, or, of
several, the one VIA shows as the regions' label (``spatial_region_label_attribute_id``). A text
attribute gives its text, an option attribute the option's name. Without such an attribute every
region is one class (``class_name``, by default the project folder's name).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mrcnn.datasets.loading import LoadReport, check_split_subset, in_subset, read_json
from mrcnn.datasets.regions import (
    Region,
    RegionDataset,
    RegionError,
    circle,
    class_list,
    default_class_name,
    ellipse,
    finite,
    polygon,
    rectangle,
)

#: VIA 3 shape ids (``_VIA_RSHAPE``).
SHAPES = {
    1: "point",
    2: "rectangle",
    3: "circle",
    4: "ellipse",
    5: "line",
    6: "polyline",
    7: "polygon",
    8: "extreme rectangle",
    9: "extreme circle",
}

#: Attribute types (``_VIA_ATTRIBUTE_TYPE``) whose values are option ids.
_TEXT, _CHECKBOX, _RADIO, _SELECT = 1, 2, 3, 4
_OPTION_TYPES = (_CHECKBOX, _RADIO, _SELECT)

#: Anchors of attributes that describe spatial regions (in an image; in a video frame).
_REGION_ANCHORS = ("FILE1_Z0_XY1", "FILE1_Z1_XY1")

#: The ``config.ui`` setting naming the attribute VIA draws as the regions' label.
_LABEL_SETTING = "spatial_region_label_attribute_id"

#: File locations (``_VIA_FILE_LOC``): a local file, and those that are not read.
_LOCAL = 1
_UNREAD_LOCATIONS = {2: "a web address (URL)", 4: "image data inline in the project"}


def is_via3_project(data: Any) -> bool:
    """Whether parsed JSON looks like a VIA 3 project."""
    return isinstance(data, dict) and {"project", "file", "metadata"} <= set(data)


class Via3Dataset(RegionDataset):
    """Images and regions of a VIA 3 project file."""

    def load_via3(
        self,
        path: str | Path,
        subset: str | None = None,
        *,
        class_attribute: str | None = None,
        class_name: str | None = None,
        class_names: list[str] | None = None,
        images_dir: str | Path | None = None,
        keep_empty: bool = False,
        source: str = "via3",
    ) -> LoadReport:
        """Add the images and regions of a VIA 3 project.

        Args:
            path: the project JSON.
            subset: "train"/"val" select a deterministic ~90/10 split by file name; None: all.
            class_attribute: the region attribute (``aname``) holding the class (default: the
                only region attribute with options, if there is one).
            class_name: the single class's name when no attribute gives classes (default: the
                project folder's name).
            class_names: fix the classes and their order (ids 1..K); regions of other classes
                are skipped. Default: every name found or declared as an option, sorted.
            images_dir: folder of the images (default: the project's folder, with its local
                ``loc_prefix``).
            keep_empty: keep images without regions.
            source: the source name of the classes and images.
        """
        path = Path(path)
        check_split_subset(subset, str(path))
        data = read_json(path)
        _check_project(data, path)
        files = _files(data, path)
        attribute = _find_class_attribute(data, class_attribute, path)
        single_class = class_name or default_class_name(path)
        per_file, dangling = _regions_by_file(data, attribute, single_class, path)
        found = _found_class_names(per_file, attribute, single_class)
        names = class_list(found, class_names, str(path))
        for class_id, name in enumerate(names, start=1):
            self.add_class(source, class_id, name)
        ids = {name: i for i, name in enumerate(names, start=1)}
        report = LoadReport(f"{source} {path} ({subset or 'all'})")
        for region in dangling:
            report.skip_region(f"{path} {region.name}", region.error.reason, region.error.detail)
        self._add_project_files(
            data, files, per_file, path, subset, images_dir, ids, keep_empty, source, report
        )
        return self.keep_report(report, f"{source} {path}", subset)

    def _add_project_files(
        self,
        data: dict,
        files: list[tuple[str, dict]],
        per_file: dict[str, list[Region]],
        path: Path,
        subset: str | None,
        images_dir: str | Path | None,
        ids: dict[str, int],
        keep_empty: bool,
        source: str,
        report: LoadReport,
    ) -> None:
        """Add each file of ``subset`` with its regions; a repeated file name is skipped."""
        seen: set[str] = set()
        for fid, entry in files:
            fname = str(entry.get("fname", ""))
            if not in_subset(fname, subset):
                continue
            where = f"{path} [{fname}]"
            if fname in seen:
                report.skip_image(where, "duplicate file name")
                continue
            image_path = _image_path(data, entry, path, images_dir, report, where)
            if image_path is not None and self.add_region_image(
                source,
                fname,
                image_path,
                per_file.get(fid, []),
                ids,
                report,
                where=where,
                keep_empty=keep_empty,
            ):
                seen.add(fname)


def _found_class_names(
    per_file: dict[str, list[Region]], attribute: dict | None, single_class: str
) -> set[str]:
    """The class names the project uses or declares: the parsed regions' classes plus, for an
    option attribute, every option (so that ids do not depend on which options are used);
    ``{single_class}`` when no attribute gives classes."""
    found = {r.class_name for regions in per_file.values() for r in regions if r.class_name}
    if attribute is None:
        found = {single_class}
    elif attribute.get("type") in _OPTION_TYPES:
        found |= {str(v) for v in (attribute.get("options") or {}).values()}
    return found


# ------------------------------------------------------------------------------------------------
# The project's structure
# ------------------------------------------------------------------------------------------------
def _check_project(data: Any, path: Path) -> None:
    if not is_via3_project(data):
        found = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        raise ValueError(
            f"{path}: not a VIA 3 project: expected the keys project, file and metadata "
            f"(found: {found or 'nothing'}); VIA 1/2 files are read by via:PATH"
        )
    for key in ("file", "metadata", "attribute", "view"):
        if not isinstance(data.get(key, {}), dict):
            raise ValueError(f"{path}: {key!r} must be an object, found {type(data[key]).__name__}")


def _files(data: dict, path: Path) -> list[tuple[str, dict]]:
    files = []
    for fid, entry in data["file"].items():
        if not isinstance(entry, dict) or "fname" not in entry:
            raise ValueError(f"{path}: file {fid!r} is not a VIA 3 file entry (no 'fname')")
        files.append((str(fid), entry))
    return files


def _image_path(
    data: dict, entry: dict, path: Path, images_dir: Any, report: LoadReport, where: str
) -> Path | None:
    """Where the image of a file entry is, or None (counted in ``report``) when not on disk."""
    fname, src = str(entry["fname"]), str(entry.get("src") or "")
    if images_dir:
        candidates = [Path(images_dir) / fname, Path(images_dir) / Path(fname).name]
    else:
        prefixes = ((data.get("config") or {}).get("file") or {}).get("loc_prefix") or {}
        prefix = str(prefixes.get(str(_LOCAL)) or "")
        candidates = [path.parent / prefix / (src or fname), path.parent / fname]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    location = entry.get("loc")
    if location in _UNREAD_LOCATIONS and not images_dir:
        report.skip_image(
            where,
            "image not on disk",
            f"{_UNREAD_LOCATIONS[location]}; save it and pass images_dir",
        )
        return None
    return candidates[0]  # reported as a missing image file


def _find_class_attribute(data: dict, name: str | None, path: Path) -> dict | None:
    """The attribute entry giving the class (with its id under ``"id"``), or None."""
    region_attributes = {
        str(aid): {**spec, "id": str(aid)}
        for aid, spec in (data.get("attribute") or {}).items()
        if isinstance(spec, dict) and spec.get("anchor_id") in _REGION_ANCHORS
    }
    if name is not None:
        for spec in region_attributes.values():
            if spec.get("aname") == name:
                return spec
        known = ", ".join(repr(s.get("aname")) for s in region_attributes.values()) or "none"
        raise ValueError(
            f"{path}: no region attribute named {name!r} (region attributes: {known}); "
            "names are case-sensitive"
        )
    with_options = [s for s in region_attributes.values() if s.get("type") in _OPTION_TYPES]
    if len(with_options) > 1:  # the one VIA shows as the regions' label, if it is one of them
        shown = str(((data.get("config") or {}).get("ui") or {}).get(_LABEL_SETTING, ""))
        with_options = [s for s in with_options if s["id"] == shown]
    return with_options[0] if len(with_options) == 1 else None


def _regions_by_file(
    data: dict, attribute: dict | None, single_class: str, path: Path
) -> tuple[dict[str, list[Region]], list[Region]]:
    """(file id -> its regions in metadata order, regions of no known file); each region is
    named after its metadata id."""
    views = data.get("view") or {}
    per_file: dict[str, list[Region]] = {}
    dangling: list[Region] = []
    for mid, entry in data["metadata"].items():
        if not isinstance(entry, dict):
            raise ValueError(f"{path}: metadata {mid!r} is not an object (VIA 3 metadata entry)")
        if not entry.get("xy"):
            continue  # file attributes and temporal segments have no shape
        name = f"region {mid}"
        view = views.get(str(entry.get("vid")))
        fids = view.get("fid_list") if isinstance(view, dict) else None
        if not fids:
            error = RegionError("of a view the project does not list", repr(entry.get("vid")))
            dangling.append(Region(name, error=error))
            continue
        try:
            if len(fids) != 1:
                raise RegionError("region on a view of several files")
            if entry.get("z"):
                raise RegionError("region on a video frame")
            geometry = shape_geometry(entry["xy"])
            label = single_class if attribute is None else _class_value(entry, attribute)
            region = Region(name, geometry, label)
        except RegionError as error:
            region = Region(name, error=error)
        per_file.setdefault(str(fids[0]), []).append(region)
    return per_file, dangling


def _class_value(entry: dict, attribute: dict) -> str:
    values = entry.get("av") if isinstance(entry.get("av"), dict) else {}
    value = values.get(attribute["id"])
    aname = attribute.get("aname")
    if value is None or str(value).strip() == "":
        raise RegionError(f"no {aname!r} attribute value")
    if attribute.get("type") not in _OPTION_TYPES:
        return str(value).strip()
    options = attribute.get("options") or {}
    chosen = [v.strip() for v in str(value).split(",") if v.strip()]  # checkbox: "0,2"
    if len(chosen) != 1:
        raise RegionError(f"{aname!r} has {len(chosen)} options ticked, need one")
    if chosen[0] not in options:
        raise RegionError(f"unknown {aname!r} option", repr(chosen[0]))
    return str(options[chosen[0]])


# ------------------------------------------------------------------------------------------------
# Shapes
# ------------------------------------------------------------------------------------------------
def shape_geometry(xy: Any) -> dict:
    """A VIA 3 ``xy`` list ([shape id, coordinates...]) as a geometry dict."""
    if not isinstance(xy, list) or not xy:
        raise RegionError("bad 'xy'", f"expected [shape, coordinates...], found {xy!r:.60}")
    shape = xy[0]
    if shape not in SHAPES:
        raise RegionError("unknown shape type", repr(shape))
    kind = SHAPES[shape]
    values = [finite(v, f"{kind} coordinate") for v in xy[1:]]
    needed = {2: 4, 3: 3, 4: 4, 8: 8, 9: 6}.get(shape)
    if needed is not None and len(values) != needed:
        raise RegionError(f"bad {kind}", f"{len(values)} numbers, need {needed}")
    if kind in ("point", "line", "polyline"):
        raise RegionError(f"{kind} has no area")
    if kind == "rectangle":
        return rectangle(*values)
    if kind == "circle":
        return circle(*values)
    if kind == "ellipse":
        return ellipse(*values)
    if len(values) % 2:
        raise RegionError(f"bad {kind}", "an odd number of coordinates")
    points = list(zip(values[0::2], values[1::2], strict=True))
    if kind == "polygon":
        return polygon(points)
    if kind == "extreme rectangle":
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        # The extreme points are object pixels: the box covers them.
        return rectangle(min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)
    return circle(*_circle_through(points))


def _circle_through(points: list[tuple[float, float]]) -> tuple[float, float, float]:
    """(cx, cy, r) of the circle through three points."""
    (ax, ay), (bx, by), (cx, cy) = points
    d = 2 * (ax * (by - cy) + bx * (cy - ay) + cx * (ay - by))
    if abs(d) < 1e-9:
        raise RegionError("extreme circle on a straight line")
    a2, b2, c2 = ax * ax + ay * ay, bx * bx + by * by, cx * cx + cy * cy
    ux = (a2 * (by - cy) + b2 * (cy - ay) + c2 * (ay - by)) / d
    uy = (a2 * (cx - bx) + b2 * (ax - cx) + c2 * (bx - ax)) / d
    return ux, uy, math.hypot(ax - ux, ay - uy)
