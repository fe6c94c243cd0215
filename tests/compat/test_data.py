"""mrcnn.model.data_generator (Matterport's training batches as numpy arrays, for its
inspect_data notebooks) and generate_random_rois: layouts, and targets that lead back to the
ground truth they were made from."""

from __future__ import annotations

import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn import utils
from mrcnn.config import Config
from mrcnn.dataset import Dataset
from mrcnn.datasets import from_spec

SHAPES = from_spec("shapes:6:64", "train")


def _config(**overrides) -> Config:
    values = {
        "NUM_CLASSES": SHAPES.num_classes,
        "IMAGE_MIN_DIM": 64,
        "IMAGE_MAX_DIM": 64,
        "RPN_ANCHOR_SCALES": [8, 16, 32, 64, 128],
        "TRAIN_ROIS_PER_IMAGE": 32,
        "MAX_GT_INSTANCES": 10,
    }
    return Config.from_overrides({**values, **overrides})


def _batch(seed: int = 0, **kwargs):
    np.random.seed(seed)
    config = kwargs.pop("config", _config())
    generator = modellib.data_generator(SHAPES, config, **kwargs)
    return next(generator)


def test_batches_have_matterports_layout():
    config = _config()
    inputs, outputs = _batch(random_rois=100, batch_size=2, detection_targets=True)
    shapes = [x.shape for x in inputs + outputs]
    anchors = len(modellib.MaskRCNN("inference", config).get_anchors((64, 64, 3)))
    assert shapes == [
        (2, 64, 64, 3),
        (2, config.IMAGE_META_SIZE),
        (2, anchors, 1),
        (2, config.RPN_TRAIN_ANCHORS_PER_IMAGE, 4),
        (2, 10),
        (2, 10, 4),
        (2, 56, 56, 10),
        (2, 100, 4),
        (2, 32, 4),
        (2, 32, 1),
        (2, 32, config.NUM_CLASSES, 4),
        (2, 32, 28, 28, config.NUM_CLASSES),
    ]
    dtypes = [x.dtype.name for x in inputs[2:] + outputs[:1]]
    assert dtypes == ["int32", "float64", "int32", "int32", "bool", "int32", "int32", "int32"]
    inputs, outputs = _batch(batch_size=3)
    assert len(inputs) == 7 and outputs == [] and len(inputs[0]) == 3


def test_rpn_targets_refine_anchors_onto_the_ground_truth():
    config = _config()
    inputs, _ = _batch(batch_size=2)
    anchors = modellib.MaskRCNN("inference", config)
    anchors.get_anchors((64, 64, 3))
    for b in range(2):
        positive = np.flatnonzero(inputs[2][b, :, 0] == 1)
        deltas = inputs[3][b, : len(positive)] * config.RPN_BBOX_STD_DEV
        refined = utils.apply_box_deltas(anchors.anchors[positive], deltas)
        gt = inputs[5][b][inputs[4][b] > 0]
        distance = np.abs(refined[:, None] - gt[None]).max(axis=2).min(axis=1)
        assert len(positive) and distance.max() < 0.01


def test_head_targets_refine_rois_onto_a_box_of_their_class():
    config = _config()
    inputs, (class_ids, deltas, masks) = _batch(
        random_rois=200, batch_size=2, detection_targets=True
    )
    class_ids = class_ids[:, :, 0]
    rois, gt_ids, gt_boxes = inputs[8], inputs[4], inputs[5]
    for b in range(2):
        positive = np.flatnonzero(class_ids[b] > 0)
        assert len(positive) and positive.max() < len(positive)  # positives first
        specific = deltas[b, positive, class_ids[b, positive]] * config.BBOX_STD_DEV
        refined = utils.apply_box_deltas(rois[b, positive].astype(np.float32), specific)
        for box, class_id in zip(refined, class_ids[b, positive], strict=True):
            same_class = gt_boxes[b][gt_ids[b] == class_id]
            assert np.abs(same_class - box).max(axis=1).min() < 0.01
        others = np.ones(deltas.shape[1:3], bool)
        others[positive, class_ids[b, positive]] = False
        assert not deltas[b][others].any()  # only each positive's own class has a target
        own = masks[b, positive, :, :, class_ids[b, positive]]
        assert own.sum(axis=(1, 2)).min() > 0 and masks[b].sum() == own.sum()


