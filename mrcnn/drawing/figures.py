"""Matplotlib figures of images, instances, boxes, matches and precision-recall curves.

Works headless: figures are built on matplotlib's Agg canvas without pyplot, returned as
:class:`matplotlib.figure.Figure` (Jupyter shows them inline) and written as PNG when ``path`` is
given. ``show=True`` uses pyplot and calls ``plt.show()``.

One box convention throughout: Matterport's (y1, x1, y2, x2) in image pixels with exclusive
y2/x2, drawn by :func:`box_patch`; callers holding (x1, y1, x2, y2) boxes convert them first
(:func:`mrcnn.structures.boxes.xyxy_to_yxyx`). Masks are bool [H, W, N]. Instances are blended as
:func:`mrcnn.drawing.render.draw_instances` does (same colours, same ``alpha``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import patches
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure

from mrcnn.drawing.render import (
    captions_for,
    instance_inputs,
    mask_contours,
    overlay_masks,
    random_colors,
)
from mrcnn.evaluation.matching import match_instances
from mrcnn.outputs import atomic_output


# ------------------------------------------------------------------------------------------------
# Figure plumbing
# ------------------------------------------------------------------------------------------------
def new_figure(figsize, show: bool, dpi: float = 100) -> Figure:
    """A figure on pyplot (``show``) or on a headless Agg canvas."""
    if show:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize, dpi=dpi)
    figure = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def finish_figure(figure: Figure, path: str | Path | None, show: bool) -> Figure:
    """Write the figure as a PNG when ``path`` is given, show it when ``show``; return it."""
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as temporary:  # the format follows the (kept) extension
            figure.savefig(str(temporary), format=Path(path).suffix.lstrip(".") or "png")
    if show:
        import matplotlib.pyplot as plt

        plt.show()
    return figure


def figure_axes(ax: Axes | None, figsize, show: bool) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure of ``figsize`` with one axes."""
    if ax is not None:
        return ax.figure, ax
    figure = new_figure(figsize, show)
    return figure, figure.add_subplot(1, 1, 1)


def frame_image(ax: Axes, height: int, width: int, margin: float, title: str) -> None:
    """Show pixel (0, 0) at the top left, with ``margin`` pixels around, no axis lines."""
    ax.set_xlim(-0.5 - margin, width - 0.5 + margin)
    ax.set_ylim(height - 0.5 + margin, -0.5 - margin)
    ax.axis("off")
    if title:
        ax.set_title(title)


def box_patch(box: np.ndarray, **kwargs) -> patches.Rectangle:
    """A rectangle patch covering the pixels of a (y1, x1, y2, x2) box (exclusive y2/x2):
    pixel centres are integers, so its edges lie half a pixel outside them. Extra columns
    are ignored; ``kwargs`` go to :class:`matplotlib.patches.Rectangle`."""
    y1, x1, y2, x2 = (float(v) for v in box[:4])
    return patches.Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, **kwargs)


# ------------------------------------------------------------------------------------------------
# Instances and boxes
# ------------------------------------------------------------------------------------------------
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
    boxes, masks, count = instance_inputs(boxes, masks, class_ids)
    figure, ax = figure_axes(ax, figsize, show)
    colors = list(colors) if colors is not None else random_colors(count)
    height, width = image.shape[:2]
    frame_image(ax, height, width, margin, title)
    ax.imshow(
        overlay_masks(image, masks if show_mask else None, colors, alpha),
        interpolation="nearest",
    )
    texts = captions_for(count, class_ids, class_names, scores, captions)
    for i in range(count):
        if masks is not None and show_mask:
            _draw_outlines(ax, masks[:, :, i], colors[i])
        # An all-zero box is a placeholder (e.g. an instance cropped away): nothing to draw.
        if np.any(boxes[i]):
            _draw_instance_box(ax, boxes[i], colors[i], texts[i], show_bbox)
    if count == 0:
        ax.text(width / 2, height / 2, "no instances", color="w", ha="center")
    return finish_figure(figure, path, show)


def _draw_outlines(ax: Axes, mask: np.ndarray, color) -> None:
    """Outline one instance's bool [H, W] mask in its colour."""
    for outline in mask_contours(mask):
        ax.add_patch(patches.Polygon(outline, closed=True, fill=False, ec=color))


