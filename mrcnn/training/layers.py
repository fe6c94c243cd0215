"""Which layers train, and the optimiser over them: Matterport's ``layers`` presets (or a
regular expression over parameter names), BatchNorm's mode, SGD/AdamW and the warm-up."""

from __future__ import annotations

import re

import torch
from torch import nn

_HEADS = r"fpn|rpn|box_head|mask_head"
#: ``layers`` presets: regular expressions over MaskRCNNNet parameter names.
LAYER_PRESETS = {
    "heads": rf"^({_HEADS})\.",
    "5+": rf"^(backbone\.body\.layer4|{_HEADS})\.",
    "4+": rf"^(backbone\.body\.layer[34]|{_HEADS})\.",
    "3+": rf"^(backbone\.body\.layer[234]|{_HEADS})\.",
    "2+": rf"^(backbone\.body\.layer[1234]|{_HEADS})\.",
    "all": r".*",
}


def layer_regex(layers: str) -> str:
    """The regular expression of a ``layers`` preset, or ``layers`` itself."""
    return LAYER_PRESETS.get(layers, layers)


def set_trainable(net: nn.Module, layers: str) -> list[str]:
    """Freeze every parameter except those whose name matches ``layers``; return the trainable
    names. BatchNorm layers of frozen parts are put in eval mode by :func:`set_train_mode`.

    Raises:
        ValueError: ``layers`` is not a valid regular expression or matches nothing.
    """
    try:
        pattern = re.compile(layer_regex(layers))
    except re.error as error:
        raise ValueError(
            f"layers={layers!r} is neither a preset ({', '.join(LAYER_PRESETS)}) nor a valid "
            f"regular expression: {error}"
        ) from error
    trainable = []
    for name, parameter in net.named_parameters():
        parameter.requires_grad_(bool(pattern.search(name)))
        if parameter.requires_grad:
            trainable.append(name)
    if not trainable:
        raise ValueError(
            f"layers={layers!r} matches no parameter; use a preset ({', '.join(LAYER_PRESETS)}) "
            "or a regular expression over names such as backbone.body.layer4.0.conv1.weight"
        )
    return trainable


def set_train_mode(net: nn.Module, train_bn: bool) -> None:
    """Training mode, except BatchNorm layers that TRAIN_BN or freezing keeps fixed."""
    net.train()
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            frozen = not any(p.requires_grad for p in module.parameters(recurse=False))
            if not train_bn or frozen:
                module.eval()


def build_optimizer(
    net: nn.Module,
    learning_rate: float,
    momentum: float,
    weight_decay: float,
    kind: str = "sgd",
) -> torch.optim.Optimizer:
    """SGD (or AdamW) over the trainable parameters; no weight decay on biases and norm
    parameters (1-dimensional tensors), which decay would only pull towards zero for no benefit.

    ``kind`` is the config's OPTIMIZER: "sgd" (Matterport's, with ``momentum``) or "adamw"
    (``momentum`` is its beta1), which converges faster when training from random weights.
    Config validation (:mod:`mrcnn.config_checks`) has refused any other value.
    """
    decay, no_decay = [], []
    for parameter in net.parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if kind.lower() == "adamw":
        return torch.optim.AdamW(groups, lr=learning_rate, betas=(momentum, 0.999))
    return torch.optim.SGD(groups, lr=learning_rate, momentum=momentum)


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Learning-rate factor of step ``step`` (0-based): linear from 1/warmup_steps up to 1."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps
