"""Feature Pyramid Network: C2-C5 to P2-P6, all with TOP_DOWN_PYRAMID_SIZE channels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mrcnn.modeling.conv_fusion import conv_add


class FeaturePyramid(nn.Module):
    """Top-down pathway with lateral connections, plus P6 subsampled from P5.

    forward([C2, C3, C4, C5]) -> [P2, P3, P4, P5, P6]; P_k has the spatial size of C_k and P6
    takes every other cell of P5 (strides 4, 8, 16, 32, 64).
    """

    def __init__(self, in_channels: tuple[int, ...], channels: int = 256) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in in_channels)
        self.output = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1) for _ in in_channels
        )
        for conv in [*self.lateral, *self.output]:
            nn.init.kaiming_uniform_(conv.weight, a=1)
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        top = self.lateral[-1](features[-1])
        outputs = [self.output[-1](top)]
        for level in range(len(features) - 2, -1, -1):
            # Upsample to the lateral map's own size: odd sizes make "x2" wrong by a cell.
            upsampled = F.interpolate(top, size=features[level].shape[-2:], mode="nearest")
            top = conv_add(self.lateral[level], features[level], upsampled)
            outputs.insert(0, self.output[level](top))
        # A 1x1 max-pool with stride 2 just keeps every other cell: slicing gives the same
        # values without the pooling kernel.
        outputs.append(outputs[-1][:, :, ::2, ::2])
        return outputs
