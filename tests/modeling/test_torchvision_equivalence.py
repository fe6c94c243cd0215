"""Our network, given torchvision's weights, must give torchvision's detections.

torchvision's Mask R-CNN is the reference no one here wrote. Both models run in float64 with
the same randomly initialised weights (BatchNorm statistics and affine parameters randomised
too, so that no layer is an identity) on images of different sizes and aspect ratios, resized
by torchvision's default sizes (800 / 1333) and by a smaller pair set on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrcnn.config import TorchvisionCocoConfig
from mrcnn.model import MaskRCNN
from mrcnn.testing import photo_like_image, randomised_torchvision_maskrcnn

IMAGE_SHAPES = [(480, 640), (600, 400), (300, 900)]
#: (shorter side, longer side limit) each case resizes to, on both sides: torchvision's default
#: for the first; smaller ones, as users set them, for the others (float64 is slow on a CPU).
#: The second is sized by its shorter side, the third by the limit on its longer side. (The
#: third at 384/640 gets two detections of equal score, whose order float32 does not keep.)
SIZES = [(800, 1333), (384, 640), (512, 853)]


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


@pytest.fixture(scope="module")
def models(module_tmp):
    """size -> (torchvision's model, ours) resizing to ``size``, with the same weights."""
    reference = randomised_torchvision_maskrcnn(box_score_thresh=0.0).double()
    path = module_tmp.mktemp("weights") / "maskrcnn_random.pth"
    torch.save(reference.state_dict(), path)
    built = {}

    def at(size: tuple[int, int]):
        if size not in built:
            config = TorchvisionCocoConfig.from_overrides(
                {
                    "DETECTION_MIN_CONFIDENCE": 0.0,
                    "DEVICE": "cpu",
                    "IMAGE_MIN_DIM": size[0],
                    "IMAGE_MAX_DIM": size[1],
                }
            )
            ours = MaskRCNN("inference", config, model_dir=str(path.parent))
            ours.load_weights(str(path))
            built[size] = ours.to(torch.float64)
        reference.transform.min_size, reference.transform.max_size = (size[0],), size[1]
        return reference, built[size]

    return at


@pytest.mark.parametrize("index", range(len(IMAGE_SHAPES)))
def test_same_detections_as_torchvision(models, index):
    reference, ours = models(SIZES[index])
    image = photo_like_image(*IMAGE_SHAPES[index], seed=index, rectangles=4)
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
