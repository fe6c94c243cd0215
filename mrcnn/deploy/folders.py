"""``mrcnn detect --input DIR``: a model's detections on a folder of images, per image (a figure
and a JSON file) and for all of them (``detections.json``, COCO's results format), in one
process or sharded across processes and machines (:mod:`mrcnn.deploy.shards`).

Each image gives a *record* (a JSON-able dict): ``{"index", "path", "key", "entries"}`` for an
image detected, ``{"index", "path", "error"}`` for one skipped. ``detections.json`` is the
entries of the records in input order (the folder sorted by name), written once at least one
image was read; a one-process run and the merge of N shards write the same bytes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import numpy as np

from mrcnn.deploy.shards import (
    ShardFolder,
    ShardRun,
    complete_file,
    merged_records,
    run_shard,
    shard_indices,
    unique_stems,
)
from mrcnn.evaluation import detections_to_coco
from mrcnn.outputs import write_output
from mrcnn.structures.image import read_image
from mrcnn.structures.resize_plan import InputSizeError

#: The file holding the detections of every image.
SUMMARY_NAME = "detections.json"
#: Longest side, pixels, of the figures (larger images are drawn downscaled).
FIGURE_MAX_SIDE = 2000

Say = Callable[..., None]


def coco_results(result: dict, image_id: int | str, class_names: list[str]) -> list[dict]:
    """One detect result as COCO results entries (:func:`mrcnn.evaluation.detections_to_coco`
    with the boxes unrounded and a "category_name" in each entry).

    Args:
        result: "boxes" float [N, 4] (x1, y1, x2, y2), "class_ids" [N], "scores" [N],
            "masks" bool [H, W, N] or :class:`mrcnn.structures.masks.BoxMasks`.
        image_id: the entries' image_id.
        class_names: names by class id (for "category_name").
    Returns:
        N dicts: image_id, category_id, category_name, bbox [x, y, w, h] floats, score,
        segmentation (RLE with "counts" as str).
    """
    return detections_to_coco([result], [image_id], class_names=class_names, decimals=None)


def image_id_for(key: str) -> int | str:
    """COCO image_id for an output key: int for an all-ASCII-digit stem, else the stem itself
    (``str.isdigit`` also accepts "²" and other digits ``int`` refuses)."""
    return int(key) if key.isascii() and key.isdigit() else key


def output_keys(paths: Sequence[Path]) -> list[str]:
    """Output base names: the stems, with the extension kept where two files share a stem or
    the stem is that of the summary file (``detections``)."""
    return unique_stems(paths, reserved=(Path(SUMMARY_NAME).stem,))


def image_outputs(out: Path, key: str) -> tuple[Path, Path]:
    """(JSON, figure) of the image with output key ``key``."""
    return out / f"{key}.json", out / f"{key}.png"


def detect_record(
    model,
    path: Path,
    key: str,
    index: int,
    out: Path,
    class_names: list[str],
    *,
    detect_options: dict | None = None,
    say: Say = print,
) -> dict:
    """Detect in one image, write ``<key>.json`` and ``<key>.png``, say one line; the record.

    An image that cannot be read, or that the config would mold enormous, is said on stderr
    and recorded with its "error" (one bad image never ends a run over many).
    ``detect_options`` go to ``model.detect`` (``mask_format="boxes"``: memory bounded by the
    boxes; an ONNX model takes none).
    """
    try:
        image = read_image(path)
    except (ValueError, OSError) as error:
        return _skipped(path, index, error, say)
    try:
        result = model.detect([image], **(detect_options or {}))[0]
    except InputSizeError as error:  # a thin strip the config would mold enormous
        return _skipped(path, index, error, say)
    entries = coco_results(result, image_id_for(key), class_names)
    json_path, figure_path = image_outputs(out, key)
    write_output(json_path, json.dumps(entries))
    write_figure(figure_path, image, result, class_names)
    say(f"{path.name}: {len(entries)} instances")
    return {"index": index, "path": str(path), "key": key, "entries": entries}


def _skipped(path: Path, index: int, error: BaseException, say: Say) -> dict:
    say(f"skipped {path}: {error}", file=sys.stderr)
    return {"index": index, "path": str(path), "error": str(error)}


def reused_record(path: Path, key: str, index: int, out: Path, since_ns: int) -> dict | None:
    """The record of an image whose outputs a killed process of this run completed (its JSON
    and figure both written, atomically, at ``since_ns`` or later: the shard's start), read
    back from ``<key>.json``; else None."""
    json_path, figure_path = image_outputs(out, key)
    if not all(complete_file(p, since_ns) for p in (json_path, figure_path)):
        return None
    try:
        entries = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entries, list):
        return None
    return {"index": index, "path": str(path), "key": key, "entries": entries}


def write_summary(out: Path, records: Sequence[dict]) -> tuple[Path | None, int]:
    """Write ``detections.json`` (every record's entries, in the records' order) when at
    least one image was read; return (its path or None, the number of detections)."""
    read = [r for r in records if "error" not in r]
    if not read:
        return None, 0
    everything = [entry for record in read for entry in record["entries"]]
    path = out / SUMMARY_NAME
    write_output(path, json.dumps(everything))
    return path, len(everything)


def failures(records: Sequence[dict]) -> list[dict]:
    """The records of the images skipped."""
    return [r for r in records if "error" in r]


def detect_shard(
    folder: ShardFolder,
    paths: Sequence[Path],
    out: Path,
    load: Callable[[], tuple],
    *,
    overwrite: bool,
    inputs: Sequence[Path],
    say: Say = print,
) -> ShardRun:
    """One shard of a folder run (:func:`mrcnn.deploy.shards.run_shard`): its images detected
    and their outputs written, or reused from a killed process of the run, and its part.

    Args:
        folder: the shards' files in ``out``.
        paths: every input of the run, sorted.
        out: the output folder.
        load: () -> (model, class names, options of ``model.detect``), called once, only when
            an image must be detected.
        overwrite: replace existing outputs (and another run's shards) on a fresh start.
        inputs: files no output may replace (images, model file).
    """
    keys = output_keys(paths)
    indices = shard_indices(len(paths), folder.shard)
    loaded: list = []

    def work(index: int) -> dict:
        if not loaded:
            loaded.extend(load())
        model, names, options = loaded
        path, key = paths[index], keys[index]
        return detect_record(model, path, key, index, out, names, detect_options=options, say=say)

    def reuse(index: int) -> dict | None:
        return reused_record(paths[index], keys[index], index, out, folder.started_ns())

    targets = [p for i in indices for p in image_outputs(out, keys[i])]
    return run_shard(
        folder,
        indices,
        work,
        targets=[*targets, out / SUMMARY_NAME],
        inputs=inputs,
        overwrite=overwrite,
        reuse=reuse,
    )


def merge_detections(
    folder: ShardFolder, parts: Sequence[dict], out: Path, total: int
) -> tuple[Path | None, int, list[dict]]:
    """Merge every shard's part into ``detections.json`` (input order, atomically) and remove
    other runs' shard files; return (its path or None, detections, the run's failures)."""
    records = merged_records(parts, total)
    path, count = write_summary(out, records)
    folder.tidy()
    return path, count, failures(records)


def write_figure(path: Path, image: np.ndarray, result: dict, class_names: list[str]) -> None:
    """display_instances of one result, drawn at most FIGURE_MAX_SIDE pixels wide or high (a
    108-megapixel photo would otherwise need a canvas and masks of its full size)."""
    # why here: mrcnn.drawing.figures imports matplotlib, start-up time of every `mrcnn --help`.
    from mrcnn.drawing import figures

    height, width = image.shape[:2]
    scale = min(1.0, FIGURE_MAX_SIDE / max(height, width))
    masks, rois = result["masks"], result["rois"]
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        rois = np.round(rois * scale).astype(np.int32)
    if hasattr(masks, "scaled"):
        masks = masks.scaled(image.shape[:2]).to_dense()
    elif scale < 1.0 and masks.shape[2]:
        small = cv2.resize(masks.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
        masks = small.reshape(*image.shape[:2], -1).astype(bool)
    figsize = (max(4.0, image.shape[1] / 100), max(4.0, image.shape[0] / 100))
    figures.display_instances(
        image,
        rois,
        masks,
        result["class_ids"],
        class_names,
        result["scores"],
        title=path.stem,
        figsize=figsize,
        path=path,
    )
