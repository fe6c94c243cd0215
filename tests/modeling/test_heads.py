"""Box head, mask head and select_class_masks."""

from __future__ import annotations

import pytest
import torch

from mrcnn.modeling.heads import BoxHead, MaskHead, select_class_masks
from mrcnn.modeling.rpn import RPNHead


def test_box_head_shapes():
    torch.manual_seed(0)
    head = BoxHead(channels=8, pool_size=7, hidden=16, num_classes=5)
    logits, deltas = head(torch.randn(3, 8, 7, 7))
    assert logits.shape == (3, 5)
    assert deltas.shape == (3, 5, 4)


@pytest.mark.parametrize("inference_layout", [False, True], ids=["training", "channels_last"])
def test_box_head_no_rois(inference_layout):
    """No ROIs is a valid batch; inference reads channels-last ROIs by another path."""
    head = BoxHead(channels=8, pool_size=7, hidden=16, num_classes=5)
    pooled = torch.zeros(0, 8, 7, 7)
    with torch.set_grad_enabled(not inference_layout):
        if inference_layout:
            pooled = pooled.contiguous(memory_format=torch.channels_last)
            assert head._reads_channels_last(pooled)
        empty_logits, empty_deltas = head(pooled)
    assert empty_logits.shape == (0, 5) and empty_deltas.shape == (0, 5, 4)


def test_box_head_deltas_are_grouped_by_class():
    torch.manual_seed(0)
    head = BoxHead(channels=2, pool_size=3, hidden=4, num_classes=3)
    with torch.no_grad():
        head.deltas.bias.copy_(torch.arange(12.0))
        head.deltas.weight.zero_()
    _, deltas = head(torch.randn(2, 2, 3, 3))
    # class c's (dx, dy, dw, dh) are outputs 4c .. 4c + 3 of the linear layer
    assert deltas[0].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_mask_head_shapes():
    torch.manual_seed(0)
    head = MaskHead(channels=8, num_classes=4, hidden=16)
    out = head(torch.randn(2, 8, 14, 14))
    assert out.shape == (2, 4, 28, 28)
    assert head(torch.randn(1, 8, 7, 7)).shape == (1, 4, 14, 14)
    assert len(head.convs) == 4


def test_rpn_head_shapes_and_order():
    torch.manual_seed(0)
    head = RPNHead(channels=4, anchors_per_location=3)
    features = [torch.randn(2, 4, 6, 5), torch.randn(2, 4, 3, 3)]
    objectness, deltas = head(features)
    assert objectness.shape == (2, (30 + 9) * 3)
    assert deltas.shape == (2, (30 + 9) * 3, 4)
    # location-major, anchor-minor; deltas channel 4a + j is coordinate j of anchor a
    hidden = torch.relu(head.conv(features[0]))
    raw_logits = head.objectness(hidden)  # [2, 3, 6, 5]
    raw_deltas = head.deltas(hidden)  # [2, 12, 6, 5]
    y, x, a = 2, 4, 1
    index = (y * 5 + x) * 3 + a
    torch.testing.assert_close(objectness[1, index], raw_logits[1, a, y, x])
    torch.testing.assert_close(deltas[1, index], raw_deltas[1, 4 * a : 4 * a + 4, y, x])


def test_select_class_masks():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 3, 5, 5, generator=generator)
    class_ids = torch.tensor([2, 0, 1, 2])
    out = select_class_masks(logits, class_ids)
    assert out.shape == (4, 5, 5)
    for k, c in enumerate(class_ids.tolist()):
        torch.testing.assert_close(out[k], logits[k, c])
    empty = select_class_masks(logits[:0], torch.zeros(0, dtype=torch.int64))
    assert empty.shape == (0, 5, 5)


def channels_last_rois(k: int = 5, channels: int = 8, size: int = 3) -> torch.Tensor:
    """[K, C, S, S] with channels-last strides, as pyramid ROIAlign returns them."""
    generator = torch.Generator().manual_seed(11)
    rows = torch.randn(k, size, size, channels, generator=generator)
    return rows.permute(0, 3, 1, 2)


def test_box_head_reads_channels_last_rois_like_contiguous_ones():
    head = BoxHead(channels=8, pool_size=3, hidden=16, num_classes=4).eval()
    pooled = channels_last_rois()
    with torch.no_grad():
        logits, deltas = head(pooled)  # fc6 with reordered columns, no copy of the ROIs
    expected_logits, expected_deltas = head(pooled.contiguous())  # with grad: flatten path
    torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(deltas, expected_deltas, rtol=1e-5, atol=1e-6)


def test_box_head_reordered_fc6_follows_weight_changes_and_autocast():
    head = BoxHead(channels=8, pool_size=3, hidden=16, num_classes=4).eval()
    pooled = channels_last_rois()
    with torch.no_grad():
        head(pooled)
        head.fc6.weight.mul_(2.0)  # an in-place change: the cached reordering is stale
        head.fc6.bias.add_(1.0)
        logits, _ = head(pooled)
        expected, _ = head(pooled.contiguous())
        torch.testing.assert_close(logits, expected, rtol=1e-5, atol=1e-6)
        head.load_state_dict(BoxHead(8, 3, 16, 4).state_dict())  # a load counts too
        torch.testing.assert_close(head(pooled)[0], head(pooled.contiguous())[0])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half, _ = head(pooled)
        assert half.dtype == torch.bfloat16
        torch.testing.assert_close(half.float(), head(pooled)[0], rtol=0.05, atol=0.02)
