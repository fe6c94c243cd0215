"""Masks to polygons: cleaning, tracing at the loaders' pixel convention, COCO's pixel edges."""

from __future__ import annotations

from pycocotools import mask as mask_utils

from mrcnn.labelling.polygons import (
    Detection,
    clean_mask,
    outer_rings,
    outline,
    pixel_edge_ring,
    rings_mask,
)
from tests.helpers.annotations import frame, ring


def test_tracing_at_tolerance_zero_gives_the_mask_back():
    mask = ring(40, 50, 20, 0) | frame(5, 90, 20, 20)
    assert (rings_mask(outer_rings(mask, 0.0), *mask.shape) == mask).all()


def test_clean_mask_drops_small_parts_and_fills_small_holes_only():
    mask = frame(10, 10, 30, 8)  # a 14 x 14 hole
    mask[3, 3] = True  # a one-pixel part
    mask[50:53, 50:53] = True
    mask[51, 51] = False  # a one-pixel hole in a small square
    cleaned, holes = clean_mask(mask, 16)
    assert not cleaned[3, 3] and not cleaned[50:53, 50:53].any()
    assert holes == 1 and not cleaned[20, 20]


def test_outline_counts_the_hole_of_a_ring():
    shape = outline(Detection.from_mask(ring(40, 50, 20, 8), "a"), 1.0, 16)
    assert shape.holes == 1 and len(shape.rings) == 1
    assert not shape.bitmap[20, 20]  # the centre of the ring, inside its box


def test_pixel_edge_ring_gives_pycocotools_the_same_pixels():
    mask = ring(40, 50, 15, 0)
    (traced,) = outer_rings(mask, 0.0)
    polygon = pixel_edge_ring(traced).ravel().tolist()
    height, width = mask.shape
    decoded = mask_utils.decode(mask_utils.frPyObjects([polygon], height, width))[:, :, 0]
    assert (decoded.astype(bool) == mask).all()
