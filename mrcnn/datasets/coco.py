"""COCO instance annotations (``instances_*.json``) through pycocotools.

Segmentations may be polygons, RLE or uncompressed RLE. Categories are mapped to contiguous
internal ids 1..K in the order of their COCO ids; the COCO id stays the source class id, so
``dataset.get_source_class_id(class_id, "coco")`` gives it back (for writing results) and
``dataset.map_source_class_id("coco.<id>")`` goes the other way. Crowd annotations
(``iscrowd: 1``) are kept with a negative class id (Matterport's convention): the trainer
ignores those regions instead of learning them as background.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mrcnn.datasets.base import Dataset, empty_masks, mask_loader
from mrcnn.datasets.loading import LoadReport, check_split_subset, in_subset, read_json


class CocoDataset(Dataset):
    """Images and instances from a COCO annotation file."""

    #: The pycocotools COCO object of the last :meth:`load_coco` (for COCO evaluation).
    coco: Any = None

    def load_coco(
        self,
        annotations: str | Path,
        images_dir: str | Path | None = None,
        subset: str | None = None,
        *,
        class_names: list[str] | None = None,
        class_ids: list[int] | None = None,
        max_images: int | None = None,
        source: str = "coco",
    ) -> LoadReport:
        """Add the images and instances of a COCO annotation file.

        Args:
            annotations: the instances JSON.
            images_dir: folder of the images (default: see :func:`default_images_dir`).
            subset: None for every image; "train"/"val" select a deterministic ~90/10 split by
                image id (a COCO file is already one split, so normally pass None).
            class_names: keep only these categories (by name), e.g. ["person", "car"].
            class_ids: keep only these categories (by COCO id).
            max_images: keep at most this many images (the lowest image ids).
            source: the source name of the classes and images.
        Returns:
            the :class:`~mrcnn.dataset.LoadReport`.
        """
        annotations = Path(annotations)
        check_split_subset(subset, str(annotations))
        data = read_json(annotations)
        _check_layout(data, annotations)
        images_dir = Path(images_dir) if images_dir else default_images_dir(annotations)
        if not images_dir.is_dir():
            raise FileNotFoundError(
                f"images folder {images_dir} not found; give it as coco:ANNOTATIONS:IMAGES_DIR"
            )
        categories = _select_categories(data["categories"], class_names, class_ids, annotations)
        for category in categories:
            self.add_class(source, int(category["id"]), str(category["name"]))
        report = LoadReport(f"{source} {annotations} ({subset or 'all'})")
        per_image = _annotations_by_image(data, {int(c["id"]) for c in categories}, report)
        images = _select_images(data["images"], per_image, class_names or class_ids, subset)
        if max_images is not None:
            images = images[: int(max_images)]
        for image in images:
            self._add_coco_image(image, per_image.get(image["id"], []), images_dir, source, report)
        if report.images_loaded and not report.regions_loaded:
            report.problem(
                f"{annotations}: none of the {report.images_loaded} images has an annotation "
                "(of the selected categories); training needs annotated instances: check that "
                "this is an instances file, not image_info"
            )
        self.coco = coco_index(data)
        return self.keep_report(report, f"{source} {annotations}", subset)

    def _add_coco_image(
        self, image: dict, anns: list[dict], images_dir: Path, source: str, report: LoadReport
    ) -> None:
        path = images_dir / str(image.get("file_name", ""))
        where = f"{path} (COCO image id {image['id']})"
        if not path.is_file():
            report.skip_image(where, "missing image file")
            report.regions_skipped += len(anns)
            report.region_reasons["image skipped"] += len(anns)
            return
        height, width = int(image["height"]), int(image["width"])
        kept = []
        for ann in anns:
            problem = _segmentation_problem(ann.get("segmentation"), height, width)
            if problem:
                report.skip_region(f"{where} annotation {ann.get('id')}", problem)
                continue
            kept.append(ann)
            report.crowd_regions += int(bool(ann.get("iscrowd", 0)))
        self.add_loaded_image(
            report,
            source,
            image["id"],
            str(path),
            len(kept),
            width=width,
            height=height,
            annotations=kept,
            url=image.get("coco_url") or image.get("flickr_url"),
            format="coco",
        )

    @mask_loader("coco")
    def load_coco_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """bool [H, W, N] masks and int32 [N] class ids (crowd negative) of a COCO image."""
        from pycocotools import mask as mask_utils

        info = self.image_info[image_id]
        height, width = info["height"], info["width"]
        anns = info["annotations"]
        if not anns:
            return empty_masks(height, width)
        rles = [annotation_rle(ann["segmentation"], height, width) for ann in anns]
        with warnings.catch_warnings():
            # pycocotools' numpy 2 "copy keyword" deprecation notice, once per call otherwise.
            warnings.simplefilter("ignore", DeprecationWarning)
            decoded = mask_utils.decode(rles)
        masks = decoded.astype(bool).reshape(height, width, len(anns))
        class_ids = np.array(
            [
                self.map_source_class_id(f"{info['source']}.{int(ann['category_id'])}")
                * (-1 if ann.get("iscrowd", 0) else 1)
                for ann in anns
            ],
            dtype=np.int32,
        )
        # Tiny polygons can decode to no pixel at all; they carry no information.
        keep = masks.any(axis=(0, 1))
        return masks[:, :, keep], class_ids[keep]

    def image_reference(self, image_id: int) -> str:
        """The image's path (and its URL on cocodataset.org when the file gives one)."""
        info = self.image_info[image_id]
        if info.get("format") == "coco" and info.get("url"):
            return f"{info['path']} ({info['url']})"
        return super().image_reference(image_id)


