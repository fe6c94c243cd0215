"""Deployment: export the inference network to ONNX and run it with ONNX Runtime.

- :mod:`mrcnn.deploy.graph`: the network for one image of a fixed size, in exportable operators.
- :mod:`mrcnn.deploy.matterport_graph`: the same for Matterport's network flavour (.h5 models);
  :mod:`mrcnn.deploy.matterport_runtime`: its molding and unmolding in numpy.
- :mod:`mrcnn.deploy.export`: ``export_onnx`` / ``export_program`` (needs torch, onnx, onnxscript).
- :mod:`mrcnn.deploy.runtime`: ``OnnxMaskRCNN``, molding and mask pasting in numpy (needs only
  numpy and onnxruntime; importing it does not import torch).
- :mod:`mrcnn.deploy.folders`: ``mrcnn detect`` over a folder (figures, COCO results JSON).
- :mod:`mrcnn.deploy.shards`: a folder run split across processes and machines (torchrun).

See docs/deploy.md.
"""
