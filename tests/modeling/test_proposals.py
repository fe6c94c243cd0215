"""The proposal layer on hand-made RPN outputs, and top_k_per_group."""

from __future__ import annotations

import pytest
import torch

from mrcnn.modeling.proposals import (
    proposal_steps,
    select_top_anchors,
    stable_top_k,
    top_k_per_group,
)

ONES = torch.ones(4)

# a0 and a1 overlap with IoU 90/110 = 0.82; a2 and a3 are apart from everything.
ANCHORS = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],
        [1.0, 0.0, 11.0, 10.0],
        [20.0, 20.0, 30.0, 30.0],
        [40.0, 40.0, 50.0, 50.0],
    ]
)
FULL = [0.0, 0.0, 64.0, 64.0]


def run(
    objectness,
    anchors=ANCHORS,
    deltas=None,
    windows=None,
    level_counts=None,
    pre=100,
    post=100,
    nms=0.7,
    std=ONES,
    per_level=False,
):
    objectness = torch.as_tensor(objectness, dtype=torch.float32)
    batch, count = objectness.shape
    if deltas is None:
        deltas = torch.zeros(batch, count, 4)
    if windows is None:
        windows = torch.tensor([FULL] * batch)
    if level_counts is None:
        level_counts = [count]
    return proposal_steps(
        objectness,
        deltas,
        anchors,
        level_counts,
        torch.as_tensor(windows, dtype=torch.float32),
        pre,
        post,
        nms,
        std,
        per_level,
    ).proposals()


def test_nms_ordering_and_image_index_on_a_batch_of_two():
    logits = [[2.0, 3.0, 1.0, 0.0], [3.0, 2.0, -1.0, 4.0]]
    boxes, scores, image_index = run(logits)
    assert image_index.tolist() == [0, 0, 0, 1, 1, 1]
    # image 0: a1 (3) suppresses a0 (2); then a2, a3
    torch.testing.assert_close(boxes[:3], ANCHORS[[1, 2, 3]])
    # image 1: a3 (4), a0 (3) suppresses a1 (2), a2 (-1)
    torch.testing.assert_close(boxes[3:], ANCHORS[[3, 0, 2]])
    expected = torch.sigmoid(torch.tensor([3.0, 1.0, 0.0, 4.0, 3.0, -1.0]))
    torch.testing.assert_close(scores, expected)


def test_nms_threshold_is_respected():
    logits = [[2.0, 3.0, 1.0, 0.0]]
    boxes, _, _ = run(logits, nms=0.9)  # 0.82 overlap is below 0.9: both kept
    torch.testing.assert_close(boxes, ANCHORS[[1, 0, 2, 3]])


def test_clipping_to_each_images_window_and_dropping_empty_boxes():
    logits = [[2.0, 3.0, 1.0, 0.0], [3.0, 2.0, -1.0, 4.0]]
    windows = [[0.0, 0.0, 45.0, 45.0], [5.0, 0.0, 35.0, 35.0]]
    boxes, _, image_index = run(logits, windows=windows)
    # image 0: a3 clipped to its window
    assert image_index.tolist() == [0, 0, 0, 1, 1]
    torch.testing.assert_close(boxes[2], torch.tensor([40.0, 40.0, 45.0, 45.0]))
    # image 1: a3 lies outside the window (zero size after clipping) and is dropped;
    # a0 and a1 become (5, 0, 10, 10) and (5, 0, 11, 10): IoU 5/6 -> a1 suppressed
    torch.testing.assert_close(
        boxes[3:], torch.tensor([[5.0, 0.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    )
    assert (boxes[:, 0] >= torch.tensor(windows)[image_index, 0]).all()
    assert (boxes[:, 2] <= torch.tensor(windows)[image_index, 2]).all()


def test_per_image_post_nms_limit():
    logits = [[2.0, 3.0, 1.0, 0.0], [3.0, 2.0, -1.0, 4.0]]
    boxes, scores, image_index = run(logits, post=2)
    assert image_index.tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(boxes, ANCHORS[[1, 2, 3, 0]])
    assert scores[0] > scores[1] and scores[2] > scores[3]
    # an image with fewer survivors than the limit keeps them all
    boxes, _, image_index = run([[5.0, 4.0, -9.0, -9.0], [0.0, 0.0, 1.0, 2.0]], post=3, nms=0.5)
    assert image_index.tolist() == [0, 0, 0, 1, 1, 1]


def test_deltas_are_decoded_with_std():
    deltas = torch.zeros(1, 4, 4)
    deltas[0, 2] = torch.tensor([1.0, -1.0, 0.0, 0.0])
    std = torch.tensor([0.5, 0.2, 1.0, 1.0])
    boxes, _, _ = run([[0.0, 0.0, 5.0, 0.0]], deltas=deltas, std=std, post=1)
    # a2 (20..30) moved by +0.5 * 10 in x and -0.2 * 10 in y
    torch.testing.assert_close(boxes[0], torch.tensor([25.0, 18.0, 35.0, 28.0]))


def test_global_pre_nms_limit():
    # two levels of two anchors each, all apart from one another
    logits = [[5.0, 4.0, 1.0, 0.0]]
    boxes, scores, _ = run(logits, level_counts=[2, 2], pre=1, per_level=False)
    torch.testing.assert_close(boxes, ANCHORS[[0]])
    boxes, _, _ = run(logits, level_counts=[2, 2], pre=3, per_level=False)
    # the best 3 are a0, a1, a2; a0 suppresses a1
    torch.testing.assert_close(boxes, ANCHORS[[0, 2]])


def test_per_level_pre_nms_limit_and_per_level_nms():
    logits = [[5.0, 4.0, 1.0, 0.0]]
    boxes, scores, _ = run(logits, level_counts=[2, 2], pre=1, per_level=True)
    # the best of each level, ordered best first
    torch.testing.assert_close(boxes, ANCHORS[[0, 2]])
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([5.0, 1.0])))
    # overlapping boxes on different levels do not suppress each other in per-level mode
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.5]])
    per_level, _, _ = run([[1.0, 2.0]], anchors=anchors, level_counts=[1, 1], per_level=True)
    together, _, _ = run([[1.0, 2.0]], anchors=anchors, level_counts=[1, 1], per_level=False)
    assert len(per_level) == 2 and len(together) == 1
    torch.testing.assert_close(together[0], anchors[1])


