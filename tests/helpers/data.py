"""Small datasets written into a test's tmp_path: images, VIA and COCO files, mask folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(
    path: Path,
    width: int = 64,
    height: int = 48,
    color: tuple[int, int, int] = (120, 60, 30),
    orientation: int | None = None,
) -> Path:
    """An RGB image file of one colour (plus a gradient so it is not flat); optionally with an
    EXIF orientation tag. Returns the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.empty((height, width, 3), dtype=np.uint8)
    array[:] = color
    array[:, :, 2] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    image = Image.fromarray(array)
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(path, exif=exif.tobytes())
    else:
        image.save(path)
    return path


def polygon(xs, ys) -> dict:
    return {"name": "polygon", "all_points_x": list(xs), "all_points_y": list(ys)}


def rect(x, y, w, h) -> dict:
    return {"name": "rect", "x": x, "y": y, "width": w, "height": h}


def circle(cx, cy, r) -> dict:
    return {"name": "circle", "cx": cx, "cy": cy, "r": r}


def ellipse(cx, cy, rx, ry, theta=0.0) -> dict:
    return {"name": "ellipse", "cx": cx, "cy": cy, "rx": rx, "ry": ry, "theta": theta}


def polyline(xs, ys) -> dict:
    return {"name": "polyline", "all_points_x": list(xs), "all_points_y": list(ys)}


def point(cx, cy) -> dict:
    return {"name": "point", "cx": cx, "cy": cy}


def write_via1(path: Path, images: dict[str, list]) -> Path:
    """VIA 1.x export: ``images`` maps a file name to a list of shape_attributes or
    (shape_attributes, region_attributes) pairs; regions become a dict keyed by index."""
    data = {}
    for filename, regions in images.items():
        entry_regions = {}
        for i, region in enumerate(regions):
            shape, attributes = region if isinstance(region, tuple) else (region, {})
            entry_regions[str(i)] = {"shape_attributes": shape, "region_attributes": attributes}
        data[f"{filename}1234"] = {
            "fileref": "",
            "size": 1234,
            "filename": filename,
            "base64_img_data": "",
            "file_attributes": {},
            "regions": entry_regions,
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def write_via2(path: Path, images: dict[str, list], attributes: dict | None = None) -> Path:
    """VIA 2.x project (``_via_img_metadata``, regions as a list)."""
    metadata = {}
    for filename, regions in images.items():
        listed = []
        for region in regions:
            shape, region_attributes = region if isinstance(region, tuple) else (region, {})
            listed.append({"shape_attributes": shape, "region_attributes": region_attributes})
        metadata[f"{filename}-1"] = {
            "filename": filename,
            "size": -1,
            "regions": listed,
            "file_attributes": {},
        }
    data = {
        "_via_settings": {},
        "_via_img_metadata": metadata,
        "_via_attributes": attributes or {"region": {}, "file": {}},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1))
    return path


def write_mask_png(path: Path, mask: np.ndarray, value: int = 255) -> Path:
    """A binary mask PNG: ``value`` inside bool [H, W] ``mask``, 0 outside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * value).save(path)
    return path


def box_mask(height: int, width: int, y1: int, x1: int, y2: int, x2: int) -> np.ndarray:
    """bool [H, W], True on rows y1..y2-1 and columns x1..x2-1."""
    mask = np.zeros((height, width), dtype=bool)
    mask[y1:y2, x1:x2] = True
    return mask


def write_coco(path: Path, images: list, annotations: list, categories: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path
