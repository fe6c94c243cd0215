"""COCO form: pycocotools' RLEs, a Dataset as COCO instances, ``detect`` results in COCO's
results format, and COCO AP/AR through pycocotools' ``COCOeval``.

:func:`detections_to_coco` is the one writer of COCO results entries (the ``evaluate``,
``detect`` and ``serve`` paths all use it); :func:`encode_masks` the one mask encoder.
:func:`coco_evaluate_with_intervals` adds bootstrap intervals to COCO's AP, AP50 and AP75.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from mrcnn.datasets.coco import coco_index
from mrcnn.evaluation.bootstrap import Bootstrap, Interval, coco_ap_samples, coco_records

#: Names of the 12 numbers ``COCOeval.summarize`` computes, in its order.
COCO_STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)


def _is_coco_dataset(dataset, image_ids: Sequence[int] | np.ndarray) -> bool:
    """True when every image comes from the dataset's COCO annotation file (``dataset.coco``)."""
    coco = getattr(dataset, "coco", None)
    if coco is None:
        return False
    for i in image_ids:
        info = dataset.image_info[int(i)]
        if info.get("format") != "coco" or info["id"] not in coco.imgs:
            return False
    return True


def coco_ids(dataset, image_ids: Sequence[int] | np.ndarray) -> tuple[list[Any], dict[int, int]]:
    """The ids to write in COCO form for these images and for every class.

    Returns:
        (coco_image_ids, class_map): for a COCO dataset its own image ids and
        {internal class id: COCO category id}; for any other dataset the internal image ids and
        the identity map of the internal class ids.
    """
    if _is_coco_dataset(dataset, image_ids):
        image_list = [dataset.image_info[int(i)]["id"] for i in image_ids]
        source = dataset.image_info[int(image_ids[0])]["source"] if len(image_ids) else "coco"
        class_map = {
            c: int(info["id"])
            for c, info in enumerate(dataset.class_info)
            if c > 0 and info["source"] == source
        }
        return image_list, class_map
    return [int(i) for i in image_ids], {c: c for c in range(1, len(dataset.class_info))}


