"""Augmentation through torchvision.transforms.v2, applied to image, masks and boxes together.

A transform receives one dict per image, before molding::

    {"image": tv_tensors.Image [3, H, W] uint8,
     "masks": tv_tensors.Mask [N, H, W] uint8,
     "boxes": tv_tensors.BoundingBoxes [N, 4] XYXY (pixel edges),
     "labels": int64 [N] (negative for crowd regions)}

and returns a dict of the same keys. Any v2 transform (or a ``v2.Compose``) works this way, since
v2 transforms pass tv_tensors through and leave plain tensors (labels) alone. The trainer
recomputes boxes from the transformed masks, so boxes never drift from their masks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2


class RandomRotate90(v2.Transform):
    """Rotate by 0, 90, 180 or 270 degrees (uniformly), image, masks and boxes alike."""

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        return {"quarter": int(torch.randint(0, 4, ()).item())}

    # torchvision < 0.21 calls the hook ``_get_params``.
    _get_params = make_params

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if params["quarter"] == 0:
            return inpt
        return v2.functional.rotate(inpt, 90.0 * params["quarter"], expand=True)

    _transform = transform


def default_augmentation(
    flips: bool = True,
    rotations: bool = True,
    scale: tuple[float, float] | None = (0.8, 1.25),
    colour: float = 0.2,
) -> v2.Transform:
    """A sensible default: flips, 90-degree rotations, scale jitter and colour jitter.

    Args:
        flips: random horizontal and vertical flips.
        rotations: random multiples of 90 degrees.
        scale: zoom range of the scale jitter (half of the images), or None for none.
        colour: strength of brightness, contrast and saturation jitter (0 for none).
    Returns:
        a v2 transform taking and returning the dict described in the module docstring.
    """
    steps: list[v2.Transform] = []
    if flips:
        steps += [v2.RandomHorizontalFlip(), v2.RandomVerticalFlip()]
    if rotations:
        steps.append(RandomRotate90())
    if scale is not None:
        steps.append(v2.RandomApply([v2.RandomAffine(degrees=0.0, scale=scale)], p=0.5))
    if colour:
        steps.append(v2.ColorJitter(colour, colour, colour, hue=min(colour / 4, 0.5)))
    return v2.Compose(steps)


def to_sample(image: np.ndarray, masks: np.ndarray, class_ids: np.ndarray) -> dict[str, Any]:
    """Wrap a loaded image for a transform.

    Args:
        image: H x W x 3 uint8 RGB; masks: bool [H, W, N]; class_ids: int [N].
    Returns:
        the dict described in the module docstring.
    Raises:
        ValueError: masks of another size than the image, or not one class id per mask (a
            loader's bug that would otherwise train on misplaced targets).
    """
    height, width = image.shape[:2]
    if masks.ndim != 3 or masks.shape[:2] != (height, width):
        raise ValueError(
            f"load_mask returned masks of shape {masks.shape} for an image of {height} x "
            f"{width}: they must be [H, W, N] of the image's size"
        )
    if len(np.asarray(class_ids).reshape(-1)) != masks.shape[2]:
        raise ValueError(
            f"load_mask returned {masks.shape[2]} masks but {np.asarray(class_ids).size} "
            "class ids: give one class id per mask"
        )
    mask_t = torch.from_numpy(np.ascontiguousarray(masks.transpose(2, 0, 1))).to(torch.uint8)
    return {
        "image": tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)),
        "masks": tv_tensors.Mask(mask_t),
        "boxes": tv_tensors.BoundingBoxes(
            boxes_from_masks(mask_t), format="XYXY", canvas_size=(height, width)
        ),
        "labels": torch.as_tensor(np.asarray(class_ids), dtype=torch.int64),
    }


def apply_augmentation(
    augmentation: Callable[[dict], dict] | None, sample: dict[str, Any]
) -> dict[str, Any]:
    """Run ``augmentation`` on a sample and check it kept the parts consistent."""
    if augmentation is None:
        return sample
    out = augmentation(sample)
    if not isinstance(out, dict) or not {"image", "masks", "labels"} <= set(out):
        raise TypeError(
            "augmentation must take and return a dict with 'image', 'masks', 'boxes' and "
            f"'labels' (a torchvision.transforms.v2 transform does); got {type(out).__name__}"
        )
    if len(out["masks"]) != len(out["labels"]):
        raise ValueError(
            f"augmentation returned {len(out['masks'])} masks but {len(out['labels'])} labels; "
            "transforms that drop instances must drop both (v2.SanitizeBoundingBoxes does)"
        )
    return out


def boxes_from_masks(masks: torch.Tensor) -> torch.Tensor:
    """Tight pixel-edge boxes of masks.

    Args:
        masks: [N, H, W] (nonzero = inside).
    Returns:
        float32 [N, 4] (x1, y1, x2, y2), x2/y2 exclusive; zeros for an empty mask.
    """
    if masks.shape[0] == 0:
        return torch.zeros((0, 4))
    inside = masks != 0
    rows, cols = inside.any(dim=2), inside.any(dim=1)  # [N, H], [N, W]
    height, width = rows.shape[1], cols.shape[1]
    y1 = rows.float().argmax(dim=1)
    y2 = height - rows.flip(1).float().argmax(dim=1)
    x1 = cols.float().argmax(dim=1)
    x2 = width - cols.flip(1).float().argmax(dim=1)
    boxes = torch.stack([x1, y1, x2, y2], dim=1).float()
    return boxes * rows.any(dim=1, keepdim=True)
