"""The two ROI heads: box head (class + box refinement) and mask head (soft masks per class)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.modeling.conv_fusion import autocast_dtype_of, cached_weights, conv_relu, exporting


class BoxHead(nn.Module):
    """Two fully connected layers, then class logits and class-specific box deltas.

    forward(pooled [K, C, P, P]) -> (logits [K, num_classes], deltas [K, num_classes, 4]);
    deltas are (dx, dy, dw, dh) before BBOX_STD_DEV.
    """

    def __init__(self, channels: int, pool_size: int, hidden: int, num_classes: int) -> None:
        super().__init__()
        self.fc6 = nn.Linear(channels * pool_size * pool_size, hidden)
        self.fc7 = nn.Linear(hidden, hidden)
        self.class_logits = nn.Linear(hidden, num_classes)
        self.deltas = nn.Linear(hidden, num_classes * 4)
        nn.init.normal_(self.class_logits.weight, std=0.01)
        nn.init.normal_(self.deltas.weight, std=0.001)
        nn.init.zeros_(self.class_logits.bias)
        nn.init.zeros_(self.deltas.bias)

    def forward(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._reads_channels_last(pooled):
            # A (y, x, channel)-ordered view of channels-last ROIs, read without reordering
            # them; fc6's columns are reordered to match instead, once (cached_weights).
            rows = pooled.permute(0, 2, 3, 1).flatten(1)  # (not reshape: 0 ROIs is a valid batch)
            x = F.relu(F.linear(rows, *self._fc6_channels_last(pooled)), inplace=True)
        else:
            x = F.relu(self.fc6(pooled.flatten(1)), inplace=True)
        x = F.relu(self.fc7(x), inplace=True)
        classes = self.class_logits.out_features
        return self.class_logits(x), self.deltas(x).view(x.shape[0], classes, 4)

    def _reads_channels_last(self, pooled: torch.Tensor) -> bool:
        """Inference on channels-last ROIs (what pyramid ROIAlign returns), where flattening
        in (channel, y, x) order would copy them all."""
        return (
            not torch.is_grad_enabled()
            and not exporting()
            and pooled.dim() == 4
            and pooled.shape[2] * pooled.shape[3] > 1
            and pooled.permute(0, 2, 3, 1).is_contiguous()
        )

    def _fc6_channels_last(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fc6's (weight [hidden, P * P * C] in (y, x, channel) column order, bias), in the
        autocast dtype where autocast is on."""
        weight, bias = self.fc6.weight, self.fc6.bias
        dtype = autocast_dtype_of(pooled) or weight.dtype
        channels, height, width = pooled.shape[1:]

        def reorder():
            columns = weight.view(len(weight), channels, height, width).permute(0, 2, 3, 1)
            return columns.reshape(len(weight), -1).to(dtype), bias.to(dtype)

        return cached_weights(self, ("fc6 channels last", dtype), (weight, bias), reorder)


class MaskHead(nn.Module):
    """Four 3x3 convs, a 2x transposed conv, then one mask logit map per class.

    forward(pooled [K, C, S, S]) -> logits [K, num_classes, 2S, 2S].
    """

    def __init__(self, channels: int, num_classes: int, hidden: int = 256) -> None:
        super().__init__()
        layers, c = [], channels
        for _ in range(4):
            layers.append(nn.Conv2d(c, hidden, 3, padding=1))
            c = hidden
        self.convs = nn.ModuleList(layers)
        self.deconv = nn.ConvTranspose2d(hidden, hidden, 2, stride=2)
        self.logits = nn.Conv2d(hidden, num_classes, 1)
        for conv in [*self.convs, self.deconv, self.logits]:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        x = pooled
        for conv in self.convs:
            x = conv_relu(conv, x)
        return self.logits(F.relu(self.deconv(x), inplace=True))


def select_class_masks(logits: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
    """The mask logit map of each ROI's class.

    Args:
        logits: [K, num_classes, M, M].
        class_ids: int64 [K].
    Returns:
        [K, M, M].
    """
    return logits[torch.arange(len(class_ids), device=logits.device), class_ids]
