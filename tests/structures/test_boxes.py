"""Box coding, clipping, IoU and conversions of mrcnn.structures.boxes."""

from __future__ import annotations

import math

import numpy as np
import torch
import torchvision

from mrcnn.structures.boxes import (
    BBOX_XFORM_CLIP,
    box_area,
    broadcast_iou,
    clip_boxes,
    corner_areas,
    decode_deltas,
    denormalise_boxes,
    encode_deltas,
    extract_boxes_from_masks,
    iou,
    large_enough,
    normalise_boxes,
    xyxy_to_yxyx,
    yxyx_to_xyxy,
)

STD = torch.tensor([0.1, 0.1, 0.2, 0.2], dtype=torch.float64)


def random_boxes(n: int, generator: torch.Generator) -> torch.Tensor:
    xy = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 200 - 50
    # sizes 10-150: size ratios stay below the clamp of decode_deltas
    wh = torch.rand(n, 2, generator=generator, dtype=torch.float64) * 140 + 10
    return torch.cat([xy, xy + wh], dim=1)


def test_encode_known_values():
    reference = torch.tensor([[0.0, 0.0, 10.0, 20.0]], dtype=torch.float64)
    box = torch.tensor([[5.0, 5.0, 25.0, 45.0]], dtype=torch.float64)
    deltas = encode_deltas(box, reference, STD)
    # centres (5, 10) -> (15, 25); sizes (10, 20) -> (20, 40)
    expected = torch.tensor([[1.0 / 0.1, 0.75 / 0.1, math.log(2) / 0.2, math.log(2) / 0.2]])
    torch.testing.assert_close(deltas, expected.double())
    torch.testing.assert_close(decode_deltas(deltas, reference, STD), box)


def test_encode_decode_round_trip_random_with_std():
    generator = torch.Generator().manual_seed(0)
    boxes = random_boxes(200, generator)
    reference = random_boxes(200, generator)
    std = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    deltas = encode_deltas(boxes, reference, std)
    torch.testing.assert_close(decode_deltas(deltas, reference, std), boxes)
    # and the other way round: deltas -> boxes -> deltas
    deltas = torch.randn(200, 4, generator=generator, dtype=torch.float64)
    decoded = decode_deltas(deltas, reference, std)
    torch.testing.assert_close(encode_deltas(decoded, reference, std), deltas)


def test_std_scales_the_deltas():
    generator = torch.Generator().manual_seed(1)
    boxes, reference = random_boxes(10, generator), random_boxes(10, generator)
    ones = encode_deltas(boxes, reference, torch.ones(4, dtype=torch.float64))
    scaled = encode_deltas(boxes, reference, STD)
    torch.testing.assert_close(scaled * STD, ones)


def test_decode_broadcasts_leading_dimensions():
    generator = torch.Generator().manual_seed(2)
    reference = random_boxes(5, generator)
    deltas = torch.randn(3, 5, 4, generator=generator, dtype=torch.float64)
    out = decode_deltas(deltas, reference, STD)
    assert out.shape == (3, 5, 4)
    for i in range(3):
        torch.testing.assert_close(out[i], decode_deltas(deltas[i], reference, STD))