def test_select_top_anchors():
    objectness = torch.tensor([[0.0, 3.0, 1.0, 2.0, 5.0], [4.0, 0.0, 0.0, 0.0, 1.0]])
    indices, levels = select_top_anchors(objectness, [3, 2], 2, per_level=False)
    assert indices.tolist() == [[4, 1], [0, 4]] and levels.tolist() == [0, 0]
    indices, levels = select_top_anchors(objectness, [3, 2], 2, per_level=True)
    assert indices[0].tolist() == [1, 2, 4, 3]
    assert indices[1, :1].tolist() == [0] and indices[1, 2:].tolist() == [4, 3]
    assert levels.tolist() == [0, 0, 1, 1]
    # a limit above the level size takes the whole level
    indices, levels = select_top_anchors(objectness, [3, 2], 10, per_level=True)
    assert indices.shape == (2, 5) and levels.tolist() == [0, 0, 0, 1, 1]


def test_top_k_per_group():
    order = torch.tensor([5, 3, 0, 4, 1, 2])
    groups = torch.tensor([1, 0, 1, 0, 1, 0])
    # group 0 in order: 5, 3, 1; group 1: 0, 4, 2
    assert top_k_per_group(order, groups, 2).tolist() == [5, 3, 0, 4]
    assert top_k_per_group(order, groups, 1).tolist() == [5, 0]
    assert top_k_per_group(order, groups, 10).tolist() == [5, 3, 1, 0, 4, 2]
    assert top_k_per_group(order, groups, 0).tolist() == []
    empty = torch.zeros(0, dtype=torch.int64)
    assert top_k_per_group(empty, groups, 3).tolist() == []
    # groups with gaps in their ids
    groups = torch.tensor([7, 7, 2, 7, 2, 9])
    assert top_k_per_group(torch.tensor([0, 1, 2, 3, 4, 5]), groups, 2).tolist() == [
        2,
        4,
        0,
        1,
        5,
    ]


def test_per_level_nms_keeps_every_image_and_level_apart_in_a_batch_of_three():
    # two levels of one anchor each, at nearly the same place: in per-level mode each of the
    # 3 images keeps both (6 groups: image * levels + level, none shared), best first
    anchors = torch.tensor([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.5]])
    logits = [[1.0, 2.0], [3.0, 0.5], [0.0, 4.0]]
    boxes, scores, image_index = run(logits, anchors=anchors, level_counts=[1, 1], per_level=True)
    assert image_index.tolist() == [0, 0, 1, 1, 2, 2]
    expected = torch.sigmoid(torch.tensor([2.0, 1.0, 3.0, 0.5, 4.0, 0.0]))
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(boxes, anchors[[1, 0, 0, 1, 1, 0]])


@pytest.mark.parametrize("k", [1, 7, 40])
def test_stable_top_k_equals_a_stable_sort_with_ties(k):
    values = torch.randint(0, 6, (3, 40), generator=torch.Generator().manual_seed(6)).float()
    expected = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    assert torch.equal(stable_top_k(values, k), expected)


@pytest.mark.parametrize("k", [2, 4, 7])
def test_stable_top_k_ranks_nan_scores_as_a_stable_sort_does(k):
    """Also when enough numbers tie at the k-th value (k = 4: four at 0.5): NaN compares false,
    so a filter on the numbers alone dropped the NaNs there (and kept them at k = 7)."""
    values = torch.tensor([[0.5, float("nan"), 0.9, 0.5, float("nan"), 0.5, 0.5, 0.1]])
    expected = torch.sort(values, dim=1, descending=True, stable=True).indices[:, :k]
    assert torch.equal(stable_top_k(values, k), expected)
