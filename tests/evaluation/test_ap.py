"""Matterport-style AP, dataset-level AP, COCO conversion and agreement with pycocotools."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from mrcnn.dataset import Dataset
from mrcnn.datasets import ShapesDataset
from mrcnn.evaluation import (
    IGNORED,
    APAccumulator,
    coco_evaluate,
    compute_ap,
    compute_ap_dataset,
    compute_ap_range,
    compute_matches,
    compute_overlaps,
    compute_overlaps_masks,
    compute_recall,
    dataset_to_coco,
    detections_to_coco,
)
from tests.helpers.data import box_mask

# pycocotools' decode under numpy 2
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

H = W = 64


def rect(y1: int, x1: int, y2: int, x2: int, shape=(H, W)) -> np.ndarray:
    """bool [H, W] rectangle, exclusive y2/x2."""
    return box_mask(*shape, y1, x1, y2, x2)


def ellipse(cy: float, cx: float, ry: float, rx: float, shape=(H, W)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0


def stack(*masks: np.ndarray, shape=(H, W)) -> np.ndarray:
    """bool [H, W, N]."""
    if not masks:
        return np.zeros((*shape, 0), dtype=bool)
    return np.stack(masks, axis=-1)


def boxes_of(masks: np.ndarray) -> np.ndarray:
    return Dataset.extract_bboxes(masks)


def ap_of(gt_masks, gt_ids, pred_masks, pred_ids, scores, **kwargs):
    return compute_ap(
        boxes_of(gt_masks), gt_ids, gt_masks,
        boxes_of(pred_masks), pred_ids, scores, pred_masks, **kwargs,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------
# Overlaps
# ------------------------------------------------------------------------------------------------
def test_box_and_mask_overlaps_agree_on_rectangles():
    a = stack(rect(0, 0, 10, 10), rect(20, 20, 30, 40))
    b = stack(rect(5, 5, 15, 15), rect(0, 0, 10, 10), rect(50, 50, 60, 60))
    expected = np.array([[25 / 175, 1.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(compute_overlaps_masks(a, b), expected, rtol=1e-6)
    np.testing.assert_allclose(compute_overlaps(boxes_of(a), boxes_of(b)), expected, rtol=1e-6)
    assert compute_overlaps_masks(a, stack()).shape == (2, 0)
    with pytest.raises(ValueError, match="different image sizes"):
        compute_overlaps_masks(a, np.zeros((32, 32, 1), bool))


# ------------------------------------------------------------------------------------------------
# compute_ap on hand-made cases
# ------------------------------------------------------------------------------------------------
GT = stack(rect(0, 0, 20, 20), rect(30, 30, 50, 60))
GT_IDS = np.array([1, 1])


def test_perfect_predictions_give_one():
    ap, precisions, recalls, overlaps = ap_of(GT, GT_IDS, GT, GT_IDS, np.array([0.9, 0.8]))
    assert ap == 1.0
    np.testing.assert_allclose(recalls, [0, 0.5, 1, 1])
    np.testing.assert_allclose(precisions, [1, 1, 1, 0])
    np.testing.assert_allclose(overlaps, np.eye(2))
    assert compute_ap_range(
        boxes_of(GT), GT_IDS, GT, boxes_of(GT), GT_IDS, [0.9, 0.8], GT, verbose=0
    ) == pytest.approx(1.0)


def test_partial_case_matches_the_hand_computation():
    # 2 ground truths A, B; 3 predictions sorted by score:
    #   p1 (0.9) on A -> TP, p2 (0.8) on nothing -> FP, p3 (0.7) on B -> TP.
    # cumulative TP 1, 1, 2 -> precisions 1/1, 1/2, 2/3; recalls 1/2, 1/2, 2/2.
    # With sentinels: P = [0, 1, .5, .667, 0], R = [0, .5, .5, 1, 1].
    # Envelope (max to the right): P = [1, 1, .667, .667, 0].
    # Recall steps at indexes 1 and 3: AP = (.5 - 0) * 1 + (1 - .5) * 2/3 = 5/6.
    preds = stack(GT[..., 0], rect(55, 0, 64, 10), GT[..., 1])
    scores = np.array([0.8, 0.9, 0.7])[[1, 0, 2]]  # given out of order on purpose
    ap, precisions, recalls, _ = ap_of(GT, GT_IDS, preds, np.array([1, 1, 1]), scores)
    assert ap == pytest.approx(5 / 6)
    np.testing.assert_allclose(precisions, [1, 1, 2 / 3, 2 / 3, 0])
    np.testing.assert_allclose(recalls, [0, 0.5, 0.5, 1, 1])
    gt_match, pred_match, _ = compute_matches(
        boxes_of(GT), GT_IDS, GT, boxes_of(preds), [1, 1, 1], scores, preds
    )
    np.testing.assert_array_equal(pred_match, [0, -1, 1])
    np.testing.assert_array_equal(gt_match, [0, 2])


def test_fp_first_and_duplicate_detection():
    # p1 (0.9) FP, p2 (0.8) on A TP, p3 (0.7) duplicate of A -> FP (A is taken); B missed.
    # precisions 0, 1/2, 1/3; recalls 0, 1/2, 1/2. Envelope at the recall step (index 2): 1/2.
    # AP = 0.5 * 0.5 = 0.25
    a_shifted = rect(1, 0, 21, 20)  # IoU with A = 380/420 > 0.5
    preds = stack(rect(55, 0, 64, 10), GT[..., 0], a_shifted)
    ap = ap_of(GT, GT_IDS, preds, np.array([1, 1, 1]), np.array([0.9, 0.8, 0.7]))[0]
    assert ap == pytest.approx(0.25)


def test_iou_threshold_and_box_mode():
    half = stack(rect(0, 0, 20, 12))  # IoU with A = 240/400 = 0.6
    gt = GT[..., :1]
    assert ap_of(gt, [1], half, [1], [0.9], iou_threshold=0.5)[0] == 1.0
    assert ap_of(gt, [1], half, [1], [0.9], iou_threshold=0.7)[0] == 0.0
    # Box mode needs no masks.
    ap = compute_ap(boxes_of(gt), [1], None, boxes_of(half), [1], [0.9], None, use_masks=False)
    assert ap[0] == 1.0
    with pytest.raises(ValueError, match="masks are None"):
        compute_ap(boxes_of(gt), [1], None, boxes_of(half), [1], [0.9], None)


def test_no_predictions_give_zero_and_empty_image_is_defined():
    assert ap_of(GT, GT_IDS, stack(), np.zeros(0, int), np.zeros(0))[0] == 0.0
    # Nothing to find and nothing found: AP 1.0; false positives on an empty image: AP 0.0.
    assert ap_of(stack(), np.zeros(0, int), stack(), np.zeros(0, int), np.zeros(0))[0] == 1.0
    assert ap_of(stack(), np.zeros(0, int), GT, GT_IDS, [0.9, 0.8])[0] == 0.0


def test_class_mismatch_is_not_a_match():
    ap, _, _, overlaps = ap_of(GT, GT_IDS, GT, np.array([2, 1]), np.array([0.9, 0.8]))
    # p1 (class 2 on A) FP, p2 (class 1 on B) TP: precisions 0, 1/2; AP = 0.5 * 0.5
    assert ap == pytest.approx(0.25)
    assert overlaps[0, 0] == 1.0  # the overlap is there, the class is not


def test_crowd_regions_are_ignored_and_score_threshold_drops_predictions():
    crowd = rect(40, 0, 64, 30)
    gt = stack(GT[..., 0], crowd)
    gt_ids = np.array([1, -1])
    inside_crowd = rect(45, 2, 60, 20)
    preds = stack(inside_crowd, GT[..., 0])
    scores = np.array([0.95, 0.9])
    gt_match, pred_match, _ = compute_matches(
        boxes_of(gt), gt_ids, gt, boxes_of(preds), [1, 1], scores, preds
    )
    np.testing.assert_array_equal(pred_match, [IGNORED, 0])
    np.testing.assert_array_equal(gt_match, [1, -1])
    # Ignored, not a false positive; the crowd is not an instance to find.
    assert ap_of(gt, gt_ids, preds, [1, 1], scores)[0] == 1.0
    # A prediction of another class inside the crowd is a false positive, ranked first:
    # precisions 0, 1/2 at recalls 0, 1 -> AP 0.5.
    assert ap_of(gt, gt_ids, preds, [2, 1], scores)[0] == 0.5
    # score_threshold: gt A, B and the crowd; TP on A (0.9), FP in the crowd (0.6, class 2),
    # TP on B (0.4). All kept: precisions 1, 1/2, 2/3 at recalls 1/2, 1/2, 1 -> AP 5/6.
    # Below 0.5 dropped: TP, FP -> pred_match [0, -1], recall stops at 1/2 -> AP 1/2.
    gt = stack(GT[..., 0], GT[..., 1], crowd)
    gt_ids = np.array([1, 1, -1])
    preds = stack(GT[..., 1], GT[..., 0], inside_crowd)
    scores = np.array([0.4, 0.9, 0.6])
    assert ap_of(gt, gt_ids, preds, [1, 1, 2], scores)[0] == pytest.approx(5 / 6)
    _, pred_match, overlaps = compute_matches(
        boxes_of(gt), gt_ids, gt, boxes_of(preds), [1, 1, 2], scores, preds, score_threshold=0.5
    )
    np.testing.assert_array_equal(pred_match, [0, -1])
    assert overlaps.shape == (2, 3)
    assert ap_of(gt, gt_ids, preds, [1, 1, 2], scores, score_threshold=0.5)[0] == 0.5


def test_compute_recall():
    recall, positive = compute_recall(boxes_of(GT[..., :1]), boxes_of(GT), 0.5)
    assert recall == 0.5
    np.testing.assert_array_equal(positive, [0])
    recall, _ = compute_recall(GT, GT, 0.5, use_masks=True)
    assert recall == 1.0


# ------------------------------------------------------------------------------------------------
# A synthetic dataset of in-memory masks
# ------------------------------------------------------------------------------------------------
class ArrayDataset(Dataset):
    """Images whose masks and class ids are kept in ``image_info``."""

    def __init__(self, masks: list[np.ndarray], class_ids: list[np.ndarray], names=("thing",)):
        super().__init__()
        for i, name in enumerate(names, start=1):
            self.add_class("arrays", i, name)
        for i, (m, c) in enumerate(zip(masks, class_ids, strict=True)):
            self.add_image(
                "arrays", i, None, height=m.shape[0], width=m.shape[1], masks=m, class_ids=c
            )
        self.prepare()

    def load_image(self, image_id: int) -> np.ndarray:
        info = self.image_info[image_id]
        return np.zeros((info["height"], info["width"], 3), dtype=np.uint8)

    def load_mask(self, image_id: int):
        info = self.image_info[image_id]
        return info["masks"], np.asarray(info["class_ids"], dtype=np.int32)


def _random_shape(rng: np.random.Generator) -> np.ndarray:
    cy, cx = rng.uniform(8, H - 8, size=2)
    ry, rx = rng.uniform(3, 14, size=2)
    if rng.random() < 0.5:
        return ellipse(cy, cx, ry, rx)
    return rect(int(cy - ry), int(cx - rx), int(cy + ry) + 1, int(cx + rx) + 1)


def _jitter(mask: np.ndarray, rng: np.random.Generator, amount: int) -> np.ndarray:
    dy, dx = rng.integers(-amount, amount + 1, size=2)
    return np.roll(mask, (int(dy), int(dx)), axis=(0, 1))


def synthetic_set(images: int, seed: int = 0):
    """Ground truths and predictions: hits (some off by a few pixels), misses, false positives."""
    rng = np.random.default_rng(seed)
    gts, gt_ids, preds = [], [], []
    for _ in range(images):
        gt = [_random_shape(rng) for _ in range(rng.integers(0, 5))]
        gt = [m for m in gt if m.any()]
        pm, ps = [], []
        for m in gt:
            if rng.random() < 0.8:  # a hit, sometimes too far off to count at IoU 0.5
                pm.append(_jitter(m, rng, int(rng.choice([1, 2, 6]))))
                ps.append(rng.uniform(0.3, 1.0))
        for _ in range(rng.poisson(0.8)):  # false positives, lower scores on average
            pm.append(_random_shape(rng))
            ps.append(rng.uniform(0.0, 0.8))
        gts.append(stack(*gt))
        gt_ids.append(np.ones(len(gt), dtype=np.int32))
        preds.append(
            {
                "masks": stack(*pm),
                "rois": boxes_of(stack(*pm)),
                "class_ids": np.ones(len(pm), dtype=np.int32),
                "scores": np.asarray(ps, dtype=np.float32),
            }
        )
    return gts, gt_ids, preds


def test_dataset_level_ap_agrees_with_pycocotools_ap50():
    gts, gt_ids, preds = synthetic_set(150)
    dataset = ArrayDataset(gts, gt_ids)
    accumulator = APAccumulator([0.5, 0.75])
    for g, c, p in zip(gts, gt_ids, preds, strict=True):
        accumulator.add(
            boxes_of(g), c, g, p["rois"], p["class_ids"], p["scores"], p["masks"]
        )  # fmt: skip
    ours = {t: accumulator.dataset_ap(t) for t in (0.5, 0.75)}
    coco = coco_evaluate(dataset, preds, dataset.image_ids, "segm")
    print(f"AP50 ours {ours[0.5]:.4f} pycocotools {coco['AP50']:.4f}")
    print(f"AP75 ours {ours[0.75]:.4f} pycocotools {coco['AP75']:.4f}")
    assert 0.3 < ours[0.5] < 0.95  # a mix, not a trivial case
    assert abs(ours[0.5] - coco["AP50"]) < 0.02
    assert abs(ours[0.75] - coco["AP75"]) < 0.02
    # The per-image mean is a different number, but it is defined for every image.
    assert np.isfinite(accumulator.image_aps(0.5)).all()


def test_compute_ap_dataset_pools_images():
    # Image 1: one gt, a TP at 0.9. Image 2: one gt, an FP at 0.95 and a TP at 0.5.
    # Ranked: FP .95, TP .9, TP .5 -> precisions 0, 1/2, 2/3; recalls 0, 1/2, 1.
    # AP = 0.5 * 2/3 + 0.5 * 2/3 = 2/3 (the envelope at recall 1/2 is 2/3).
    ap, _, _ = compute_ap_dataset([1, 1], [np.array([0]), np.array([-1, 0])], [[0.9], [0.95, 0.5]])
    assert ap == pytest.approx(2 / 3)


# ------------------------------------------------------------------------------------------------
# COCO conversion
# ------------------------------------------------------------------------------------------------
def _coco_of(data: dict) -> COCO:
    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def test_shapes_round_trip_through_pycocotools():
    dataset = ShapesDataset()
    dataset.load_shapes(6, 64, 80, seed=1)
    dataset.prepare()
    data = dataset_to_coco(dataset)
    assert [c["name"] for c in data["categories"]] == ["square", "circle", "triangle"]
    coco = _coco_of(data)
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[int(image_id)]))
        assert len(anns) == masks.shape[-1]
        assert coco.imgs[int(image_id)]["height"] == 64
        for k, ann in enumerate(anns):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), masks[..., k])
            assert ann["category_id"] == class_ids[k]
            assert ann["area"] == masks[..., k].sum()
            y1, x1, y2, x2 = boxes_of(masks[..., k : k + 1])[0]
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            assert ann["iscrowd"] == 0


def test_crowd_conversion_and_perfect_detections_give_ap_one():
    gts = [stack(rect(0, 0, 20, 20), rect(30, 30, 60, 60), rect(0, 40, 10, 60)), stack()]
    ids = [np.array([1, 2, -2]), np.zeros(0, np.int32)]
    dataset = ArrayDataset(gts, ids, names=("a", "b"))
    data = dataset_to_coco(dataset)
    assert [a["iscrowd"] for a in data["annotations"]] == [0, 0, 1]
    assert [a["category_id"] for a in data["annotations"]] == [1, 2, 2]
    assert min(a["id"] for a in data["annotations"]) == 1
    results = [
        {
            "rois": boxes_of(g[..., c > 0]),
            "boxes": boxes_of(g[..., c > 0])[:, [1, 0, 3, 2]].astype(np.float32),
            "class_ids": c[c > 0],
            "scores": np.linspace(0.9, 0.8, int((c > 0).sum()), dtype=np.float32),
            "masks": g[..., c > 0],
        }
        for g, c in zip(gts, ids, strict=True)
    ]
    coco_results = detections_to_coco(results, [0, 1])
    assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(coco_results[0])
    assert isinstance(coco_results[0]["segmentation"]["counts"], str)
    for iou_type in ("segm", "bbox"):
        stats = coco_evaluate(dataset, results, dataset.image_ids, iou_type)
        assert stats["AP"] == pytest.approx(1.0)
        assert stats["AP50"] == pytest.approx(1.0)
        assert set(stats) >= {"AP75", "APs", "APm", "APl", "AR100"}
    # Already converted results work too, and the loaded results decode to the masks.
    assert coco_evaluate(dataset, coco_results, dataset.image_ids)["AP"] == pytest.approx(1.0)
    decoded = mask_utils.decode(coco_results[0]["segmentation"]).astype(bool)
    np.testing.assert_array_equal(decoded, gts[0][..., 0])


def test_no_detections_gives_zero_coco_ap():
    gts = [stack(rect(0, 0, 20, 20))]
    dataset = ArrayDataset(gts, [np.array([1])])
    empty = {"rois": np.zeros((0, 4)), "class_ids": np.zeros(0, int), "scores": np.zeros(0)}
    empty["masks"] = stack()
    stats = coco_evaluate(dataset, [empty], dataset.image_ids, "segm")
    assert stats["AP"] == 0.0


# ------------------------------------------------------------------------------------------------
# evaluate_dataset with a stand-in model, on a COCO dataset with its own ids
# ------------------------------------------------------------------------------------------------
class OracleModel:
    """Answers ``detect`` with the ground truth (crowd left out) of the images in turn."""

    class config:  # noqa: N801 - mimics MaskRCNN.config
        IMAGES_PER_GPU = 2

    def __init__(self, dataset, drop_first: bool = False):
        self.dataset, self.next, self.drop_first = dataset, 0, drop_first

    def detect(self, images):
        out = []
        for _ in images:
            masks, ids = self.dataset.load_mask(int(self.dataset.image_ids[self.next]))
            keep = ids > 0
            if self.drop_first and self.next == 0:
                keep[:1] = False
            self.next += 1
            masks, ids = masks[..., keep], ids[keep]
            rois = boxes_of(masks)
            out.append(
                {
                    "rois": rois,
                    "boxes": rois[:, [1, 0, 3, 2]].astype(np.float32),
                    "class_ids": ids,
                    "scores": np.linspace(1.0, 0.5, len(ids), dtype=np.float32),
                    "masks": masks,
                }
            )
        return out


def _coco_files(tmp_path):
    from tests.helpers.data import write_coco, write_image

    images = [
        {"id": 11, "file_name": "a.png", "width": 40, "height": 30},
        {"id": 12, "file_name": "b.png", "width": 40, "height": 30},
    ]
    for image in images:
        write_image(tmp_path / "images" / image["file_name"], 40, 30)

    def poly(id_, image_id, category, x, y, w, h, crowd=0):
        segmentation = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        if crowd:
            rle = mask_utils.frPyObjects(segmentation, 30, 40)[0]
            segmentation = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
        return {
            "id": id_, "image_id": image_id, "category_id": category, "segmentation": segmentation,
            "area": float(w * h), "bbox": [x, y, w, h], "iscrowd": crowd,
        }  # fmt: skip

    annotations = [
        poly(1, 11, 7, 2, 2, 12, 10),
        poly(2, 11, 3, 20, 5, 15, 20),
        poly(3, 12, 7, 5, 5, 20, 20),
        poly(4, 12, 3, 28, 0, 12, 30, crowd=1),
    ]
    categories = [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]
    return write_coco(tmp_path / "ann.json", images, annotations, categories)


def test_evaluate_dataset_on_a_coco_dataset_uses_its_ids(tmp_path):
    from mrcnn.datasets import from_spec
    from mrcnn.evaluation import evaluate_dataset

    dataset = from_spec(f"coco:{_coco_files(tmp_path)}:{tmp_path / 'images'}", None)
    result = evaluate_dataset(OracleModel(dataset), dataset, iou_thresholds=(0.5, 0.7))
    assert result.map50 == 1.0 and result.map50_95 == 1.0 and result.dataset_ap[0.7] == 1.0
    assert {d["image_id"] for d in result.coco_results} == {11, 12}
    assert {d["category_id"] for d in result.coco_results} == {3, 7}
    assert len(result.summary()) == 5
    for iou_type in ("segm", "bbox"):
        stats = coco_evaluate(dataset, result.coco_results, result.image_ids, iou_type)
        assert stats["AP"] == pytest.approx(1.0)
    # One instance missed: per-image mean (1/2 + 1) / 2, dataset AP 2/3 (recall stops there).
    missed = evaluate_dataset(OracleModel(dataset, drop_first=True), dataset, progress=False)
    np.testing.assert_allclose(missed.image_aps[0.5], [0.5, 1.0])
    assert missed.dataset_ap[0.5] == pytest.approx(2 / 3)
    assert evaluate_dataset(OracleModel(dataset), dataset, limit=1).image_ids.tolist() == [0]


def test_detections_to_coco_names_categories_when_given_class_names():
    masks = np.zeros((4, 4, 2), dtype=bool)
    masks[:2, :2, 0] = masks[2:, 2:, 1] = True
    result = {
        "boxes": np.array([[0, 0, 2, 2], [2, 2, 4, 4]], dtype=np.float32),
        "class_ids": np.array([1, 5]),
        "scores": np.array([0.9, 0.8], dtype=np.float32),
        "masks": masks,
    }
    entries = detections_to_coco([result], ["img"], class_names=["BG", "cat"])
    assert [e["category_name"] for e in entries] == ["cat", "class 5"]
    assert "category_name" not in detections_to_coco([result], ["img"])[0]
