"""Target assignment on hand-made boxes: RPN labels and deltas, ROI sampling, mask targets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrcnn.modeling.targets import (
    GroundTruth,
    detection_targets,
    mask_targets,
    mini_masks,
    rpn_targets,
    sample_per_group,
)
from mrcnn.structures.boxes import decode_deltas

STD = torch.tensor([0.1, 0.1, 0.2, 0.2])


def _gt(boxes, class_ids, crowd=None, masks=None, mini=False):
    boxes = torch.tensor(boxes, dtype=torch.float32).view(1, -1, 4)
    class_ids = torch.tensor(class_ids, dtype=torch.int64).view(1, -1)
    crowd_t = torch.tensor(crowd or [[0, 0, 0, 0]], dtype=torch.float32).view(1, -1, 4)
    crowd_valid = torch.tensor([crowd is not None] * crowd_t.shape[1]).view(1, -1)
    if masks is None:
        masks = torch.zeros((1, boxes.shape[1], 4, 4))
    return GroundTruth(boxes, class_ids, masks, crowd_t, crowd_valid, mini)


def test_sample_per_group_respects_quota_and_candidates():
    candidates = torch.tensor([True, True, True, False, True, True, False, False])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    chosen = sample_per_group(candidates, groups, torch.tensor([2, 5]))
    assert chosen[:4].sum() == 2 and chosen[4:].sum() == 2
    assert not (chosen & ~candidates).any()


def test_rpn_positive_negative_and_ignored_by_iou():
    anchors = torch.tensor(
        [
            [0, 0, 10, 10],  # identical to the box: positive
            [0, 0, 10, 12],  # IoU 0.83: positive
            [0, 0, 10, 20],  # IoU 0.5: neither
            [50, 50, 60, 60],  # no overlap: negative
        ],
        dtype=torch.float32,
    )
    gt = _gt([[0, 0, 10, 10]], [1])
    targets = rpn_targets(anchors, gt, anchors_per_image=256, std=STD)
    assert targets.labels.tolist() == [[1, 1, -1, 0]]
    # Decoding the target deltas of a positive anchor gives the box back.
    decoded = decode_deltas(targets.deltas[0, 1:2], anchors[1:2], STD)
    torch.testing.assert_close(decoded, torch.tensor([[0.0, 0.0, 10.0, 10.0]]))
    assert targets.deltas[0, 2:].abs().sum() == 0


def test_rpn_best_anchor_rule_makes_low_iou_anchor_positive():
    anchors = torch.tensor([[0, 0, 10, 40], [100, 100, 110, 110]], dtype=torch.float32)
    gt = _gt([[0, 0, 10, 10]], [1])  # best IoU 0.25 < 0.3
    targets = rpn_targets(anchors, gt, anchors_per_image=256, std=STD)
    assert targets.labels.tolist() == [[1, 0]]


def test_rpn_crowd_overlap_is_not_negative():
    anchors = torch.tensor([[0, 0, 10, 10], [40, 40, 50, 50], [80, 80, 90, 90]]).float()
    gt = _gt([[0, 0, 10, 10]], [1], crowd=[[38, 38, 60, 60]])
    targets = rpn_targets(anchors, gt, anchors_per_image=256, std=STD)
    assert targets.labels.tolist() == [[1, -1, 0]]


def test_rpn_sampling_balance_at_most_half_positive():
    # 64 anchors identical to the box (positive), 200 far away (negative).
    positives = torch.tensor([[0.0, 0.0, 10.0, 10.0]]).repeat(64, 1)
    negatives = torch.tensor([[500.0, 500.0, 510.0, 510.0]]).repeat(200, 1)
    anchors = torch.cat([positives, negatives])
    gt = _gt([[0, 0, 10, 10]], [1])
    labels = rpn_targets(anchors, gt, anchors_per_image=32, std=STD).labels
    assert (labels == 1).sum() == 16 and (labels == 0).sum() == 16
    # With few positives, negatives fill the rest.
    labels = rpn_targets(anchors[60:], gt, anchors_per_image=32, std=STD).labels
    assert (labels == 1).sum() == 4 and (labels == 0).sum() == 28


def test_rpn_image_without_instances_is_all_negative_samples():
    anchors = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30]]).float()
    gt = _gt([[0, 0, 0, 0]], [0])  # padding only
    labels = rpn_targets(anchors, gt, anchors_per_image=8, std=STD).labels
    assert labels.tolist() == [[0, 0]]


def test_rpn_batch_images_are_independent():
    anchors = torch.tensor([[0, 0, 10, 10], [50, 50, 60, 60]]).float()
    boxes = torch.tensor([[[0, 0, 10, 10]], [[50, 50, 60, 60]]]).float()
    gt = GroundTruth(
        boxes,
        torch.tensor([[1], [2]]),
        torch.zeros((2, 1, 4, 4)),
        torch.zeros((2, 1, 4)),
        torch.zeros((2, 1), dtype=torch.bool),
    )
    labels = rpn_targets(anchors, gt, anchors_per_image=8, std=STD).labels
    assert labels.tolist() == [[1, 0], [0, 1]]


def test_detection_targets_classes_deltas_and_gt_added():
    full = torch.zeros((1, 1, 32, 32))
    full[0, 0, 8:24, 8:24] = 1
    gt = _gt([[8, 8, 24, 24]], [3], masks=full)
    proposals = torch.tensor([[8, 8, 24, 26], [0, 0, 4, 4]]).float()
    det = detection_targets(
        proposals, torch.tensor([0, 0]), gt, 10, 0.5, STD, (8, 8), torch.Generator().manual_seed(0)
    )
    # Two positives (the proposal and the added ground-truth box), one negative.
    assert det.num_positive == 2
    assert det.class_ids.tolist() == [3, 3, 0]
    decoded = decode_deltas(det.deltas[:2], det.rois[:2], STD)
    torch.testing.assert_close(decoded, torch.tensor([[8.0, 8, 24, 24]] * 2))
    # The ground-truth box crops a full mask.
    gt_row = (det.rois[:2] == torch.tensor([8.0, 8, 24, 24])).all(dim=1).nonzero()[0, 0]
    assert det.masks[gt_row].min() == 1


def test_detection_targets_positive_ratio():
    gt = _gt([[0, 0, 10, 10]], [1])
    proposals = torch.cat(
        [
            torch.tensor([[0.0, 0.0, 10.0, 10.0]]).repeat(20, 1),
            torch.tensor([[50.0, 50.0, 60.0, 60.0]]).repeat(20, 1),
        ]
    )
    det = detection_targets(proposals, torch.zeros(40, dtype=torch.int64), gt, 8, 0.25, STD, (4, 4))
    assert det.num_positive == 2 and len(det.class_ids) == 8


def test_detection_targets_crowd_never_negative():
    gt = _gt([[0, 0, 10, 10]], [1], crowd=[[50, 50, 70, 70]])
    proposals = torch.tensor([[52.0, 52.0, 60.0, 60.0], [100.0, 100.0, 110.0, 110.0]])
    det = detection_targets(proposals, torch.zeros(2, dtype=torch.int64), gt, 8, 0.5, STD, (4, 4))
    assert [52.0, 52.0, 60.0, 60.0] not in det.rois.tolist()
    assert [100.0, 100.0, 110.0, 110.0] in det.rois.tolist()


def test_mini_mask_targets_match_full_mask_targets():
    full = torch.zeros((1, 1, 64, 64))
    full[0, 0, 10:40, 20:50] = 1
    full[0, 0, 10:20, 20:30] = 0  # a notch, so the crop has structure
    box = torch.tensor([[20.0, 10.0, 50.0, 40.0]])
    mini = mini_masks(full[0], box, (30, 30))[None]
    rois = torch.tensor([[15.0, 5.0, 45.0, 35.0]])
    idx = torch.tensor([0])
    gt_full = _gt(box.tolist(), [1], masks=full)
    gt_mini = _gt(box.tolist(), [1], masks=mini, mini=True)
    a = mask_targets(rois, idx, gt_full, (14, 14))
    b = mask_targets(rois, idx, gt_mini, (14, 14))
    assert (a != b).float().mean() < 0.03
    assert a.sum() > 0


def test_detection_targets_of_the_second_image_use_its_own_boxes_and_masks():
    # Image 0: two instances with full masks. Image 1: one wide instance (40 x 20) whose mask
    # is its left half, and a padding row. A ROI of image 1 covering the box's left 3/4
    # (30 x 20, IoU 0.75, with y2 < x2 so that mixing up corners changes the IoU).
    boxes = torch.tensor([[[0.0, 0, 20, 10], [30, 30, 50, 60]], [[10, 5, 50, 25], [0, 0, 0, 0]]])
    masks = torch.zeros((2, 2, 64, 64))
    masks[0, 0, 0:10, 0:20] = 1
    masks[0, 1, 30:60, 30:50] = 1
    masks[1, 0, 5:25, 10:30] = 1
    gt = GroundTruth(
        boxes,
        torch.tensor([[1, 2], [2, 0]]),
        masks,
        torch.zeros((2, 1, 4)),
        torch.zeros((2, 1), dtype=torch.bool),
        mini_masks=False,
    )
    proposals = torch.tensor([[10.0, 5, 40, 25], [100, 100, 120, 120]])
    det = detection_targets(
        proposals, torch.tensor([1, 0]), gt, 8, 1.0, STD, (6, 6), torch.Generator().manual_seed(0)
    )
    # Positives first, in ROI order: the image-1 proposal, then the three added gt boxes.
    assert det.num_positive == 4
    assert det.image_index.tolist() == [1, 0, 0, 1, 0]
    assert det.class_ids.tolist() == [2, 1, 2, 2, 0]
    # The proposal's target: 4 of its 6 columns (x 10..30 of 10..40) are the mask.
    assert det.masks[0].tolist() == [[1.0] * 4 + [0.0] * 2] * 6
    assert det.masks[3].tolist() == [[1.0] * 3 + [0.0] * 3] * 6  # the gt box: left half
    assert det.masks[1].min() == 1 and det.masks[2].min() == 1
    decoded = decode_deltas(det.deltas[:1], det.rois[:1], STD)
    torch.testing.assert_close(decoded, torch.tensor([[10.0, 5, 50, 25]]))


def test_sample_per_group_takes_exactly_the_quota_or_every_candidate_in_each_of_many_groups():
    g = torch.Generator().manual_seed(0)
    for seed in range(5):
        groups = torch.randint(0, 7, (400,), generator=g).sort().values
        groups = groups[torch.randperm(400, generator=g)]  # groups interleaved
        candidates = torch.rand(400, generator=g) < 0.4
        quota = torch.randint(0, 30, (7,), generator=g)
        chosen = sample_per_group(candidates, groups, quota, torch.Generator().manual_seed(seed))
        assert chosen.dtype == torch.bool and not (chosen & ~candidates).any()
        for group in range(7):
            available = int((candidates & (groups == group)).sum())
            assert int((chosen & (groups == group)).sum()) == min(int(quota[group]), available)


def test_sample_per_group_draws_at_random_among_the_candidates():
    # 10 candidates and 10 non-candidates in one group, quota 3: over 60 draws every candidate
    # is drawn sometimes, and none is drawn every time.
    candidates = torch.arange(20) % 2 == 0
    groups = torch.zeros(20, dtype=torch.int64)
    draws = torch.stack(
        [
            sample_per_group(
                candidates, groups, torch.tensor([3]), torch.Generator().manual_seed(s)
            )
            for s in range(60)
        ]
    )
    times = draws.sum(dim=0)
    assert (times[candidates] > 0).all() and (times[candidates] < 60).all()
    assert (times[~candidates] == 0).all()


def test_rpn_thresholds_are_inclusive_for_positives_and_exclusive_for_negatives():
    gt = _gt([[0, 0, 10, 10], [50, 0, 60, 3]], [1, 1])
    anchors = torch.tensor(
        [
            [0, 0, 10, 10],  # IoU 1 with box 0: its best anchor
            [0, 0, 10, 7],  # IoU exactly 0.7 with box 0: positive
            [50, 0, 60, 3],  # IoU 1 with box 1: its best anchor
            [50, 0, 60, 10],  # IoU exactly 0.3 with box 1: not negative, ignored
            [200, 200, 210, 210],  # no overlap: negative
        ],
        dtype=torch.float32,
    )
    targets = rpn_targets(anchors, gt, anchors_per_image=256, std=STD)
    assert targets.labels.tolist() == [[1, 1, 1, -1, 0]]


def test_rpn_box_no_anchor_overlaps_gives_no_best_anchor():
    anchors = torch.tensor([[0, 0, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    gt = _gt([[100, 100, 110, 110]], [1])  # overlaps nothing: its best IoU is 0
    assert rpn_targets(anchors, gt, anchors_per_image=8, std=STD).labels.tolist() == [[0, 0]]


def test_detection_targets_roi_at_exactly_half_iou_is_positive():
    gt = _gt([[0, 0, 10, 10]], [4])
    proposals = torch.tensor([[0.0, 0.0, 10.0, 5.0]])  # IoU 50 / 100
    det = detection_targets(proposals, torch.zeros(1, dtype=torch.int64), gt, 8, 1.0, STD, (4, 4))
    assert det.num_positive == 2  # the proposal and the added ground-truth box
    assert [0.0, 0.0, 10.0, 5.0] in det.rois[:2].tolist()


def roi_align_reference(mask: np.ndarray, box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """What mask targets promise, written out in numpy: each of the shape's cells averages 2 x 2
    bilinear samples (pixel centres at integer coordinates, the box shifted by half a pixel),
    then >= 0.5. ``box`` is (x1, y1, x2, y2) in the mask's pixels."""
    height, width = mask.shape

    def bilinear(y: float, x: float) -> float:
        if y < -1 or y > height or x < -1 or x > width:
            return 0.0
        y, x = min(max(y, 0.0), height - 1), min(max(x, 0.0), width - 1)
        y0, x0 = int(np.floor(y)), int(np.floor(x))
        y1, x1 = min(y0 + 1, height - 1), min(x0 + 1, width - 1)
        dy, dx = y - y0, x - x0
        top = mask[y0, x0] * (1 - dx) + mask[y0, x1] * dx
        bottom = mask[y1, x0] * (1 - dx) + mask[y1, x1] * dx
        return top * (1 - dy) + bottom * dy

    x_start, y_start = box[0] - 0.5, box[1] - 0.5
    bin_h, bin_w = (box[3] - box[1]) / shape[0], (box[2] - box[0]) / shape[1]
    out = np.zeros(shape)
    for i in range(shape[0]):
        for j in range(shape[1]):
            samples = [
                bilinear(
                    y_start + (i + (a + 0.5) / 2) * bin_h, x_start + (j + (b + 0.5) / 2) * bin_w
                )
                for a in range(2)
                for b in range(2)
            ]
            out[i, j] = np.mean(samples) >= 0.5
    return out


