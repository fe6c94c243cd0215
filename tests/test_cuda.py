"""The same code on a GPU: ROIAlign, detection and a few training steps with each AMP mode.

Skipped without CUDA (CI has no GPU); run ``pytest tests/test_cuda.py`` on a machine with one.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mrcnn.model import MaskRCNN
from mrcnn.modeling.roi_align import pyramid_roi_align
from mrcnn.testing import photo_like_image
from tests.helpers.tiny_model import tiny_model
from tests.helpers.training import config, conv_output_dtypes, shapes

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)"
)

STRIDES = [4, 8, 16, 32]


def test_roi_align_on_cuda_matches_the_cpu_forward_and_gradient():
    generator = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 16, 96 // 2**i, 128 // 2**i, generator=generator) for i in range(4)]
    xy = torch.rand(300, 2, generator=generator) * 400 - 20
    wh = torch.rand(300, 2, generator=generator) * 300
    boxes = torch.cat([xy, xy + wh], dim=1).double()
    image_index = torch.randint(0, 2, (300,), generator=generator)
    upstream = torch.randn(300, 16, 7, 7, generator=generator, dtype=torch.float64)

    def run(device):
        leaves = [m.double().to(device).requires_grad_() for m in maps]
        out = pyramid_roi_align(leaves, boxes.to(device), image_index.to(device), 7, STRIDES)
        (out * upstream.to(device)).sum().backward()
        return out.detach().cpu(), [leaf.grad.cpu() for leaf in leaves]

    cpu_out, cpu_grads = run("cpu")
    gpu_out, gpu_grads = run("cuda")
    torch.testing.assert_close(gpu_out, cpu_out, rtol=1e-10, atol=1e-10)
    for gpu, cpu in zip(gpu_grads, cpu_grads, strict=True):
        torch.testing.assert_close(gpu, cpu, rtol=1e-10, atol=1e-10)


def test_detect_on_cuda_matches_the_cpu_in_float64():
    image = photo_like_image(150, 200, seed=3)
    model = tiny_model().to(torch.float64)
    on_cpu = model.detect([image])[0]
    on_gpu = model.to(torch.device("cuda")).detect([image])[0]
    assert len(on_cpu["class_ids"]) > 0
    assert on_gpu["class_ids"].tolist() == on_cpu["class_ids"].tolist()
    assert abs(on_gpu["rois"] - on_cpu["rois"]).max() <= 1
    assert (on_gpu["masks"] != on_cpu["masks"]).mean() < 0.01


@pytest.mark.parametrize("amp", [None, "bf16", "fp16"])
def test_training_steps_on_cuda_then_loading_on_the_cpu(tmp_path, amp):
    torch.manual_seed(0)
    cfg = config(DEVICE="cuda", AMP=amp, STEPS_PER_EPOCH=3, VALIDATION_STEPS=1)
    model = MaskRCNN("training", cfg, tmp_path)
    assert model.device.type == "cuda"
    with conv_output_dtypes(model.net) as dtypes:
        model.train(shapes(6), shapes(2, "val"), 0.01, epochs=1, layers="all")
    # Training and validation steps really ran in the precision AMP names.
    expected = {None: torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    assert dtypes == {expected}, dtypes
    lines = (model.log_dir / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(line) for line in lines if '"loss"' in line]
    assert len(steps) == 3
    assert all(torch.isfinite(torch.tensor(record["loss"])) for record in steps)
    checkpoint = model.find_last()
    on_cpu = MaskRCNN("inference", config(DEVICE="cpu"), tmp_path)
    on_cpu.load_weights(checkpoint)
    assert on_cpu.device.type == "cpu"
    result = on_cpu.detect([photo_like_image(64, 64)])[0]
    assert result["masks"].shape[:2] == (64, 64)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_mask_pasting_on_cuda_equals_the_cpu(dtype):
    """Masks are pasted on the device (only the bool masks come back): same pixels as the CPU."""
    from mrcnn.structures.image import paste_masks

    generator = torch.Generator().manual_seed(0)
    masks = torch.rand(40, 28, 28, generator=generator, dtype=dtype)
    xy = torch.rand(40, 2, generator=generator, dtype=dtype) * 500 - 50  # some leave the image
    boxes = torch.cat([xy, xy + torch.rand(40, 2, generator=generator, dtype=dtype) * 300], 1)
    on_cpu = paste_masks(masks, boxes, (480, 640))
    on_gpu = paste_masks(masks.cuda(), boxes.cuda(), (480, 640))
    assert on_gpu.device.type == "cuda" and on_gpu.dtype == torch.bool
    assert on_cpu.any()
    differing = (on_gpu.cpu() != on_cpu).float().mean().item()
    # float64 leaves no pixel near the threshold to round differently; float32 almost none.
    assert differing == 0 if dtype == torch.float64 else differing < 1e-4


def test_large_masks_come_to_the_host_through_pinned_memory():
    from mrcnn.structures.transfer import PINNED_COPY_BYTES, to_host

    masks = torch.rand(800, 1066, 7, device="cuda") > 0.5
    array = to_host(masks)
    assert array.dtype == np.bool_ and np.array_equal(array, masks.cpu().numpy())
    assert torch.from_numpy(array).is_pinned()
    small = torch.ones(PINNED_COPY_BYTES // 2, dtype=torch.bool, device="cuda")
    assert not torch.from_numpy(to_host(small)).is_pinned() and to_host(small).all()


def test_masks_still_arrive_when_no_memory_can_be_pinned(monkeypatch):
    from mrcnn.structures import transfer

    real_empty = torch.empty

    def refuse_pinning(*args, pin_memory=False, **kwargs):
        if pin_memory:
            raise RuntimeError("CUDA error: out of memory")
        return real_empty(*args, **kwargs)

    masks = torch.rand(800, 1066, 7, device="cuda") > 0.5
    monkeypatch.setattr(transfer.torch, "empty", refuse_pinning)
    array = transfer.to_host(masks)
    assert np.array_equal(array, masks.cpu().numpy())
    assert not torch.from_numpy(array).is_pinned()
