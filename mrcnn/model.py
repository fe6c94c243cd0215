"""Matterport's ``mrcnn.model`` (``import mrcnn.model as modellib``): re-exports only.

The network lives in :mod:`mrcnn.modeling` (wired in :mod:`mrcnn.modeling.network`), the
Matterport-style facade in :mod:`mrcnn.maskrcnn`, and Matterport's model-level functions and
data generator in :mod:`mrcnn.compat`. This face sits on the top floor, so it may name them all.
"""

from __future__ import annotations

from mrcnn.compat.api import (
    build_rpn_targets,
    compose_image_meta,
    compute_backbone_shapes,
    log,
    mold_image,
    parse_image_meta,
    unmold_image,
)
from mrcnn.compat.data import (
    build_detection_targets,
    data_generator,
    generate_random_rois,
    load_image_gt,
)
from mrcnn.maskrcnn import MaskRCNN, resolve_device
from mrcnn.modeling.network import MaskRCNNNet

__all__ = [
    "MaskRCNN",
    "MaskRCNNNet",
    "build_detection_targets",
    "build_rpn_targets",
    "compose_image_meta",
    "compute_backbone_shapes",
    "data_generator",
    "generate_random_rois",
    "load_image_gt",
    "log",
    "mold_image",
    "parse_image_meta",
    "resolve_device",
    "unmold_image",
]
