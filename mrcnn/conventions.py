"""Conventions: the config values that trained layers depend on, carried with their weights.

A trained layer computes what it was trained to compute only when it is fed what it was trained
on: pixels normalised the same way, deltas decoded with the same standard deviations, anchors of
the same sizes and rounding, ROIAlign features sampled the same way. These values live in the
config, so loading weights into a config with other values silently computes something else.

:data:`CONVENTIONS` names each such config key and the layers that depend on it. Weights carry
the values they were trained with (:data:`TORCHVISION` for torchvision's COCO and ImageNet
weights, the saved config for this project's checkpoints), and :func:`reconcile` makes the
model's config agree with them before any tensor is copied:

* a value the config only inherits from this library's defaults is replaced, with a note
  naming the key, its old and its new value;
* a value the user set (in a Config subclass, with ``--set``, or by assignment) that differs is
  refused with a :class:`ConventionsError`, unless the key is listed in the config's
  ``KEEP_CONVENTIONS``: then the user's value stays, with a note saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

_BACKBONE = ("backbone.",)
_RPN = ("rpn.",)
_HEADS = ("box_head.", "mask_head.")

_ALL = ("backbone.", "fpn.", "rpn.", "box_head.", "mask_head.")

#: Convention key -> parameter-name prefixes of the layers whose function depends on it.
CONVENTIONS: dict[str, tuple[str, ...]] = {
    # Every layer computes its trained function only inside the network it was trained in.
    "NETWORK_FLAVOUR": _ALL,
    # The first convolution was trained on pixels normalised this way.
    "MEAN_PIXEL": _BACKBONE,
    "STD_PIXEL": _BACKBONE,
    # The RPN scores and refines these anchors, its deltas in units of these std devs.
    "RPN_ANCHOR_SCALES": _RPN,
    "RPN_ANCHOR_RATIOS": _RPN,
    "RPN_ANCHOR_ROUND": _RPN,
    "RPN_ANCHOR_STRIDE": _RPN,
    "BACKBONE_STRIDES": _RPN + _HEADS,
    "RPN_BBOX_STD_DEV": _RPN,
    # The proposal rule the heads were trained on (per level or over all levels).
    "RPN_PROPOSALS_PER_LEVEL": _RPN + _HEADS,
    # The heads read ROIAlign features from this level, sampled this way.
    "ROI_LEVEL_ROUNDING": _HEADS,
    "ROI_ALIGN_ALIGNED": _HEADS,
    "ROI_ALIGN_SAMPLING_RATIO": _HEADS,
    # The box head's deltas are in units of these std devs.
    "BBOX_STD_DEV": ("box_head.deltas.",),
}

#: The conventions of torchvision's detection models and ImageNet classifiers (its
#: ``maskrcnn_resnet50_fpn``: GeneralizedRCNNTransform, AnchorGenerator, RPN, MultiScaleRoIAlign
#: and BoxCoder defaults). RPN_ANCHOR_RATIOS is absent on purpose: loading permutes the RPN's
#: outputs into the config's ratio order (see :mod:`mrcnn.weights.loading`).
TORCHVISION: dict[str, Any] = {
    "NETWORK_FLAVOUR": "torchvision",
    "MEAN_PIXEL": [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
    "STD_PIXEL": [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
    "RPN_ANCHOR_SCALES": [32, 64, 128, 256, 512],
    "RPN_ANCHOR_ROUND": True,
    "RPN_ANCHOR_STRIDE": 1,
    "BACKBONE_STRIDES": [4, 8, 16, 32, 64],
    "RPN_BBOX_STD_DEV": [1.0, 1.0, 1.0, 1.0],
    "RPN_PROPOSALS_PER_LEVEL": True,
    "ROI_LEVEL_ROUNDING": "floor",
    "ROI_ALIGN_ALIGNED": False,
    "ROI_ALIGN_SAMPLING_RATIO": 2,
    "BBOX_STD_DEV": [0.1, 0.1, 0.2, 0.2],
}


#: The conventions of Matterport's Keras Mask R-CNN (its Config defaults). Matterport's .h5
#: files record no config, so :func:`matterport` takes the keys of :data:`MATTERPORT_SETTABLE`
#: from the user's Config subclass when it sets them (a Matterport user's config is the one the
#: weights were trained with).
MATTERPORT: dict[str, Any] = {
    "NETWORK_FLAVOUR": "matterport",
    "MEAN_PIXEL": [123.7, 116.8, 103.9],
    "STD_PIXEL": None,
    "RPN_ANCHOR_SCALES": [32, 64, 128, 256, 512],
    "RPN_ANCHOR_RATIOS": [0.5, 1, 2],
    "RPN_ANCHOR_ROUND": False,
    "RPN_ANCHOR_STRIDE": 1,
    "BACKBONE_STRIDES": [4, 8, 16, 32, 64],
    "RPN_BBOX_STD_DEV": [0.1, 0.1, 0.2, 0.2],
    "RPN_PROPOSALS_PER_LEVEL": False,
    "ROI_LEVEL_ROUNDING": "round",
    "BBOX_STD_DEV": [0.1, 0.1, 0.2, 0.2],
}

#: Matterport Config attributes a Matterport user may have trained with other values.
MATTERPORT_SETTABLE = (
    "MEAN_PIXEL",
    "RPN_ANCHOR_SCALES",
    "RPN_ANCHOR_RATIOS",
    "RPN_ANCHOR_STRIDE",
    "BACKBONE_STRIDES",
    "RPN_BBOX_STD_DEV",
    "BBOX_STD_DEV",
)


def matterport(config=None) -> dict[str, Any]:
    """The conventions of a Matterport .h5: :data:`MATTERPORT`, with the user's own values of
    :data:`MATTERPORT_SETTABLE` where ``config`` sets them."""
    values = dict(MATTERPORT)
    if config is not None:
        for key in MATTERPORT_SETTABLE:
            if set_by_user(config, key):
                values[key] = getattr(config, key)
    return values


class ConventionsError(ValueError):
    """The config sets a value that the loaded weights were not trained with."""


def from_config_dict(values: Mapping[str, Any]) -> dict[str, Any]:
    """The conventions recorded in a saved config (a checkpoint's ``"config"`` entry)."""
    return {key: values[key] for key in CONVENTIONS if key in values}


def relevant(conventions: Mapping[str, Any], loaded: Iterable[str]) -> dict[str, Any]:
    """The conventions that matter for the parameters ``loaded`` (their names)."""
    loaded = list(loaded)
    return {
        key: value
        for key, value in conventions.items()
        if key in CONVENTIONS and any(name.startswith(CONVENTIONS[key]) for name in loaded)
    }


def same_value(a: Any, b: Any) -> bool:
    """Equality that treats lists, tuples and arrays of equal numbers as equal."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return a == b
    if isinstance(a, (bool, np.bool_)) or isinstance(b, (bool, np.bool_)):
        return bool(a) == bool(b)
    try:
        left, right = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return a == b
    return left.shape == right.shape and bool(np.allclose(left, right, rtol=1e-9, atol=1e-9))


def set_by_user(config, key: str) -> bool:
    """Whether ``key`` was given by the user rather than inherited from this library's defaults.

    User values come from a Config subclass, from ``--set`` / ``from_overrides``, or from an
    assignment on the instance; :func:`reconcile`'s own assignments do not count.
    """
    if key in vars(config):
        return key not in getattr(config, "_adopted_conventions", ())
    for klass in type(config).__mro__:
        if key in vars(klass):
            return not vars(klass).get("_library_defaults", False)
    return False


def _shown(value: Any) -> str:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_shown(v) for v in value) + "]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def _like(current: Any, value: Any) -> Any:
    """``value`` in the container type of ``current`` (numpy arrays stay arrays)."""
    if isinstance(current, np.ndarray) and value is not None:
        return np.asarray(value, dtype=np.float64)
    if isinstance(value, np.ndarray) and current is None:
        return value.tolist()
    if isinstance(current, tuple) and isinstance(value, list):
        return tuple(value)
    return value


def reconcile(config, conventions: Mapping[str, Any], loaded: Iterable[str], source: str):
    """Make ``config`` agree with the conventions of the weights about to be loaded.

    Args:
        config: the model's :class:`~mrcnn.config.Config` instance (changed in place).
        conventions: the values the weights were trained with (e.g. :data:`TORCHVISION`).
        loaded: names of the parameters that will be copied; only conventions of those
            layers count (ImageNet weights fill the backbone, so only the normalisation).
        source: what to call the weights in messages.
    Returns:
        notes, one per key changed or kept.
    Raises:
        ConventionsError: a user-set value differs and is not in KEEP_CONVENTIONS; nothing has
            been changed then.
    """
    keep = set(getattr(config, "KEEP_CONVENTIONS", ()) or ())
    changes, conflicts, notes = [], [], []
    for key, wanted in relevant(conventions, loaded).items():
        current = getattr(config, key)
        if same_value(current, wanted):
            continue
        if key in keep:
            notes.append(
                f"kept {key}={_shown(current)} (KEEP_CONVENTIONS); {source} used {_shown(wanted)} "
                "in training, so those layers now see values they were not trained on"
            )
        elif set_by_user(config, key):
            conflicts.append(f"{key}={_shown(current)} (trained with {_shown(wanted)})")
        else:
            changes.append((key, current, wanted))
    if conflicts:
        names = ", ".join(repr(c.split("=")[0]) for c in conflicts)
        raise ConventionsError(
            f"{source}: trained with other values than this config sets: "
            f"{'; '.join(conflicts)}. Remove those settings to adopt the weights' values, or "
            f"keep yours with KEEP_CONVENTIONS = [{names}] in the config "
            f'(CLI: --set "KEEP_CONVENTIONS=[{names}]")'
        )
    adopted = set(getattr(config, "_adopted_conventions", ()))
    for key, current, wanted in changes:
        setattr(config, key, _like(current, wanted))
        adopted.add(key)
        notes.append(f"{key}: {_shown(current)} -> {_shown(wanted)}, adopted from {source}")
    config._adopted_conventions = frozenset(adopted)
    if changes:
        config._validate()
    return notes