def test_draws_follow_numpys_seed():
    first = _batch(3, random_rois=50, detection_targets=True)
    again = _batch(3, random_rois=50, detection_targets=True)
    for a, b in zip(first[0] + first[1], again[0] + again[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_instances_are_capped_at_max_gt_instances():
    inputs, _ = _batch(config=_config(MAX_GT_INSTANCES=1), batch_size=4)
    assert inputs[4].shape == (4, 1) and (inputs[4] > 0).all()


def test_random_rois_lie_in_the_image_and_mostly_around_the_boxes():
    np.random.seed(0)
    boxes = np.array([[10, 20, 30, 50], [40, 5, 60, 25]])
    rois = modellib.generate_random_rois((64, 80, 3), 300, np.array([1, 2]), boxes)
    assert rois.shape == (300, 4) and rois.dtype == np.int32
    assert (rois[:, :2] >= 0).all() and (rois[:, 2] <= 64).all() and (rois[:, 3] <= 80).all()
    assert (rois[:, 2:] - rois[:, :2] >= 1).all()
    overlaps = utils.compute_overlaps(rois.astype(np.float64), boxes.astype(np.float64))
    assert (overlaps.max(axis=1) > 0).mean() >= 0.9
    lone = modellib.generate_random_rois((64, 80, 3), 20, np.zeros(0, int), np.zeros((0, 4)))
    assert lone.shape == (20, 4)


class _Blank(Dataset):
    """Images of the given sizes; ``instances`` tells whether they hold one square."""

    def __init__(self, sizes, instances: bool) -> None:
        super().__init__()
        self.add_class("blank", 1, "square")
        for i, size in enumerate(sizes):
            self.add_image("blank", i, None, size=size)
        self.instances = instances
        self.prepare()

    def load_image(self, image_id):
        return np.full((*self.image_info[image_id]["size"], 3), 120, np.uint8)

    def load_mask(self, image_id):
        height, width = self.image_info[image_id]["size"]
        if not self.instances:
            return np.zeros((height, width, 0), bool), np.zeros(0, np.int32)
        mask = np.zeros((height, width, 1), bool)
        mask[8:24, 8:24] = True
        return mask, np.array([1], np.int32)


def test_bad_datasets_get_one_line_errors():
    config = _config(NUM_CLASSES=2)
    empty = modellib.data_generator(_Blank([(64, 64)] * 2, instances=False), config)
    with pytest.raises(ValueError, match="no image of the dataset has an instance"):
        next(empty)
    config = _config(NUM_CLASSES=2, IMAGE_RESIZE_MODE="none")
    mixed = _Blank([(64, 64), (64, 128)], instances=True)
    batches = modellib.data_generator(mixed, config, shuffle=False, batch_size=2)
    with pytest.raises(ValueError, match="mold to different sizes .* batch_size=1"):
        next(batches)


def test_build_detection_targets_has_matterports_signature_and_layout():
    config = _config(NUM_CLASSES=3, USE_MINI_MASK=False, TRAIN_ROIS_PER_IMAGE=16)
    gt_boxes = np.array([[4, 4, 20, 30], [30, 10, 60, 40]], np.int32)
    gt_masks = np.zeros((64, 64, 2), bool)
    gt_masks[4:20, 4:30, 0] = gt_masks[30:60, 10:40, 1] = True
    far = np.array([[0, 40, 3, 63], [50, 50, 63, 63]], np.int32)  # overlapping neither box
    np.random.seed(0)
    rois, class_ids, deltas, masks = modellib.build_detection_targets(
        np.concatenate([gt_boxes, far]), np.array([2, 1], np.int32), gt_boxes, gt_masks, config
    )
    assert rois.shape == (16, 4) and class_ids.shape == (16,) and deltas.shape == (16, 3, 4)
    assert masks.shape == (16, 28, 28, 3) and class_ids.dtype == np.int32
    positive = np.flatnonzero(class_ids > 0)
    assert len(positive) == 4  # both ROIs on the boxes, and both boxes joined as ROIs
    assert (class_ids[4:6] == 0).all() and not rois[6:].any()  # the far ROIs; zero rows
    for i in positive:  # each positive is one of the boxes (a ROI or the box joined as one)
        box = np.flatnonzero((gt_boxes == rois[i]).all(axis=1))[0]
        assert class_ids[i] == [2, 1][box]
        assert np.abs(deltas[i, class_ids[i]]).max() < 1e-5  # already on its box
        assert masks[i, :, :, class_ids[i]].mean() > 0.95  # the box is all mask
    assert not deltas[class_ids == 0].any() and not masks[class_ids == 0].any()


def test_an_image_that_fails_to_load_is_passed_over_with_a_line_as_matterport_did(caplog):
    from tests.helpers.bad_images import broken_shapes

    dataset = broken_shapes(6, bad_masks=[2])
    config = _config(NUM_CLASSES=dataset.num_classes)
    batches = modellib.data_generator(dataset, config, shuffle=False, batch_size=5)
    with caplog.at_level("WARNING", logger="mrcnn.compat.data"):
        inputs, _ = next(batches)
    assert inputs[0].shape[0] == 5  # the 5 images that load, image 2 passed over
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "Error processing image 2 (photos/train_2.jpg): load_image_gt raised IndexError: "
        "index 64 is out of bounds for axis 1 with size 64; passed over"
    ]


def test_more_than_five_loading_errors_raise_the_last_one_as_matterport_did():
    from tests.helpers.bad_images import broken_shapes

    dataset = broken_shapes(8, bad_masks=range(6))
    config = _config(NUM_CLASSES=dataset.num_classes)
    batches = modellib.data_generator(dataset, config, shuffle=False, batch_size=4)
    with pytest.raises(IndexError, match="out of bounds"):
        next(batches)
