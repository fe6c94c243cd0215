"""The figure functions under Matterport's names, showing their figure as Matterport's did (in
the notebook cell, or in a window from a script with a GUI backend; :mod:`mrcnn.drawing.display`)
and returning it. The functions they wrap (:mod:`mrcnn.drawing.figures`,
:mod:`mrcnn.drawing.network_figures`, :mod:`mrcnn.drawing.dataset_figures`) only build and
return the figure; this package's own code calls those. :mod:`mrcnn.visualize` re-exports these.
"""

from __future__ import annotations

from mrcnn.drawing import dataset_figures, figures, network_figures
from mrcnn.drawing.display import matterport_display

display_anchor_coverage = matterport_display(dataset_figures.display_anchor_coverage)
display_dataset_samples = matterport_display(dataset_figures.display_dataset_samples)
plot_dataset_statistics = matterport_display(dataset_figures.plot_dataset_statistics)
display_differences = matterport_display(figures.display_differences)
display_images = matterport_display(figures.display_images)
display_instances = matterport_display(figures.display_instances)
display_top_masks = matterport_display(figures.display_top_masks)
draw_boxes = matterport_display(figures.draw_boxes)
plot_overlaps = matterport_display(figures.plot_overlaps)
plot_precision_recall = matterport_display(figures.plot_precision_recall)
draw_rois = matterport_display(network_figures.draw_rois)
