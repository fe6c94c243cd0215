"""Write random-weight Keras HDF5 files in the layout of Matterport's Mask R-CNN.

The layout is that of ``mask_rcnn_coco.h5`` (Keras 2.0.8-2.2 ``save_weights``): the root's
``layer_names`` attribute lists every layer (weightless ones too), each layer's group has a
``weight_names`` attribute, and each weight is a dataset at ``<layer>/<weight name>``. Layer
names, kernel layouts ([kh, kw, in, out]; [kh, kw, out, in] for the transposed convolution;
[in, out] for dense layers) and weight orders (kernel, bias; gamma, beta, moving mean, moving
variance) follow Matterport's model.py. The RPN is the nested ``rpn_model`` whose group holds
its three convolutions' weights in order.

Weights are seeded: He-scaled kernels, BatchNorms near identity with the last one of each
residual branch scaled down so that activations stay finite through ResNet-101, and small
output layers so that scores spread.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: Blocks of ResNet stages 2-5 (stage 4 depends on the depth).
_STAGE4_BLOCKS = {"resnet50": 6, "resnet101": 23}
_STAGES = [(2, 3, (64, 64, 256)), (3, 4, (128, 128, 512)), (4, None, (256, 256, 1024))]
_STAGES.append((5, 3, (512, 512, 2048)))


class _Writer:
    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.layers: list[tuple[str, list[tuple[str, np.ndarray]]]] = []

    def kernel(self, shape, fan_in: int, gain: float = 1.0) -> np.ndarray:
        std = gain * np.sqrt(2.0 / fan_in)
        return (self.rng.standard_normal(shape, dtype=np.float32) * std).astype(np.float32)

    def bias(self, n: int, std: float = 0.01) -> np.ndarray:
        return (self.rng.standard_normal(n, dtype=np.float32) * std).astype(np.float32)

    def empty(self, name: str) -> None:
        self.layers.append((name, []))

    def conv(self, name: str, k: int, cin: int, cout: int, gain: float = 1.0) -> None:
        kernel = self.kernel((k, k, cin, cout), k * k * cin, gain)
        self.layers.append((name, [("kernel:0", kernel), ("bias:0", self.bias(cout))]))

    def batchnorm(self, name: str, n: int, gamma: float = 1.0) -> None:
        values = [
            (
                "gamma:0",
                np.full(n, gamma, np.float32) * self.rng.uniform(0.8, 1.2, n).astype(np.float32),
            ),
            ("beta:0", self.bias(n, 0.05)),
            ("moving_mean:0", self.bias(n, 0.05)),
            ("moving_variance:0", self.rng.uniform(0.8, 1.2, n).astype(np.float32)),
        ]
        self.layers.append((name, values))


def _resnet(w: _Writer, backbone: str) -> None:
    w.empty("input_image")
    w.empty("zero_padding2d_1")
    w.conv("conv1", 7, 3, 64)
    w.batchnorm("bn_conv1", 64)
    w.empty("max_pooling2d_1")
    cin = 64
    for stage, blocks, (f1, f2, f3) in _STAGES:
        for b in range(blocks or _STAGE4_BLOCKS[backbone]):
            block = chr(ord("a") + b)
            base = f"{stage}{block}_branch"
            w.conv(f"res{base}2a", 1, cin, f1)
            w.batchnorm(f"bn{base}2a", f1)
            w.conv(f"res{base}2b", 3, f1, f2)
            w.batchnorm(f"bn{base}2b", f2)
            w.conv(f"res{base}2c", 1, f2, f3)
            w.batchnorm(f"bn{base}2c", f3, gamma=0.2)  # keeps the residual sum from growing
            if b == 0:
                w.conv(f"res{base}1", 1, cin, f3)
                w.batchnorm(f"bn{base}1", f3)
            w.empty(f"res{stage}{block}_out")
            cin = f3


def _fpn_rpn_heads(w: _Writer, num_classes: int, anchors: int) -> None:
    for level, channels in zip((5, 4, 3, 2), (2048, 1024, 512, 256), strict=True):
        w.conv(f"fpn_c{level}p{level}", 1, channels, 256)
    for level in (2, 3, 4, 5):
        w.conv(f"fpn_p{level}", 3, 256, 256)
    w.empty("fpn_p6")
    # The nested RPN model: one group, its layers' weights in order, names prefixed.
    rpn = _Writer(int(w.rng.integers(1 << 31)))
    rpn.conv("rpn_conv_shared", 3, 256, 512)
    rpn.conv("rpn_class_raw", 1, 512, 2 * anchors, gain=0.5)
    rpn.conv("rpn_bbox_pred", 1, 512, 4 * anchors, gain=0.05)
    w.layers.append(
        (
            "rpn_model",
            [(f"{name}/{weight}", a) for name, values in rpn.layers for weight, a in values],
        )
    )
    w.empty("ROI")
    w.conv("mrcnn_class_conv1", 7, 256, 1024)
    w.batchnorm("mrcnn_class_bn1", 1024)
    w.conv("mrcnn_class_conv2", 1, 1024, 1024)
    w.batchnorm("mrcnn_class_bn2", 1024)
    logits = w.kernel((1024, num_classes), 1024, 0.3)
    w.layers.append(("mrcnn_class_logits", [("kernel:0", logits), ("bias:0", w.bias(num_classes))]))
    bbox = w.kernel((1024, 4 * num_classes), 1024, 0.05)
    w.layers.append(("mrcnn_bbox_fc", [("kernel:0", bbox), ("bias:0", w.bias(4 * num_classes))]))
    w.empty("mrcnn_bbox")
    for i in range(1, 5):
        w.conv(f"mrcnn_mask_conv{i}", 3, 256, 256)
        w.batchnorm(f"mrcnn_mask_bn{i}", 256)
    deconv = w.kernel((2, 2, 256, 256), 4 * 256)  # [kh, kw, out, in]
    w.layers.append(("mrcnn_mask_deconv", [("kernel:0", deconv), ("bias:0", w.bias(256))]))
    w.conv("mrcnn_mask", 1, 256, num_classes, gain=0.5)


def write_matterport_h5(
    path: str | Path,
    backbone: str = "resnet101",
    num_classes: int = 81,
    seed: int = 0,
    anchors_per_location: int = 3,
) -> Path:
    """Write a Matterport-layout Mask R-CNN .h5 of random weights; returns its path."""
    import h5py

    w = _Writer(seed)
    _resnet(w, backbone)
    _fpn_rpn_heads(w, num_classes, anchors_per_location)
    path = Path(path)
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([name.encode() for name, _ in w.layers])
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.0.8"
        for name, values in w.layers:
            group = f.create_group(name)
            names = [f"{name}/{weight}" if "/" not in weight else weight for weight, _ in values]
            group.attrs["weight_names"] = np.array([n.encode() for n in names])
            for weight_name, (_, array) in zip(names, values, strict=True):
                group.create_dataset(weight_name, data=array)
    return path
