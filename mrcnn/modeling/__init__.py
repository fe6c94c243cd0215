"""The network, one stage per module, wired in :mod:`mrcnn.modeling.network`; the two numeric
flavours (torchvision's and Matterport's) are objects of :mod:`mrcnn.modeling.flavours`."""
