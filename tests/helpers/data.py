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


def blob_scene(
    rng: np.random.Generator, height: int, width: int, count: int, radius: tuple[int, int]
) -> tuple[np.ndarray, list[np.ndarray]]:
    """uint8 [H, W, 3] of ``count`` bright ellipses on a dark, noisy background, and each
    ellipse's bool [H, W] mask (later ellipses occlude earlier ones, as in a photo)."""
    yy, xx = np.mgrid[:height, :width]
    image = rng.integers(0, 40, size=(height, width, 3)).astype(np.uint8)
    masks: list[np.ndarray] = []
    for _ in range(count):
        ry, rx = rng.integers(radius[0], radius[1] + 1, size=2)
        cy, cx = rng.integers(ry, height - ry), rng.integers(rx, width - rx)
        inside = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        masks = [m & ~inside for m in masks] + [inside]
        image[inside] = rng.integers(150, 256, size=3)
    return image, [m for m in masks if m.any()]


def write_nucleus_folder(
    root: Path, image_ids: list[str], sizes: tuple[int, ...] = (128,), seed: int = 0
) -> Path:
    """The Kaggle 2018 Data Science Bowl layout Matterport's samples/nucleus reads:
    ``root/stage1_train/<id>/images/<id>.png`` (RGBA, as the competition's) and one binary PNG
    per nucleus in ``root/stage1_train/<id>/masks/``. The images are square, their sides
    ``sizes`` in turn (the competition's ranged from 256 to 1040 pixels). Returns ``root``."""
    rng = np.random.default_rng(seed)
    for index, image_id in enumerate(image_ids):
        size = sizes[index % len(sizes)]
        folder = root / "stage1_train" / image_id
        image, masks = blob_scene(rng, size, size, int(rng.integers(3, 9)), (5, 14))
        (folder / "images").mkdir(parents=True, exist_ok=True)
        alpha = np.full((size, size, 1), 255, dtype=np.uint8)
        Image.fromarray(np.concatenate([image, alpha], axis=2)).save(
            folder / "images" / f"{image_id}.png"
        )
        for k, mask in enumerate(masks):
            write_mask_png(folder / "masks" / f"{image_id[:8]}_{k}.png", mask)
    return root


def write_coco_folder(
    root: Path,
    subset: str,
    count: int,
    num_categories: int,
    image_folder: str | None = None,
    size=(160, 120),
    seed: int = 0,
) -> Path:
    """A COCO-format dataset as Matterport's samples/coco reads it:
    ``root/annotations/instances_<subset>.json`` and the images in
    ``root/<image_folder>/`` (default: ``subset``). Matterport's ``load_coco(root,
    "train")`` reads "train2014" from "train2014"; ``"minival"`` reads "minival2014" from
    "val2014". Categories 1..``num_categories``; each image has 2-4 ellipses of random
    categories, as polygon segmentations. Returns ``root``."""
    image_folder = image_folder or subset
    rng = np.random.default_rng(seed)
    width, height = size
    images, annotations = [], []
    for image_id in range(1, count + 1):
        image, masks = blob_scene(rng, height, width, int(rng.integers(2, 5)), (10, 30))
        name = f"COCO_{image_folder}_{image_id:012d}.jpg"
        (root / image_folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / image_folder / name, quality=95)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for mask in masks:
            ys, xs = np.nonzero(mask)
            x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, num_categories + 1)),
                    "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]]
                    if mask.sum() == (x2 - x1) * (y2 - y1)
                    else [_outline(mask)],
                    "area": int(mask.sum()),
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "iscrowd": 0,
                }
            )
    categories = [
        {"id": i, "name": f"category {i}", "supercategory": "thing"}
        for i in range(1, num_categories + 1)
    ]
    write_coco(root / "annotations" / f"instances_{subset}.json", images, annotations, categories)
    return root


def _outline(mask: np.ndarray) -> list[float]:
    """A polygon (x0, y0, x1, y1, ...) around bool [H, W] ``mask``'s largest contour."""
    import cv2

    contours, _ = cv2.findContours(
        mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    contour = max(contours, key=cv2.contourArea).reshape(-1, 2)
    return [float(v) for point in contour for v in (point[0], point[1])]
