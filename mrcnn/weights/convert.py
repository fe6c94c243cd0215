"""``mrcnn convert``: a Matterport .h5 as a .safetensors checkpoint that loads without h5py."""

from __future__ import annotations

import json
import os
from pathlib import Path

from safetensors.torch import save_file

from mrcnn import conventions
from mrcnn.config import Config
from mrcnn.modeling.network import MaskRCNNNet
from mrcnn.outputs import OutputError, atomic_output, check_new_outputs
from mrcnn.weights.completeness import require_complete
from mrcnn.weights.keras_h5 import read_matterport_h5
from mrcnn.weights.loading import CONVERTED_FORMAT, select_for_network


def convert_h5(
    source: str | os.PathLike,
    target: str | os.PathLike,
    config=None,
    overwrite: bool = False,
) -> tuple[object, list[str]]:
    """Write a Matterport .h5 as a .safetensors checkpoint that loads without h5py.

    Args:
        source: the Keras .h5 file.
        target: the .safetensors file to write (atomically).
        config: the model's :class:`~mrcnn.config.Config`; None infers BACKBONE and NUM_CLASSES
            from the file's shapes (:func:`mrcnn.weights.keras_mapping.infer_settings`) over the
            base
            Config. Matterport's conventions are adopted into it (see
            :func:`mrcnn.conventions.matterport`).
        overwrite: replace ``target`` if it exists.
    Returns:
        (config, notes): the config saved with the weights (its NETWORK_FLAVOUR is
        "matterport"), and notes on what was adopted or skipped.
    Raises:
        OutputError: ``target`` exists and not ``overwrite``, is ``source``, or is in a folder
        that does not exist; OutputWriteError: the disk is full; WeightsError: a bad file, or
        weights that do not fit the config.
    """
    target = Path(target)
    check_new_outputs([target], [source], overwrite, "OUT")
    if not target.parent.is_dir():
        raise OutputError(f"folder {target.parent} does not exist: create it first")
    state, _, found = read_matterport_h5(source)
    if config is None:
        config = Config.from_overrides(found)
    notes = conventions.reconcile(config, conventions.matterport(config), list(state), str(source))
    net = MaskRCNNNet(config)
    selected, skipped = select_for_network(net, state, (), str(source))
    if "NUM_CLASSES" in found:  # the file has the heads: a whole model, not a backbone
        require_complete(net, selected, str(source), config, found, state)
    metadata = {"format": CONVERTED_FORMAT, "config": json.dumps(config.to_dict(), default=str)}
    with atomic_output(target, [source]) as temporary:
        save_file({k: v.contiguous() for k, v in selected.items()}, str(temporary), metadata)
    return config, notes + skipped
