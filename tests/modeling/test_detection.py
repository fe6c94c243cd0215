"""The detection layer (refine_detections) on hand-made box-head outputs."""

from __future__ import annotations

import math

import pytest
import torch
from torchvision.ops import batched_nms

from mrcnn.modeling.detection import best_survivors, refine_detections
from mrcnn.modeling.proposals import top_k_per_group

STD = torch.tensor([0.1, 0.1, 0.2, 0.2])
FULL = [0.0, 0.0, 100.0, 100.0]

# r0 and r1 overlap (IoU 0.82); r2 and r3 are apart.
ROIS = torch.tensor(
    [
        [0.0, 0.0, 10.0, 10.0],
        [1.0, 0.0, 11.0, 10.0],
        [20.0, 20.0, 30.0, 30.0],
        [40.0, 40.0, 50.0, 50.0],
    ]
)


def approx(value: float):
    return pytest.approx(value, abs=1e-6)


def logits_from(probs) -> torch.Tensor:
    """Logits whose softmax is ``probs``."""
    return torch.log(torch.tensor(probs, dtype=torch.float32))


def run(
    probs,
    rois=ROIS,
    image_index=None,
    windows=None,
    deltas=None,
    min_confidence=0.5,
    nms=0.3,
    max_instances=100,
    mode="top_class",
):
    logits = logits_from(probs)
    k, c = logits.shape
    if image_index is None:
        image_index = torch.zeros(k, dtype=torch.int64)
    if windows is None:
        windows = [FULL] * (int(image_index.max()) + 1 if k else 1)
    if deltas is None:
        deltas = torch.zeros(k, c, 4)
    return refine_detections(
        logits,
        deltas,
        rois,
        image_index,
        torch.tensor(windows),
        STD,
        min_confidence,
        nms,
        max_instances,
        mode,
    )


def test_top_class_mode_one_detection_per_roi_and_no_background():
    probs = [
        [0.1, 0.8, 0.1],  # class 1
        [0.1, 0.05, 0.85],  # class 2
        [0.9, 0.05, 0.05],  # background: dropped
        [0.3, 0.6, 0.1],  # class 1
    ]
    out = run(probs)
    assert out["class_ids"].tolist() == [2, 1, 1]
    torch.testing.assert_close(out["scores"], torch.tensor([0.85, 0.8, 0.6]))
    torch.testing.assert_close(out["boxes"], ROIS[[1, 0, 3]])
    assert out["image_index"].tolist() == [0, 0, 0]
    assert out["class_ids"].dtype == torch.int64


def test_min_confidence():
    probs = [[0.1, 0.8, 0.1], [0.1, 0.05, 0.85], [0.9, 0.05, 0.05], [0.3, 0.6, 0.1]]
    out = run(probs, min_confidence=0.7)
    assert out["class_ids"].tolist() == [2, 1]
    torch.testing.assert_close(out["scores"], torch.tensor([0.85, 0.8]))
    assert len(run(probs, min_confidence=0.9)["scores"]) == 0


def test_per_class_nms_same_class_suppressed_different_classes_kept():
    same = run([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]])
    assert same["class_ids"].tolist() == [1]
    torch.testing.assert_close(same["boxes"], ROIS[[0]])
    different = run([[0.1, 0.8, 0.1], [0.2, 0.1, 0.7], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]])
    assert different["class_ids"].tolist() == [1, 2]
    torch.testing.assert_close(different["boxes"], ROIS[[0, 1]])
    # the threshold: r0/r1 overlap 0.82 survives an NMS threshold of 0.9
    loose = run([[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]], nms=0.9)
    assert loose["class_ids"].tolist() == [1, 1]


def test_same_class_in_different_images_not_suppressed():
    probs = [[0.1, 0.8, 0.1], [0.2, 0.7, 0.1], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]]
    out = run(probs, image_index=torch.tensor([0, 1, 0, 1]))
    assert out["image_index"].tolist() == [0, 1]
    torch.testing.assert_close(out["boxes"], ROIS[[0, 1]])


def test_all_classes_mode_every_foreground_class_is_a_candidate():
    probs = [
        [0.1, 0.5, 0.4],
        [0.6, 0.1, 0.3],  # background is the top class, but classes 1 and 2 still count
        [0.2, 0.2, 0.6],
        [0.98, 0.01, 0.01],
    ]
    out = run(probs, min_confidence=0.05, nms=0.5, mode="all_classes")
    # r0 and r1 overlap: r0 class 1 (0.5) suppresses r1 class 1 (0.1),
    # r0 class 2 (0.4) suppresses r1 class 2 (0.3); r3 is below 0.05
    pairs = list(zip(out["class_ids"].tolist(), out["scores"].tolist(), strict=True))
    expected = [(2, 0.6), (1, 0.5), (2, 0.4), (1, 0.2)]
    assert [c for c, _ in pairs] == [c for c, _ in expected]
    assert [s for _, s in pairs] == [approx(s) for _, s in expected]
    assert 0 not in out["class_ids"].tolist()
    # the same input in top_class mode: one class per ROI, background ROIs dropped
    top = run(probs, min_confidence=0.05, nms=0.5, mode="top_class")
    assert top["class_ids"].tolist() == [2, 1]
    assert top["scores"].tolist() == [approx(0.6), approx(0.5)]