# ------------------------------------------------------------------------------------------------
def default_images_dir(annotations: Path) -> Path:
    """Where the images of an annotation file are, unless told.

    COCO's own layout ``annotations/instances_train2017.json`` next to ``train2017/`` gives
    ``train2017``; otherwise the JSON file's folder.
    """
    parent = annotations.resolve().parent
    stem = annotations.stem
    if parent.name == "annotations" and stem.startswith("instances_"):
        candidate = parent.parent / stem[len("instances_") :]
        if candidate.is_dir():
            return candidate
        return parent.parent
    return parent


def _check_layout(data: Any, path: Path) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a COCO annotation file (top level is not an object)")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise ValueError(
            f"{path}: not a COCO instances file: no {', '.join(map(repr, missing))} key "
            "(captions/keypoint files are not instance annotations)"
        )
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise ValueError(f"{path}: {key!r} must be a list")
    for image in data["images"]:
        if not (isinstance(image, dict) and all(k in image for k in _IMAGE_KEYS)):
            raise ValueError(
                f"{path}: image entry {image!r:.200} lacks one of id, file_name, height, width"
            )
        if not (
            _is_id(image["id"])
            and isinstance(image["file_name"], str)
            and _is_size(image["height"])
            and _is_size(image["width"])
        ):
            raise ValueError(
                f"{path}: image entry {image!r:.200}: id must be a number or text, file_name "
                "text, height and width positive whole numbers"
            )
    for category in data["categories"]:
        if not (
            isinstance(category, dict)
            and _is_int(category.get("id"))
            and isinstance(category.get("name"), str)
        ):
            raise ValueError(
                f"{path}: category {category!r:.200} must have a whole-number id and a text name"
            )
    for annotation in data["annotations"]:
        if not isinstance(annotation, dict):
            raise ValueError(f"{path}: annotation {annotation!r:.200} is not an object")


_IMAGE_KEYS = ("id", "file_name", "height", "width")


def _is_int(value: Any) -> bool:
    """A whole number: an int, or a float without fraction (some exporters write 480.0)."""
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: Any) -> bool:
    return _is_int(value) or isinstance(value, str)


def _is_size(value: Any) -> bool:
    return _is_int(value) and 0 < value <= _MAX_SIDE


#: Larger image sides in an annotation file are taken for typos (such a mask would not fit).
_MAX_SIDE = 100_000


def _select_categories(
    categories: list[dict], names: list[str] | None, ids: list[int] | None, path: Path
) -> list[dict]:
    categories = sorted(categories, key=lambda c: int(c["id"]))
    if names:
        known = {c["name"]: c for c in categories}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(
                f"{path}: unknown categories {unknown}; known: {', '.join(sorted(known))}"
            )
        categories = [c for c in categories if c["name"] in set(names)]
    if ids:
        known_ids = {int(c["id"]) for c in categories}
        unknown_ids = [i for i in ids if int(i) not in known_ids]
        if unknown_ids:
            raise ValueError(f"{path}: unknown category ids {unknown_ids}")
        categories = [c for c in categories if int(c["id"]) in {int(i) for i in ids}]
    if not categories:
        raise ValueError(f"{path}: no categories")
    return categories