def test_decode_clamps_huge_dw_dh():
    reference = torch.tensor([[10.0, 20.0, 30.0, 60.0]], dtype=torch.float64)  # w 20, h 40
    deltas = torch.tensor([[0.0, 0.0, 1e4, 1e4]], dtype=torch.float64)
    out = decode_deltas(deltas, reference, torch.ones(4, dtype=torch.float64))
    assert torch.isfinite(out).all()
    limit = 1000.0 / 16  # torchvision's and Detectron's bbox_xform_clip is log(1000 / 16)
    assert math.isclose(math.exp(BBOX_XFORM_CLIP), limit, rel_tol=1e-12)
    torch.testing.assert_close(out[0, 2] - out[0, 0], torch.tensor(20.0 * limit).double())
    torch.testing.assert_close(out[0, 3] - out[0, 1], torch.tensor(40.0 * limit).double())
    # the centre does not move
    torch.testing.assert_close((out[0, 0] + out[0, 2]) / 2, torch.tensor(20.0).double())
    # the clamp is applied after multiplying by std
    clamped = decode_deltas(torch.tensor([[0.0, 0.0, 30.0, 0.0]]), reference.float(), STD.float())
    torch.testing.assert_close(clamped[0, 2] - clamped[0, 0], torch.tensor(20.0 * limit))
    unclamped = decode_deltas(torch.tensor([[0.0, 0.0, 20.0, 0.0]]), reference.float(), STD.float())
    torch.testing.assert_close(unclamped[0, 2] - unclamped[0, 0], torch.tensor(20.0 * math.e**4))
    # huge negative sizes shrink to zero, no clamp needed
    tiny = decode_deltas(torch.tensor([[0.0, 0.0, -1e4, -1e4]]), reference.float(), STD.float())
    assert torch.isfinite(tiny).all() and (tiny[0, 2] - tiny[0, 0]) == 0


def test_clip_boxes_to_window_and_per_box_windows():
    boxes = torch.tensor([[-5.0, -5.0, 50.0, 50.0], [10.0, 12.0, 20.0, 22.0]])
    window = torch.tensor([0.0, 2.0, 40.0, 30.0])
    out = clip_boxes(boxes, window)
    torch.testing.assert_close(
        out, torch.tensor([[0.0, 2.0, 40.0, 30.0], [10.0, 12.0, 20.0, 22.0]])
    )
    windows = torch.tensor([[0.0, 0.0, 10.0, 10.0], [15.0, 15.0, 100.0, 100.0]])
    out = clip_boxes(boxes, windows)
    torch.testing.assert_close(
        out, torch.tensor([[0.0, 0.0, 10.0, 10.0], [15.0, 15.0, 20.0, 22.0]])
    )


def test_area_large_enough_iou():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 0.5, 10.0]])
    torch.testing.assert_close(box_area(boxes), torch.tensor([100.0, 100.0, 5.0]))
    assert large_enough(boxes, 1.0).tolist() == [True, True, False]
    assert large_enough(boxes, 0.5).tolist() == [True, True, True]
    matrix = iou(boxes[:2], boxes[:2])
    torch.testing.assert_close(matrix, torch.tensor([[1.0, 50 / 150], [50 / 150, 1.0]]))


def test_xyxy_yxyx_conversion():
    boxes = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    np.testing.assert_array_equal(xyxy_to_yxyx(boxes), [[2, 1, 4, 3], [6, 5, 8, 7]])
    np.testing.assert_array_equal(yxyx_to_xyxy(xyxy_to_yxyx(boxes)), boxes)
    t = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert xyxy_to_yxyx(t).tolist() == [[2.0, 1.0, 4.0, 3.0]]


def test_extract_boxes_from_masks():
    masks = np.zeros((10, 12, 3), dtype=bool)
    masks[2:5, 3:9, 0] = True
    masks[9, 11, 1] = True
    boxes = extract_boxes_from_masks(masks)
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 9], [9, 11, 10, 12], [0, 0, 0, 0]])
    assert extract_boxes_from_masks(np.zeros((4, 4, 0), dtype=bool)).shape == (0, 4)


