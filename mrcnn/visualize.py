"""Matterport's ``visualize`` module: every drawing function under its old name.

The code lives by dependency: :mod:`mrcnn.drawing.render` draws into RGB arrays with OpenCV and
numpy (colours, mask overlay, contours, :func:`draw_instances`; used by splash, video and the demo),
:mod:`mrcnn.drawing.figures` builds the matplotlib figures (one box convention, (y1, x1, y2, x2)),
and
:mod:`mrcnn.drawing.dataset_figures` the dataset and anchor figures next to the statistics they
show.
Matching for :func:`display_differences` is :func:`mrcnn.evaluation.matching.match_instances`.

Boxes are Matterport's (y1, x1, y2, x2) in image pixels unless a function says otherwise; masks
are bool [H, W, N].

The figure functions here (:mod:`mrcnn.drawing.matterport_figures`) show their figure as
Matterport's did (in the notebook cell, or in a window from a script with a GUI backend) and
return it. The same functions in the modules above only build and return it; this package's own
code calls those. This module only re-exports.
"""

from mrcnn.drawing.matterport_figures import (
    display_anchor_coverage,
    display_dataset_samples,
    display_differences,
    display_images,
    display_instances,
    display_top_masks,
    draw_boxes,
    draw_rois,
    plot_dataset_statistics,
    plot_overlaps,
    plot_precision_recall,
)
from mrcnn.drawing.network_figures import display_table, display_weight_stats, draw_box
from mrcnn.drawing.render import (
    COLOR_SEED,
    apply_mask,
    draw_instances,
    mask_contours,
    overlay_masks,
    random_colors,
)
from mrcnn.evaluation.matching import match_instances
from mrcnn.evaluation.overlaps import compute_overlaps_masks as mask_overlaps
from mrcnn.structures.boxes import extract_boxes_from_masks

__all__ = [
    "display_table",
    "display_weight_stats",
    "draw_box",
    "draw_rois",
    "COLOR_SEED",
    "apply_mask",
    "display_anchor_coverage",
    "display_dataset_samples",
    "display_differences",
    "display_images",
    "display_instances",
    "display_top_masks",
    "draw_boxes",
    "draw_instances",
    "extract_boxes_from_masks",
    "mask_contours",
    "mask_overlaps",
    "match_instances",
    "overlay_masks",
    "plot_dataset_statistics",
    "plot_overlaps",
    "plot_precision_recall",
    "random_colors",
]
