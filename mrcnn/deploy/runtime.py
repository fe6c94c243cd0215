"""Run an exported Mask R-CNN (``mrcnn export``) with ONNX Runtime: needs numpy and onnxruntime.

The ONNX graph (see :mod:`mrcnn.deploy.graph`) takes one molded image of the size it was
exported for and returns detections in that input's pixels. This module does the rest, with the
same arithmetic as :mod:`mrcnn.structures.image` but in numpy, so it runs where torch is not
installed:

1. **Molding**: plan the resize with the model's IMAGE_* settings
(:mod:`mrcnn.structures.resize_plan`),
   subtract MEAN_PIXEL (and divide by STD_PIXEL), resize bilinearly (PyTorch's
   ``align_corners=False`` rule), zero-pad to the graph's input size. The window (the image's
   place in the padded input) is the graph's second input, the score threshold
   (DETECTION_MIN_CONFIDENCE now) its third (:func:`graph_feed`).
2. **Unmolding**: boxes (x1, y1, x2, y2) back to original-image pixels.
3. **Mask pasting**: each M x M soft mask, padded by one zero pixel, resized into its widened
   box and thresholded at 0.5: bool [H, W, N] at the original resolution.

The settings and class names travel in the ONNX file's metadata (key ``mrcnn``), so the file
alone is enough. An image whose molded size exceeds the graph's input is scaled down further to
fit (a warning says so); export with ``--input-size`` for that shape to avoid it.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from mrcnn.deploy import matterport_runtime as matterport
from mrcnn.structures.resize_plan import ImageMeta, ResizePlan, inference_mode, plan_resize
from mrcnn.structures.rgb import checked_images

#: Metadata key of the ONNX file holding the settings (JSON).
METADATA_KEY = "mrcnn"
#: Version of the metadata layout.
METADATA_FORMAT = 1
#: Probability above which a pasted mask pixel belongs to the instance.
MASK_THRESHOLD = 0.5


# ------------------------------------------------------------------------------------------------
# Pixels: PyTorch's bilinear resize (align_corners=False, no antialiasing) in numpy
# ------------------------------------------------------------------------------------------------
def _linear_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low index, high index, high weight) [out_size] of F.interpolate's bilinear rule."""
    scale = np.float32(in_size) / np.float32(out_size)
    source = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    source = np.maximum(source, np.float32(0.0))
    low = source.astype(np.int64)  # truncation, as the kernel's cast
    high = np.minimum(low + 1, in_size - 1)
    return low, high, source - low.astype(np.float32)


