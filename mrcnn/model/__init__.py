"""The network, one stage per module (wired in :mod:`mrcnn.model.network`).

``MaskRCNN``, the Matterport-style facade around this network, lives in :mod:`mrcnn.maskrcnn`
(it sits above both the network and training); ``mrcnn.model.MaskRCNN`` still names it, as
Matterport's scripts (``import mrcnn.model as modellib``) expect.
"""

from __future__ import annotations

from mrcnn.model.network import MaskRCNNNet

__all__ = ["MaskRCNN", "MaskRCNNNet", "resolve_device"]


def __getattr__(name: str):
    # why lazy: the facade imports mrcnn.training, which imports this package's stages; an
    # import here would make the network package depend on training (and form a cycle).
    if name in ("MaskRCNN", "resolve_device"):
        from mrcnn import maskrcnn

        return getattr(maskrcnn, name)
    raise AttributeError(f"module 'mrcnn.model' has no attribute {name!r}")
