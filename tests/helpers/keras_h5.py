"""Writing Keras HDF5 weight files as Matterport's Keras versions wrote them, with h5py only.

Layouts: "keras22" (Keras 2.0.8-2.2 ``save_weights``/ModelCheckpoint: fixed-length byte-string
attributes at the root), "model_save" (the same under ``model_weights``, as ``model.save()``
wrote) and "tf_keras" (tf.keras 2.x: variable-length string attributes and an empty
``top_level_model_weights`` group). ``chunked=True`` splits ``layer_names`` into
``layer_names0``/``layer_names1`` as Keras does for attributes too large for one header.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

Manifest = list[tuple[str, list[tuple[str, tuple[int, ...]]]]]


def _conv(name: str, kh: int, cin: int, cout: int) -> tuple[str, list]:
    return name, [("kernel", (kh, kh, cin, cout)), ("bias", (cout,))]


def _bn(name: str, channels: int) -> tuple[str, list]:
    kinds = ("gamma", "beta", "moving_mean", "moving_variance")
    return name, [(k, (channels,)) for k in kinds]


def matterport_manifest(
    backbone: str = "resnet50", num_classes: int = 2, fc: int = 1024, anchors: int = 3
) -> Manifest:
    """Matterport's layers with weights, in Keras order, for a backbone and head sizes."""
    layers = [_conv("conv1", 7, 3, 64), _bn("bn_conv1", 64)]
    stages = [(2, 3, 64), (3, 4, 128), (4, 6 if backbone == "resnet50" else 23, 256), (5, 3, 512)]
    cin = 64
    for stage, blocks, width in stages:
        for b in range(blocks):
            block = chr(ord("a") + b)
            base = f"{stage}{block}_branch"
            layers += [_conv(f"res{base}2a", 1, cin, width), _bn(f"bn{base}2a", width)]
            layers += [_conv(f"res{base}2b", 3, width, width), _bn(f"bn{base}2b", width)]
            layers += [_conv(f"res{base}2c", 1, width, 4 * width), _bn(f"bn{base}2c", 4 * width)]
            if b == 0:
                layers += [_conv(f"res{base}1", 1, cin, 4 * width), _bn(f"bn{base}1", 4 * width)]
            cin = 4 * width
    for level, channels in ((5, 2048), (4, 1024), (3, 512), (2, 256)):
        layers.append(_conv(f"fpn_c{level}p{level}", 1, channels, 256))
    layers += [_conv(f"fpn_p{level}", 3, 256, 256) for level in (2, 3, 4, 5)]
    rpn = [
        ("rpn_conv_shared/kernel", (3, 3, 256, 512)),
        ("rpn_conv_shared/bias", (512,)),
        ("rpn_class_raw/kernel", (1, 1, 512, 2 * anchors)),
        ("rpn_class_raw/bias", (2 * anchors,)),
        ("rpn_bbox_pred/kernel", (1, 1, 512, 4 * anchors)),
        ("rpn_bbox_pred/bias", (4 * anchors,)),
    ]
    layers.append(("rpn_model", rpn))
    layers += [_conv("mrcnn_class_conv1", 7, 256, fc), _bn("mrcnn_class_bn1", fc)]
    layers += [_conv("mrcnn_class_conv2", 1, fc, fc), _bn("mrcnn_class_bn2", fc)]
    layers.append(("mrcnn_class_logits", [("kernel", (fc, num_classes)), ("bias", (num_classes,))]))
    layers.append(
        ("mrcnn_bbox_fc", [("kernel", (fc, 4 * num_classes)), ("bias", (4 * num_classes,))])
    )
    for i in range(1, 5):
        layers += [_conv(f"mrcnn_mask_conv{i}", 3, 256, 256), _bn(f"mrcnn_mask_bn{i}", 256)]
    layers.append(("mrcnn_mask_deconv", [("kernel", (2, 2, 256, 256)), ("bias", (256,))]))
    layers.append(_conv("mrcnn_mask", 1, 256, num_classes))
    return layers


def random_layers(manifest: Manifest, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Seeded arrays for a manifest: kernels scaled by fan-in, BatchNorms near identity."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer, weights in manifest:
        arrays = []
        for name, shape in weights:
            kind = name.rsplit("/", 1)[-1]
            if kind == "kernel":
                fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else shape[0]
                value = rng.normal(0, 1 / np.sqrt(fan_in), shape)
            elif kind in ("gamma", "moving_variance"):
                value = rng.uniform(0.5, 1.5, shape)
            else:
                value = rng.normal(0, 0.1, shape)
            arrays.append(value.astype(np.float32))
        out[layer] = arrays
    return out


def _strings(values: list[str], layout: str):
    if layout == "tf_keras":
        return np.array(values, dtype=h5py.string_dtype())
    return np.array([v.encode("utf8") for v in values], dtype="S")


def write_keras_h5(
    path: Path,
    manifest: Manifest,
    layers: dict[str, list[np.ndarray]],
    layout: str = "keras22",
    chunked: bool = False,
) -> Path:
    """Write ``layers`` (arrays in manifest order) as a Keras HDF5 file of ``layout``."""
    with h5py.File(path, "w") as handle:
        root = handle
        if layout == "model_save":
            handle.attrs["model_config"] = b'{"class_name": "Model"}'
            root = handle.create_group("model_weights")
        if layout == "tf_keras":
            handle.create_group("top_level_model_weights")
        names = [name for name, _ in manifest]
        if chunked:
            half = len(names) // 2
            root.attrs["layer_names0"] = _strings(names[:half], layout)
            root.attrs["layer_names1"] = _strings(names[half:], layout)
        else:
            root.attrs["layer_names"] = _strings(names, layout)
        root.attrs["keras_version"] = b"2.2.4"
        root.attrs["backend"] = b"tensorflow"
        for name, weights in manifest:
            group = root.create_group(name)
            # Keras names weights "<layer>/<kind>:0" ("rpn_model" holds its sublayers' names)
            full = [w if "/" in w else f"{name}/{w}" for w, _ in weights]
            full = [f"{w}:0" for w in full]
            group.attrs["weight_names"] = _strings(full, layout)
            for weight_name, array in zip(full, layers[name], strict=True):
                group.create_dataset(weight_name, data=array)
    return path