@pytest.mark.parametrize("mini", [False, True])
def test_mask_targets_are_two_by_two_aligned_samples_of_the_mask_over_half(mini):
    g = torch.Generator().manual_seed(0)
    full = (torch.rand((2, 2, 6, 8), generator=g, dtype=torch.float64) > 0.5).double()
    full = torch.nn.functional.interpolate(full, size=(48, 64), mode="nearest")  # 8-px blobs
    boxes = torch.tensor(
        [
            [[4.0, 3.0, 40.0, 30.0], [10.0, 20.0, 60.0, 44.0]],
            [[0.0, 0.0, 33.0, 47.0], [8, 8, 9, 9]],
        ],
        dtype=torch.float64,
    )
    shape = (7, 5)
    masks = full
    if mini:  # store each instance cropped to its box at 20 x 28, as USE_MINI_MASK does
        masks = mini_masks(full.flatten(0, 1), boxes.flatten(0, 1), (20, 28)).view(2, 2, 20, 28)
    gt = GroundTruth(
        boxes, torch.ones((2, 2), dtype=torch.int64), masks, torch.zeros((2, 1, 4),
        dtype=torch.float64), torch.zeros((2, 1), dtype=torch.bool), mini_masks=mini,
    )  # fmt: skip
    rois = torch.tensor(
        [[2.3, 1.7, 37.9, 33.2], [12.6, 18.1, 55.4, 41.9], [1.1, 2.2, 30.3, 44.4]],
        dtype=torch.float64,
    )
    flat_index = torch.tensor([0, 1, 2])  # image 0 instances 0 and 1, image 1 instance 0
    targets = mask_targets(rois, flat_index, gt, shape)
    assert targets.shape == (3, *shape)
    for k, (roi, index) in enumerate(zip(rois.numpy(), flat_index.tolist(), strict=True)):
        mask, box = masks.flatten(0, 1)[index].numpy(), boxes.flatten(0, 1)[index].numpy()
        if mini:  # the ROI in the mini mask's pixels
            scale = np.array([28 / (box[2] - box[0]), 20 / (box[3] - box[1])] * 2)
            roi = (roi - box[[0, 1, 0, 1]]) * scale
        np.testing.assert_array_equal(targets[k].numpy(), roi_align_reference(mask, roi, shape))


