"""Reference models and synthetic inputs shared by the tests and the benchmarks.

No pretrained weights can be downloaded where the tests run, so comparisons with torchvision use
its Mask R-CNN with random weights, BatchNorm included, loaded into both models.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision
from torchvision.ops.misc import FrozenBatchNorm2d


def randomised_torchvision_maskrcnn(seed: int = 0, **kwargs) -> torch.nn.Module:
    """torchvision's ``maskrcnn_resnet50_fpn`` (91 classes) with random weights, in eval mode.

    BatchNorm running statistics and affine parameters are randomised as well, so that no layer
    is an identity and a mismatch in any of them shows. ``kwargs`` go to the constructor (e.g.
    ``box_score_thresh=0.0``).
    """
    torch.manual_seed(seed)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91, **kwargs
    )
    randomise_batchnorm(model, seed + 1)
    return model.eval()


def randomise_batchnorm(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Give every BatchNorm2d and FrozenBatchNorm2d under ``module`` random statistics and
    affine parameters (seeded), so that none is an identity; returns ``module``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for bn in module.modules():
            if isinstance(bn, (torch.nn.BatchNorm2d, FrozenBatchNorm2d)):
                n = bn.weight.shape[0]
                bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                bn.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                bn.weight.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
                bn.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return module


def photo_like_image(height: int, width: int, seed: int = 0, rectangles: int = 6) -> np.ndarray:
    """H x W x 3 uint8 RGB: smooth colour noise plus flat rectangles, a stand-in for a photo."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3)).astype(np.float32)
    upsampled = torch.nn.functional.interpolate(
        torch.from_numpy(small).permute(2, 0, 1)[None],
        size=(height, width),
        mode="bicubic",
        align_corners=False,
    )
    image = upsampled[0].permute(1, 2, 0).clamp(0, 255).numpy().astype(np.uint8)
    for _ in range(rectangles):
        y, x = rng.integers(0, height - 40), rng.integers(0, width - 40)
        h, w = rng.integers(20, height // 2), rng.integers(20, width // 2)
        image[y : y + h, x : x + w] = rng.integers(0, 256, 3)
    return image


def pair_by_class(ours: dict, theirs: dict) -> list[tuple[int, int, float, float]]:
    """Pair detections of two runs of one model (two runtimes, two precisions) one to one:
    each of ``ours``, in order, with the unpaired detection of ``theirs`` of the same class
    whose box is nearest (largest side difference).

    Args:
        ours, theirs: detect-style dicts: "class_ids" [N], "boxes" float [N, 4] (any one
            corner order, the same in both) and "masks" bool [H, W, N].
    Returns:
        (i in ours, j in theirs, largest box side difference in px, mask IoU) per pair; two
        empty masks have IoU 1.
    """
    free = set(range(len(theirs["class_ids"])))
    pairs = []
    for i in range(len(ours["class_ids"])):
        same = [j for j in sorted(free) if theirs["class_ids"][j] == ours["class_ids"][i]]
        if not same:
            continue
        diffs = [float(np.abs(ours["boxes"][i] - theirs["boxes"][j]).max()) for j in same]
        j = same[int(np.argmin(diffs))]
        free.discard(j)
        a, b = ours["masks"][..., i], theirs["masks"][..., j]
        union = np.logical_or(a, b).sum()
        iou = 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)
        pairs.append((i, j, min(diffs), iou))
    return pairs
