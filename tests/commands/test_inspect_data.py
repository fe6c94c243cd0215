"""``mrcnn inspect-data`` and the coverage computation behind it."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from mrcnn.commands import inspect_data
from mrcnn.config import Config
from mrcnn.datasets import ShapesDataset, anchor_coverage, collect_instances
from mrcnn.datasets.stats import InstanceRecords, boxes_to_input, image_plan
from mrcnn.modeling.anchors import anchors_for_config

SMALL = ["IMAGE_MIN_DIM=64", "IMAGE_MAX_DIM=128"]


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    inspect_data.add_arguments(parser)
    return inspect_data.run(parser.parse_args(argv))


def test_inspect_data_on_shapes(tmp_path, capsys):
    out = tmp_path / "inspect"
    argv = ["--dataset", "shapes:12:64", "--out", str(out), "--samples", "4"]
    argv += [a for s in SMALL for a in ("--set", s)]
    assert _run(argv) == 0
    printed = capsys.readouterr().out
    assert "12 images, 3 classes: square, circle, triangle" in printed
    assert "anchor coverage (IoU >= 0.5):" in printed
    assert "anchor coverage (IoU >= 0.7):" in printed
    for name in ("samples.png", "statistics.png", "anchors.png"):
        assert (out / name).stat().st_size > 1000
    (out / "samples.png").write_bytes(b"the user's edit")
    with pytest.raises(ValueError, match="--overwrite"):
        _run(argv)  # figures of an earlier run are replaced only on request
    assert (out / "samples.png").read_bytes() == b"the user's edit"
    assert _run([*argv, "--overwrite"]) == 0
    assert (out / "samples.png").stat().st_size > 1000


def test_inspect_data_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset spec 'nope:x'"):
        _run(["--dataset", "nope:x", "--out", str(tmp_path)])


def _records(boxes_yxyx, shape) -> InstanceRecords:
    boxes = np.asarray(boxes_yxyx, dtype=np.int32)
    count = len(boxes)
    return InstanceRecords(
        analysed_ids=np.array([0]),
        image_shapes=np.array([shape]),
        image_index=np.zeros(count, dtype=np.int64),
        class_ids=np.ones(count, dtype=np.int32),
        boxes=boxes,
        areas=np.full(count, 100, dtype=np.int64),
    )


def test_coverage_maps_boxes_into_the_padded_input():
    config = Config.from_overrides(SMALL)
    plan = image_plan(32, 64, config)  # scaled x2 to 64 x 128, padded 32 rows top and bottom
    mapped = boxes_to_input(np.array([[0, 0, 32, 64]]), plan)
    assert mapped.tolist() == [[0.0, 32.0, 128.0, 96.0]]
    # original box (y 8..24, x 24..40) maps to (48, 48, 80, 80): the 32 px anchor at (64, 64)
    anchors, _ = anchors_for_config(config, plan.output_shape)
    target = torch.tensor([48.0, 48.0, 80.0, 80.0])
    assert (anchors == target).all(dim=1).any()
    result = anchor_coverage(_records([[8, 24, 24, 40]], (32, 64)), config)
    assert result.best_iou[0] == pytest.approx(1.0)
    assert result.best_anchors[0].tolist() == target.tolist() and result.best_level[0] == 0
    assert result.shares == {0.5: 1.0, 0.7: 1.0}


def test_coverage_flags_objects_smaller_than_anchors():
    config = Config.from_overrides(SMALL)
    tiny = [[10, 10, 11, 11], [40, 40, 41, 42]]
    result = anchor_coverage(_records(tiny, (128, 128)), config)
    assert result.shares == {0.5: 0.0, 0.7: 0.0}
    assert any("smaller than half the smallest anchor" in line for line in result.summary())


def test_coverage_ignores_crowd_and_matches_brute_force():
    dataset = ShapesDataset()
    dataset.load_shapes(6, 64, 64, seed=1)
    dataset.prepare()
    config = Config.from_overrides(SMALL)
    records = collect_instances(dataset)
    records.class_ids[0] *= -1  # pretend the first instance is a crowd region
    result = anchor_coverage(records, config)
    assert len(result.best_iou) == len(records.class_ids) - 1
    plan = image_plan(64, 64, config)
    anchors, _ = anchors_for_config(config, plan.output_shape)
    gt = torch.from_numpy(boxes_to_input(records.boxes[1:], plan))
    expected = box_iou(gt, anchors).max(dim=1).values.numpy()
    np.testing.assert_allclose(result.best_iou, expected, rtol=1e-6)


def test_inspect_data_lists_images_that_fail_to_load(tmp_path, capsys, monkeypatch):
    from mrcnn.datasets import ShapesDataset
    from tests.helpers.bad_images import shapes_failing_for

    monkeypatch.setattr(ShapesDataset, "load_mask", shapes_failing_for([3, 7]))
    original_image = ShapesDataset.load_image

    def load_image(self, image_id):
        if image_id == 5:
            raise OSError("image file is truncated (12 bytes not processed)")
        return original_image(self, image_id)

    monkeypatch.setattr(ShapesDataset, "load_image", load_image)
    out = tmp_path / "inspect"
    argv = ["--dataset", "shapes:12:64", "--out", str(out), "--samples", "12"]
    argv += [a for s in SMALL for a in ("--set", s)]
    assert _run(argv) == 1  # the figures are written, and the exit status says what is wrong
    printed = capsys.readouterr().out.splitlines()
    start = printed.index(
        "3 of 12 images failed to load; training skips them, and stops when the images it "
        "reads show that more than 20% fail:"
    )
    edge = "load_mask raised IndexError: index 64 is out of bounds for axis 1 with size 64"
    assert printed[start + 1 : start + 5] == [
        f"  image 3 (shapes image 3: triangle, circle): {edge}",
        "  image 5 (shapes image 5: triangle): load_image raised OSError: image file is "
        "truncated (12 bytes not processed)",
        f"  image 7 (shapes image 7: square, triangle, circle): {edge}",
        'to see a traceback: python -c "from mrcnn.datasets import from_spec; '
        "from_spec('shapes:12:64', 'train').load_mask(3)\"",
    ]
    assert "instances: " in "\n".join(printed) and "9 images (of 12)" in "\n".join(printed)
    for name in ("samples.png", "statistics.png", "anchors.png"):
        assert (out / name).stat().st_size > 1000


def test_collect_instances_leaves_out_and_lists_failing_images():
    from tests.helpers.bad_images import broken_shapes

    dataset = broken_shapes(6, bad_masks=[1], bad_images=[4])
    records = collect_instances(dataset)  # masks only: load_image is not called
    assert records.analysed_ids.tolist() == [0, 2, 3, 4, 5]
    assert [(f.image_id, f.method) for f in records.failures] == [(1, "load_mask")]
    records = collect_instances(dataset, load_images=True)
    assert records.analysed_ids.tolist() == [0, 2, 3, 5]
    assert [(f.image_id, f.method, f.error_type) for f in records.failures] == [
        (1, "load_mask", "IndexError"),
        (4, "load_image", "OSError"),
    ]
    assert set(records.image_index.tolist()) == {0, 1, 2, 3}  # indexes into analysed_ids
