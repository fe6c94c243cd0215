"""Figures and the array renderer: PNGs are written, masks change pixels, the rest does not."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from mrcnn import visualize
from mrcnn.datasets import ShapesDataset, collect_instances, instance_statistics
from mrcnn.evaluation import IGNORED

H, W = 80, 120
CLASS_NAMES = ["BG", "cat", "dog"]


def _scene():
    """A gradient image with two box-shaped instances."""
    rng = np.random.default_rng(0)
    image = rng.integers(40, 200, (H, W, 3), dtype=np.uint8)
    masks = np.zeros((H, W, 2), dtype=bool)
    masks[20:40, 20:50, 0] = True
    masks[30:60, 70:100, 1] = True
    boxes = np.array([[20, 20, 40, 50], [30, 70, 60, 100]], dtype=np.int32)
    return image, boxes, masks, np.array([1, 2]), np.array([0.9, 0.75])


def _far_outside(masks: np.ndarray, distance: int = 6) -> np.ndarray:
    """bool [H, W]: pixels at least ``distance`` away from every instance's box and from its
    caption (a strip of up to 20 x 100 pixels from the box's top-left corner)."""
    near = np.zeros(masks.shape[:2], dtype=bool)
    for y1, x1, y2, x2 in visualize.extract_boxes_from_masks(masks):
        top, left = max(0, y1 - distance), max(0, x1 - distance)
        near[top : y2 + distance, left : x2 + distance] = True
        near[top : y1 + 20, left : x1 + 100] = True
    assert (~near).mean() > 0.3  # enough pixels left to test
    return ~near


def test_random_colors_reproducible_and_distinct():
    assert visualize.random_colors(6) == visualize.random_colors(6)
    colors = visualize.random_colors(6)
    assert len(set(colors)) == 6 and all(0 <= c <= 1 for rgb in colors for c in rgb)
    assert visualize.random_colors(0) == []


def test_apply_mask_blends_only_inside():
    image = np.full((4, 4, 3), 100, dtype=np.uint8)
    mask = np.zeros((4, 4), dtype=bool)
    mask[1, 2] = True
    out = visualize.apply_mask(image, mask, (1.0, 0.0, 0.0), alpha=0.5)
    assert out is image
    assert out[1, 2].tolist() == [178, 50, 50]
    assert (out[0, 0] == 100).all()


def test_draw_instances_changes_masks_not_far_pixels():
    image, boxes, masks, class_ids, scores = _scene()
    out = visualize.draw_instances(image, boxes, masks, class_ids, CLASS_NAMES, scores)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    for i in range(2):
        inside = masks[:, :, i]
        changed = (out[inside] != image[inside]).any(axis=1)
        assert changed.mean() > 0.95
    far = _far_outside(masks)
    assert np.array_equal(out[far], image[far])
    np.testing.assert_array_equal(image, _scene()[0])  # input untouched
    Image.fromarray(out).save("/dev/null", format="PNG")


def test_draw_instances_boxes_only_and_from_masks():
    image, boxes, masks, class_ids, _ = _scene()
    boxes_only = visualize.draw_instances(image, boxes, None, class_ids, CLASS_NAMES)
    assert np.array_equal(boxes_only[36, 30], image[36, 30])  # box interior not blended
    assert not np.array_equal(boxes_only[20, 35], image[20, 35])  # box edge drawn
    from_masks = visualize.draw_instances(image, None, masks, class_ids, CLASS_NAMES)
    assert not np.array_equal(from_masks[30, 35], image[30, 35])
    with pytest.raises(ValueError, match="2 boxes but 1 masks"):
        visualize.draw_instances(image, boxes, masks[:, :, :1], class_ids, CLASS_NAMES)


def test_display_instances_renders_at_image_size(tmp_path):
    image, boxes, masks, class_ids, scores = _scene()
    figure = Figure(figsize=(W / 100, H / 100), dpi=100)
    ax = figure.add_axes((0, 0, 1, 1))
    path = tmp_path / "instances.png"
    result = visualize.display_instances(
        image, boxes, masks, class_ids, CLASS_NAMES, scores, ax=ax, margin=0, path=path
    )
    assert result is figure and path.is_file()
    rendered = np.asarray(Image.open(path).convert("RGB"))
    assert rendered.shape == image.shape
    far = _far_outside(masks)
    assert np.abs(rendered[far].astype(int) - image[far]).max() <= 2
    # the mask interior (away from outlines and captions) carries the same blend as
    # draw_instances: display_instances is consistent with the array renderer
    reference = visualize.overlay_masks(image, masks, visualize.random_colors(2))
    interior = np.zeros((H, W), dtype=bool)
    interior[46:56, 75:95] = True
    assert (rendered[interior] != image[interior]).any(axis=1).mean() > 0.95
    assert np.abs(rendered[interior].astype(int) - reference[interior]).max() <= 2


def test_display_instances_default_figure(tmp_path):
    image, boxes, masks, class_ids, scores = _scene()
    path = tmp_path / "sub" / "default.png"
    figure = visualize.display_instances(
        image, boxes, masks, class_ids, CLASS_NAMES, scores, title="t", figsize=(4, 4), path=path
    )
    assert isinstance(figure, Figure) and path.is_file()
    empty = visualize.display_instances(
        image, np.zeros((0, 4)), np.zeros((H, W, 0), bool), [], CLASS_NAMES, figsize=(3, 3)
    )
    assert isinstance(empty, Figure)


def test_other_figures_write_pngs(tmp_path):
    image, boxes, masks, class_ids, scores = _scene()
    paths = {name: tmp_path / f"{name}.png" for name in ("top", "boxes", "diff", "ovl", "pr")}
    visualize.display_top_masks(image, masks, class_ids, CLASS_NAMES, path=paths["top"])
    refined = boxes + 3
    visualize.draw_boxes(
        image, boxes, refined, masks, ["a", "b"], [1, 2], title="r", path=paths["boxes"]
    )
    pred_masks = masks.copy()
    pred_masks[20:40, 50:55, 0] = True  # a little too wide
    visualize.display_differences(
        image,
        boxes,
        class_ids,
        masks,
        boxes,
        np.array([1, 1]),
        scores,
        pred_masks,
        CLASS_NAMES,
        path=paths["diff"],
    )
    gt_match, pred_match, overlaps = visualize.match_instances(
        class_ids, masks, np.array([1, 1]), scores, pred_masks
    )
    assert gt_match.tolist() == [0, -1] and pred_match.tolist() == [0, -1]
    assert overlaps.shape == (2, 2) and overlaps[1, 1] == pytest.approx(1.0)
    visualize.plot_overlaps(class_ids, [1, 1], scores, overlaps, CLASS_NAMES, path=paths["ovl"])
    visualize.plot_precision_recall(
        0.5, np.array([1, 1, 0.5]), np.array([0, 0.5, 1]), path=paths["pr"]
    )
    for path in paths.values():
        assert Image.open(path).size[0] > 100


def test_dataset_figures(tmp_path):
    dataset = ShapesDataset()
    dataset.load_shapes(4, 64, 64)
    dataset.prepare()
    visualize.display_dataset_samples(dataset, [0, 1, 2], path=tmp_path / "samples.png")
    records = collect_instances(dataset)
    stats = instance_statistics(records, dataset.class_names)
    visualize.plot_dataset_statistics(stats, path=tmp_path / "stats.png")
    gt = np.array([[10, 10, 30, 30]], dtype=np.float32)
    visualize.display_anchor_coverage(
        dataset.load_image(0), gt, gt + 2, np.array([0.8]), gt - 4, path=tmp_path / "anchors.png"
    )
    assert all((tmp_path / n).is_file() for n in ("samples.png", "stats.png", "anchors.png"))


def test_match_instances_is_evaluations_matcher_with_crowd_regions_in_input_order():
    masks = np.zeros((H, W, 2), dtype=bool)
    masks[0:20, 0:20, 0] = True  # an instance of class 1
    masks[40:80, 40:120, 1] = True  # a crowd region of class 1
    preds = np.zeros((H, W, 3), dtype=bool)
    preds[50:60, 50:60, 0] = True  # inside the crowd: ignored, not a false positive
    preds[0:20, 0:20, 1] = True  # the instance, best score
    preds[0:20, 0:18, 2] = True  # the instance again, lower score: a false positive
    gt_match, pred_match, overlaps = visualize.match_instances(
        np.array([1, -1]), masks, np.array([1, 1, 1]), np.array([0.5, 0.9, 0.7]), preds
    )
    assert pred_match.tolist() == [IGNORED, 0, -1]
    assert gt_match.tolist() == [1, -1]  # the index of the prediction in the input order
    assert overlaps.shape == (3, 2) and overlaps[1, 0] == pytest.approx(1.0)
    np.testing.assert_array_equal(visualize.mask_overlaps(preds, masks), overlaps)