def test_background_never_returned_even_with_zero_confidence():
    probs = [[0.97, 0.02, 0.01]] * 4
    assert len(run(probs, min_confidence=0.0)["class_ids"]) == 0
    everything = run(probs, min_confidence=0.0, nms=1.0, mode="all_classes")
    assert len(everything["class_ids"]) == 8
    assert set(everything["class_ids"].tolist()) == {1, 2}


def test_per_image_max_instances():
    rois = torch.tensor([[10.0 * i, 0.0, 10.0 * i + 8, 8.0] for i in range(6)])
    image_index = torch.tensor([0, 0, 0, 1, 1, 1])
    probs = [[0.1, 0.9 - 0.01 * i, 0.0 + 0.01 * i] for i in range(6)]
    out = run(probs, rois=rois, image_index=image_index, max_instances=2)
    assert out["image_index"].tolist() == [0, 0, 1, 1]
    torch.testing.assert_close(out["boxes"], rois[[0, 1, 3, 4]])
    assert out["scores"][0] > out["scores"][1] and out["scores"][2] > out["scores"][3]


def test_class_specific_deltas_and_window_clipping():
    deltas = torch.zeros(4, 3, 4)
    deltas[0, 1] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # r0 class 1: shift by 0.1 * 10 in x
    deltas[0, 2] = torch.tensor([0.0, 0.0, 5.0, 5.0])  # r0 class 2 (not chosen)
    deltas[3, 1] = torch.tensor([0.0, 0.0, 5.0 * math.log(2), 0.0])  # r3: width x2 -> 35..55
    probs = [[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]
    out = run(probs, deltas=deltas, windows=[[0.0, 0.0, 52.0, 100.0]])
    torch.testing.assert_close(
        out["boxes"], torch.tensor([[1.0, 0.0, 11.0, 10.0], [35.0, 40.0, 52.0, 50.0]])
    )


def test_boxes_outside_the_window_are_dropped():
    probs = [[0.1, 0.8, 0.1], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]
    out = run(probs, windows=[[0.0, 0.0, 35.0, 35.0]])
    # r3 (40..50) clips to an empty box
    torch.testing.assert_close(out["boxes"], ROIS[[0]])


def test_no_rois():
    out = refine_detections(
        torch.zeros(0, 3),
        torch.zeros(0, 3, 4),
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.int64),
        torch.tensor([FULL]),
        STD,
        0.0,
        0.5,
        10,
        "all_classes",
    )
    assert all(len(v) == 0 for v in out.values())


def test_class_mode_read_at_run_time_is_compared_by_value():
    # a mode parsed from a YAML file or --set is a new string object, not the literal
    mode = "".join(["all_", "classes"])
    probs = [[0.6, 0.1, 0.3], [0.98, 0.01, 0.01], [0.2, 0.2, 0.6], [0.98, 0.01, 0.01]]
    out = run(probs, min_confidence=0.25, nms=0.5, mode=mode)
    assert out["class_ids"].tolist() == [2, 2]  # r0's class 2 counts though background leads


def test_one_class_model_keeps_the_same_box_in_each_of_three_images():
    # 2 classes (background + 1) and 3 images: NMS groups must stay apart for every image,
    # also when the batch is larger than the class count
    rois = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 3)
    probs = [[0.1, 0.9], [0.2, 0.8], [0.3, 0.7]]
    out = run(probs, rois=rois, image_index=torch.tensor([0, 1, 2]))
    assert out["image_index"].tolist() == [0, 1, 2]
    assert out["scores"].tolist() == [approx(0.9), approx(0.8), approx(0.7)]


def test_nms_groups_of_image_and_class_never_coincide():
    # 3 classes, 4 images, one box everywhere: class 2 in image 0, classes 1 and 2 in image 1,
    # class 1 in image 3. No two of these may share an NMS group (image * classes + class is
    # unique; image / classes + class, image ^ class, image | class and the like are not)
    rois = torch.tensor([[0.0, 0.0, 10.0, 10.0]] * 5)
    probs = [
        [0.1, 0.1, 0.8],
        [0.1, 0.7, 0.2],
        [0.3, 0.05, 0.65],
        [0.9, 0.05, 0.05],
        [0.1, 0.6, 0.3],
    ]
    out = run(probs, rois=rois, image_index=torch.tensor([0, 1, 1, 2, 3]))
    assert out["image_index"].tolist() == [0, 1, 1, 3]
    assert out["class_ids"].tolist() == [2, 1, 2, 1]