def test_no_roi_or_no_mask_gives_empty_targets_of_the_right_shape():
    gt = _gt([[0, 0, 10, 10]], [1], masks=torch.ones((1, 1, 16, 16)))
    empty = mask_targets(torch.zeros((0, 4)), torch.zeros(0, dtype=torch.int64), gt, (6, 4))
    assert empty.shape == (0, 6, 4)
    assert mini_masks(torch.zeros((0, 16, 16)), torch.zeros((0, 4)), (5, 3)).shape == (0, 5, 3)
    one = mini_masks(torch.ones((1, 16, 16)), torch.tensor([[0.0, 0.0, 16.0, 16.0]]), (5, 3))
    assert one.shape == (1, 5, 3) and one.min() == 1


def test_mini_masks_are_two_by_two_aligned_samples_of_the_box_over_half():
    g = torch.Generator().manual_seed(1)
    full = (torch.rand((3, 6, 8), generator=g, dtype=torch.float64) > 0.5).double()
    full = torch.nn.functional.interpolate(full[None], size=(48, 64), mode="nearest")[0]
    boxes = torch.tensor(
        [[4.0, 3.0, 40.0, 30.0], [10.5, 20.25, 60.0, 44.0], [0.0, 0.0, 33.0, 47.0]],
        dtype=torch.float64,
    )
    minis = mini_masks(full, boxes, (9, 13))
    assert minis.shape == (3, 9, 13)
    for mini, mask, box in zip(minis, full, boxes, strict=True):
        expected = roi_align_reference(mask.numpy(), box.numpy(), (9, 13))
        np.testing.assert_array_equal(mini.numpy(), expected)


