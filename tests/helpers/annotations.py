"""Generated images and instance masks (some with holes) for the round trips of
``mrcnn annotate``'s writers, and the round trip itself: write, load with our loader, compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from mrcnn.datasets import from_spec
from mrcnn.evaluation.overlaps import compute_overlaps_masks
from mrcnn.labelling import Detection, WriteOptions, new_project
from mrcnn.labelling.annotate import dataset_spec
from mrcnn.labelling.merge import ImageRecord, relative_name

H, W = 96, 128


def ring(cy: float, cx: float, outer: float, inner: float) -> np.ndarray:
    """bool [H, W]: a disc of radius ``outer`` with a hole of radius ``inner`` (0: none)."""
    yy, xx = np.mgrid[:H, :W]
    distance = np.hypot(yy - cy, xx - cx)
    return (distance <= outer) & ((distance > inner) if inner > 0 else True)


def frame(top: int, left: int, size: int, border: int) -> np.ndarray:
    """bool [H, W]: a square frame (a square hole in a square)."""
    mask = np.zeros((H, W), dtype=bool)
    mask[top : top + size, left : left + size] = True
    mask[top + border : top + size - border, left + border : left + size - border] = False
    return mask


def shapes_with_holes(holes: bool = True) -> list[list[Detection]]:
    """Detections of two images: rings and a frame (with holes), or the same shapes filled."""
    inner = 1.0 if holes else 0.0
    first = [
        Detection.from_mask(ring(30, 35, 22, 10 * inner), "ring", 0.91),
        Detection.from_mask(frame(50, 70, 36, 9 if holes else 36), "frame", 0.8),
    ]
    second = [
        Detection.from_mask(ring(48, 64, 30, 14 * inner), "ring", 0.75),
        Detection.from_mask(ring(20, 110, 12, 0), "ring", 0.66),
    ]
    return [first, second]


def write_images(folder: Path, count: int) -> list[Path]:
    """``count`` random H x W PNG images in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = [folder / f"img{k}.png" for k in range(count)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(path)
    return paths


def output_path(format_name: str, folder: Path) -> Path:
    """Where a project of ``format_name`` is written in ``folder``."""
    return {
        "via": folder / "project.json",
        "coco": folder / "instances.json",
        "cvat": folder / "annotations.xml",
        "labelme": folder / "labelme",
    }[format_name]


def write_project(
    format_name: str,
    paths: list[Path],
    detections: list[list[Detection]],
    output: Path,
    options: WriteOptions | None = None,
) -> Path:
    """Write the detections of each image as a new project at ``output``."""
    names = sorted({d.class_name for image in detections for d in image})
    project = new_project(format_name, names, options)
    folder = output if format_name == "labelme" else output.parent
    for path, image_detections in zip(paths, detections, strict=True):
        height, width = np.asarray(Image.open(path)).shape[:2]
        record = ImageRecord(path, relative_name(path, folder), height, width)
        project.add_image(record, image_detections)
    folder.mkdir(parents=True, exist_ok=True)
    for target, text in project.contents(output).items():
        target.write_text(text)
    return output


def loaded_ious(format_name: str, output: Path, detections: list[list[Detection]]) -> list[float]:
    """Per detection, the best mask IoU among the instances our loader reads back from the
    written project for its image (images matched by file name)."""
    dataset = from_spec(dataset_spec(format_name, output), None)
    by_name = {Path(info["path"]).name: i for i, info in enumerate(dataset.image_info)}
    ious = []
    for k, image_detections in enumerate(detections):
        masks, _ = dataset.load_mask(by_name[f"img{k}.png"])
        for detection in image_detections:
            target = detection.full_mask(*masks.shape[:2])[:, :, None]
            ious.append(float(compute_overlaps_masks(target, masks).max(initial=0.0)))
    return ious


class FakeModel:
    """Stands in for a MaskRCNN in the command's tests: two ring detections per image (class 1
    with a hole, score 0.9; class 2, score 0.6), in ``detect``'s result layout."""

    def __init__(self, class_names: list[str]) -> None:
        self.config = type("Config", (), {"NUM_CLASSES": len(class_names) + 1})()
        self.checkpoint_extras = {"class_names": class_names}

    def detect(self, images, mask_format: str = "dense") -> list[dict]:
        results = []
        for image in images:
            height, width = image.shape[:2]
            masks = np.zeros((height, width, 2), dtype=bool)
            masks[:, :, 0] = ring(30, 35, 22, 10)[:height, :width]
            masks[:, :, 1] = ring(60, 95, 15, 0)[:height, :width]
            results.append(
                {"class_ids": np.array([1, 2]), "scores": np.array([0.9, 0.6]), "masks": masks}
            )
        return results
