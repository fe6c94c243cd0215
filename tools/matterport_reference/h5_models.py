"""Seeded random-weight Matterport models written as Keras HDF5 files with numpy and h5py only.

`tools/matterport_reference/make_reference.py` draws the weights of Matterport's Keras model
with :func:`draw_weights`, assigns them to that model, saves it with Keras and checks that
:func:`write_h5` writes the same arrays. The equivalence test rebuilds the same file from the
seed and the layer manifest stored in a fixture, so it needs neither TensorFlow nor a download.

This module imports numpy and h5py only (never torch, never this repository's ``mrcnn``):
make_reference.py runs it in the side environment, beside Matterport's own ``mrcnn`` package.

A manifest is the model's layer list in Keras order: ``[(layer_name, [weight_name, ...],
[shape, ...]), ...]``, weight names as Keras stores them (e.g. ``"conv1/kernel:0"``), shapes in
Keras order (conv kernels ``[kh, kw, in, out]``, dense kernels ``[in, out]``, deconvolution
kernels ``[kh, kw, out, in]``).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

#: The committed Matterport fixtures (this file is tools/matterport_reference/h5_models.py).
MATTERPORT_FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "matterport"

Manifest = list[tuple[str, list[str], list[tuple[int, ...]]]]

# The output layers whose scale makes scores spread instead of saturating (see draw_weights).
OUTPUT_LAYERS = (
    "rpn_class_raw",
    "rpn_bbox_pred",
    "mrcnn_class_logits",
    "mrcnn_bbox_fc",
    "mrcnn_mask",
)

# The layouts write_h5 can produce:
#   "keras-2.2": Keras 2.0.8-2.2 `save_weights` / ModelCheckpoint(save_weights_only=True), the
#                layout of Matterport's mask_rcnn_coco.h5 (layer groups at the root);
#   "tf-keras-2": tf.keras 2.x / tf_keras `save_weights` (the same, plus an empty
#                "top_level_model_weights" group);
#   "model-save": Keras `model.save()` (the layer groups under "model_weights", a model_config
#                attribute next to them).
LAYOUTS = ("keras-2.2", "tf-keras-2", "model-save")


def manifest_to_json(manifest: Manifest) -> str:
    return json.dumps(
        [[name, list(weights), [list(s) for s in shapes]] for name, weights, shapes in manifest]
    )


def manifest_from_json(text: str) -> Manifest:
    return [
        (name, list(weights), [tuple(s) for s in shapes])
        for name, weights, shapes in json.loads(text)
    ]


def _rng(seed: int, key: str) -> np.random.Generator:
    """One generator per weight, so a weight's values depend only on (seed, its name)."""
    return np.random.default_rng([seed, zlib.crc32(key.encode("utf8"))])


def _weight_key(weight_name: str) -> tuple[str, str]:
    """("res2a_branch2a", "kernel") from "res2a_branch2a/kernel:0" (any prefix before the last
    '/' part names the Keras sublayer)."""
    parts = weight_name.split(":")[0].split("/")
    return parts[-2], parts[-1]


def _draw_one(
    rng: np.random.Generator, sublayer: str, kind: str, shape: tuple[int, ...]
) -> np.ndarray:
    """Values for one weight. Kernels are He-normal, so unit-scale activations stay unit-scale
    through ReLU layers; BatchNorm statistics are near (0, 1) so inference-mode BN keeps them
    there; the last BN of each residual branch has a small gamma so that 33 residual additions
    (ResNet-101) do not blow the activations up."""
    if kind == "kernel":
        if sublayer == "mrcnn_mask_deconv":  # [kh, kw, out, in]
            fan_in = shape[0] * shape[1] * shape[3]
        else:
            fan_in = int(np.prod(shape[:-1]))
        std = np.sqrt(2.0 / fan_in)
        if sublayer == "conv1":
            std /= 60.0  # the input is raw pixels minus the mean, std ~60
        return (rng.standard_normal(shape) * std).astype(np.float32)
    if kind == "bias":
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)
    if kind == "gamma":
        gamma = rng.uniform(0.8, 1.2, shape)
        if sublayer.endswith("branch2c"):
            gamma *= 0.25
        return gamma.astype(np.float32)
    if kind == "beta":
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)
    if kind == "moving_mean":
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)
    if kind == "moving_variance":
        return rng.uniform(0.8, 1.5, shape).astype(np.float32)
    raise ValueError(f"unknown weight kind {kind!r} of {sublayer!r}")


def draw_weights(
    manifest: Manifest,
    seed: int,
    output_scales: dict[str, float],
    background_logit: float = 0.0,
    class_logit_projection: np.ndarray | None = None,
) -> dict[str, list[np.ndarray]]:
    """Seeded weights for every layer of the manifest: {layer_name: [array per weight name]}.

    The kernels of the output sublayers named in output_scales (OUTPUT_LAYERS) are centred over
    their inputs (so a layer's outputs vary with the features instead of carrying one large
    offset) and, with their biases, multiplied by the scale: larger logits spread the scores.
    class_logit_projection [P, 1024] (orthonormal rows) is projected out of the
    mrcnn_class_logits kernel before scaling: make_reference.py passes the directions of the
    box-head features' per-photo means, so that class scores vary between ROIs rather than
    between photos. background_logit is added to the background (class 0) logit, which sets how
    many ROIs pass DETECTION_MIN_CONFIDENCE.
    """
    weights = {}
    for layer_name, weight_names, shapes in manifest:
        arrays = []
        for weight_name, shape in zip(weight_names, shapes, strict=True):
            sublayer, kind = _weight_key(weight_name)
            value = _draw_one(_rng(seed, f"{sublayer}/{kind}"), sublayer, kind, tuple(shape))
            if kind in ("kernel", "bias") and sublayer in output_scales:
                if kind == "kernel":
                    value = value - value.mean(axis=tuple(range(value.ndim - 1)), keepdims=True)
                if (
                    kind == "kernel"
                    and sublayer == "mrcnn_class_logits"
                    and class_logit_projection is not None
                ):
                    d = np.asarray(class_logit_projection, dtype=np.float64)
                    value = (value - d.T @ (d @ value.astype(np.float64))).astype(np.float32)
                value = (value * np.float32(output_scales[sublayer])).astype(np.float32)
            if sublayer == "mrcnn_class_logits" and kind == "bias":
                value[0] += np.float32(background_logit)
            arrays.append(value)
        weights[layer_name] = arrays
    return weights


