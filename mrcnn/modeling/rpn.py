"""Region Proposal Network head: an objectness logit and box deltas for every anchor."""

from __future__ import annotations

import torch
from torch import nn

from mrcnn.modeling.conv_fusion import conv_relu


class RPNHead(nn.Module):
    """Shared 3x3 conv, then per-anchor objectness and (dx, dy, dw, dh) deltas.

    The same weights run over every pyramid level. ``anchor_stride`` > 1 evaluates every k-th
    cell only (RPN_ANCHOR_STRIDE). Objectness is one logit per anchor (sigmoid), which is what
    torchvision's weights hold; Matterport's two-way softmax is the same model with the
    background logit fixed at 0.
    """

    def __init__(
        self,
        channels: int,
        anchors_per_location: int,
        anchor_stride: int = 1,
        hidden: int | None = None,
    ) -> None:
        super().__init__()
        hidden = channels if hidden is None else hidden  # Matterport's shared conv has 512
        self.conv = nn.Conv2d(channels, hidden, 3, stride=anchor_stride, padding=1)
        self.objectness = nn.Conv2d(hidden, anchors_per_location, 1)
        self.deltas = nn.Conv2d(hidden, anchors_per_location * 4, 1)
        for conv in (self.conv, self.objectness, self.deltas):
            nn.init.normal_(conv.weight, std=0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Score every anchor of every level.

        Args:
            features: [P2..P6], each [B, C, H_l, W_l].
        Returns:
            (objectness, deltas): [B, A] logits and [B, A, 4] (dx, dy, dw, dh) deltas (before
            RPN_BBOX_STD_DEV), with A anchors ordered level by level, then location-major,
            anchor-minor, the order of :func:`mrcnn.modeling.anchors.pyramid_anchors`.
        """
        logits, deltas = [], []
        for feature in features:
            hidden = conv_relu(self.conv, feature)
            batch = hidden.shape[0]
            logits.append(self.objectness(hidden).permute(0, 2, 3, 1).reshape(batch, -1))
            d = self.deltas(hidden)
            anchors = d.shape[1] // 4
            d = d.view(batch, anchors, 4, d.shape[2], d.shape[3]).permute(0, 3, 4, 1, 2)
            deltas.append(d.reshape(batch, -1, 4))
        return torch.cat(logits, dim=1), torch.cat(deltas, dim=1)
