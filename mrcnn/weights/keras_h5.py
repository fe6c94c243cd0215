"""Reading Keras HDF5 weight files as Matterport's Mask R-CNN wrote them.

Three layouts hold the same structure: the root (``save_weights`` and ``ModelCheckpoint`` files
of Keras 2.0.8-2.2, such as ``mask_rcnn_coco.h5``, and tf.keras 2.x ``.h5`` files) or its
``model_weights`` group (``model.save()`` files) has a ``layer_names`` attribute; each layer's
group has a ``weight_names`` attribute listing its arrays in the layer's own order (kernel, bias;
gamma, beta, moving mean, moving variance). Keras splits an attribute too large for one HDF5
header into ``name0``, ``name1``, ...; both forms are read.

Only the layer groups and the order of their ``weight_names`` are relied on, never the exact
weight-name strings (which differ between Keras versions). :mod:`mrcnn.weights.keras_mapping` turns
the
layers into this project's parameters.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from mrcnn.weights import keras_mapping
from mrcnn.weights.formats import WeightsError, missing_weights_message

#: Extensions under which weight files are read as Keras HDF5 (any letter case).
KERAS_SUFFIXES = (".h5", ".hdf5", ".keras")


def is_keras_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as a Keras HDF5 weights file (:data:`KERAS_SUFFIXES`)."""
    return Path(str(path)).suffix.lower() in KERAS_SUFFIXES


def _attribute(group, name: str) -> list[str]:
    """A string-list attribute of an HDF5 group, joined from Keras' chunks when split."""
    if name in group.attrs:
        values = list(group.attrs[name])
    else:
        values, chunk = [], 0
        while f"{name}{chunk}" in group.attrs:
            values += list(group.attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]


def read_keras_layers(path: str | os.PathLike) -> dict[str, list[np.ndarray]]:
    """The weights of every layer of a Keras HDF5 file.

    Returns:
        {layer name: [arrays in the order of the layer's weight_names]}, layers in file order;
        layers without weights are omitted.
    Raises:
        WeightsError: the file is not HDF5, or not a Keras weights/model file.
    """
    return _read_layers(path, np.asarray)


def read_keras_shapes(path: str | os.PathLike) -> dict[str, list[tuple[int, ...]]]:
    """The weight shapes of every layer of a Keras HDF5 file, as :func:`read_keras_layers`
    orders them, without reading the arrays (for
    :func:`mrcnn.weights.keras_mapping.infer_settings`)."""
    return _read_layers(path, lambda dataset: tuple(dataset.shape))


def _read_layers(path: str | os.PathLike, read) -> dict[str, list]:
    """{layer name: [read(h5py dataset) for each of its weights]} of a Keras HDF5 file."""
    try:
        import h5py
    except ImportError as error:  # h5py is a dependency; a broken install still gets a message
        raise WeightsError(
            f"{path}: reading Keras .h5 files needs h5py (pip install h5py)"
        ) from error
    path = Path(path)
    if not path.is_file():
        raise WeightsError(missing_weights_message(path))
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise WeightsError(
            f"{path} is not an HDF5 file ({error}); pass a Keras .h5 file"
        ) from error
    with handle:
        group = handle["model_weights"] if "model_weights" in handle else handle
        names = _attribute(group, "layer_names")
        if not names:
            found = ", ".join(sorted(handle.keys())[:8]) or "nothing"
            raise WeightsError(
                f"{path} is an HDF5 file but not Keras weights (no 'layer_names'; it holds "
                f"{found}); pass a Keras .h5 saved by Matterport's Mask R-CNN"
            )
        layers = {}
        for name in names:
            layer = _member(group, name, path, "layer list")
            weights = [
                read(_member(layer, w, path, f"layer {name}'s weight list"))
                for w in _attribute(layer, "weight_names")
            ]
            if weights:
                layers[name] = weights
    return layers


def _member(group, name: str, path: Path, listed_in: str):
    """``group[name]``, or a WeightsError naming the file and the missing entry (the file's own
    lists name it, so the file is damaged or was edited)."""
    try:
        return group[name]
    except KeyError:
        raise WeightsError(
            f"{path}: its {listed_in} names {name!r}, but the file holds no such entry (a "
            "damaged or edited file); save the weights again from Keras, or fetch the file again"
        ) from None


def read_matterport_h5(
    path: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], dict[str, tuple[str, ...]], dict]:
    """A Matterport .h5 file as a state dict of the matterport-flavour network.

    Returns:
        (state, sources, settings): the tensors by this project's names; for each the Keras
        layer names it was built from (so that ``exclude`` can take Matterport's layer names);
        and the config values its shapes determine (:func:`keras_mapping.infer_settings`).
    Raises:
        WeightsError: not a Keras file, or not a Matterport Mask R-CNN (naming what was found).
    """
    layers = read_keras_layers(path)
    try:
        state, sources = keras_mapping.to_state_dict(layers)
    except keras_mapping.NotMatterportError as error:
        raise WeightsError(f"{path}: {error}") from error
    return state, sources, keras_mapping.infer_settings(keras_mapping.weight_shapes(layers))