def resize_bilinear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize [C, H, W] float32 to [C, h, w] as ``F.interpolate(..., "bilinear",
    align_corners=False)`` does."""
    height, width = array.shape[-2:]
    if (height, width) == tuple(size):
        return array
    row_low, row_high, row_weight = _linear_taps(height, int(size[0]))
    col_low, col_high, col_weight = _linear_taps(width, int(size[1]))
    rows = array[:, row_low] * (1 - row_weight)[:, None] + array[:, row_high] * row_weight[:, None]
    return rows[:, :, col_low] * (1 - col_weight) + rows[:, :, col_high] * col_weight


# ------------------------------------------------------------------------------------------------
# Molding and unmolding
# ------------------------------------------------------------------------------------------------
def inference_plan(height: int, width: int, settings: SimpleNamespace) -> ResizePlan:
    """The config's plan for a whole image of ``height`` x ``width`` (``crop`` molds whole
    images as ``pad64``, as ``MaskRCNN.detect`` does), unpadded beyond what the mode pads."""
    return plan_resize(
        height,
        width,
        inference_mode(settings.IMAGE_RESIZE_MODE),
        settings.IMAGE_MIN_DIM,
        settings.IMAGE_MAX_DIM,
        settings.IMAGE_MIN_SCALE,
    )


def plan_for_input(
    height: int, width: int, settings: SimpleNamespace, input_size: tuple[int, int]
) -> tuple[ResizePlan, bool]:
    """How an image of ``height`` x ``width`` goes into a graph input of ``input_size`` (H, W).

    The config's plan (``crop`` molds whole images as ``pad64``, as ``MaskRCNN.detect`` does),
    padded at the bottom and right up to ``input_size``; when that plan does not fit, the image
    is scaled to fit instead. Returns (plan, whether it had to be scaled to fit).
    """
    plan = inference_plan(height, width, settings)
    out_h, out_w = plan.output_shape
    in_h, in_w = input_size
    if out_h <= in_h and out_w <= in_w:
        top, bottom, left, right = plan.padding
        padding = (top, bottom + in_h - out_h, left, right + in_w - out_w)
        return ResizePlan(plan.original_shape, plan.resized_shape, padding), False
    scale = min(in_h / height, in_w / width)
    new_h = max(1, min(in_h, math.floor(height * scale)))
    new_w = max(1, min(in_w, math.floor(width * scale)))
    padding = (0, in_h - new_h, 0, in_w - new_w)
    return ResizePlan((height, width), (new_h, new_w), padding), True


def mold_image(
    image: np.ndarray, settings: SimpleNamespace, plan: ResizePlan
) -> tuple[np.ndarray, np.ndarray]:
    """The graph's inputs for one H x W x 3 uint8 RGB image.

    Returns:
        (image [1, 3, H_in, W_in] float32, window [1, 4] float32 (x1, y1, x2, y2)).
    """
    tensor = image.transpose(2, 0, 1).astype(np.float32)
    tensor = tensor - np.asarray(settings.MEAN_PIXEL, dtype=np.float32)[:, None, None]
    if settings.STD_PIXEL is not None:
        tensor = tensor / np.asarray(settings.STD_PIXEL, dtype=np.float32)[:, None, None]
    tensor = resize_bilinear(tensor, plan.resized_shape)
    top, bottom, left, right = plan.padding
    molded = np.pad(tensor, ((0, 0), (top, bottom), (left, right)))
    window = np.asarray([plan.meta().window], dtype=np.float32)
    return molded[None].astype(np.float32, copy=False), window


def _unmold_every_box(
    boxes: np.ndarray, meta: ImageMeta, input_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's unmolding: (every box in original-image pixels, all indices)."""
    return unmold_boxes(boxes, meta), np.arange(len(boxes))


@dataclass(frozen=True)
class Molding:
    """How a flavour's images are molded for the graph and its detections unmolded, chosen
    once from the settings (:func:`molding_for`).

    Attributes:
        mold: (image H x W x 3 uint8, settings, plan) -> (image [1, 3, H_in, W_in] float32,
            window [1, 4] float32 (x1, y1, x2, y2)).
        unmold: (boxes [N, 4] input pixels, meta, input (H, W)) -> (float32 [N', 4]
            (x1, y1, x2, y2) original-image pixels, int64 [N'] indices of the boxes kept).
        paste: (masks [N, M, M], boxes [N, 4] original pixels, (H, W)) -> bool [H, W, N].
    """

    mold: Callable[[np.ndarray, SimpleNamespace, ResizePlan], tuple[np.ndarray, np.ndarray]]
    unmold: Callable[[np.ndarray, ImageMeta, tuple[int, int]], tuple[np.ndarray, np.ndarray]]
    paste: Callable[[np.ndarray, np.ndarray, tuple[int, int]], np.ndarray]

    def for_box_masks(self) -> Molding:
        """This molding with torchvision's unmolding and pasting, which
        :class:`mrcnn.structures.masks.BoxMasks` applies in every flavour (as
        ``MaskRCNN.detect(mask_format="boxes")`` does)."""
        return Molding(self.mold, _unmold_every_box, paste_masks)


def molding_for(settings: SimpleNamespace) -> Molding:
    """The :class:`Molding` of the settings' NETWORK_FLAVOUR (torchvision's for files exported
    before the key was stored: only torchvision's flavour could be exported then)."""
    flavour = getattr(settings, "NETWORK_FLAVOUR", "torchvision")
    if flavour not in MOLDINGS:
        raise ValueError(
            f"NETWORK_FLAVOUR={flavour!r}: this runtime molds {', '.join(MOLDINGS)}; export "
            "the model again with this version"
        )
    return MOLDINGS[flavour]