def test_a_cell_exactly_half_covered_is_foreground():
    # left half of an 8 x 8 mask; one 8 x 8 cell samples x = 1.5 (inside) and 5.5 (outside)
    mask = torch.zeros((1, 8, 8))
    mask[0, :, :4] = 1.0
    box = torch.tensor([[0.0, 0.0, 8.0, 8.0]])
    assert mini_masks(mask, box, (1, 1)).tolist() == [[[1.0]]]
    gt = _gt(box.tolist(), [1], masks=mask[None], mini=False)
    assert mask_targets(box, torch.tensor([0]), gt, (1, 1)).tolist() == [[[1.0]]]


def test_detection_targets_address_masks_of_later_images_with_three_instances_each():
    # 3 ground-truth rows per image: instance 1 of image 1 is row 4 of the flattened masks
    # (1 * 3 + 1), which or-ing the two would confuse with row 3.
    boxes = torch.zeros((2, 3, 4))
    boxes[1, 0] = torch.tensor([0.0, 0.0, 10.0, 10.0])
    boxes[1, 1] = torch.tensor([20.0, 20.0, 40.0, 40.0])
    masks = torch.zeros((2, 3, 64, 64))
    masks[1, 0, 0:10, 0:10] = 1
    masks[1, 1, 20:40, 20:30] = 1  # left half of its box
    gt = GroundTruth(
        boxes, torch.tensor([[0, 0, 0], [1, 2, 0]]), masks, torch.zeros((2, 1, 4)),
        torch.zeros((2, 1), dtype=torch.bool), mini_masks=False,
    )  # fmt: skip
    det = detection_targets(
        boxes.new_zeros((0, 4)), torch.zeros(0, dtype=torch.int64), gt, 4, 1.0, STD, (4, 4)
    )
    assert det.class_ids.tolist() == [1, 2]
    assert det.masks[1].tolist() == [[1.0, 1.0, 0.0, 0.0]] * 4


