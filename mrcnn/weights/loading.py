"""Pretrained weights: download and cache, format detection, and conversion to this network.

Formats read by :func:`load_state_dict_file` / :func:`to_network_state`:

* this project's checkpoints (``{"format": "mrcnn", "model": state_dict, ...}``, ``.pt``) and
  plain state dicts of :class:`~mrcnn.modeling.network.MaskRCNNNet` (``.pt`` or ``.safetensors``);
* a state dict of torchvision's ``maskrcnn_resnet50_fpn`` (v1), old or new key names;
* a torchvision ResNet-50/101 ImageNet state dict (backbone only).

Nothing is unpickled beyond tensors and plain containers (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import os
import re
import urllib.error
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch

from mrcnn import conventions as conventions_lib
from mrcnn.modeling.network import CLASS_SPECIFIC_PREFIXES
from mrcnn.weights.formats import (
    CONVERTED_FORMAT,
    MATTERPORT_H5_FORMAT,
    WeightsError,
    missing_weights_message,
)
from mrcnn.weights.keras_h5 import (  # h5py itself is imported only for .h5 files
    is_keras_file,
    read_matterport_h5,
)

#: Published files, named as torchvision names them (the 8 hex digits are a SHA-256 prefix).
PRETRAINED = {
    "coco": "https://download.pytorch.org/models/maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
    "imagenet-resnet50": "https://download.pytorch.org/models/resnet50-0676ba61.pth",
    "imagenet-resnet101": "https://download.pytorch.org/models/resnet101-63fe2227.pth",
    "imagenet-resnet18": "https://download.pytorch.org/models/resnet18-f37072fd.pth",
    "imagenet-resnet34": "https://download.pytorch.org/models/resnet34-b627a593.pth",
}

#: The backbone of the "coco" weights (torchvision's maskrcnn_resnet50_fpn).
COCO_BACKBONE = "resnet50"

#: torchvision Mask R-CNN key -> this network's key (first match wins).
_TORCHVISION_MASKRCNN_RULES = [
    (r"^backbone\.body\.", "backbone.body."),
    (r"^backbone\.fpn\.inner_blocks\.(\d+)\.(?:0\.)?", r"fpn.lateral.\1."),
    (r"^backbone\.fpn\.layer_blocks\.(\d+)\.(?:0\.)?", r"fpn.output.\1."),
    (r"^rpn\.head\.conv\.(?:0\.0\.)?", "rpn.conv."),
    (r"^rpn\.head\.cls_logits\.", "rpn.objectness."),
    (r"^rpn\.head\.bbox_pred\.", "rpn.deltas."),
    (r"^roi_heads\.box_head\.", "box_head."),
    (r"^roi_heads\.box_predictor\.cls_score\.", "box_head.class_logits."),
    (r"^roi_heads\.box_predictor\.bbox_pred\.", "box_head.deltas."),
    (r"^roi_heads\.mask_head\.(\d+)\.0\.", r"mask_head.convs.\1."),
    (r"^roi_heads\.mask_predictor\.conv5_mask\.", "mask_head.deconv."),
    (r"^roi_heads\.mask_predictor\.mask_fcn_logits\.", "mask_head.logits."),
]
_OLD_MASK_CONV = re.compile(r"^roi_heads\.mask_head\.mask_fcn(\d+)\.")

#: torchvision's anchor aspect ratios in this project's width/height meaning, in the order of
#: its RPN head's output channels.
TORCHVISION_ANCHOR_RATIOS = (2.0, 1.0, 0.5)


# ------------------------------------------------------------------------------------------------
# Download and cache
# ------------------------------------------------------------------------------------------------
def cache_dir() -> Path:
    """Where downloaded weights live: ``$TORCH_HOME/hub/checkpoints`` (torchvision's cache)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def _hash_prefix(url: str) -> str | None:
    match = re.search(r"-([0-9a-f]{8,})\.\w+$", url)
    return match.group(1) if match else None


def pretrained_file(name: str, progress: bool = True) -> Path:
    """Path of a published weights file, downloading it into the cache when missing.

    Args:
        name: a key of :data:`PRETRAINED` ("coco", "imagenet-resnet50", ...).
    Raises:
        WeightsError: offline or download failed (saying which file to fetch and where to
            put it), or the downloaded file's SHA-256 does not match its published prefix.
    """
    if name not in PRETRAINED:
        raise WeightsError(f"unknown pretrained weights {name!r}; known: {', '.join(PRETRAINED)}")
    url = PRETRAINED[name]
    target = cache_dir() / url.rsplit("/", 1)[-1]
    if target.is_file():
        return target
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(
            url, str(target), hash_prefix=_hash_prefix(url), progress=progress
        )
    except RuntimeError as error:  # torch.hub's hash mismatch
        target.unlink(missing_ok=True)
        raise WeightsError(
            f"downloaded {url} but its checksum is wrong ({error}); the file was deleted, try again"
        ) from error
    except (urllib.error.URLError, OSError) as error:
        target.unlink(missing_ok=True)
        raise WeightsError(
            f"cannot download the {name} weights ({error}). On a machine with internet, fetch "
            f"{url} and put the file at {target} (or set TORCH_HOME to the folder holding "
            "hub/checkpoints/), or pass the file's path instead of the name"
        ) from error
    return target


# ------------------------------------------------------------------------------------------------
# Reading and recognising
# ------------------------------------------------------------------------------------------------
def load_state_dict_file(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a weights file without executing pickled code.

    Returns:
        (state_dict, extras): the tensors, and for this project's checkpoints the other entries
        (config, epoch, optimizer, ...); empty for plain state dicts.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(missing_weights_message(path))
    if is_keras_file(path):
        state, sources, made = read_matterport_h5(path)
        return state, {"format": MATTERPORT_H5_FORMAT, "keras_sources": sources, "made_for": made}
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path)), safetensors_extras(path)
        except Exception as error:  # noqa: BLE001 - safetensors raises its own error types
            raise WeightsError(f"cannot read {path} as safetensors: {error}") from error
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling failure means the same here
        raise WeightsError(unreadable_weights_message(path, error)) from error
    if isinstance(data, Mapping) and data.get("format") == "mrcnn":
        if not isinstance(data.get("model"), Mapping):
            raise WeightsError(f"{path}: mrcnn checkpoint without a 'model' state dict")
        extras = {k: v for k, v in data.items() if k != "model"}
        return dict(data["model"]), extras
    if (
        isinstance(data, Mapping)
        and "state_dict" in data
        and isinstance(data["state_dict"], Mapping)
    ):
        data = data["state_dict"]
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise WeightsError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return dict(data), {}


