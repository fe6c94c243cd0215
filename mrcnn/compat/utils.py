"""Matterport's ``mrcnn.utils`` functions (re-exported by the face :mod:`mrcnn.utils`), so that
scripts written for its package run unchanged.

Each function keeps Matterport's signature and return conventions (boxes (y1, x1, y2, x2) with
exclusive y2/x2, masks [H, W, N], numpy in and out) and is a thin adapter over this package's
own implementation (:mod:`mrcnn.structures.boxes`, :mod:`mrcnn.evaluation`,
:mod:`mrcnn.structures.resize_plan`,
:mod:`mrcnn.modeling.anchors`, :mod:`mrcnn.modeling.targets`). Where the result can differ from
Matterport's (interpolation at mask and image borders, the clip on huge size deltas),
docs/migrating.md says so.
"""

from __future__ import annotations

import logging
import urllib.error
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import nms

from mrcnn.datasets.base import Dataset
from mrcnn.evaluation import (
    compute_ap,
    compute_ap_range,
    compute_matches,
    compute_overlaps,
    compute_overlaps_masks,
    compute_recall,
)
from mrcnn.modeling.anchors import level_anchors
from mrcnn.modeling.targets import mini_masks
from mrcnn.structures.boxes import (
    decode_deltas,
    encode_deltas,
    extract_boxes_from_masks,
    intersection_areas,
    xyxy_to_yxyx,
)
from mrcnn.structures.image import apply_plan
from mrcnn.structures.resize_plan import ResizePlan, matterport_scale, plan_resize
from mrcnn.weights.loading import WeightsError

__all__ = [
    "COCO_MODEL_URL",
    "Dataset",
    "apply_box_deltas",
    "box_refinement",
    "compute_ap",
    "compute_ap_range",
    "compute_iou",
    "compute_matches",
    "compute_overlaps",
    "compute_overlaps_masks",
    "compute_recall",
    "denorm_boxes",
    "download_trained_weights",
    "expand_mask",
    "extract_bboxes",
    "generate_anchors",
    "generate_pyramid_anchors",
    "minimize_mask",
    "non_max_suppression",
    "norm_boxes",
    "resize",
    "resize_image",
    "resize_mask",
    "trim_zeros",
    "unmold_mask",
]

log = logging.getLogger(__name__)

#: Matterport's COCO model (Keras .h5), loadable with ``MaskRCNN.load_weights``.
COCO_MODEL_URL = "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"

_IDENTITY_STD = torch.ones(4, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------
# Boxes
# ------------------------------------------------------------------------------------------------
def extract_bboxes(mask: np.ndarray) -> np.ndarray:
    """int32 [N, 4] (y1, x1, y2, x2) boxes, exclusive y2/x2, around bool [H, W, N] masks
    (all zeros for an empty mask)."""
    return extract_boxes_from_masks(mask)


def compute_iou(
    box: np.ndarray, boxes: np.ndarray, box_area: float, boxes_area: np.ndarray
) -> np.ndarray:
    """IoU of one box (y1, x1, y2, x2) with [N, 4] boxes, given their precomputed areas
    (a float and [N]); returns [N]."""
    box = np.asarray(box, dtype=np.float64).reshape(4)
    intersection = intersection_areas(box, np.asarray(boxes, dtype=np.float64).reshape(-1, 4))
    union = box_area + np.asarray(boxes_area, dtype=np.float64) - intersection
    return intersection / union


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS: int32 indices of the kept [N, 4] (y1, x1, y2, x2) boxes, best score first;
    a box is dropped when its IoU with a kept one exceeds ``threshold``."""
    boxes_t = torch.as_tensor(xyxy_to_yxyx(np.asarray(boxes, dtype=np.float32)).copy())
    scores_t = torch.as_tensor(np.asarray(scores, dtype=np.float32))
    return (
        nms(boxes_t.reshape(-1, 4), scores_t.reshape(-1), float(threshold)).numpy().astype(np.int32)
    )


def apply_box_deltas(boxes: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """Refine [N, 4] (y1, x1, y2, x2) boxes by [N, 4] deltas (dy, dx, log(dh), log(dw)).

    Returns float [N, 4] (y1, x1, y2, x2). Size deltas above log(1000 / 16) are clipped there,
    as inside the network.
    """
    reference = torch.as_tensor(xyxy_to_yxyx(np.asarray(boxes, dtype=np.float64)).copy())
    deltas_t = torch.as_tensor(xyxy_to_yxyx(np.asarray(deltas, dtype=np.float64)).copy())
    decoded = decode_deltas(deltas_t.reshape(-1, 4), reference.reshape(-1, 4), _IDENTITY_STD)
    return xyxy_to_yxyx(decoded.numpy())


def box_refinement(box: np.ndarray, gt_box: np.ndarray) -> np.ndarray:
    """float32 [N, 4] deltas (dy, dx, log(dh), log(dw)) that turn each (y1, x1, y2, x2) ``box``
    into its ``gt_box``; the inverse of :func:`apply_box_deltas`."""
    reference = torch.as_tensor(xyxy_to_yxyx(np.asarray(box, dtype=np.float64)).copy())
    target = torch.as_tensor(xyxy_to_yxyx(np.asarray(gt_box, dtype=np.float64)).copy())
    deltas = encode_deltas(target.reshape(-1, 4), reference.reshape(-1, 4), _IDENTITY_STD)
    return xyxy_to_yxyx(deltas.numpy()).astype(np.float32)


def trim_zeros(x: np.ndarray) -> np.ndarray:
    """The rows of a 2-D array that are not all zero (drops zero padding)."""
    return x[~np.all(x == 0, axis=1)]


def norm_boxes(boxes: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """float32 boxes (y1, x1, y2, x2) from pixels to Matterport's normalised coordinates:
    (0, 0) is the first pixel and (1, 1) the last, so y2/x2 (exclusive in pixels) lose 1."""
    height, width = shape[:2]
    scale = np.array([height - 1, width - 1, height - 1, width - 1])
    shift = np.array([0, 0, 1, 1])
    return np.divide(np.asarray(boxes) - shift, scale).astype(np.float32)


def denorm_boxes(boxes: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """int32 pixel boxes (y1, x1, y2, x2), exclusive y2/x2, from normalised ones
    (the inverse of :func:`norm_boxes`, rounded)."""
    height, width = shape[:2]
    scale = np.array([height - 1, width - 1, height - 1, width - 1])
    shift = np.array([0, 0, 1, 1])
    return np.around(np.multiply(boxes, scale) + shift).astype(np.int32)


# ------------------------------------------------------------------------------------------------
# Anchors
# ------------------------------------------------------------------------------------------------
def generate_anchors(
    scales, ratios: Sequence[float], shape: Sequence[int], feature_stride: int, anchor_stride: int
) -> np.ndarray:
    """Anchors of one pyramid level as float32 [N, 4] (y1, x1, y2, x2) pixels, centred on
    ``(i * feature_stride, j * feature_stride)`` for every ``anchor_stride``-th cell of a
    ``shape`` (H, W) feature map; position-major, ratio-minor (ratios as width / height).

    ``scales`` is the level's anchor side (one number, as Matterport's pyramid passes it).
    """
    scale_values = np.atleast_1d(np.asarray(scales, dtype=np.float64))
    if scale_values.size != 1:
        raise ValueError(
            f"generate_anchors: give one scale per level (got {scale_values.tolist()}); "
            "call it once per scale"
        )
    stride = (int(feature_stride), int(feature_stride))
    anchors = level_anchors(
        (int(shape[0]), int(shape[1])), stride, float(scale_values[0]), ratios, int(anchor_stride)
    )
    return xyxy_to_yxyx(anchors.numpy())


def generate_pyramid_anchors(
    scales: Sequence[float],
    ratios: Sequence[float],
    feature_shapes: Sequence[Sequence[int]],
    feature_strides: Sequence[int],
    anchor_stride: int,
) -> np.ndarray:
    """Anchors of every level (``scales[i]`` on ``feature_shapes[i]``), concatenated from the
    first level: float32 [A, 4] (y1, x1, y2, x2) pixels."""
    levels = [
        generate_anchors(scale, ratios, shape, stride, anchor_stride)
        for scale, shape, stride in zip(scales, feature_shapes, feature_strides, strict=True)
    ]
    return np.concatenate(levels, axis=0)


# ------------------------------------------------------------------------------------------------
# Images and masks
# ------------------------------------------------------------------------------------------------
def resize(
    image: np.ndarray,
    output_shape,
    order: int = 1,
    mode: str = "constant",
    cval: float = 0,
    clip: bool = True,
    preserve_range: bool = False,
    anti_aliasing: bool = False,
    anti_aliasing_sigma=None,
) -> np.ndarray:
    """scikit-image's ``transform.resize`` with Matterport's defaults, as its ``utils.resize``
    was. This package resizes with its own code; only scripts that call this need
    scikit-image (``pip install scikit-image``)."""
    try:
        from skimage.transform import resize as skimage_resize
    except ImportError as error:
        raise ImportError(
            "mrcnn.utils.resize is scikit-image's resize, as in Matterport: pip install "
            "scikit-image (or use mrcnn.utils.resize_image, which does not need it)"
        ) from error
    return skimage_resize(
        image,
        output_shape,
        order=order,
        mode=mode,
        cval=cval,
        clip=clip,
        preserve_range=preserve_range,
        anti_aliasing=anti_aliasing,
        anti_aliasing_sigma=anti_aliasing_sigma,
    )


def resize_image(
    image: np.ndarray,
    min_dim: int | None = None,
    max_dim: int | None = None,
    min_scale: float | None = None,
    mode: str = "square",
):
    """Resize and pad an H x W x C image as Matterport's IMAGE_RESIZE_MODE does.

    Modes: "none", "square", "pad64", "crop" (a random ``min_dim`` square crop).
    Returns:
        (image, window, scale, padding, crop): the image in the input dtype; window
        (y1, x1, y2, x2) of the image inside the padding; the float scale; padding
        [(top, bottom), (left, right), (0, 0)]; crop (y, x, h, w) or None.
    """
    image = np.asarray(image)
    height, width = image.shape[:2]
    if mode == "none":
        return image, (0, 0, height, width), 1, [(0, 0), (0, 0), (0, 0)], None
    plan = plan_resize(height, width, mode, min_dim or 0, max_dim or 0, min_scale or 0)
    scale = matterport_scale(height, width, mode, min_dim or 0, max_dim or 0, min_scale or 0)
    planes = image if image.ndim == 3 else image[..., None]
    tensor = torch.from_numpy(np.ascontiguousarray(planes)).permute(2, 0, 1).to(torch.float32)
    out = apply_plan(tensor, plan).permute(1, 2, 0).numpy()
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        out = np.clip(out, info.min, info.max)
    out = out.astype(image.dtype).reshape(out.shape[:2] + image.shape[2:])
    top, bottom, left, right = plan.padding
    window = tuple(int(v) for v in plan.meta().window_yxyx())
    return out, window, scale, [(top, bottom), (left, right), (0, 0)], plan.crop


def resize_mask(mask: np.ndarray, scale: float, padding, crop=None) -> np.ndarray:
    """Resize [H, W, N] masks by ``scale``, crop (y, x, h, w) and pad them like the image
    (``padding`` as :func:`resize_image` returns it); same dtype as ``mask``."""
    mask = np.asarray(mask)
    height, width = mask.shape[:2]
    (top, bottom), (left, right) = padding[0], padding[1]
    resized = (round(height * scale), round(width * scale))
    plan = ResizePlan((height, width), resized, (top, bottom, left, right), crop)
    planes = torch.from_numpy(np.ascontiguousarray(mask)).permute(2, 0, 1).to(torch.float32)
    out = apply_plan(planes, plan) >= 0.5  # as the training loader resizes masks
    return out.permute(1, 2, 0).numpy().astype(mask.dtype)


def minimize_mask(bbox: np.ndarray, mask: np.ndarray, mini_shape: Sequence[int]) -> np.ndarray:
    """Crop each [H, W, N] mask to its (y1, x1, y2, x2) box and resize it to ``mini_shape``
    (USE_MINI_MASK storage); bool [h, w, N]."""
    bbox = np.asarray(bbox).reshape(-1, 4)
    empty = (bbox[:, 2] <= bbox[:, 0]) | (bbox[:, 3] <= bbox[:, 1])
    if empty.any():
        raise ValueError(f"minimize_mask: box {bbox[empty][0].tolist()} has zero area")
    planes = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32)).permute(2, 0, 1)
    boxes = torch.as_tensor(xyxy_to_yxyx(bbox.astype(np.float32)).copy())
    small = mini_masks(planes, boxes, (int(mini_shape[0]), int(mini_shape[1])))
    return small.permute(1, 2, 0).numpy().astype(bool)


def unmold_mask(mask: np.ndarray, bbox: Sequence[int], image_shape: Sequence[int]) -> np.ndarray:
    """Paste one soft mask [h, w] (the mask head's output) into its (y1, x1, y2, x2) box of an
    image of ``image_shape``: bilinear resize to the box, threshold 0.5; bool [H, W]."""
    y1, x1, y2, x2 = (int(v) for v in bbox)
    full = np.zeros(tuple(int(v) for v in image_shape[:2]), dtype=bool)
    if y2 <= y1 or x2 <= x1:
        return full
    soft = torch.as_tensor(np.asarray(mask, dtype=np.float32))[None, None]
    resized = F.interpolate(soft, size=(y2 - y1, x2 - x1), mode="bilinear", align_corners=False)
    full[y1:y2, x1:x2] = resized[0, 0].numpy() >= 0.5
    return full


def expand_mask(bbox: np.ndarray, mini_mask: np.ndarray, image_shape: Sequence[int]) -> np.ndarray:
    """Mini masks [h, w, N] back to full-size bool [H, W, N] masks inside their boxes
    (the inverse of :func:`minimize_mask`)."""
    bbox = np.asarray(bbox).reshape(-1, 4)
    height, width = int(image_shape[0]), int(image_shape[1])
    out = np.zeros((height, width, len(bbox)), dtype=bool)
    for i, box in enumerate(bbox):  # one box each, a few per image
        out[:, :, i] = unmold_mask(mini_mask[:, :, i], box, (height, width))
    return out


# ------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------
def download_trained_weights(coco_model_path: str, verbose: int = 1) -> None:
    """Download Matterport's COCO model (:data:`COCO_MODEL_URL`) to ``coco_model_path``, with
    a progress bar, through a temporary file renamed when complete.

    Raises:
        FileExistsError: ``coco_model_path`` exists (it is never replaced).
        WeightsError: the download failed (offline): one line naming the URL to fetch by hand.
    """
    target = Path(coco_model_path)
    if target.exists():
        raise FileExistsError(
            f"{target} exists; delete it first to download Matterport's COCO weights again"
        )
    url = COCO_MODEL_URL
    if verbose:
        print(f"Downloading pretrained model to {target} ...")
    try:
        # torch.hub writes a temporary file next to the target and renames it when complete.
        torch.hub.download_url_to_file(url, str(target), progress=bool(verbose))
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise WeightsError(
            f"cannot download {url} ({reason}); on a machine with internet fetch it and copy it "
            f"to {target}"
        ) from None
    if verbose:
        print("... done downloading pretrained model!")
