"""Drawing instances into RGB arrays with OpenCV and numpy only (no matplotlib): colours,
mask overlays, contours and the instance renderer used by splash, video, the demo and the
``detect`` figures' matplotlib twin (:func:`mrcnn.drawing.figures.display_instances` blends masks
the
same way, in the same colours).

Boxes are Matterport's (y1, x1, y2, x2) in image pixels with exclusive y2/x2; masks are bool
[H, W, N]; images are uint8 RGB [H, W, 3].
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np

from mrcnn.structures.boxes import extract_boxes_from_masks

#: Seed of the colour shuffle, so that figures are reproducible.
COLOR_SEED = 0


# ------------------------------------------------------------------------------------------------
# Colours and masks (numpy)
# ------------------------------------------------------------------------------------------------
def random_colors(count: int, bright: bool = True, seed: int = COLOR_SEED) -> list[tuple]:
    """``count`` distinct RGB colours (floats in [0, 1]): evenly spaced hues, shuffled with a
    fixed seed so that neighbouring instances differ and every run gives the same colours."""
    if count <= 0:
        return []
    value = 1.0 if bright else 0.7
    colors = [colorsys.hsv_to_rgb(i / count, 1.0, value) for i in range(count)]
    order = np.random.default_rng(seed).permutation(count)
    return [colors[i] for i in order]


def apply_mask(image: np.ndarray, mask: np.ndarray, color: Sequence[float], alpha: float = 0.5):
    """Blend ``color`` into ``image`` where ``mask`` is set, in place, and return ``image``.

    Args:
        image: [H, W, 3] array (uint8 or float, 0-255 units), modified in place.
        mask: [H, W] bool (or 0/1).
        color: RGB floats in [0, 1].
        alpha: weight of the colour.
    """
    inside = np.asarray(mask).astype(bool)
    tint = alpha * 255.0 * np.asarray(color, dtype=np.float64)
    blended = image[inside].astype(np.float64) * (1.0 - alpha) + tint
    if np.issubdtype(image.dtype, np.integer):
        blended = np.round(blended)
    image[inside] = blended.astype(image.dtype)
    return image


def overlay_masks(
    image: np.ndarray, masks: np.ndarray | None, colors: Sequence, alpha: float = 0.5
) -> np.ndarray:
    """uint8 [H, W, 3] copy of ``image`` with each mask of bool [H, W, N] ``masks`` blended in
    its colour, in order."""
    out = np.array(image, dtype=np.uint8, copy=True)
    if masks is None:
        return out
    for i in range(masks.shape[-1]):
        apply_mask(out, masks[:, :, i], colors[i], alpha)
    return out


def mask_contours(mask: np.ndarray) -> list[np.ndarray]:
    """Outlines of a bool [H, W] mask (holes included) as float [P, 2] (x, y) arrays of
    boundary pixel centres."""
    contours, _ = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE
    )
    return [c.reshape(-1, 2).astype(np.float64) for c in contours if len(c) >= 2]


def captions_for(
    count: int, class_ids, class_names, scores, captions: Sequence[str] | None
) -> list[str]:
    """The N caption texts: ``captions`` as given, else "class score" ("class" without
    scores), the class read from [N] ``class_ids`` (crowd ids negative) in ``class_names``."""
    if captions is not None:
        return [str(c) if c is not None else "" for c in captions]
    texts = []
    for i in range(count):
        class_id = int(class_ids[i])
        name = class_names[abs(class_id)] if abs(class_id) < len(class_names) else str(class_id)
        texts.append(f"{name} {scores[i]:.3f}" if scores is not None else name)
    return texts


def instance_inputs(boxes, masks, class_ids) -> tuple[np.ndarray, np.ndarray | None, int]:
    """Validate and normalise: int [N, 4] boxes (from the masks when None), masks, N."""
    masks = None if masks is None else np.asarray(masks).astype(bool)
    if boxes is None:
        if masks is None:
            raise ValueError("give boxes or masks")
        boxes = extract_boxes_from_masks(masks)
    boxes = np.asarray(boxes).reshape(-1, 4)
    count = len(boxes)
    if masks is not None and masks.shape[-1] != count:
        raise ValueError(f"{count} boxes but {masks.shape[-1]} masks (masks must be [H, W, N])")
    if class_ids is not None and len(class_ids) != count:
        raise ValueError(f"{count} boxes but {len(class_ids)} class ids")
    return boxes, masks, count


# ------------------------------------------------------------------------------------------------
# The array renderer
# ------------------------------------------------------------------------------------------------
def draw_instances(
    image: np.ndarray,
    boxes: np.ndarray | None,
    masks: np.ndarray | None,
    class_ids: Sequence[int],
    class_names: Sequence[str],
    scores: Sequence[float] | None = None,
    *,
    colors: Sequence | None = None,
    captions: Sequence[str] | None = None,
    show_mask: bool = True,
    show_bbox: bool = True,
    show_contour: bool = True,
    show_caption: bool = True,
    alpha: float = 0.5,
) -> np.ndarray:
    """Render instances onto a copy of an image, without matplotlib.

    Args:
        image: [H, W, 3] uint8 RGB.
        boxes: [N, 4] (y1, x1, y2, x2) in image pixels, exclusive y2/x2 (None: from masks).
        masks: bool [H, W, N] or None.
        class_ids: [N] class ids (negative = crowd, drawn with the class name).
        class_names: names indexed by class id.
        scores: [N] or None; captions read "class score" ("class" without scores).
        colors: N RGB floats in [0, 1] (default :func:`random_colors`).
        captions: N strings replacing the default captions.
    Returns:
        uint8 [H, W, 3] RGB: masks blended at ``alpha``, outlined, boxed and captioned.
    """
    boxes, masks, count = instance_inputs(boxes, masks, class_ids)
    colors = list(colors) if colors is not None else random_colors(count)
    out = overlay_masks(image, masks if show_mask else None, colors, alpha)
    height, width = out.shape[:2]
    thickness = max(1, round(min(height, width) / 400))
    font_scale = max(0.35, min(height, width) / 1000)
    texts = captions_for(count, class_ids, class_names, scores, captions)
    for i in range(count):
        color = tuple(int(round(255 * c)) for c in colors[i][:3])
        if masks is not None and show_contour:
            outlines = [np.round(c).astype(np.int32) for c in mask_contours(masks[:, :, i])]
            cv2.polylines(out, outlines, True, color, thickness, cv2.LINE_AA)
        if not np.any(boxes[i]):
            continue  # an empty instance has no box
        y1, x1, y2, x2 = (int(v) for v in boxes[i])
        if show_bbox:
            cv2.rectangle(out, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), color, thickness)
        if show_caption and texts[i]:
            _put_caption(out, texts[i], x1, y1, color, font_scale, thickness)
    return out


def _put_caption(image, text, x, y, color, font_scale, thickness) -> None:
    """Caption on a filled patch of the instance colour, inside the image."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    (w, h), base = cv2.getTextSize(text, font, font_scale, thickness)
    x = int(np.clip(x, 0, max(0, image.shape[1] - w)))
    top = int(np.clip(y, 0, max(0, image.shape[0] - h - base)))
    cv2.rectangle(image, (x, top), (x + w, top + h + base), color, -1)
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(image, text, (x, top + h), font, font_scale, ink, thickness, cv2.LINE_AA)