def safetensors_extras(path: Path) -> dict:
    """The config saved in a .safetensors written by ``mrcnn convert`` ({} for others)."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != CONVERTED_FORMAT or "config" not in metadata:
        return {}
    return {"format": CONVERTED_FORMAT, "config": json.loads(metadata["config"])}


def unreadable_weights_message(path: Path, error: Exception) -> str:
    """One line saying what ``path`` is, since torch.load(weights_only=True) refused it, and
    what to pass instead."""
    head = path.read_bytes()[:64] if path.is_file() else b""
    global_name = re.search(r"GLOBAL ([\w.]+)", str(error))
    if global_name:
        return (
            f"{path} holds a pickled Python object ({global_name.group(1)}), not a state dict; "
            "loading it would run code from the file. Where it was made, save its weights with "
            "torch.save(model.state_dict(), path) and pass that file"
        )
    if head.startswith(b"\x89HDF"):
        return f"{path} is an HDF5 file (Keras .h5?): rename it to .h5, or convert it first"
    if not head:
        return f"{path} is empty: the download or copy did not finish; fetch it again"
    if _looks_like_text(head):
        start = " ".join(head.decode("utf-8", "replace").split())[:40]
        return (
            f"{path} is a text file (it starts with {start!r}), not weights; pass a "
            ".pt/.pth/.safetensors checkpoint, or 'coco', 'imagenet' or 'last'"
        )
    return (
        f"cannot read {path} as PyTorch weights ({type(error).__name__}: "
        f"{' '.join(str(error).split())[:200]}); pass a .pt/.pth/.safetensors state dict"
    )


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def detect_format(state: Mapping[str, torch.Tensor]) -> str:
    """ "mrcnn", "torchvision-maskrcnn" or "torchvision-resnet" for a state dict."""
    keys = set(state)
    if any(k.startswith("roi_heads.") for k in keys) and any(
        k.startswith("backbone.body.") for k in keys
    ):
        return "torchvision-maskrcnn"
    if "conv1.weight" in keys and any(k.startswith("layer4.") for k in keys):
        return "torchvision-resnet"
    if any(
        k.startswith(("backbone.body.", "fpn.", "rpn.", "box_head.", "mask_head.")) for k in keys
    ):
        return "mrcnn"
    sample = ", ".join(sorted(keys)[:5])
    raise WeightsError(f"unrecognised weights layout (first keys: {sample})")


def _rename_torchvision_maskrcnn(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        key = _OLD_MASK_CONV.sub(lambda m: f"roi_heads.mask_head.{int(m.group(1)) - 1}.0.", key)
        for pattern, replacement in _TORCHVISION_MASKRCNN_RULES:
            new, count = re.subn(pattern, replacement, key)
            if count:
                out[new] = value
                break
    return out


def _reorder_rpn_anchors(state: dict[str, torch.Tensor], ratios: Iterable[float]) -> list[str]:
    """Permute torchvision's RPN outputs from its anchor order to the config's ratio order.

    Returns the keys to drop (with a reason printed) when the config's ratio set differs.
    """
    ratios = [float(r) for r in ratios]
    source = list(TORCHVISION_ANCHOR_RATIOS)
    if sorted(ratios) != sorted(source):
        return [
            "rpn.objectness.weight",
            "rpn.objectness.bias",
            "rpn.deltas.weight",
            "rpn.deltas.bias",
        ]
    order = [source.index(r) for r in ratios]
    if order == list(range(len(source))):
        return []
    index = torch.tensor(order)
    delta_index = (index[:, None] * 4 + torch.arange(4)).reshape(-1)
    for name, idx in (("rpn.objectness", index), ("rpn.deltas", delta_index)):
        for suffix in (".weight", ".bias"):
            state[name + suffix] = state[name + suffix][idx]
    return []


def to_network_state(
    state: Mapping[str, torch.Tensor], config
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Convert any supported state dict to this network's key names.

    Returns:
        (state, notes): the converted tensors and human-readable notes on what was adapted.
    """
    kind = detect_format(state)
    notes: list[str] = []
    if kind == "torchvision-resnet":
        out = {f"backbone.body.{k}": v for k, v in state.items() if not k.startswith("fc.")}
        notes.append("ImageNet ResNet weights: backbone only, the other layers keep their init")
        return out, notes
    if kind == "mrcnn":
        return dict(state), notes
    out = _rename_torchvision_maskrcnn(state)
    for key in _reorder_rpn_anchors(out, config.RPN_ANCHOR_RATIOS):
        out.pop(key, None)
        notes.append(f"skipped {key}: RPN_ANCHOR_RATIOS differ from torchvision's (0.5, 1, 2)")
    return out, notes


