"""What a ``--weights`` value names, and the config to run it with: "last" resolved to the newest
checkpoint, the config stored in this project's checkpoints, "coco", and what a Matterport
``.h5``'s shapes determine.

Kept apart from :mod:`mrcnn.weights.checkpoint` (run folders, atomic writes, locks), which
training uses: reading a ``.h5``'s shapes brings in the Keras chain, which training never needs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from mrcnn.config import (
    COMPUTED_ATTRIBUTES,
    Config,
    TorchvisionCocoConfig,
    load_config,
    parse_overrides,
)
from mrcnn.weights.checkpoint import find_last
from mrcnn.weights.keras_h5 import is_keras_file, read_keras_shapes
from mrcnn.weights.keras_mapping import infer_settings
from mrcnn.weights.loading import safetensors_extras

# ------------------------------------------------------------------------------------------------
#: Config keys of a checkpoint that describe the machine it was trained on, not the model.
RUNTIME_KEYS = ("DEVICE", "CPU_THREADS", "INFERENCE_PRECISION")

Overrides = Mapping[str, Any] | Iterable[str]


def read_config(weights: str | os.PathLike) -> dict[str, Any] | None:
    """The "config" dict stored in this project's checkpoint ``weights``, or None (not such a
    file: another format, a name such as "coco", or unreadable; ``load_weights`` reports the
    unreadable ones properly)."""
    path = Path(str(weights))
    if path.is_file() and path.suffix == ".safetensors":  # written by mrcnn convert
        return safetensors_extras(path).get("config")
    if not path.is_file() or path.suffix == ".h5":
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - see the docstring
        return None
    if isinstance(data, dict) and data.get("format") == "mrcnn":
        return dict(data.get("config") or {})
    return None


def resolve_weights(
    weights: str | os.PathLike, model_dir: str | os.PathLike, overrides: Overrides = ()
) -> str:
    """``weights`` itself, except "last": the newest checkpoint under ``model_dir`` (of the
    NAME in ``overrides``, if any), so that the config and the weights come from one file.

    Raises:
        FileNotFoundError: "last" and no checkpoint found.
    """
    if str(weights) != "last":
        return str(weights)
    name = parse_overrides(overrides).get("NAME")
    return str(find_last(model_dir, name and str(name)))


def config_for_weights(
    weights: str | os.PathLike, overrides: Overrides = (), source: str | None = None
) -> Config:
    """The config to run ``weights`` with, ``overrides`` applied on top.

    ``source`` (a Config class ``module:Class`` or a YAML/JSON file, as ``--config``) when
    given; else the config saved in this project's checkpoint (without RUNTIME_KEYS: the
    machine may be another one); else TorchvisionCocoConfig for "coco"; else, for a Keras
    ``.h5``, the base Config with what the file's shapes determine (BACKBONE, and NUM_CLASSES
    and FPN_CLASSIF_FC_LAYERS_SIZE when it has the heads; loading it then adopts Matterport's
    network and conventions); else the base Config.
    """
    if source:
        return load_config(source, list(_as_strings(overrides)))
    saved = read_config(weights)
    if saved is not None:
        known = {k for k in dir(Config) if k.isupper()}
        skip = set(COMPUTED_ATTRIBUTES) | set(RUNTIME_KEYS)
        values = {k: v for k, v in saved.items() if k in known and k not in skip}
        values.update(parse_overrides(overrides))
        return Config.from_overrides(values)
    if str(weights) == "coco":
        return TorchvisionCocoConfig.from_overrides(overrides)
    h5 = _h5_settings(weights)
    if h5 is not None:
        return Config.from_overrides({**h5, **parse_overrides(overrides)})
    return Config.from_overrides(overrides)


def carried_num_classes(weights: str | os.PathLike) -> int | None:
    """NUM_CLASSES as the weights file gives it (this project's stored config, or a Matterport
    .h5's class-logits shape), or None (a name such as "coco", a backbone-only or other file)."""
    saved = read_config(weights)
    if saved is not None:
        return int(saved["NUM_CLASSES"]) if "NUM_CLASSES" in saved else None
    return (_h5_settings(weights) or {}).get("NUM_CLASSES")


def _h5_settings(weights: str | os.PathLike) -> dict | None:
    """What a Keras .h5's weight shapes determine
    (:func:`mrcnn.weights.keras_mapping.infer_settings`), or None when ``weights`` is not a
    Keras file (named as ``load_weights`` reads them)."""
    path = Path(str(weights))
    if is_keras_file(path) and path.is_file():
        return infer_settings(read_keras_shapes(path))
    return None


def _as_strings(overrides: Overrides) -> list[str]:
    """``KEY=VALUE`` strings, for :func:`mrcnn.config.load_config`."""
    if isinstance(overrides, Mapping):
        return [f"{key}={value!r}" for key, value in overrides.items()]
    return list(overrides)