def _annotations_by_image(
    data: dict, category_ids: set[int], report: LoadReport
) -> dict[Any, list[dict]]:
    image_ids = {image["id"] for image in data["images"]}
    all_category_ids = {int(c["id"]) for c in data["categories"]}
    per_image: dict[Any, list[dict]] = {}
    for ann in data["annotations"]:
        where = f"annotation {ann.get('id')} (image {ann.get('image_id')})"
        if not _is_id(ann.get("image_id")) or ann["image_id"] not in image_ids:
            report.skip_region(where, "unknown image id")
            continue
        category = ann.get("category_id")
        if not _is_int(category) or category not in all_category_ids:
            report.skip_region(where, "unknown category id", repr(category))
            continue
        if int(category) in category_ids:
            per_image.setdefault(ann["image_id"], []).append(ann)
    return per_image


def _select_images(
    images: list[dict], per_image: dict, class_filter: Any, subset: str | None
) -> list[dict]:
    images = sorted(images, key=_id_order)
    if class_filter:
        # With a class filter only images showing one of the classes are useful.
        images = [image for image in images if image["id"] in per_image]
    return [image for image in images if in_subset(image["id"], subset)]


def _id_order(image: dict) -> tuple:
    """Numeric ids in numeric order, other ids after them as text."""
    image_id = image["id"]
    return (0, image_id, "") if isinstance(image_id, int) else (1, 0, str(image_id))


def _segmentation_problem(segmentation: Any, height: int, width: int) -> str:
    """Why a segmentation cannot be used, or "" when it can (checked fully here, because
    pycocotools trusts its input and can crash the process on a malformed RLE)."""
    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        if not polygons:
            return "no polygon with 3 or more points"
        if any(len(p) % 2 for p in polygons):
            return "polygon with an odd number of coordinates"
        if not all(_is_coordinate(v) for p in polygons for v in p):
            return "polygon coordinate that is not a finite number"
        return ""
    if isinstance(segmentation, dict) and "counts" in segmentation:
        size = segmentation.get("size")
        if not (isinstance(size, list) and len(size) == 2 and size == [height, width]):
            return f"RLE size {size!r:.40} is not the image's [{height}, {width}]"
        counts = segmentation["counts"]
        if isinstance(counts, list) and all(_is_plain_count(c) for c in counts):
            total = sum(counts)
        elif isinstance(counts, str):
            total = _compressed_rle_total(counts)
        else:
            return "RLE counts are neither a list of whole numbers nor a compressed string"
        if total != height * width:
            return f"RLE counts cover {total} pixels, not the image's {height * width}"
        return ""
    return f"missing or unknown segmentation ({type(segmentation).__name__})"


def _is_plain_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_coordinate(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) < 1e9


def _compressed_rle_total(counts: str) -> int:
    """Sum of the run lengths of a compressed COCO RLE string (pycocotools' rleFrString
    decoding), or -1 when the string is malformed."""
    total, index, runs = 0, 0, []
    try:
        while index < len(counts):
            value, shift, more = 0, 0, True
            while more:
                code = ord(counts[index]) - 48
                if not 0 <= code < 64:
                    return -1
                value |= (code & 0x1F) << (5 * shift)
                more = bool(code & 0x20)
                index += 1
                shift += 1
                if not more and code & 0x10:
                    value |= -1 << (5 * shift)
            if len(runs) > 2:
                value += runs[-2]
            runs.append(value)
            if value < 0:
                return -1
            total += value
    except IndexError:
        return -1
    return total


def annotation_rle(segmentation: Any, height: int, width: int) -> dict:
    """One compressed RLE for a polygon list, an uncompressed RLE or a compressed RLE."""
    from pycocotools import mask as mask_utils

    if isinstance(segmentation, list):
        polygons = [p for p in segmentation if isinstance(p, list) and len(p) >= 6]
        return mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def coco_index(data: dict):
    """A pycocotools COCO object over already parsed data (its index printout silenced); the
    one place the project builds one (evaluation uses it too)."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco
