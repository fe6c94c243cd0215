"""Figures for checking a dataset before training (``mrcnn inspect-data`` and the
inspect_data notebook): sample sheets, instance statistics and anchor coverage, drawn from the
numbers of :mod:`mrcnn.datasets.stats`.

Boxes are drawn with :func:`mrcnn.drawing.figures.box_patch`, i.e. (y1, x1, y2, x2); the anchor
figure
takes the network's (x1, y1, x2, y2) boxes and converts them on entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure

from mrcnn.drawing.figures import (
    box_patch,
    display_images,
    figure_axes,
    finish_figure,
    frame_image,
    new_figure,
)
from mrcnn.drawing.render import COLOR_SEED, draw_instances, random_colors
from mrcnn.structures.boxes import xyxy_to_yxyx


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
    figure = new_figure((5 * panels, 4.5), show)
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
    return finish_figure(figure, path, show)


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
    # The one box convention of the figures is (y1, x1, y2, x2): convert once, here.
    gt_boxes = xyxy_to_yxyx(np.asarray(gt_boxes).reshape(-1, 4))
    best_anchors = xyxy_to_yxyx(np.asarray(best_anchors).reshape(-1, 4))
    figure, ax = figure_axes(None, figsize, show)
    frame_image(ax, image.shape[0], image.shape[1], 0, title)
    ax.imshow(image, interpolation="nearest")
    if reference_anchors is not None and len(reference_anchors):
        colors = random_colors(len(reference_anchors), seed=COLOR_SEED + 1)
        rects = [box_patch(box) for box in xyxy_to_yxyx(np.asarray(reference_anchors))]
        ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor=colors, linewidth=1))
    for gt, anchor, iou in zip(gt_boxes, best_anchors, best_iou, strict=True):
        ax.add_patch(box_patch(gt, facecolor="none", edgecolor="lime", linewidth=2))
        good = iou >= threshold
        style = {"linewidth": 1.5, "linestyle": "solid" if good else "dashed"}
        color = "yellow" if good else "red"
        ax.add_patch(box_patch(anchor, facecolor="none", edgecolor=color, **style))
        y1, x1 = anchor[:2]
        ax.text(x1, y1, f"{iou:.2f}", color=color, fontsize=9, va="bottom")
    return finish_figure(figure, path, show)
