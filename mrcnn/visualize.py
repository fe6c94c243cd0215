"""Figures of images, instances, boxes and dataset statistics.

Works headless: figures are built on matplotlib's Agg canvas without pyplot, returned as
:class:`matplotlib.figure.Figure` (Jupyter shows them inline) and written as PNG when ``path`` is
given. ``show=True`` uses pyplot and calls ``plt.show()``.

:func:`draw_instances` renders the instance overlay straight into an RGB array (no matplotlib),
for videos and the detect command; :func:`display_instances` blends masks the same way (same
colours, same ``alpha``) and draws contours, boxes and captions with matplotlib.

Boxes are Matterport's (y1, x1, y2, x2) in image pixels unless a function says otherwise; masks
are bool [H, W, N].
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib import patches
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure

from mrcnn.boxes import extract_boxes_from_masks
from mrcnn.network_figures import display_table, display_weight_stats, draw_box, draw_rois  # noqa: F401

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


def _captions(
    count: int, class_ids, class_names, scores, captions: Sequence[str] | None
) -> list[str]:
    if captions is not None:
        return [str(c) if c is not None else "" for c in captions]
    texts = []
    for i in range(count):
        class_id = int(class_ids[i])
        name = class_names[abs(class_id)] if abs(class_id) < len(class_names) else str(class_id)
        texts.append(f"{name} {scores[i]:.3f}" if scores is not None else name)
    return texts


def _instance_inputs(boxes, masks, class_ids) -> tuple[np.ndarray, np.ndarray | None, int]:
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
    boxes, masks, count = _instance_inputs(boxes, masks, class_ids)
    colors = list(colors) if colors is not None else random_colors(count)
    out = overlay_masks(image, masks if show_mask else None, colors, alpha)
    height, width = out.shape[:2]
    thickness = max(1, round(min(height, width) / 400))
    font_scale = max(0.35, min(height, width) / 1000)
    texts = _captions(count, class_ids, class_names, scores, captions)
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


# ------------------------------------------------------------------------------------------------
# Figures
# ------------------------------------------------------------------------------------------------
def _figure(figsize, show: bool, dpi: float = 100) -> Figure:
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, dpi=dpi)
    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def _finish(figure: Figure, path: str | Path | None, show: bool) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(str(path))
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return figure


def _axes(ax: Axes | None, figsize, show: bool) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    figure = _figure(figsize, show)
    return figure, figure.add_subplot(1, 1, 1)


def _frame(ax: Axes, height: int, width: int, margin: float, title: str) -> None:
    """Show pixel (0, 0) at the top left, with ``margin`` pixels around, no axis lines."""
    ax.set_xlim(-0.5 - margin, width - 0.5 + margin)
    ax.set_ylim(height - 0.5 + margin, -0.5 - margin)
    ax.axis("off")
    if title:
        ax.set_title(title)


def display_instances(
    image: np.ndarray,
    boxes: np.ndarray | None,
    masks: np.ndarray | None,
    class_ids: Sequence[int],
    class_names: Sequence[str],
    scores: Sequence[float] | None = None,
    title: str = "",
    figsize: tuple[float, float] = (16, 16),
    ax: Axes | None = None,
    show_mask: bool = True,
    show_bbox: bool = True,
    colors: Sequence | None = None,
    captions: Sequence[str] | None = None,
    *,
    alpha: float = 0.5,
    margin: float = 10,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """Show an image with its instances: blended masks with outlines, dashed boxes and
    "class score" captions (Matterport's display_instances).

    Args:
        image: [H, W, 3] uint8 RGB.
        boxes: [N, 4] (y1, x1, y2, x2) image pixels (None: from the masks).
        masks: bool [H, W, N] or None.
        class_ids: [N]; class_names: names by class id; scores: [N] or None.
        ax: draw into these axes (default: a new figure of ``figsize``).
        colors, captions: per instance, as in :func:`draw_instances`.
        margin: pixels of blank border around the image.
        path: also write the figure as a PNG.
        show: show it through pyplot.
    Returns:
        the Figure.
    """
    boxes, masks, count = _instance_inputs(boxes, masks, class_ids)
    figure, ax = _axes(ax, figsize, show)
    colors = list(colors) if colors is not None else random_colors(count)
    height, width = image.shape[:2]
    _frame(ax, height, width, margin, title)
    ax.imshow(
        overlay_masks(image, masks if show_mask else None, colors, alpha),
        interpolation="nearest",
    )
    texts = _captions(count, class_ids, class_names, scores, captions)
    for i in range(count):
        if masks is not None and show_mask:
            for outline in mask_contours(masks[:, :, i]):
                ax.add_patch(patches.Polygon(outline, closed=True, fill=False, ec=colors[i]))
        if not np.any(boxes[i]):
            continue
        y1, x1, y2, x2 = (float(v) for v in boxes[i])
        if show_bbox:
            box = patches.Rectangle(
                (x1 - 0.5, y1 - 0.5),
                x2 - x1,
                y2 - y1,
                linewidth=2,
                alpha=0.7,
                linestyle="dashed",
                edgecolor=colors[i],
                facecolor="none",
            )
            ax.add_patch(box)
        if texts[i]:
            ax.text(x1, y1 + 8, texts[i], color="w", size=11, backgroundcolor="none")
    if count == 0:
        ax.text(width / 2, height / 2, "no instances", color="w", ha="center")
    return _finish(figure, path, show)


def display_images(
    images: Sequence[np.ndarray],
    titles: Sequence[str] | None = None,
    cols: int = 4,
    cmap=None,
    norm=None,
    interpolation=None,
    *,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """A grid of images ([H, W, 3] RGB or [H, W] values) with optional titles."""
    titles = list(titles) if titles is not None else [""] * len(images)
    cols = max(1, min(cols, len(images)))
    rows = -(-len(images) // cols)
    figure = _figure((14, 14 * rows / cols), show)
    for i, (image, title) in enumerate(zip(images, titles, strict=False)):
        ax = figure.add_subplot(rows, cols, i + 1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        data = image.astype(np.uint8) if image.ndim == 3 else image
        ax.imshow(data, cmap=cmap, norm=norm, interpolation=interpolation)
    figure.tight_layout()
    return _finish(figure, path, show)


def display_top_masks(
    image: np.ndarray,
    mask: np.ndarray,
    class_ids: Sequence[int],
    class_names: Sequence[str],
    limit: int = 4,
    *,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """The image next to the instances of its ``limit`` largest classes (by mask area), each
    instance a different shade.

    Args:
        image: [H, W, 3] uint8; mask: bool [H, W, N]; class_ids: [N].
    """
    class_ids = np.asarray(class_ids)
    images, titles = [image], [f"H x W = {image.shape[0]} x {image.shape[1]}"]
    unique = [int(c) for c in np.unique(class_ids)]
    areas = [mask[:, :, class_ids == c].sum() for c in unique]
    top = [c for _, c in sorted(zip(areas, unique, strict=True), reverse=True)][:limit]
    for i in range(limit):
        class_id = top[i] if i < len(top) else None
        if class_id is None:
            images.append(np.zeros(image.shape[:2]))
            titles.append("-")
            continue
        chosen = mask[:, :, class_ids == class_id]
        # Instance k of the class gets value k, so that overlapping instances stay visible.
        images.append((chosen * np.arange(1, chosen.shape[-1] + 1)).sum(axis=-1))
        titles.append(class_names[abs(class_id)])
    return display_images(images, titles, cols=limit + 1, cmap="Blues_r", path=path, show=show)


def draw_boxes(
    image: np.ndarray,
    boxes: np.ndarray | None = None,
    refined_boxes: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    captions: Sequence[str] | None = None,
    visibilities: Sequence[int] | None = None,
    title: str = "",
    ax: Axes | None = None,
    *,
    figsize: tuple[float, float] = (12, 12),
    margin: float = 10,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """Draw boxes (anchors, proposals, ...) and optionally their refinements.

    Args:
        image: [H, W, 3] uint8.
        boxes: [N, 4] (y1, x1, y2, x2) (extra columns ignored); dotted grey when
            ``refined_boxes`` are given.
        refined_boxes: [N, 4] (y1, x1, y2, x2): drawn solid, joined to their box by a line.
        masks: bool [H, W, N] blended in the box colours.
        captions: N strings, written at the top left of each (refined) box.
        visibilities: N values 0 (faint), 1 (normal, default) or 2 (bold).
    """
    boxes = None if boxes is None else np.asarray(boxes)[:, :4]
    refined = None if refined_boxes is None else np.asarray(refined_boxes)[:, :4]
    count = len(boxes) if boxes is not None else len(refined) if refined is not None else 0
    figure, ax = _axes(ax, figsize, show)
    colors = random_colors(count)
    shown = overlay_masks(image, masks, colors) if masks is not None else image
    _frame(ax, image.shape[0], image.shape[1], margin, title)
    ax.imshow(shown.astype(np.uint8), interpolation="nearest")
    visibilities = np.ones(count, int) if visibilities is None else np.asarray(visibilities)
    styles = {0: ("dotted", 1.0, 0.5), 1: ("solid", 1.0, 1.0), 2: ("solid", 2.0, 1.0)}
    rects = {}
    for i in range(count):
        style = "grey_dotted" if refined is not None else int(visibilities[i])
        if boxes is not None:
            rects.setdefault(style, []).append((_rect(boxes[i]), colors[i]))
        if refined is not None:
            rects.setdefault(int(visibilities[i]), []).append((_rect(refined[i]), colors[i]))
            if boxes is not None:
                ax.plot([boxes[i, 1], refined[i, 1]], [boxes[i, 0], refined[i, 0]], c=colors[i])
        if captions is not None and captions[i]:
            y1, x1 = (refined if refined is not None else boxes)[i, :2]
            ax.text(
                x1,
                y1,
                captions[i],
                size=11,
                va="top",
                color="w",
                bbox={"facecolor": colors[i], "alpha": 0.5, "pad": 1, "edgecolor": "none"},
            )
    for style, items in rects.items():
        if style == "grey_dotted":
            kwargs = {"linestyle": "dotted", "linewidth": 1.0, "edgecolor": "grey"}
        else:
            line, width, opacity = styles.get(style, styles[1])
            kwargs = {
                "linestyle": line,
                "linewidth": width,
                "alpha": opacity,
                "edgecolor": [c for _, c in items],
            }
        ax.add_collection(PatchCollection([r for r, _ in items], facecolor="none", **kwargs))
    return _finish(figure, path, show)


def _rect(box: np.ndarray) -> patches.Rectangle:
    y1, x1, y2, x2 = (float(v) for v in box[:4])
    return patches.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1)


# ------------------------------------------------------------------------------------------------
# Ground truth against predictions
# ------------------------------------------------------------------------------------------------
def mask_overlaps(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """float [N1, N2] IoU of bool [H, W, N1] and [H, W, N2] masks (one matrix product)."""
    if masks1.shape[-1] == 0 or masks2.shape[-1] == 0:
        return np.zeros((masks1.shape[-1], masks2.shape[-1]))
    flat1 = masks1.reshape(-1, masks1.shape[-1]).astype(np.float32)
    flat2 = masks2.reshape(-1, masks2.shape[-1]).astype(np.float32)
    intersection = flat1.T @ flat2
    union = flat1.sum(axis=0)[:, None] + flat2.sum(axis=0)[None, :] - intersection
    return intersection / np.maximum(union, 1e-9)


def match_instances(
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy matching of predictions (highest score first) to same-class ground truths.

    Returns:
        (gt_match, pred_match, overlaps): int [G] index of the matched prediction or -1,
        int [P] index of the matched ground truth or -1, and float [P, G] mask IoU.
    """
    overlaps = mask_overlaps(pred_masks, gt_masks)
    gt_match = -np.ones(len(gt_class_ids), dtype=np.int64)
    pred_match = -np.ones(len(pred_class_ids), dtype=np.int64)
    for p in np.argsort(-np.asarray(pred_scores), kind="stable"):
        if pred_scores[p] < score_threshold:
            continue
        for g in np.argsort(-overlaps[p], kind="stable"):
            if overlaps[p, g] < iou_threshold:
                break
            if gt_match[g] < 0 and gt_class_ids[g] == pred_class_ids[p]:
                gt_match[g], pred_match[p] = p, g
                break
    return gt_match, pred_match, overlaps


def display_differences(
    image: np.ndarray,
    gt_box: np.ndarray,
    gt_class_id: np.ndarray,
    gt_mask: np.ndarray,
    pred_box: np.ndarray,
    pred_class_id: np.ndarray,
    pred_score: np.ndarray,
    pred_mask: np.ndarray,
    class_names: Sequence[str],
    title: str = "",
    ax: Axes | None = None,
    show_mask: bool = True,
    show_box: bool = True,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    *,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """Ground truth (green) and predictions (red) on one image; each prediction's caption
    gives its score and its IoU with the ground truth it matches (or its best IoU).

    Boxes are [N, 4] (y1, x1, y2, x2), masks bool [H, W, N].
    """
    gt_match, pred_match, overlaps = match_instances(
        gt_class_id,
        gt_mask,
        pred_class_id,
        pred_score,
        pred_mask,
        iou_threshold,
        score_threshold,
    )
    colors = [(0.0, 1.0, 0.0, 0.8)] * len(gt_match) + [(1.0, 0.0, 0.0, 1.0)] * len(pred_match)
    captions = [""] * len(gt_match)
    for p in range(len(pred_match)):
        iou = overlaps[p, pred_match[p]] if pred_match[p] >= 0 else overlaps[p].max(initial=0)
        captions.append(f"{pred_score[p]:.2f} / {iou:.2f}")
    figure = display_instances(
        image,
        np.concatenate([np.reshape(gt_box, (-1, 4)), np.reshape(pred_box, (-1, 4))]),
        np.concatenate([gt_mask, pred_mask], axis=-1),
        np.concatenate([gt_class_id, pred_class_id]).astype(int),
        class_names,
        title=title or "ground truth (green) and predictions (red): score / IoU",
        ax=ax,
        show_mask=show_mask,
        show_bbox=show_box,
        colors=[c[:3] for c in colors],
        captions=captions,
        show=False,
    )
    return _finish(figure, path, show)


def plot_overlaps(
    gt_class_ids: Sequence[int],
    pred_class_ids: Sequence[int],
    pred_scores: Sequence[float],
    overlaps: np.ndarray,
    class_names: Sequence[str],
    threshold: float = 0.5,
    *,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """The [P, G] IoU grid of predictions (rows) against ground truths (columns); cells above
    ``threshold`` say whether the classes agree."""
    overlaps = np.asarray(overlaps)
    figure = _figure(
        (max(4, 0.8 * overlaps.shape[1] + 3), max(4, 0.6 * overlaps.shape[0] + 2)), show
    )
    ax = figure.add_subplot(1, 1, 1)
    image = ax.imshow(overlaps, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, fraction=0.046)
    ax.set_yticks(np.arange(len(pred_class_ids)))
    ax.set_yticklabels(
        [
            f"{class_names[int(c)]} ({s:.2f})"
            for c, s in zip(pred_class_ids, pred_scores, strict=True)
        ]
    )
    ax.set_xticks(np.arange(len(gt_class_ids)))
    ax.set_xticklabels([class_names[int(c)] for c in gt_class_ids], rotation=90)
    for p, g in np.ndindex(*overlaps.shape):
        value = overlaps[p, g]
        label = ""
        if value > threshold:
            label = "match" if gt_class_ids[g] == pred_class_ids[p] else "wrong"
        color = "white" if value > 0.6 else "black"
        ax.text(g, p, f"{value:.2f}\n{label}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xlabel("ground truth")
    ax.set_ylabel("predictions and scores")
    ax.set_title(f"IoU of predictions and ground truth (threshold {threshold:g})")
    figure.tight_layout()
    return _finish(figure, path, show)


def plot_precision_recall(
    AP: float,  # noqa: N803 - Matterport's name
    precisions: np.ndarray,
    recalls: np.ndarray,
    *,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """The precision-recall curve ([K] precisions against [K] recalls) with its AP."""
    figure = _figure((6, 5), show)
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(recalls, precisions)
    ax.set_title(f"Precision-recall curve. AP@50 = {AP:.3f}")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    return _finish(figure, path, show)


# ------------------------------------------------------------------------------------------------
# Dataset inspection
# ------------------------------------------------------------------------------------------------
def display_dataset_samples(
    dataset,
    image_ids: Sequence[int],
    cols: int = 4,
    max_side: int = 640,
    *,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """A sheet of dataset images with their ground-truth masks, boxes and class names
    (rendered by :func:`draw_instances`, shrunk to at most ``max_side`` pixels)."""
    images, titles = [], []
    for image_id in image_ids:
        image = dataset.load_image(int(image_id))
        masks, class_ids = dataset.load_mask(int(image_id))
        drawn = draw_instances(
            image, dataset.extract_bboxes(masks), masks, class_ids, dataset.class_names
        )
        scale = max_side / max(drawn.shape[:2])
        if scale < 1:
            size = (max(1, round(drawn.shape[1] * scale)), max(1, round(drawn.shape[0] * scale)))
            drawn = cv2.resize(drawn, size, interpolation=cv2.INTER_AREA)
        images.append(drawn)
        name = Path(str(dataset.image_reference(int(image_id)))).name
        titles.append(f"{name[:40]}\n{masks.shape[-1]} instances")
    return display_images(images, titles, cols=cols, path=path, show=show)


def plot_dataset_statistics(
    stats: dict,
    coverage=None,
    *,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """Histograms of instance sizes and counts, class counts and (with ``coverage``, a
    :class:`mrcnn.datasets.stats.CoverageResult`) the best anchor IoUs.

    ``stats`` is the dict of :func:`mrcnn.datasets.stats.instance_statistics`.
    """
    panels = 4 if coverage is not None else 3
    figure = _figure((5 * panels, 4.5), show)
    axes = [figure.add_subplot(1, panels, i + 1) for i in range(panels)]
    if coverage is not None and len(coverage.best_iou):
        sizes, label = coverage.input_sizes, "sqrt(box area), network-input pixels"
    else:
        sizes, label = stats["sizes"], "sqrt(mask area), image pixels"
    axes[0].hist(sizes, bins=30, color="tab:blue")
    axes[0].set_xlabel(label)
    axes[0].set_ylabel("instances")
    axes[0].set_title("instance sizes")
    if coverage is not None:
        for scale in coverage.scales:
            axes[0].axvline(scale, color="tab:red", linestyle="--", linewidth=1)
        axes[0].text(
            0.98,
            0.95,
            "dashed: anchor scales",
            transform=axes[0].transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color="tab:red",
        )
    per_image = stats["per_image"]
    bins = np.arange(0, (per_image.max() if len(per_image) else 0) + 2) - 0.5
    axes[1].hist(per_image, bins=bins, color="tab:green")
    axes[1].set_xlabel("instances per image")
    axes[1].set_ylabel("images")
    axes[1].set_title(f"{stats['instances']} instances in {stats['images']} images")
    names = list(stats["class_counts"])
    axes[2].barh(names, [stats["class_counts"][n] for n in names], color="tab:orange")
    axes[2].set_xlabel("instances")
    axes[2].set_title("classes")
    if coverage is not None:
        axes[3].hist(coverage.best_iou, bins=np.linspace(0, 1, 21), color="tab:purple")
        for t in coverage.thresholds:
            axes[3].axvline(t, color="k", linestyle="--", linewidth=1)
        axes[3].set_xlabel("best anchor IoU")
        axes[3].set_ylabel("ground-truth boxes")
        shares = ", ".join(f">={t:g}: {100 * s:.0f}%" for t, s in coverage.shares.items())
        axes[3].set_title(f"anchor coverage ({shares})")
    figure.tight_layout()
    return _finish(figure, path, show)


def display_anchor_coverage(
    image: np.ndarray,
    gt_boxes: np.ndarray,
    best_anchors: np.ndarray,
    best_iou: np.ndarray,
    reference_anchors: np.ndarray | None = None,
    threshold: float = 0.7,
    title: str = "",
    *,
    figsize: tuple[float, float] = (12, 12),
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """Anchors over a molded network-input image.

    Args:
        image: [H_in, W_in, 3] uint8: the image resized and padded as the network sees it.
        gt_boxes: [G, 4] (x1, y1, x2, y2) ground truths in that frame (green).
        best_anchors: [G, 4] (x1, y1, x2, y2) each ground truth's best anchor: solid when its
            IoU >= ``threshold``, dashed red otherwise, captioned with the IoU.
        best_iou: [G] those IoUs.
        reference_anchors: [R, 4] (x1, y1, x2, y2) extra anchors to show (e.g. every scale
            and ratio at one position), thin and coloured by row.
    Note the (x1, y1, x2, y2) order: these are the network's anchors, not Matterport boxes.
    """
    figure, ax = _axes(None, figsize, show)
    _frame(ax, image.shape[0], image.shape[1], 0, title)
    ax.imshow(image, interpolation="nearest")
    if reference_anchors is not None and len(reference_anchors):
        colors = random_colors(len(reference_anchors), seed=COLOR_SEED + 1)
        rects = [_rect(xyxy[[1, 0, 3, 2]]) for xyxy in np.asarray(reference_anchors)]
        ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor=colors, linewidth=1))
    for gt, anchor, iou in zip(gt_boxes, best_anchors, best_iou, strict=True):
        ax.add_patch(_rect_xyxy(gt, edgecolor="lime", linewidth=2))
        good = iou >= threshold
        ax.add_patch(
            _rect_xyxy(
                anchor,
                edgecolor="yellow" if good else "red",
                linewidth=1.5,
                linestyle="solid" if good else "dashed",
            )
        )
        ax.text(
            anchor[0],
            anchor[1],
            f"{iou:.2f}",
            color="yellow" if good else "red",
            fontsize=9,
            va="bottom",
        )
    return _finish(figure, path, show)


def _rect_xyxy(box: np.ndarray, **kwargs) -> patches.Rectangle:
    x1, y1, x2, y2 = (float(v) for v in box[:4])
    return patches.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, facecolor="none", **kwargs)