def graph_feed(
    image: np.ndarray, settings: SimpleNamespace, plan: ResizePlan, molding: Molding | None = None
) -> dict:
    """The exported graph's inputs for one H x W x 3 uint8 RGB image, by name: "image"
    [1, 3, H_in, W_in] and "window" [1, 4] (molded by ``molding``, default the settings'
    flavour's), and "min_score" [1] float32, the settings' DETECTION_MIN_CONFIDENCE as it is now
    (the video modes and the page change it while a model runs)."""
    molded, window = (molding or molding_for(settings)).mold(image, settings, plan)
    min_score = np.asarray([settings.DETECTION_MIN_CONFIDENCE], dtype=np.float32)
    return {"image": molded, "window": window, "min_score": min_score}


def unmold_boxes(boxes: np.ndarray, meta: ImageMeta) -> np.ndarray:
    """[N, 4] (x1, y1, x2, y2) input pixels -> original-image pixels, clipped to the image
    (:func:`mrcnn.structures.image.unmold_boxes` in numpy)."""
    x1, y1, _, _ = meta.window
    fy = np.float32(meta.original_shape[0]) / np.float32(meta.resized_shape[0])
    fx = np.float32(meta.original_shape[1]) / np.float32(meta.resized_shape[1])
    offset = np.asarray([x1, y1, x1, y1], dtype=np.float32)
    out = (boxes.astype(np.float32) - offset) * np.asarray([fx, fy, fx, fy], dtype=np.float32)
    height, width = meta.original_shape
    limit = np.asarray([width, height, width, height], dtype=np.float32)
    return np.minimum(np.maximum(out, 0), limit)


def expanded_paste_boxes(boxes: np.ndarray, mask_size: int) -> np.ndarray:
    """int64 [N, 4] (x1, y1, x2, y2), inclusive, that padded masks are pasted into
    (:func:`mrcnn.structures.image.expanded_paste_boxes` in numpy)."""
    boxes = boxes.astype(np.float32)
    expand = np.float32((mask_size + 2) / mask_size)
    half_w = (boxes[:, 2] - boxes[:, 0]) * np.float32(0.5) * expand
    half_h = (boxes[:, 3] - boxes[:, 1]) * np.float32(0.5) * expand
    cx = (boxes[:, 2] + boxes[:, 0]) * np.float32(0.5)
    cy = (boxes[:, 3] + boxes[:, 1]) * np.float32(0.5)
    corners = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
    return np.trunc(corners).astype(np.int64)