def _names_attr(names: list[str], fixed_length: bool):
    """A list of names as Keras stores it: fixed-length bytes (Keras 2.0.8-2.2 on h5py 2) or a
    list of bytes, which h5py 3 stores as variable-length strings (tf.keras 2.x). An empty list
    is an empty float64 array in both, as numpy makes it."""
    if not names:
        return np.array([], dtype=np.float64)
    encoded = [n.encode("utf8") for n in names]
    return np.array(encoded) if fixed_length else encoded


def _write_layer_groups(
    root, manifest: Manifest, weights: dict[str, list[np.ndarray]], fixed_length: bool
) -> None:
    """Keras's `save_weights_to_hdf5_group`: layer_names in model order, groups in name order,
    each with its weight_names attribute and one dataset per weight name."""
    root.attrs["layer_names"] = _names_attr([name for name, _, _ in manifest], fixed_length)
    for name, weight_names, _ in sorted(manifest, key=lambda m: m[0]):
        group = root.create_group(name)
        group.attrs["weight_names"] = _names_attr(weight_names, fixed_length)
        for weight_name, value in zip(weight_names, weights[name], strict=True):
            group.create_dataset(weight_name, data=value)


def _text_attr(text: str, fixed_length: bool):
    return np.bytes_(text.encode("utf8")) if fixed_length else text.encode("utf8")


def write_h5(
    path: str | Path,
    manifest: Manifest,
    weights: dict[str, list[np.ndarray]],
    layout: str = "tf-keras-2",
    keras_version: str | None = None,
) -> Path:
    """Writes weights as Keras would (see LAYOUTS). Returns the path."""
    import h5py

    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
    keras_version = keras_version or ("2.1.6" if layout == "keras-2.2" else "2.21.0")
    path = Path(path)
    fixed = layout == "keras-2.2"
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if layout == "model-save" else f
        _write_layer_groups(root, manifest, weights, fixed)
        root.attrs["backend"] = _text_attr("tensorflow", fixed)
        root.attrs["keras_version"] = _text_attr(keras_version, fixed)
        if layout in ("tf-keras-2", "model-save"):
            # tf.keras 2.x adds the model's own (non-layer) weights; Matterport's model has none.
            top = root.create_group("top_level_model_weights")
            top.attrs["weight_names"] = _names_attr([], fixed)
        if layout == "model-save":
            f.attrs["keras_version"] = _text_attr(keras_version, fixed)
            f.attrs["backend"] = _text_attr("tensorflow", fixed)
            config = {"class_name": "Functional", "config": {"name": "mask_rcnn"}}
            f.attrs["model_config"] = _text_attr(json.dumps(config), fixed)
    return path


def write_matterport_h5(
    path: str | Path,
    manifest: Manifest,
    seed: int,
    output_scales: dict[str, float],
    background_logit: float = 0.0,
    layout: str = "tf-keras-2",
    class_logit_projection: np.ndarray | None = None,
) -> Path:
    """The .h5 of a seeded random-weight Matterport model (draw_weights then write_h5)."""
    weights = draw_weights(manifest, seed, output_scales, background_logit, class_logit_projection)
    return write_h5(path, manifest, weights, layout)


def _decoded(values) -> list[str]:
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def weights_digest(path: str | Path) -> str:
    """sha1 of every weight array of a Keras .h5 (layer_names order, then weight_names order,
    float32 C-order bytes): equal digests mean the same weights whatever the layout."""
    import hashlib

    import h5py

    digest = hashlib.sha1()
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in _decoded(root.attrs["layer_names"]):
            for weight in _decoded(root[layer].attrs["weight_names"]):
                digest.update(
                    np.ascontiguousarray(root[layer][weight][()], dtype=np.float32).tobytes()
                )
    return digest.hexdigest()


#: Matterport's class-specific layers: the last axis of kernel and bias is classes (times 4).
_CLASS_AXIS_PER_CLASS = {"mrcnn_class_logits": 1, "mrcnn_bbox_fc": 4, "mrcnn_mask": 1}


def with_num_classes(manifest: Manifest, num_classes: int) -> Manifest:
    """``manifest`` with its class-specific layers sized for ``num_classes`` (background
    included), e.g. the 81-class COCO layout made into a 2-class one for a balloon model."""
    out = []
    for layer, names, shapes in manifest:
        per_class = _CLASS_AXIS_PER_CLASS.get(layer)
        if per_class is not None:
            shapes = [(*shape[:-1], per_class * num_classes) for shape in shapes]
        out.append((layer, names, shapes))
    return out


def fixture_manifest(model: str) -> Manifest:
    """The layer manifest stored in ``tests/fixtures/matterport/<model>.npz``."""
    with np.load(MATTERPORT_FIXTURES / f"{model}.npz") as f:
        return manifest_from_json(str(f["manifest_json"]))
