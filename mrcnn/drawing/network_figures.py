"""Matterport's debugging figures of the network's internals: ROIs and their refinements, a box
burnt into an image, tables, and per-tensor weight statistics.

Re-exported by :mod:`mrcnn.visualize` (``visualize.draw_rois``, ...). Boxes are (y1, x1, y2, x2)
in image pixels, as everywhere in the Matterport-style API.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from mrcnn.drawing.figures import draw_boxes

__all__ = ["display_table", "display_weight_stats", "draw_box", "draw_rois"]

#: Weights whose absolute values exceed this are flagged by :func:`display_weight_stats`.
OVERFLOW_WARNING = 1000.0


def draw_rois(
    image: np.ndarray,
    rois: np.ndarray,
    refined_rois: np.ndarray,
    mask: np.ndarray | None,
    class_ids: np.ndarray,
    class_names: Sequence[str],
    limit: int = 10,
    *,
    seed: int = 0,
    **figure_options,
) -> Figure:
    """Up to ``limit`` positive ROIs (class id > 0), each with its refinement and class name.

    Args:
        image: [H, W, 3] uint8.
        rois: [N, 4] (y1, x1, y2, x2) ROIs in image pixels; refined_rois: [N, 4] the same ROIs
            after the box head's deltas.
        mask: unused (Matterport's signature).
        class_ids: int [N] class of each ROI (0: background, not drawn).
        limit: at most this many positive ROIs, chosen at random (``seed``).
        figure_options: passed to :func:`mrcnn.visualize.draw_boxes` (``ax``, ``path``, ...).
    Returns:
        the figure; its title counts the positive and negative ROIs.
    """
    del mask
    class_ids = np.asarray(class_ids).astype(int)
    positive = np.flatnonzero(class_ids > 0)
    chosen = np.random.default_rng(seed).choice(positive, min(limit, len(positive)), replace=False)
    chosen = np.sort(chosen)
    title = (
        f"Positive ROIs: {len(positive)}, negative ROIs: {int((class_ids == 0).sum())}, "
        f"positive ratio: {len(positive) / max(len(class_ids), 1):.2f}"
    )
    return draw_boxes(
        image,
        boxes=np.asarray(rois)[chosen],
        refined_boxes=np.asarray(refined_rois)[chosen],
        captions=[class_names[c] for c in class_ids[chosen]],
        title=title,
        **figure_options,
    )


def draw_box(image: np.ndarray, box: Sequence[int], color) -> np.ndarray:
    """Burn a 2-pixel rectangle into ``image`` (in place, and returned).

    Args:
        image: [H, W, C] array.
        box: (y1, x1, y2, x2) pixels; the lines start on y1, x1, y2 and x2 and go 2 pixels
            down/right (clipped to the image).
        color: a value per channel.
    """
    y1, x1, y2, x2 = (int(v) for v in box)
    image[y1 : y1 + 2, x1:x2] = color
    image[y2 : y2 + 2, x1:x2] = color
    image[y1:y2, x1 : x1 + 2] = color
    image[y1:y2, x2 : x2 + 2] = color
    return image


def display_table(table: Sequence[Sequence]) -> str:
    """Show rows of values as an HTML table in Jupyter (printed as text elsewhere) and return
    the HTML."""
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in row) + "</tr>"
        for row in table
    )
    markup = f"<table>{rows}</table>"
    try:
        from IPython import get_ipython
        from IPython.display import HTML, display

        in_notebook = get_ipython() is not None
    except ImportError:
        in_notebook = False
    if in_notebook:
        display(HTML(markup))
    else:
        for row in table:
            print("  ".join(f"{str(cell):<20}" for cell in row))
    return markup


def weight_stats(model) -> list[list[str]]:
    """Rows (name, shape, min, max, std) for every parameter of ``model`` (a MaskRCNN or an
    nn.Module), with "*** dead?" where all values are 0 and "*** Overflow?" where some
    exceed :data:`OVERFLOW_WARNING` in magnitude."""
    net = getattr(model, "net", model)
    rows = [["WEIGHT NAME", "SHAPE", "MIN", "MAX", "STD"]]
    for name, parameter in net.named_parameters():
        values = parameter.detach().float()
        low, high = float(values.min()), float(values.max())
        std = float(values.std()) if values.numel() > 1 else 0.0
        note = ""
        if low == high == 0:
            note = "  *** dead?"
        elif max(abs(low), abs(high)) > OVERFLOW_WARNING:
            note = "  *** Overflow?"
        rows.append(
            [
                name + note,
                str(tuple(values.shape)),
                f"{low:+9.4f}",
                f"{high:+10.4f}",
                f"{std:+9.4f}",
            ]
        )
    return rows


def display_weight_stats(model) -> str:
    """:func:`display_table` of :func:`weight_stats`; returns the HTML."""
    return display_table(weight_stats(model))
