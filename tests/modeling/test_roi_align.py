"""Pyramid ROIAlign: level assignment, per-level cropping, and agreement with torchvision's
roi_align forward and backward."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import roi_align

from mrcnn.modeling.roi_align import assign_levels, feature_table, pyramid_roi_align

STRIDES = [4, 8, 16, 32]


def square(size: float, x: float = 0.0, y: float = 0.0) -> list[float]:
    return [float(x), float(y), float(x + size), float(y + size)]


@pytest.mark.parametrize("rounding", ["round", "floor"])
@pytest.mark.parametrize(
    "size, level", [(224, 4), (112, 3), (448, 5), (56, 2), (5, 2), (5000, 5), (896, 5)]
)
def test_assign_levels_canonical_sizes(size, level, rounding):
    boxes = torch.tensor([square(size, 3, 7)])
    assert assign_levels(boxes, rounding).tolist() == [level]


@pytest.mark.parametrize(
    "exponent, by_round, by_floor",
    [(0.6, 5, 4), (0.4, 4, 4), (-0.4, 4, 3), (-0.6, 3, 3), (-1.4, 3, 2), (0.999, 5, 4)],
)
def test_assign_levels_round_vs_floor_near_boundaries(exponent, by_round, by_floor):
    boxes = torch.tensor([square(224 * 2**exponent)], dtype=torch.float64)
    assert assign_levels(boxes, "round").tolist() == [by_round]
    assert assign_levels(boxes, "floor").tolist() == [by_floor]


def test_assign_levels_uses_sqrt_of_area_and_handles_empty_boxes():
    boxes = torch.tensor(
        [
            [0.0, 0.0, 448.0, 112.0],  # sqrt(area) = 224
            [10.0, 10.0, 10.0, 50.0],  # empty
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    levels = assign_levels(boxes)
    assert levels.dtype == torch.int64
    assert levels.tolist() == [4, 2, 2]
    assert assign_levels(boxes, "floor").tolist() == [4, 2, 2]


def constant_pyramid(batch: int = 2, size: int = 512, channels: int = 2) -> list[torch.Tensor]:
    """P2..P5 whose every value is 10 * level + image index."""
    features = []
    for level, stride in zip(range(2, 6), STRIDES, strict=True):
        side = size // stride
        values = torch.tensor([10.0 * level + b for b in range(batch)])
        features.append(values.view(batch, 1, 1, 1).expand(batch, channels, side, side).clone())
    return features


def test_pyramid_roi_align_reads_the_assigned_level():
    features = constant_pyramid()
    boxes = torch.tensor(
        [
            square(30, 10, 10),  # -> P2
            square(112, 100, 100),  # -> P3
            square(224, 50, 50),  # -> P4
            square(448, 20, 20),  # -> P5
            square(112, 300, 300),  # -> P3, image 1
            square(30, 400, 60),  # -> P2, image 1
        ]
    )
    image_index = torch.tensor([0, 0, 0, 0, 1, 1])
    out = pyramid_roi_align(features, boxes, image_index, 7, STRIDES)
    assert out.shape == (6, 2, 7, 7)
    expected = torch.tensor([20.0, 30.0, 40.0, 50.0, 31.0, 21.0])
    torch.testing.assert_close(out, expected.view(-1, 1, 1, 1).expand_as(out))


def test_pyramid_roi_align_rounding_option_changes_the_level():
    features = constant_pyramid(batch=1)
    boxes = torch.tensor([square(224 * 2**0.6, 10, 10)])
    index = torch.tensor([0])
    by_round = pyramid_roi_align(features, boxes, index, 4, STRIDES, rounding="round")
    by_floor = pyramid_roi_align(features, boxes, index, 4, STRIDES, rounding="floor")
    # The weights of each bin sum to 1 up to float32 rounding.
    torch.testing.assert_close(by_round, torch.full_like(by_round, 50.0))
    torch.testing.assert_close(by_floor, torch.full_like(by_floor, 40.0))


@pytest.mark.parametrize("aligned", [True, False])
def test_pyramid_roi_align_matches_torchvision_roi_align_per_level(aligned):
    generator = torch.Generator().manual_seed(0)
    features = [torch.randn(2, 3, 128 // 2**i, 128 // 2**i, generator=generator) for i in range(4)]
    boxes = torch.tensor([square(20, 5.5, 7.25), square(100, 3, 2), square(90, 20, 30)])
    image_index = torch.tensor([1, 0, 1])
    out = pyramid_roi_align(features, boxes, image_index, 5, STRIDES, 2, aligned)
    levels = assign_levels(boxes)
    # 20 -> 0.5 -> 2; 100 -> 4 + log2(100 / 224) = 2.84 -> 3; 90 -> 2.68 -> 3
    assert levels.tolist() == [2, 3, 3]
    for k, level in enumerate(levels.tolist()):
        roi = torch.cat([image_index[k : k + 1].float(), boxes[k]])[None]
        expected = roi_align(
            features[level - 2], roi, 5, 1 / STRIDES[level - 2], sampling_ratio=2, aligned=aligned
        )
        torch.testing.assert_close(out[k : k + 1], expected)


def test_pyramid_roi_align_no_boxes_and_dtype():
    features = [f.double() for f in constant_pyramid(batch=1, size=64)]
    out = pyramid_roi_align(
        features,
        torch.zeros(0, 4, dtype=torch.float64),
        torch.zeros(0, dtype=torch.int64),
        7,
        STRIDES,
    )
    assert out.shape == (0, 2, 7, 7) and out.dtype == torch.float64


def awkward_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes on every level, across map edges, partly or wholly outside, and degenerate."""
    boxes = torch.tensor(
        [
            square(20, 5.5, 7.25),
            square(100, 3, 2),
            square(90, 20, 30),
            square(230, -40, -30),  # starts outside the top-left corner
            square(60, 360, 480),  # runs past the bottom-right edge
            square(400, 0, 0),  # larger than the image
            [10.0, 10.0, 10.0, 40.0],  # zero width
            [700.0, 700.0, 740.0, 760.0],  # wholly outside
            [0.0, 0.0, 384.0, 512.0],  # exactly the image
            square(3, 382, 510),  # a few pixels in the last corner
        ],
        dtype=torch.float64,
    )
    image_index = torch.tensor([1, 0, 1, 0, 1, 0, 1, 0, 1, 1])
    return boxes, image_index