def test_broadcast_iou_is_torchvisions_iou_for_tensors_arrays_and_either_corner_order():
    g = torch.Generator().manual_seed(0)
    corners = torch.rand(7, 2, 2, generator=g) * 50
    a = torch.cat([corners.min(dim=1).values, corners.max(dim=1).values], dim=1)  # [7, 4]
    b = torch.cat([a[:3] + 4, torch.tensor([[0.0, 0.0, 0.0, 0.0]])])  # an empty box too
    expected = iou(a, b)
    torch.testing.assert_close(broadcast_iou(a[:, None], b[None]), expected)
    as_numpy = broadcast_iou(a.numpy()[:, None].astype(np.float64), b.numpy()[None])
    np.testing.assert_allclose(as_numpy, expected.numpy(), rtol=1e-5, atol=1e-7)
    swapped = broadcast_iou(xyxy_to_yxyx(a)[:, None], xyxy_to_yxyx(b)[None])
    torch.testing.assert_close(swapped, expected)
    # row-wise: each box against its own row of boxes [N, G, 4]
    rows = torch.stack([b[:2], b[1:3]] * 3 + [b[:2]])  # [7, 2, 4]
    row_iou = broadcast_iou(a[:, None], rows)
    assert row_iou.shape == (7, 2)
    torch.testing.assert_close(row_iou[3], iou(a[3:4], rows[3])[0])
    assert broadcast_iou(b[3], b[3]) == 0  # two empty boxes: 0, not NaN


def test_box_area_of_boxes_away_from_the_origin_is_torchvisions():
    g = torch.Generator().manual_seed(3)
    boxes = random_boxes(50, g)
    torch.testing.assert_close(box_area(boxes), torchvision.ops.box_area(boxes))


def test_large_enough_checks_width_and_height_each_inclusively():
    # x1, y1, x2, y2 away from the origin: width 4 x height 2, 2 x 4, exactly 3 x 3, 3 x 2.9
    boxes = torch.tensor(
        [[10.0, 20.0, 14.0, 22.0], [10.0, 20.0, 12.0, 24.0], [5.0, 7.0, 8.0, 10.0],
         [5.0, 7.0, 8.0, 9.9]]
    )  # fmt: skip
    assert torch.equal(large_enough(boxes, 3.0), torch.tensor([False, False, True, False]))
    assert torch.equal(large_enough(boxes, 2.0), torch.tensor([True, True, True, True]))


def test_corner_areas_are_zero_for_inverted_boxes_and_exact_below_a_pixel():
    boxes = np.array([[10.0, 10.0, 8.0, 13.0], [10.0, 10.0, 10.5, 10.25], [0.0, 0.0, 2.0, 3.0]])
    np.testing.assert_allclose(corner_areas(boxes), [0.0, 0.125, 6.0])
    torch.testing.assert_close(
        corner_areas(torch.from_numpy(boxes)), torch.tensor([0.0, 0.125, 6.0]).double()
    )


def test_broadcast_iou_of_boxes_smaller_than_a_pixel():
    a = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    b = torch.tensor([[0.0, 0.0, 0.5, 0.25]])
    torch.testing.assert_close(broadcast_iou(a, a), torch.tensor([1.0]))
    torch.testing.assert_close(broadcast_iou(a, b), torch.tensor([0.5]))


def test_extract_boxes_from_a_single_mask():
    masks = np.zeros((6, 7, 1), dtype=bool)
    masks[1:3, 2:6, 0] = True
    np.testing.assert_array_equal(extract_boxes_from_masks(masks), [[1, 2, 3, 6]])


def test_normalise_boxes_is_matterports_norm_boxes_on_a_non_square_image():
    # Matterport: norm_boxes((y1, x1, y2, x2)) = (box - (0, 0, 1, 1)) / (H - 1, W - 1, H - 1, W - 1)
    height, width = 480, 640
    boxes = torch.tensor(
        [[10.0, 20.0, 110.0, 220.0], [0.0, 0.0, 640.0, 480.0]], dtype=torch.float64
    )
    expected = torch.tensor(
        [[10 / 639, 20 / 479, 109 / 639, 219 / 479], [0.0, 0.0, 639 / 639, 479 / 479]],
        dtype=torch.float64,
    )
    torch.testing.assert_close(normalise_boxes(boxes, (height, width)), expected)
    torch.testing.assert_close(denormalise_boxes(expected, (height, width)), boxes)
    as_float = normalise_boxes(boxes.float(), (height, width))
    assert as_float.dtype == torch.float32
    torch.testing.assert_close(as_float, expected.float())