def class_specific(key: str) -> bool:
    """Whether a parameter's shape depends on NUM_CLASSES."""
    return key.startswith(CLASS_SPECIFIC_PREFIXES)


def trained_conventions(
    state: Mapping[str, torch.Tensor], extras: Mapping, config=None
) -> dict | None:
    """The conventions the weights were trained with (see :mod:`mrcnn.conventions`).

    torchvision's Mask R-CNN and ResNet weights carry torchvision's; Matterport's .h5 files
    Matterport's (:func:`mrcnn.conventions.matterport`, which takes the anchor and std-dev
    settings from ``config`` where the user set them); this project's checkpoints the
    conventions of the config saved with them. None for a plain state dict of this network,
    which records none.
    """
    if extras.get("format") == MATTERPORT_H5_FORMAT:
        return conventions_lib.matterport(config)
    if detect_format(state).startswith("torchvision"):
        return dict(conventions_lib.TORCHVISION)
    saved = extras.get("config") if extras.get("format") in ("mrcnn", CONVERTED_FORMAT) else None
    if isinstance(saved, Mapping):
        return conventions_lib.from_config_dict(saved)
    return None


def translate_exclude(exclude: Iterable[str] | None, extras: Mapping) -> list[str]:
    """``exclude`` with Matterport's Keras layer names replaced by the parameters built from
    them, for weights read from a .h5 (other entries, and other formats, pass unchanged)."""
    if isinstance(exclude, str):
        exclude = [exclude]
    exclude = list(exclude or ())
    sources = extras.get("keras_sources") or {}
    if not sources:
        return exclude
    keras_names = {name for layers in sources.values() for name in layers}
    out = [e for e in exclude if e not in keras_names and e not in KERAS_LAYERS_WITHOUT_WEIGHTS]
    out += [key for key, layers in sources.items() if set(layers) & set(exclude)]
    return out