def _draw_instance_box(ax: Axes, box: np.ndarray, color, text: str, show_bbox: bool) -> None:
    """One instance's dashed (y1, x1, y2, x2) box (when ``show_bbox``) and its caption, written
    just inside the box's top left corner."""
    y1, x1, y2, x2 = (float(v) for v in box)
    if show_bbox:
        patch = box_patch(
            box,
            linewidth=2,
            alpha=0.7,
            linestyle="dashed",
            edgecolor=color,
            facecolor="none",
        )
        ax.add_patch(patch)
    if text:
        ax.text(x1, y1 + 8, text, color="w", size=11, backgroundcolor="none")


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
    figure = new_figure((14, 14 * rows / cols), show)
    for i, (image, title) in enumerate(zip(images, titles, strict=False)):
        ax = figure.add_subplot(rows, cols, i + 1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
        data = image.astype(np.uint8) if image.ndim == 3 else image
        ax.imshow(data, cmap=cmap, norm=norm, interpolation=interpolation)
    figure.tight_layout()
    return finish_figure(figure, path, show)


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
    figure, ax = figure_axes(ax, figsize, show)
    colors = random_colors(count)
    shown = overlay_masks(image, masks, colors) if masks is not None else image
    frame_image(ax, image.shape[0], image.shape[1], margin, title)
    ax.imshow(shown.astype(np.uint8), interpolation="nearest")
    visibilities = np.ones(count, int) if visibilities is None else np.asarray(visibilities)
    rects = {}
    for i in range(count):
        style = "grey_dotted" if refined is not None else int(visibilities[i])
        if boxes is not None:
            rects.setdefault(style, []).append((box_patch(boxes[i]), colors[i]))
        if refined is not None:
            rects.setdefault(int(visibilities[i]), []).append((box_patch(refined[i]), colors[i]))
            if boxes is not None:
                ax.plot([boxes[i, 1], refined[i, 1]], [boxes[i, 0], refined[i, 0]], c=colors[i])
        if captions is not None and captions[i]:
            y1, x1 = (refined if refined is not None else boxes)[i, :2]
            _draw_box_caption(ax, x1, y1, captions[i], colors[i])
    _add_box_collections(ax, rects)
    return finish_figure(figure, path, show)


#: (linestyle, linewidth, alpha) of the boxes of each visibility (0 faint, 1 normal, 2 bold).
_VISIBILITY_STYLES = {0: ("dotted", 1.0, 0.5), 1: ("solid", 1.0, 1.0), 2: ("solid", 2.0, 1.0)}


def _draw_box_caption(ax: Axes, x1: float, y1: float, text: str, color) -> None:
    """A caption on a half-transparent patch of the box's colour, hanging from (x1, y1)."""
    ax.text(
        x1,
        y1,
        text,
        size=11,
        va="top",
        color="w",
        bbox={"facecolor": color, "alpha": 0.5, "pad": 1, "edgecolor": "none"},
    )


def _add_box_collections(ax: Axes, rects: dict) -> None:
    """Draw {style: [(rectangle patch, colour), ...]} as one collection per style (far faster
    than a patch per box when there are thousands of anchors). A style is a visibility, or
    "grey_dotted" for boxes that have a refinement; an unknown visibility draws as normal."""
    for style, items in rects.items():
        if style == "grey_dotted":
            kwargs = {"linestyle": "dotted", "linewidth": 1.0, "edgecolor": "grey"}
        else:
            line, width, opacity = _VISIBILITY_STYLES.get(style, _VISIBILITY_STYLES[1])
            kwargs = {
                "linestyle": line,
                "linewidth": width,
                "alpha": opacity,
                "edgecolor": [c for _, c in items],
            }
        ax.add_collection(PatchCollection([r for r, _ in items], facecolor="none", **kwargs))


# ------------------------------------------------------------------------------------------------
# Ground truth against predictions
# ------------------------------------------------------------------------------------------------
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
    return finish_figure(figure, path, show)


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
    figure = new_figure(
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
    return finish_figure(figure, path, show)


def plot_precision_recall(
    AP: float,  # noqa: N803 - Matterport's name
    precisions: np.ndarray,
    recalls: np.ndarray,
    *,
    path: str | Path | None = None,
    show: bool = False,
) -> Figure:
    """The precision-recall curve ([K] precisions against [K] recalls) with its AP."""
    figure = new_figure((6, 5), show)
    ax = figure.add_subplot(1, 1, 1)
    ax.plot(recalls, precisions)
    ax.set_title(f"Precision-recall curve. AP@50 = {AP:.3f}")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    return finish_figure(figure, path, show)