def test_rpn_best_anchor_rule_per_image_in_a_batch_with_more_anchors_than_images():
    anchors = torch.tensor([[0, 0, 10, 40], [100, 100, 110, 110], [200, 0, 210, 40]]).float()
    boxes = torch.tensor([[[0, 0, 10, 10]], [[200, 0, 210, 10]]]).float()  # best IoU 0.25 each
    gt = GroundTruth(
        boxes, torch.tensor([[1], [1]]), torch.zeros((2, 1, 4, 4)), torch.zeros((2, 1, 4)),
        torch.zeros((2, 1), dtype=torch.bool),
    )  # fmt: skip
    labels = rpn_targets(anchors, gt, anchors_per_image=8, std=STD).labels
    assert labels.tolist() == [[1, 0, 0], [0, 0, 1]]


def test_ground_truth_moves_boxes_and_masks_to_the_dtype_and_keeps_class_ids():
    gt = _gt([[0, 0, 10, 10]], [1])
    default = GroundTruth(gt.boxes, gt.class_ids, gt.masks, gt.crowd_boxes, gt.crowd_valid)
    assert default.mini_masks is True  # USE_MINI_MASK's default
    moved = gt.to("cpu", torch.float64)
    assert moved.boxes.dtype == moved.masks.dtype == moved.crowd_boxes.dtype == torch.float64
    assert moved.class_ids.dtype == torch.int64
    assert gt.to("cpu").boxes.dtype == torch.float32