def encode_masks(masks) -> list[dict]:
    """COCO RLEs (counts as str) of bool [H, W, N] masks or of a
    :class:`mrcnn.structures.masks.BoxMasks` (encoded box by box, without a full-size stack)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0 if hasattr(masks, "rle") else masks.shape[-1] == 0:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools vs numpy 2
        if hasattr(masks, "rle"):
            rles = masks.rle()
        else:
            rles = mask_utils.encode(np.asfortranarray(masks.astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
        rle["size"] = [int(s) for s in rle["size"]]
    return rles


def dataset_to_coco(dataset, image_ids: Sequence[int] | np.ndarray | None = None) -> dict:
    """A Dataset's ground truth as a COCO instances dict.

    Args:
        dataset: a prepared Dataset.
        image_ids: internal ids to include (default: all).
    Returns:
        {"info", "images", "annotations", "categories"}: image ids are the internal ids,
        category ids the internal class ids (BG left out), annotations carry an RLE
        ``segmentation`` (counts as str), ``area`` in pixels, ``bbox`` [x, y, w, h] and
        ``iscrowd`` (1 for negative class ids); annotation ids start at 1.
    """
    from pycocotools import mask as mask_utils

    ids = dataset.image_ids if image_ids is None else image_ids
    images, annotations = [], []
    for image_id in ids:
        image_id = int(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        height, width = masks.shape[:2]
        info = dataset.image_info[image_id]
        name = info.get("path") or dataset.image_reference(image_id)
        images.append(
            {"id": image_id, "width": int(width), "height": int(height), "file_name": str(name)}
        )
        rles = encode_masks(masks)
        if not rles:
            continue
        areas = mask_utils.area(rles)
        boxes = mask_utils.toBbox(rles)
        for rle, class_id, area, box in zip(rles, class_ids, areas, boxes, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,  # COCOeval treats id 0 as "no match"
                    "image_id": image_id,
                    "category_id": int(abs(class_id)),
                    "segmentation": rle,
                    "area": float(area),
                    "bbox": [float(v) for v in box],
                    "iscrowd": int(class_id < 0),
                }
            )
    categories = [
        {"id": c, "name": dataset.class_names[c], "supercategory": info["source"]}
        for c, info in enumerate(dataset.class_info)
        if c > 0
    ]
    return {
        "info": {"description": f"converted from {type(dataset).__name__}"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def detections_to_coco(
    results: Sequence[dict],
    image_ids: Sequence[Any],
    class_map: dict[int, int] | None = None,
    class_names: Sequence[str] | None = None,
    *,
    decimals: int | None = 3,
) -> list[dict]:
    """``MaskRCNN.detect`` results in COCO's results format.

    Args:
        results: one dict per image as ``detect`` returns ("rois" (y1, x1, y2, x2) [N, 4] or
            "boxes" (x1, y1, x2, y2) [N, 4], "class_ids" [N], "scores" [N], "masks" bool
            [H, W, N] or a :class:`mrcnn.structures.masks.BoxMasks`; "masks" may be absent for
            box-only results).
        image_ids: the COCO image id of each result.
        class_map: {internal class id: category id to write} (default: identity).
        class_names: names indexed by internal class id; when given, each entry also gets a
            ``category_name`` ("class <id>" for an id past the end).
        decimals: digits kept in the box coordinates (the score keeps two more), to keep files
            small; None writes the floats unrounded.
    Returns:
        one dict per detection: image_id, category_id, (category_name), bbox [x, y, w, h]
        floats, score and, with masks, segmentation (RLE, counts as str).
    """
    if len(results) != len(image_ids):
        raise ValueError(f"{len(results)} results but {len(image_ids)} image ids")
    out: list[dict] = []
    for r, image_id in zip(results, image_ids, strict=True):
        class_ids = np.asarray(r["class_ids"]).reshape(-1)
        if len(class_ids) == 0:
            continue
        boxes = _xywh_boxes(r).tolist()
        scores = np.asarray(r["scores"], dtype=np.float64).reshape(-1).tolist()
        masks = r.get("masks")
        rles = None if masks is None else encode_masks(_dense_or_box_masks(masks))
        for k, class_id in enumerate(class_ids):
            class_id = int(class_id)
            item = {"image_id": image_id, "category_id": _category(class_id, class_map, image_id)}
            if class_names is not None:
                known = 0 <= class_id < len(class_names)
                item["category_name"] = class_names[class_id] if known else f"class {class_id}"
            item["bbox"] = [_rounded(v, decimals) for v in boxes[k]]
            item["score"] = _rounded(scores[k], None if decimals is None else decimals + 2)
            if rles is not None:
                item["segmentation"] = rles[k]
            out.append(item)
    return out


def _rounded(value: float, decimals: int | None) -> float:
    return value if decimals is None else round(value, decimals)


def _xywh_boxes(result: dict) -> np.ndarray:
    """float64 [N, 4] (x, y, w, h) boxes of a detect result: its unrounded "boxes"
    (x1, y1, x2, y2) when present, else its "rois" (y1, x1, y2, x2)."""
    if "boxes" in result:
        x1, y1, x2, y2 = np.asarray(result["boxes"], dtype=np.float64).reshape(-1, 4).T
    else:
        y1, x1, y2, x2 = np.asarray(result["rois"], dtype=np.float64).reshape(-1, 4).T
    return np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)


def _dense_or_box_masks(masks):
    """BoxMasks as they are (encoded box by box), anything else as a numpy array."""
    return masks if hasattr(masks, "rle") else np.asarray(masks)


def _category(class_id: int, class_map: dict[int, int] | None, image_id: Any) -> int:
    if class_map is None:
        return class_id
    if class_id not in class_map:
        raise ValueError(
            f"detection of class {class_id} on image {image_id!r} has no entry in "
            f"class_map (known: {sorted(class_map)}); the model's NUM_CLASSES must "
            "match the dataset's classes"
        )
    return int(class_map[class_id])


def coco_evaluate(
    dataset,
    results_list: Sequence[dict],
    image_ids: Sequence[int] | np.ndarray,
    iou_type: str = "segm",
    *,
    verbose: bool = False,
) -> dict[str, float]:
    """COCO AP/AR of detections on a dataset through pycocotools' COCOeval.

    Args:
        dataset: a prepared Dataset. A COCO dataset (``dataset.coco`` holding every image) is
            evaluated against its annotation file, restricted to ``image_ids`` and its classes;
            any other dataset is converted with :func:`dataset_to_coco`.
        results_list: either one ``detect`` result dict per image of ``image_ids``, or
            detections already in COCO's results format (dicts with "image_id", e.g.
            ``DatasetEvaluation.coco_results``).
        image_ids: the internal ids of the evaluated images.
        iou_type: "segm" (mask IoU) or "bbox".
        verbose: print COCOeval's own summary.
    Returns:
        {name: value} for the 12 stats of :data:`COCO_STAT_NAMES` (AP, AP50, AP75, APs, APm,
        APl, AR1, AR10, AR100, ARs, ARm, ARl); -1 where COCO finds nothing to measure.
    """
    evaluator = _run_cocoeval(dataset, results_list, image_ids, iou_type, verbose)
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)}


def coco_evaluate_with_intervals(
    dataset,
    results_list: Sequence[dict],
    image_ids: Sequence[int] | np.ndarray,
    iou_type: str,
    bootstrap: Bootstrap,
) -> tuple[dict[str, float], dict[str, Interval]]:
    """:func:`coco_evaluate` and bootstrap intervals of its AP, AP50 and AP75.

    The images of ``image_ids`` are resampled (``bootstrap.counts(len(image_ids))``, the same
    draws as ``evaluate_dataset``'s for the same images) and COCO's accumulation is redone on
    each draw from COCOeval's per-image records, without running COCOeval again.

    Returns:
        (stats, intervals): the 12 stats as :func:`coco_evaluate` gives them, and
        {"AP", "AP50", "AP75"} -> :class:`~mrcnn.evaluation.bootstrap.Interval`.
    """
    evaluator = _run_cocoeval(dataset, results_list, image_ids, iou_type, False)
    stats = {name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)}
    coco_image_ids, _ = coco_ids(dataset, [int(i) for i in image_ids])
    records = coco_records(evaluator, coco_image_ids)
    samples = coco_ap_samples(records, bootstrap.counts(len(coco_image_ids)))
    return stats, {name: bootstrap.interval(values) for name, values in samples.items()}


def _run_cocoeval(
    dataset, results_list: Sequence[dict], image_ids, iou_type: str, verbose: bool
):  # -> pycocotools.cocoeval.COCOeval after evaluate, accumulate and summarize
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type={iou_type!r}: use 'segm' or 'bbox'")
    ids = [int(i) for i in image_ids]
    coco_image_ids, class_map = coco_ids(dataset, ids)
    if _is_coco_dataset(dataset, ids):
        gt = dataset.coco
    else:
        gt = coco_index(dataset_to_coco(dataset, ids))
    detections = _detections_for_iou_type(results_list, iou_type, coco_image_ids, class_map)
    with contextlib.redirect_stdout(io.StringIO()) as printed, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        dt = _loaded_detections(gt, detections)
        evaluator = COCOeval(gt, dt, iou_type)
        evaluator.params.imgIds = coco_image_ids
        evaluator.params.catIds = sorted(set(class_map.values()))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    if verbose:
        print(printed.getvalue(), end="")
    return evaluator


def _detections_for_iou_type(
    results_list: Sequence[dict],
    iou_type: str,
    coco_image_ids: list[Any],
    class_map: dict[int, int],
) -> list[dict]:
    """COCO results entries (``detect`` results converted first) keeping only what
    ``iou_type`` measures: "segm" entries lose their box, "bbox" entries their mask."""
    results_list = list(results_list)
    if results_list and "image_id" not in results_list[0]:
        results_list = detections_to_coco(results_list, coco_image_ids, class_map)
    detections = []
    for d in results_list:
        if iou_type == "segm":
            if "segmentation" not in d:
                raise ValueError("segm evaluation needs detections with masks ('segmentation')")
            # Without the box COCO takes the mask area for small/medium/large, as it should.
            d = {k: v for k, v in d.items() if k != "bbox"}
        else:
            d = {k: v for k, v in d.items() if k != "segmentation"}
        detections.append(d)
    return detections


def _loaded_detections(gt, detections: list[dict]):
    """The detections as a COCO object beside ``gt``. ``loadRes`` fails on an empty list, so no
    detections give an index of the same images without any annotation."""
    if detections:
        return gt.loadRes(detections)
    return coco_index({"images": list(gt.dataset["images"]), "annotations": [], "categories": []})