#: Matterport layer names that hold no weights (e.g. in the balloon sample's exclude list).
KERAS_LAYERS_WITHOUT_WEIGHTS = ("mrcnn_bbox", "mrcnn_class", "rpn_class_xxx", "mrcnn_detection")


def adopt_flavour(config, trained_with: Mapping | None, source: str) -> list[str]:
    """Give ``config`` the NETWORK_FLAVOUR the weights were trained in, before the network they
    load into is chosen (a Matterport .h5 selects "matterport" for an ordinary Config).

    Returns:
        the note of the change, or [] when the flavour stays (then no new network is needed).
    Raises:
        ConventionsError: the user set another NETWORK_FLAVOUR (not in KEEP_CONVENTIONS).
    """
    wanted = (trained_with or {}).get("NETWORK_FLAVOUR")
    before = getattr(config, "NETWORK_FLAVOUR", "torchvision")
    if wanted is None or wanted == before:
        return []
    notes = conventions_lib.reconcile(
        config, {"NETWORK_FLAVOUR": wanted}, ["backbone.body.conv1.weight"], source
    )
    return notes if config.NETWORK_FLAVOUR != before else []


def select_for_network(
    net: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    exclude: Iterable[str] = (),
    source: str = "weights",
    skip_deeper_blocks: bool = False,
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The tensors of ``state`` that :func:`load_into_network` would copy into ``net``.

    Args:
        exclude: names, name prefixes or regular expressions of parameters to skip, or
            "class-specific" (the layers whose shape depends on NUM_CLASSES).
        source: what to call the weights in messages (usually the file path).
        skip_deeper_blocks: skip, with a note, the residual blocks of a deeper ResNet than
            ``net``'s (ResNet-101 weights as the start of a ResNet-50's training, as
            Matterport's nucleus sample does); else they are refused like any other tensor
            the network lacks (for detection that is a wrong BACKBONE).
    Returns:
        (selected, notes): the tensors by name, and notes on what was skipped.
    Raises:
        WeightsError: a tensor's shape differs from the network's (other than in the
            class-specific layers, which are then skipped with a note), or nothing matched.
    """
    exclude = [exclude] if isinstance(exclude, str) else list(exclude)
    own = net.state_dict()
    selected, notes, mismatched, deeper = {}, [], [], []
    for key, value in state.items():
        if _excluded(key, exclude) or (key.endswith("num_batches_tracked") and key not in own):
            continue
        if key not in own:
            if skip_deeper_blocks and _extra_resnet_block(key, own):
                deeper.append(key)
            else:
                mismatched.append(f"{key} (not in this network)")
            continue
        if tuple(own[key].shape) != tuple(value.shape):
            if class_specific(key):
                notes.append(
                    f"skipped {key}: shape {tuple(value.shape)} in {source} vs "
                    f"{tuple(own[key].shape)} here (NUM_CLASSES differs); it keeps its init"
                )
                continue
            mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}")
            continue
        selected[key] = value
    if mismatched:
        shown = "; ".join(mismatched[:5])
        more = f" and {len(mismatched) - 5} more" if len(mismatched) > 5 else ""
        raise WeightsError(
            f"{source} does not fit this network: {shown}{more}. Check BACKBONE and the other "
            "layer sizes in the config"
        )
    if not selected:
        raise WeightsError(f"{source}: no tensor matched this network")
    if deeper:
        notes.append(_deeper_resnet_note(deeper, source))
    return selected, notes


def _excluded(key: str, exclude: list[str]) -> bool:
    """Whether ``exclude`` (names, prefixes, regular expressions or "class-specific") names
    the tensor ``key``."""
    for pattern in exclude:
        if pattern == "class-specific":
            if class_specific(key):
                return True
        elif key.startswith(pattern) or re.search(pattern, key):
            return True
    return False


#: A ResNet block's tensor: backbone.body.layer<stage>.<block>.<rest>.
_RESNET_BLOCK = re.compile(r"^backbone\.body\.(layer\d)\.(\d+)\.")


def _extra_resnet_block(key: str, own: Mapping[str, torch.Tensor]) -> bool:
    """Whether ``key`` belongs to a residual block past the last one this network's stage has
    (a ResNet-101 file's layer3.6 ... layer3.22 in a ResNet-50). Such weights are skipped, as
    Keras's by-name loading skipped layers the model lacks: Matterport's nucleus sample starts
    its ResNet-50 from the ResNet-101 COCO model this way."""
    match = _RESNET_BLOCK.match(key)
    if not match:
        return False
    stage, block = match.group(1), int(match.group(2))
    prefix = f"backbone.body.{stage}."
    blocks = {int(k[len(prefix) :].split(".", 1)[0]) for k in own if k.startswith(prefix)}
    return bool(blocks) and block > max(blocks)


def _deeper_resnet_note(keys: list[str], source: str) -> str:
    stages: dict[str, set[int]] = {}
    for key in keys:
        match = _RESNET_BLOCK.match(key)
        stages.setdefault(match.group(1), set()).add(int(match.group(2)))
    blocks = ", ".join(f"{s}.{min(b)}-{max(b)}" for s, b in sorted(stages.items()))
    return (
        f"skipped {len(keys)} tensors of {source}'s deeper ResNet ({blocks}): this network's "
        "BACKBONE has fewer blocks; the blocks both have are loaded"
    )


def load_selected(
    net: torch.nn.Module, selected: Mapping[str, torch.Tensor], source: str = "weights"
) -> list[str]:
    """Copy the tensors chosen by :func:`select_for_network`; notes on what kept its init."""
    missing = sorted(set(net.state_dict()) - set(selected))
    net.load_state_dict(dict(selected), strict=False)
    if missing:
        heads = sorted({k.split(".")[0] for k in missing})
        return [f"{len(missing)} tensors not in {source} keep their init ({', '.join(heads)})"]
    return []


def load_into_network(
    net: torch.nn.Module,
    state: Mapping[str, torch.Tensor],
    exclude: Iterable[str] = (),
    source: str = "weights",
) -> list[str]:
    """Copy tensors into ``net`` by name: :func:`select_for_network`, then
    :func:`load_selected`. Returns notes on what was skipped."""
    selected, notes = select_for_network(net, state, exclude, source)
    return notes + load_selected(net, selected, source)
