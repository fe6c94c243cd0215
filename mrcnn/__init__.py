"""mrcnn: Mask R-CNN instance segmentation in modern PyTorch, with the color splash filter."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["MaskRCNN", "Config", "__version__"]


def __getattr__(name: str):
    # why lazy: so that `import mrcnn` (and `mrcnn --help`) stays fast.
    if name == "MaskRCNN":
        from mrcnn.maskrcnn import MaskRCNN

        return MaskRCNN
    if name == "Config":
        from mrcnn.config import Config

        return Config
    raise AttributeError(f"module 'mrcnn' has no attribute {name!r}")