def torchvision_pyramid(features, boxes, image_index, size, sampling_ratio, aligned):
    """The reference: torchvision.ops.roi_align, box by box on its assigned level."""
    levels = assign_levels(boxes)
    rows = []
    for k, level in enumerate(levels.tolist()):
        roi = torch.cat([image_index[k : k + 1].to(boxes), boxes[k]])[None]
        rows.append(
            roi_align(
                features[level - 2],
                roi,
                size,
                1 / STRIDES[level - 2],
                sampling_ratio=sampling_ratio,
                aligned=aligned,
            )
        )
    return torch.cat(rows)


@pytest.mark.parametrize("aligned", [True, False])
@pytest.mark.parametrize("sampling_ratio", [1, 2, 3])
def test_pyramid_roi_align_forward_and_gradient_match_torchvision(aligned, sampling_ratio):
    generator = torch.Generator().manual_seed(1)
    shapes = [(2, 4, 128 // 2**i, 96 // 2**i) for i in range(4)]
    maps = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    boxes, image_index = awkward_boxes()
    upstream = torch.randn(len(boxes), 4, 5, 5, generator=generator, dtype=torch.float64)

    def run(function):
        leaves = [m.clone().requires_grad_() for m in maps]
        out = function(leaves, boxes, image_index, 5, sampling_ratio, aligned)
        (out * upstream).sum().backward()
        return out.detach(), [leaf.grad for leaf in leaves]

    ours, our_grads = run(lambda f, b, i, s, r, a: pyramid_roi_align(f, b, i, s, STRIDES, r, a))
    theirs, their_grads = run(torchvision_pyramid)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for mine, reference in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-12)
    assert ours[7].abs().max() == 0  # the box outside every map reads nothing


def test_pyramid_roi_align_reads_channels_last_maps_and_returns_their_dtype():
    generator = torch.Generator().manual_seed(2)
    maps = [torch.randn(2, 8, 64 // 2**i, 64 // 2**i, generator=generator) for i in range(4)]
    boxes, image_index = awkward_boxes()
    boxes = boxes.float() / 2
    reference = pyramid_roi_align(maps, boxes, image_index, 7, STRIDES)
    last = [m.contiguous(memory_format=torch.channels_last) for m in maps]
    torch.testing.assert_close(pyramid_roi_align(last, boxes, image_index, 7, STRIDES), reference)
    half = pyramid_roi_align([m.bfloat16() for m in maps], boxes, image_index, 7, STRIDES)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), reference, rtol=0.02, atol=0.05)


def test_pyramid_roi_align_gradient_with_no_boxes_is_zero():
    maps = [m.requires_grad_() for m in constant_pyramid(batch=1, size=64)]
    out = pyramid_roi_align(maps, torch.zeros(0, 4), torch.zeros(0, dtype=torch.int64), 7, STRIDES)
    (out.sum() + sum(m.sum() * 0 for m in maps)).backward()
    assert all(m.grad.abs().max() == 0 for m in maps)


def test_pyramid_roi_align_refuses_adaptive_sampling():
    maps = constant_pyramid(batch=1, size=64)
    with pytest.raises(ValueError, match="sampling_ratio=0"):
        pyramid_roi_align(maps, torch.tensor([square(10)]), torch.tensor([0]), 7, STRIDES, 0)


def test_assign_levels_of_non_square_boxes_away_from_the_origin():
    # 32 x 512 and 512 x 32 boxes (sqrt(area) 128: level 3) far from x = y.
    boxes = torch.tensor([[300.0, 10.0, 332.0, 522.0], [10.0, 300.0, 522.0, 332.0]])
    assert assign_levels(boxes).tolist() == [3, 3]


def test_rounding_mode_read_at_run_time_is_compared_by_value():
    floor = "".join(["fl", "oor"])  # not the interned literal, as when read from a config file
    boxes = torch.tensor([square(224 * 2**0.6)], dtype=torch.float64)
    assert assign_levels(boxes, floor).tolist() == [4]


def test_odd_sized_pyramid_of_three_images_matches_torchvision_forward_and_backward():
    # Map sides that are not powers of two (an 800 x 1066 input gives such maps): the table
    # offsets of images and levels then share bits, so adding them is not or-ing them.
    generator = torch.Generator().manual_seed(4)
    sides = [(49, 67), (25, 34), (13, 17), (7, 9)]  # 13251 pixels in all: odd
    maps = [torch.randn(3, 2, h, w, generator=generator, dtype=torch.float64) for h, w in sides]
    boxes = torch.tensor(
        [
            square(20, 5.5, 7.25),  # level 2
            square(100, 3, 2),  # level 3
            square(230, 20, 30),  # level 4
            square(460, 10, 5),  # level 5
            # level 2 (stride 4), 3 x 3 bins of 2 x 2 map pixels: its first sample row is at
            # y = -4 / 4 - 0.5 + 0.25 * 2 = -1 exactly, the edge of what torchvision reads
            [0.0, -4.0, 24.0, 20.0],
            square(90, 150, 100),
        ],
        dtype=torch.float64,
    )
    image_index = torch.tensor([2, 1, 2, 1, 2, 0])
    upstream = torch.randn(len(boxes), 2, 3, 3, generator=generator, dtype=torch.float64)

    def run(function):
        leaves = [m.clone().requires_grad_() for m in maps]
        out = function(leaves)
        (out * upstream).sum().backward()
        return out.detach(), [leaf.grad for leaf in leaves]

    # Defaults: aligned, 2 x 2 samples per bin.
    ours, our_grads = run(lambda f: pyramid_roi_align(f, boxes, image_index, 3, STRIDES))
    theirs, their_grads = run(lambda f: torchvision_pyramid(f, boxes, image_index, 3, 2, True))
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for mine, reference in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(mine, reference, rtol=1e-12, atol=1e-12)


def test_a_single_box_is_pooled():
    generator = torch.Generator().manual_seed(5)
    maps = [torch.randn(1, 2, 64 // 2**i, 64 // 2**i, generator=generator) for i in range(4)]
    box, image_index = torch.tensor([square(40, 3, 5)]), torch.tensor([0])
    ours = pyramid_roi_align(maps, box, image_index, 4, STRIDES)
    torch.testing.assert_close(ours, torchvision_pyramid(maps, box, image_index, 4, 2, True))


@pytest.mark.parametrize(
    "dtype, needs_grad, expected_dtype",
    [
        (torch.bfloat16, False, torch.bfloat16),  # the inference gather reads bf16 as it is
        (torch.bfloat16, True, torch.float32),  # the sparse product needs float32
        (torch.float16, False, torch.float32),
    ],
)
def test_feature_table_stacks_levels_in_order_widening_what_the_product_cannot_read(
    dtype, needs_grad, expected_dtype
):
    # 24 and 12 rows: a level's end is its start plus its size, not a bitwise mix of the two
    maps = [torch.randn(2, 4, h, w).to(dtype) for h, w in ((3, 4), (2, 3))]
    maps[0] = maps[0].contiguous(memory_format=torch.channels_last)
    maps = [m.requires_grad_(needs_grad) for m in maps]
    table = feature_table(maps)
    expected = torch.cat([m.detach().permute(0, 2, 3, 1).reshape(-1, 4) for m in maps])
    assert table.dtype == expected_dtype
    assert torch.equal(table.detach(), expected.to(expected_dtype))


def test_inference_gather_matches_torchvision_on_awkward_boxes():
    # Under no_grad the CPU samples with embedding_bag, not the sparse product the gradient
    # test above goes through; both must be torchvision's arithmetic.
    generator = torch.Generator().manual_seed(6)
    shapes = [(2, 4, 128 // 2**i, 96 // 2**i) for i in range(4)]
    maps = [torch.randn(s, generator=generator, dtype=torch.float64) for s in shapes]
    boxes, image_index = awkward_boxes()
    with torch.no_grad():
        ours = pyramid_roi_align(maps, boxes, image_index, 5, STRIDES, 2, True)
    theirs = torchvision_pyramid(maps, boxes, image_index, 5, 2, True)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_bf16_maps_are_sampled_at_float32_positions():
    # Far from the origin bf16 coordinates step by 4 pixels: sample positions must be computed
    # in float32 and only the bilinear weights rounded to bf16.
    generator = torch.Generator().manual_seed(7)
    maps = [torch.randn(1, 8, 256 // 2**i, 256 // 2**i, generator=generator) for i in range(4)]
    maps = [m.bfloat16().float() for m in maps]  # values bf16 holds exactly
    boxes = torch.tensor([[901.3, 897.7, 955.1, 950.9], [613.5, 770.25, 1019.0, 1021.7]])
    image_index = torch.zeros(2, dtype=torch.int64)
    with torch.no_grad():
        reference = pyramid_roi_align(maps, boxes, image_index, 7, STRIDES)
        half = pyramid_roi_align([m.bfloat16() for m in maps], boxes, image_index, 7, STRIDES)
    assert half.dtype == torch.bfloat16
    torch.testing.assert_close(half.float(), reference, rtol=0.02, atol=0.03)


def test_feature_table_passes_gradients_to_every_level_in_training():
    maps = [torch.randn(1, 4, s, s, dtype=torch.float64, requires_grad=True) for s in (4, 2)]
    (feature_table(maps) * 2.0).sum().backward()
    assert all(torch.equal(m.grad, torch.full_like(m, 2.0)) for m in maps)


def test_training_under_bf16_autocast_pools_in_float32():
    # A CPU autocast step (AMP training) must not turn the sparse product into a bf16 one.
    generator = torch.Generator().manual_seed(8)
    maps = [torch.randn(1, 4, 64 // 2**i, 64 // 2**i, generator=generator) for i in range(4)]
    maps = [m.requires_grad_() for m in maps]
    boxes, image_index = torch.tensor([square(40, 3.3, 5.1), square(150, 20, 9)]), torch.zeros(2)
    image_index = image_index.long()
    expected = pyramid_roi_align(maps, boxes, image_index, 7, STRIDES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        pooled = pyramid_roi_align(maps, boxes, image_index, 7, STRIDES)
    assert pooled.dtype == torch.float32 and torch.equal(pooled, expected)