def test_all_classes_mode_of_a_one_class_model_gives_one_candidate_per_roi():
    out = run([[0.4, 0.6], [0.7, 0.3]], rois=ROIS[[0, 2]], min_confidence=0.2, mode="all_classes")
    assert out["class_ids"].tolist() == [1, 1]
    assert out["scores"].tolist() == [approx(0.6), approx(0.3)]


def test_a_score_equal_to_min_confidence_is_kept():
    # two equal logits give exactly 0.5; "lower probabilities are dropped", equal ones stay
    out = run([[0.5, 0.5]], rois=ROIS[:1], min_confidence=0.5, mode="all_classes")
    assert out["scores"].tolist() == [0.5]


def test_thin_but_not_degenerate_detections_are_kept():
    # a detection half a pixel wide is a real (small) object; only boxes below 0.01 go
    rois = torch.tensor([[0.0, 0.0, 0.5, 10.0], [20.0, 20.0, 20.005, 30.0]])
    out = run([[0.1, 0.9], [0.1, 0.9]], rois=rois)
    torch.testing.assert_close(out["boxes"], rois[:1])


@pytest.mark.parametrize("spread", [400.0, 3.0])
def test_best_survivors_equal_nms_over_every_candidate(spread):
    """Each image's best survivors, from NMS on its best candidates only, are the survivors of
    NMS over all of them. With a spread of 3 px nearly all boxes of a class overlap, so most of
    the first candidates are suppressed and more must be looked at."""
    generator = torch.Generator().manual_seed(int(spread))
    count, classes = 3000, 5
    xy = torch.rand(count, 2, generator=generator, dtype=torch.float64) * spread
    boxes = torch.cat([xy, xy + 20 + torch.rand(count, 2, generator=generator) * 30], dim=1)
    scores = torch.rand(count, generator=generator, dtype=torch.float64)
    images = torch.randint(0, 3, (count,), generator=generator)
    groups = images * classes + torch.randint(0, classes, (count,), generator=generator)
    everything = top_k_per_group(batched_nms(boxes, scores, groups, 0.5), images, 40)
    found = best_survivors(boxes, scores, groups, images, 0.5, 40)
    assert torch.equal(found, everything)
    per_image = torch.bincount(images[found], minlength=3).tolist()
    if spread > 100:
        assert per_image == [40, 40, 40]
    else:  # fewer survivors than asked for: every candidate had to be looked at
        assert 0 < min(per_image) < 40


def _nms_sizes(monkeypatch) -> list[int]:
    """Record how many candidates each NMS call of the detection layer is given."""
    import mrcnn.modeling.detection as detection

    sizes: list[int] = []

    def counting_nms(boxes, scores, groups, threshold):
        sizes.append(len(boxes))
        return batched_nms(boxes, scores, groups, threshold)

    monkeypatch.setattr(detection, "batched_nms", counting_nms)
    return sizes


def _candidates(distinct: int, stacked: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``stacked`` copies of one box scored best, then ``distinct`` boxes that overlap nothing,
    scored below them: (boxes [N, 4] (x1, y1, x2, y2), scores [N])."""
    same = torch.tensor([[0.0, 0.0, 10.0, 10.0]]).repeat(stacked, 1)
    x = torch.arange(distinct, dtype=torch.float32)[:, None] * 20 + 100
    apart = torch.cat([x, torch.zeros_like(x), x + 10, torch.full_like(x, 10.0)], dim=1)
    scores = torch.linspace(1.0, 0.01, stacked + distinct)
    return torch.cat([same, apart]), scores


def test_best_survivors_look_at_four_times_max_instances_first(monkeypatch):
    """NMS first sees each image's best 4 x max_instances candidates and no more when enough
    survive, or when an image has no more than that: image 0 has 1000 separate boxes (10 of its
    best 40 survive), image 1 exactly 40 copies of one box (1 survives, and nothing is left)."""
    sizes = _nms_sizes(monkeypatch)
    boxes0, scores0 = _candidates(1000, 0)
    boxes1, scores1 = _candidates(0, 40)
    boxes, scores = torch.cat([boxes0, boxes1]), torch.cat([scores0, scores1])
    images = torch.cat([torch.zeros(1000, dtype=torch.long), torch.ones(40, dtype=torch.long)])
    found = best_survivors(boxes, scores, images.clone(), images, 0.5, 10)
    assert sizes == [80]
    assert found.tolist() == list(range(10)) + [1000]


def test_best_survivors_look_at_four_times_more_while_too_few_survive(monkeypatch):
    """100 copies of one box come first: 1 of the best 40 survives, then 1 + 60 of the best 160,
    enough for 10."""
    sizes = _nms_sizes(monkeypatch)
    boxes, scores = _candidates(1000, 100)
    images = torch.zeros(1100, dtype=torch.long)
    found = best_survivors(boxes, scores, images.clone(), images, 0.5, 10)
    assert sizes == [40, 160]
    assert found.tolist() == [0, *range(100, 109)]
