"""Our network, given torchvision's weights, must give torchvision's detections.

torchvision's Mask R-CNN is the reference no one here wrote. Both models run in float64 with
the same randomly initialised weights (BatchNorm statistics and affine parameters randomised
too, so that no layer is an identity) on images of different sizes and aspect ratios.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from mrcnn.config import TorchvisionCocoConfig
from mrcnn.model import MaskRCNN

IMAGE_SHAPES = [(480, 640), (600, 400), (300, 900)]


def randomised_torchvision_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91, box_score_thresh=0.0
    )
    generator = torch.Generator().manual_seed(seed + 1)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
            module.weight.data.copy_(torch.rand(n, generator=generator) * 0.5 + 0.75)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


def smooth_image(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A photo-like test image: blurred colour noise plus a few flat rectangles."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (shape[0] // 16 + 1, shape[1] // 16 + 1, 3)).astype(np.float32)
    image = (
        torch.nn.functional.interpolate(
            torch.from_numpy(small).permute(2, 0, 1)[None],
            size=shape,
            mode="bicubic",
            align_corners=False,
        )[0]
        .permute(1, 2, 0)
        .clamp(0, 255)
        .numpy()
        .astype(np.uint8)
    )
    for _ in range(4):
        y, x = rng.integers(0, shape[0] - 40), rng.integers(0, shape[1] - 40)
        h, w = rng.integers(20, shape[0] // 2), rng.integers(20, shape[1] // 2)
        image[y : y + h, x : x + w] = rng.integers(0, 256, 3)
    return image


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    reference = randomised_torchvision_model().double()
    path = tmp_path_factory.mktemp("weights") / "maskrcnn_random.pth"
    torch.save(reference.state_dict(), path)
    config = TorchvisionCocoConfig.from_overrides(
        {"DETECTION_MIN_CONFIDENCE": 0.0, "DEVICE": "cpu"}
    )
    ours = MaskRCNN("inference", config, model_dir=str(path.parent))
    ours.load_weights(str(path))
    ours.to(torch.float64)
    return reference, ours


@pytest.mark.parametrize("index", range(len(IMAGE_SHAPES)))
def test_same_detections_as_torchvision(models, index):
    reference, ours = models
    image = smooth_image(IMAGE_SHAPES[index], seed=index)
    with torch.inference_mode():
        tensor = torch.from_numpy(image).permute(2, 0, 1).double() / 255.0
        expected = reference([tensor])[0]
    result = ours.detect([image])[0]

    n = len(expected["scores"])
    assert n > 10, "the reference should find many (random) detections"
    assert len(result["scores"]) == n
    np.testing.assert_allclose(result["scores"], expected["scores"].numpy(), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(result["class_ids"], expected["labels"].numpy())
    # float32 in the public result: compare against the float64 reference at 1e-3 px.
    np.testing.assert_allclose(result["boxes"], expected["boxes"].numpy(), atol=1e-3, rtol=0)
    assert result["masks"].shape == (*image.shape[:2], n)
    reference_masks = (expected["masks"][:, 0] > 0.5).numpy()
    ious = [mask_iou(result["masks"][:, :, i], reference_masks[i]) for i in range(n)]
    assert min(ious) >= 0.99, f"lowest mask IoU {min(ious):.4f}"
    # The Matterport-style rois are the same boxes, (y1, x1, y2, x2) and rounded.
    np.testing.assert_array_equal(result["rois"], np.round(result["boxes"][:, [1, 0, 3, 2]]))