def paste_masks(
    masks: np.ndarray,
    boxes: np.ndarray,
    image_shape: tuple[int, int],
    threshold: float = MASK_THRESHOLD,
) -> np.ndarray:
    """Soft masks [N, M, M] into their boxes [N, 4] (x1, y1, x2, y2, image pixels): bool
    [H, W, N] (:func:`mrcnn.structures.image.paste_masks` in numpy; one box-sized resize per
    instance)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    out = np.zeros((height, width, len(masks)), dtype=bool)
    if len(masks) == 0:
        return out
    padded = np.pad(masks.astype(np.float32), ((0, 0), (1, 1), (1, 1)))
    for index, (x0, y0, x1, y1) in enumerate(expanded_paste_boxes(boxes, masks.shape[-1])):
        span_h, span_w = max(int(y1 - y0 + 1), 1), max(int(x1 - x0 + 1), 1)
        top, left = max(int(y0), 0), max(int(x0), 0)
        bottom, right = min(int(y0) + span_h, height), min(int(x0) + span_w, width)
        if bottom <= top or right <= left:
            continue
        patch = resize_bilinear(padded[index : index + 1], (span_h, span_w))[0]
        out[top:bottom, left:right, index] = (
            patch[top - y0 : bottom - y0, left - x0 : right - x0] > threshold
        )
    return out


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------
def _onnxruntime():
    try:
        import onnxruntime
    except ImportError as error:
        raise RuntimeError(
            "running an ONNX model needs onnxruntime: pip install onnxruntime "
            "(or pip install 'mrcnn[onnx]')"
        ) from error
    return onnxruntime


class OnnxMaskRCNN:
    """An exported model in ONNX Runtime, with ``MaskRCNN.detect``'s interface.

    Args:
        path: the .onnx file written by ``mrcnn export``.
        providers: ONNX Runtime execution providers (default: CPU).
        threads: intra-op threads (default: ONNX Runtime's choice).

    Attributes:
        settings: the config values the runtime needs (IMAGE_*, MEAN_PIXEL, STD_PIXEL,
            NUM_CLASSES, ...), as attributes; ``config`` is the same object.
        input_size: (H, W) of the graph's input.
        class_names: names by class id ("BG" first), as stored at export.
    """

    def __init__(
        self,
        path: str | Path,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
    ) -> None:
        ort = _onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as error:  # noqa: BLE001 - onnxruntime raises its own error types
            raise ValueError(f"cannot load ONNX model {path}: {error}") from error
        self._input_names = [each.name for each in self.session.get_inputs()]
        stored = self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
        if stored is None:
            raise ValueError(
                f"{path} has no '{METADATA_KEY}' metadata: export it with `mrcnn export`"
            )
        info = _read_metadata(stored, path)
        self.settings = SimpleNamespace(**info["config"])
        self.config = self.settings
        self.molding = molding_for(self.settings)
        self.input_size = (int(info["input_size"][0]), int(info["input_size"][1]))
        self.class_names = [str(name) for name in info.get("class_names") or []]
        #: Kept for ``mrcnn detect``'s class-name lookup (same shape as a checkpoint's extras).
        self.checkpoint_extras = {"class_names": self.class_names[1:]} if self.class_names else {}

    def detect(self, images: Sequence[np.ndarray], verbose: int = 0) -> list[dict]:
        """Detections for each H x W x 3 uint8 RGB image, as ``MaskRCNN.detect`` returns them:
        "rois" int32 [N, 4] (y1, x1, y2, x2), "boxes" float32 [N, 4] (x1, y1, x2, y2),
        "class_ids" int32 [N], "scores" float32 [N], "masks" bool [H, W, N]; best first."""
        return detect_each(images, self._detect_one, verbose)

    def _detect_one(self, image: np.ndarray) -> dict:
        height, width = image.shape[:2]
        plan, fitted = plan_for_input(height, width, self.settings, self.input_size)
        if fitted:
            warnings.warn(
                f"image {width}x{height} molds to more than the model's input "
                f"{self.input_size[1]}x{self.input_size[0]}: scaled down to fit, so results "
                "differ from the PyTorch model; export with --input-size for this shape",
                stacklevel=3,
            )
        found = graph_detections(self._run_graph, image, self.settings, plan, self.molding)
        return dense_result(found)

    def _run_graph(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        # why only the graph's own inputs: files exported before "min_score" have two
        return self.session.run(None, {name: feed[name] for name in self._input_names})


def graph_detections(
    run: Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]],
    image: np.ndarray,
    settings: SimpleNamespace,
    plan: ResizePlan,
    molding: Molding | None = None,
) -> GraphDetections:
    """Mold ``image`` by ``plan``, run the exported graph on it (``run(feed)`` with
    :func:`graph_feed`'s inputs -> (boxes, class_ids, scores, masks), any runtime) and unmold
    the boxes, by ``molding`` (default: the settings' flavour's).

    Detections scoring below ``settings.DETECTION_MIN_CONFIDENCE`` are dropped here too: a file
    exported before the threshold was a graph input has the export's threshold built in, and a
    higher one set later must still hold (a lower one cannot bring back what it dropped).
    """
    molding = molding or molding_for(settings)
    boxes, class_ids, scores, masks = run(graph_feed(image, settings, plan, molding))
    confident = np.flatnonzero(scores >= np.float32(settings.DETECTION_MIN_CONFIDENCE))
    pixels, kept = molding.unmold(boxes[confident], plan.meta(), plan.output_shape)
    keep = confident[kept]
    return GraphDetections(
        shape=(int(image.shape[0]), int(image.shape[1])),
        boxes=pixels,
        class_ids=class_ids[keep].astype(np.int32),
        scores=scores[keep].astype(np.float32),
        masks=masks[keep].astype(np.float32, copy=False),
        paste=molding.paste,
    )


@dataclass(frozen=True)
class GraphDetections:
    """One image's detections as the exported graph gives them, boxes in image pixels.

    Attributes:
        shape: (H, W) of the image.
        boxes: float32 [N, 4] (x1, y1, x2, y2) original-image pixels; best first.
        class_ids: int32 [N]; scores: float32 [N].
        masks: float32 [N, M, M] soft masks of the boxes (not pasted yet).
        paste: how the masks are pasted (the flavour's :attr:`Molding.paste`).
    """

    shape: tuple[int, int]
    boxes: np.ndarray
    class_ids: np.ndarray
    scores: np.ndarray
    masks: np.ndarray
    paste: Callable[[np.ndarray, np.ndarray, tuple[int, int]], np.ndarray] = paste_masks


def dense_result(found: GraphDetections) -> dict:
    """``MaskRCNN.detect``'s dict for ``found``, masks pasted as bool [H, W, N]."""
    return detect_result(found, found.paste(found.masks, found.boxes, found.shape))


def detect_result(found: GraphDetections, masks) -> dict:
    """``MaskRCNN.detect``'s dict for ``found`` with ``masks`` (pasted, in any format)."""
    return {
        "rois": np.round(found.boxes[:, [1, 0, 3, 2]]).astype(np.int32),
        "boxes": found.boxes,
        "class_ids": found.class_ids,
        "scores": found.scores,
        "masks": masks,
    }


def detect_each(
    images: Sequence[np.ndarray], detect_one: Callable[[np.ndarray], dict], verbose: int = 0
) -> list[dict]:
    """``detect_one`` on each image of a non-empty list, checked and made H x W x 3 RGB
    (:func:`mrcnn.structures.rgb.checked_images`); ``verbose`` prints one line per
    image."""
    results = []
    for index, image in enumerate(checked_images(images)):
        results.append(detect_one(image))
        if verbose:
            print(f"image {index}: {len(results[-1]['class_ids'])} instances")
    return results


def _read_metadata(stored: str, path: Path) -> dict:
    """The export's metadata (format, config, input_size, class_names), checked.

    Raises:
        ValueError: one line naming ``path`` when the metadata is not what ``mrcnn export``
            writes (not JSON, another format, or missing or malformed entries).
    """
    redo = "export the model again with `mrcnn export`"
    try:
        info = json.loads(stored)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: its '{METADATA_KEY}' metadata is not JSON ({error}); {redo}"
        ) from None
    if not isinstance(info, dict):
        raise ValueError(f"{path}: its '{METADATA_KEY}' metadata is not a JSON object; {redo}")
    if info.get("format") != METADATA_FORMAT:
        raise ValueError(
            f"{path}: metadata format {info.get('format')!r}, this runtime reads "
            f"{METADATA_FORMAT}; export the model again with this version"
        )
    size, config, names = info.get("input_size"), info.get("config"), info.get("class_names")
    well_formed = (
        isinstance(config, dict)
        and all(isinstance(key, str) and key.isidentifier() for key in config)
        and isinstance(size, list)
        and len(size) == 2
        and all(isinstance(side, int) and side > 0 for side in size)
        and (names is None or isinstance(names, list))
    )
    if not well_formed:
        raise ValueError(
            f"{path}: its '{METADATA_KEY}' metadata lacks a valid config, input_size [H, W] or "
            f"class_names list; {redo}"
        )
    return info


#: Each NETWORK_FLAVOUR's :class:`Molding`.
MOLDINGS = {
    "torchvision": Molding(mold_image, _unmold_every_box, paste_masks),
    "matterport": Molding(matterport.mold_image, matterport.unmold_boxes, matterport.paste_masks),
}
