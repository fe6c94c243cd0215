"""Matterport compatibility: the ``MaskRCNN`` methods Matterport's scripts call
(:mod:`~mrcnn.compat.methods`), its data generator (:mod:`~mrcnn.compat.data`) and its
model-level functions (:mod:`~mrcnn.compat.api`)."""
