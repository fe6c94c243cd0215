"""Round trip of ``mrcnn annotate``'s writers: masks -> each format -> our loader -> masks, and
the mask IoU of each instance with what comes back (the issue's bar: >= 0.95 at the default
tolerance).

Two sets of masks: the balloon validation set's ground-truth masks used as the "detections" (a
tiny random model detects nothing useful on them, so its output would measure nothing), and
generated shapes with holes (rings, a frame) on 96 x 128 images.

    python -m benchmarks.annotate_roundtrip                  # default tolerance and min area
    python -m benchmarks.annotate_roundtrip --tolerance 2
    python -m benchmarks.annotate_roundtrip --model PATH     # + a model's detections

With ``--model`` (a checkpoint, e.g. the demo's shapes model), a third set: that model's
detections (score >= 0.5, annotate's default) on the balloon validation photos, the masks a
user of ``mrcnn annotate`` gets (the shapes model finds odd, ragged regions on those photos:
a harder test of the polygons than the smooth balloons).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from mrcnn.datasets import from_spec
from mrcnn.evaluation.overlaps import compute_overlaps_masks
from mrcnn.labelling import (
    DEFAULT_MIN_AREA,
    DEFAULT_TOLERANCE,
    Detection,
    WriteOptions,
    new_project,
)
from mrcnn.labelling.annotate import dataset_spec
from mrcnn.labelling.merge import ImageRecord, relative_name

FORMATS = ("via", "labelme", "coco", "cvat")
BALLOON = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "balloon"
SUFFIX = {
    "via": "project.json",
    "coco": "instances.json",
    "cvat": "annotations.xml",
    "labelme": "labelme",
}


def balloon_cases() -> list[tuple[Path, list[np.ndarray]]]:
    """(image path, its ground-truth masks bool [H, W] each) of the balloon validation set."""
    dataset = from_spec(f"via:{BALLOON}", "val")
    cases = []
    for image_id in dataset.image_ids:
        masks, _ = dataset.load_mask(image_id)
        cases.append((Path(dataset.image_info[image_id]["path"]), list(np.moveaxis(masks, 2, 0))))
    return cases


def detected_cases(model_path: str, min_score: float = 0.5) -> list:
    """(image path, the model's detected masks bool [H, W] each) on the balloon validation
    photos; photos where it detects nothing are left out."""
    from mrcnn.maskrcnn import MaskRCNN
    from mrcnn.structures.image import read_image

    model = MaskRCNN.from_checkpoint(model_path)
    cases = []
    for path, _ in balloon_cases():
        found = model.detect([read_image(path)])[0]
        masks = [found["masks"][:, :, i] for i in np.flatnonzero(found["scores"] >= min_score)]
        if masks:
            cases.append((path, masks))
    return cases


def shape_cases(folder: Path) -> list[tuple[Path, list[np.ndarray]]]:
    """Generated images with rings and a frame (masks with holes) and a disc."""
    from PIL import Image

    height, width = 96, 128
    yy, xx = np.mgrid[:height, :width]
    rings = [((30, 35, 22, 10), (48, 64, 30, 14)), ((20, 110, 12, 0), (70, 30, 20, 6))]
    frame = np.zeros((height, width), dtype=bool)
    frame[50:86, 70:106], frame[59:77, 79:97] = True, False
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for k, specs in enumerate(rings):
        masks = []
        for cy, cx, outer, inner in specs:
            distance = np.hypot(yy - cy, xx - cx)
            masks.append((distance <= outer) & ((distance > inner) if inner else True))
        if k == 0:
            masks.append(frame)
        path = folder / f"shapes{k}.png"
        Image.fromarray(np.full((height, width, 3), 128, dtype=np.uint8)).save(path)
        cases.append((path, masks))
    return cases


def round_trip(format_name: str, cases, folder: Path, options: WriteOptions) -> list[float]:
    """Per instance, the best mask IoU among the instances our loader reads back."""
    project = new_project(format_name, ["object"], options)
    output = folder / SUFFIX[format_name]
    base = output if format_name == "labelme" else output.parent
    base.mkdir(parents=True, exist_ok=True)
    for path, masks in cases:
        height, width = masks[0].shape
        detections = [Detection.from_mask(m, "object") for m in masks]
        project.add_image(ImageRecord(path, relative_name(path, base), height, width), detections)
    for target, text in project.contents(output).items():
        target.write_text(text)
    dataset = from_spec(dataset_spec(format_name, output), None)
    by_name = {Path(info["path"]).name: i for i, info in enumerate(dataset.image_info)}
    ious = []
    for path, masks in cases:
        loaded, _ = dataset.load_mask(by_name[path.name])
        truth = np.stack(masks, axis=2)
        ious += compute_overlaps_masks(truth, loaded).max(axis=1, initial=0.0).tolist()
    return ious


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--min-area", type=int, default=DEFAULT_MIN_AREA)
    parser.add_argument("--model", help="a checkpoint whose detections make a third set")
    args = parser.parse_args()
    options = WriteOptions(tolerance=args.tolerance, min_area=args.min_area)
    print(f"tolerance {args.tolerance:g} px, min area {args.min_area} px")
    print("| masks | format | instances | mean IoU | min IoU |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        sets = [("shapes with holes", shape_cases(Path(tmp) / "shapes"))]
        if (BALLOON / "val").is_dir():
            sets.insert(0, ("balloon val (ground truth)", balloon_cases()))
            if args.model:
                sets.insert(1, ("balloon val (the model's detections)", detected_cases(args.model)))
        else:
            print(f"({BALLOON} absent: balloon rows skipped)")
        for label, cases in sets:
            for format_name in FORMATS:
                ious = round_trip(format_name, cases, Path(tmp) / label[:6] / format_name, options)
                print(
                    f"| {label} | {format_name} | {len(ious)} | {np.mean(ious):.4f} | "
                    f"{np.min(ious):.4f} |"
                )


if __name__ == "__main__":
    main()
