"""The network, one stage per module (wired in :mod:`mrcnn.model.network`).

``MaskRCNN``, the Matterport-style facade around this network, lives in :mod:`mrcnn.maskrcnn`
(it sits above both the network and training); ``mrcnn.model.MaskRCNN`` still names it, as
Matterport's scripts (``import mrcnn.model as modellib``) expect.
"""

from __future__ import annotations

from mrcnn.model.matterport_api import (
    build_rpn_targets,
    compose_image_meta,
    compute_backbone_shapes,
    log,
    mold_image,
    parse_image_meta,
    unmold_image,
)
from mrcnn.model.network import MaskRCNNNet

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


#: Matterport's sample-building names, which live above this package (mrcnn.matterport_data).
MATTERPORT_DATA = (
    "build_detection_targets",
    "data_generator",
    "generate_random_rois",
    "load_image_gt",
)


def __getattr__(name: str):
    # why lazy: the facade imports mrcnn.training, which imports this package's stages; an
    # import here would make the network package depend on training (and form a cycle).
    if name in ("MaskRCNN", "resolve_device"):
        from mrcnn import maskrcnn

        return getattr(maskrcnn, name)
    if name in MATTERPORT_DATA:  # why lazy: as above, they apply training's augmentation
        from mrcnn import matterport_data

        return getattr(matterport_data, name)
    raise AttributeError(f"module 'mrcnn.model' has no attribute {name!r}")
