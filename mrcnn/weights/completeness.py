"""Whether weights fill the whole network: for inference, no part may stay at its random
initialisation, and the message says why one would (another config, or a damaged file)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from mrcnn.weights.formats import WeightsError

__all__ = ["ARCHITECTURE_KEYS", "made_for", "require_complete", "uninitialised_parts"]


def uninitialised_parts(
    net: torch.nn.Module, selected: Mapping[str, torch.Tensor]
) -> dict[str, int]:
    """Which parts of ``net`` loading ``selected`` (from :func:`select_for_network`) would
    leave at their random initialisation: {"backbone": 12, "mask_head": 4, ...} tensors per
    top-level module."""
    parts: dict[str, int] = {}
    for key in net.state_dict():
        if key not in selected and not key.endswith("num_batches_tracked"):
            part = key.split(".")[0]
            parts[part] = parts.get(part, 0) + 1
    return parts


#: What a weights file can say it was made for; named when part of it does not fit a config.
ARCHITECTURE_KEYS = ("BACKBONE", "NUM_CLASSES", "FPN_CLASSIF_FC_LAYERS_SIZE")


def made_for(extras: Mapping) -> dict:
    """The ARCHITECTURE_KEYS a weights file gives (from :func:`load_state_dict_file`'s extras):
    its stored config's, or what a Matterport .h5's shapes determine; {} for other files."""
    settings = extras.get("made_for") or extras.get("config") or {}
    return {key: settings[key] for key in ARCHITECTURE_KEYS if key in settings}


def require_complete(
    net: torch.nn.Module,
    selected: Mapping[str, torch.Tensor],
    source: str = "weights",
    config=None,
    file_settings: Mapping | None = None,
    state: Mapping[str, torch.Tensor] | None = None,
) -> None:
    """Refuse weights that would leave part of the network random, for inference.

    Args:
        selected: the tensors :func:`select_for_network` chose to load.
        config, file_settings: the network's config and what the file was made for
            (:func:`made_for`); where they differ, the message says so.
        state: all the file's tensors; one left out for its shape is named with both shapes.
    Raises:
        WeightsError: naming the parts left uninitialised (or the tensors of the wrong shape)
            and what to do.
    """
    parts = uninitialised_parts(net, selected)
    if parts:
        differ = {
            key: value
            for key, value in (file_settings or {}).items()
            if config is not None and getattr(config, key, value) != value
        }
        if file_settings and not differ:
            _refuse_wrong_shapes(net, selected, state, source)
        shown = ", ".join(f"{name} ({count} tensors)" for name, count in sorted(parts.items()))
        if differ:
            theirs = ", ".join(f"{key} = {value!r}" for key, value in differ.items())
            ours = ", ".join(f"{key} = {getattr(config, key)!r}" for key in differ)
            fine_tune = (
                " (to fine-tune it on other classes, load it in mode='training', which skips "
                "the layers made for its classes)"
                if "NUM_CLASSES" in differ
                else ""
            )
            raise WeightsError(
                f"{source} was made for {theirs} but the config has {ours}, which would leave "
                f"{shown} random; set {theirs} in the config to detect with it{fine_tune}"
            )
        raise WeightsError(
            f"{source} leaves {shown} of this network uninitialised, so detection would give "
            "random results. Use weights trained for this config (check BACKBONE and "
            "NUM_CLASSES, or let the checkpoint's own config apply by not passing --config), "
            "or train first"
        )


def _refuse_wrong_shapes(net, selected, state, source) -> None:
    """For a file made for this config: name the tensors left out for their shape, with both
    shapes (a damaged or edited file, not a config to change)."""
    if state is None:
        return
    own = net.state_dict()
    wrong = [
        f"{key} is {tuple(state[key].shape)} in the file, {tuple(own[key].shape)} here"
        for key in own
        if key not in selected and key in state and tuple(state[key].shape) != own[key].shape
    ]
    if wrong:
        more = f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""
        raise WeightsError(
            f"{source}: tensor {'; '.join(wrong[:3])}{more}, though the file was made for this "
            "config; the file is damaged or was edited: use an intact copy"
        )
