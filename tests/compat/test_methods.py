"""Matterport's mrcnn.model names: image metas, molding, load_image_gt and the MaskRCNN methods
(mold_inputs, detect_molded, unmold_detections, get_anchors, set_trainable, set_log_dir,
run_graph, keras_model ...)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mrcnn.model as modellib
from mrcnn import utils
from mrcnn.config import Config
from tests.helpers.tiny_model import tiny_model


class MetaConfig(Config):
    NAME = "meta"
    NUM_CLASSES = 4


def _image(seed=0, shape=(90, 120, 3)):
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def test_image_meta_size_is_matterports():
    assert MetaConfig().IMAGE_META_SIZE == 1 + 3 + 3 + 4 + 1 + 4


def test_compose_and_parse_image_meta_round_trip():
    meta = modellib.compose_image_meta(
        7, (90, 120, 3), (128, 128, 3), (16, 0, 112, 128), 1.0667, [1, 0, 1, 1]
    )
    assert meta.shape == (MetaConfig().IMAGE_META_SIZE,)
    parsed = modellib.parse_image_meta(meta[None])
    assert parsed["image_id"].tolist() == [7]
    assert parsed["original_image_shape"].tolist() == [[90, 120, 3]]
    assert parsed["image_shape"].tolist() == [[128, 128, 3]]
    assert parsed["window"].tolist() == [[16, 0, 112, 128]]
    assert parsed["scale"][0] == pytest.approx(1.0667)
    assert parsed["active_class_ids"].tolist() == [[1, 0, 1, 1]]


def test_mold_image_subtracts_the_mean_and_unmold_inverts():
    cfg = MetaConfig()
    image = _image()
    molded = modellib.mold_image(image, cfg)
    assert molded.dtype == np.float32
    np.testing.assert_allclose(molded[0, 0], image[0, 0] - np.array(cfg.MEAN_PIXEL), atol=1e-4)
    np.testing.assert_array_equal(modellib.unmold_image(molded, cfg), image)


def test_mold_image_divides_by_std_where_the_config_has_one():
    cfg = Config.from_overrides({"STD_PIXEL": [2.0, 4.0, 8.0]})
    molded = modellib.mold_image(np.full((1, 1, 3), 200, np.uint8), cfg)
    np.testing.assert_allclose(
        molded[0, 0], (200 - np.array(cfg.MEAN_PIXEL)) / [2, 4, 8], rtol=1e-6
    )
    np.testing.assert_array_equal(modellib.unmold_image(molded, cfg), np.full((1, 1, 3), 200))


class TwoBoxes(utils.Dataset):
    def load_mask(self, image_id):
        mask = np.zeros((60, 80, 2), dtype=bool)
        mask[10:30, 5:25, 0] = True
        mask[40:50, 60:78, 1] = True
        return mask, np.array([1, 2], dtype=np.int32)

    def load_image(self, image_id):
        return _image(1, (60, 80, 3))


def _two_boxes():
    dataset = TwoBoxes()
    dataset.add_class("toy", 1, "a")
    dataset.add_class("toy", 2, "b")
    dataset.add_image("toy", 0, None, height=60, width=80)
    dataset.prepare()
    return dataset


def test_load_image_gt_resizes_image_masks_and_boxes_together():
    cfg = Config.from_overrides({"NUM_CLASSES": 3, "IMAGE_MIN_DIM": 96, "IMAGE_MAX_DIM": 128})
    image, meta, class_ids, bbox, mask = modellib.load_image_gt(_two_boxes(), cfg, 0)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert mask.shape == (128, 128, 2) and mask.dtype == bool
    np.testing.assert_array_equal(class_ids, [1, 2])
    # Scale 1.6 (80 -> 128), 60 -> 96 rows centred: 16 rows of padding on top.
    np.testing.assert_array_equal(bbox[0], [16 + 16, 8, 16 + 48, 40])
    np.testing.assert_array_equal(bbox, utils.extract_bboxes(mask))
    parsed = modellib.parse_image_meta(meta[None])
    assert parsed["window"].tolist() == [[16, 0, 112, 128]]
    assert parsed["scale"][0] == pytest.approx(1.6)
    assert parsed["active_class_ids"].tolist() == [[1, 1, 1]]
    assert meta.shape == (cfg.IMAGE_META_SIZE,)


def test_load_image_gt_mini_masks():
    cfg = Config.from_overrides({"NUM_CLASSES": 3, "IMAGE_MIN_DIM": 96, "IMAGE_MAX_DIM": 128})
    *_, bbox, mask = modellib.load_image_gt(_two_boxes(), cfg, 0, use_mini_mask=True)
    assert mask.shape == tuple(cfg.MINI_MASK_SHAPE) + (2,)
    assert mask.mean() > 0.98  # rectangles fill their boxes (bar a resized corner)


def test_load_image_gt_takes_a_v2_transform():
    from torchvision.transforms import v2

    cfg = Config.from_overrides({"NUM_CLASSES": 3, "IMAGE_MIN_DIM": 96, "IMAGE_MAX_DIM": 128})
    *_, bbox, _ = modellib.load_image_gt(
        _two_boxes(), cfg, 0, augmentation=v2.RandomHorizontalFlip(1.0)
    )
    np.testing.assert_array_equal(bbox[0], [32, 128 - 40, 64, 128 - 8])


# ------------------------------------------------------------------------------------------------
# MaskRCNN methods
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    model = tiny_model()
    with torch.no_grad():  # random weights: make every ROI an object, so there are detections
        model.net.box_head.class_logits.bias[0] = -10.0
    return model


def test_keras_model_says_to_use_net(model):
    with pytest.raises(AttributeError, match=r"model\.net"):
        model.keras_model  # noqa: B018


def test_mold_inputs_gives_matterport_layouts(model):
    molded, metas, windows = model.mold_inputs([_image()])
    assert molded.shape == (1, 128, 128, 3) and molded.dtype == np.float32
    assert metas.shape == (1, model.config.IMAGE_META_SIZE)
    # 90 x 120 -> scale 128/120: 96 x 128, 16 rows of padding on top.
    np.testing.assert_array_equal(windows, [[16, 0, 112, 128]])
    parsed = modellib.parse_image_meta(metas)
    assert parsed["original_image_shape"].tolist() == [[90, 120, 3]]
    assert parsed["image_shape"].tolist() == [[128, 128, 3]]
    np.testing.assert_allclose(
        molded[0, 16, 0], modellib.mold_image(_image()[0, 0], model.config), atol=30
    )


def test_detect_molded_gives_detect_in_molded_pixels(model):
    """Matterport's detect_molded unmolded with window = the whole molded image: the same
    detections as detect, in the molded image's pixels (where load_image_gt's boxes and masks
    are), with masks of the molded size."""
    images = [_image(0), _image(1, (100, 70, 3))]
    direct = model.detect(images)
    molded, metas, windows = model.mold_inputs(images)
    via_molded = model.detect_molded(molded, metas)
    assert len(via_molded) == 2
    for a, b, meta, window in zip(direct, via_molded, metas, windows, strict=True):
        assert len(a["class_ids"]) > 0
        np.testing.assert_array_equal(a["class_ids"], b["class_ids"])
        np.testing.assert_allclose(a["scores"], b["scores"], rtol=1e-5)
        scale = modellib.parse_image_meta(meta[None])["scale"][0]
        y1, x1 = window[:2]
        expected = a["boxes"][:, [1, 0, 3, 2]] * scale + np.array([y1, x1, y1, x1])
        np.testing.assert_allclose(b["rois"], expected, atol=1.0)
        assert b["masks"].shape == molded.shape[1:3] + (len(b["class_ids"]),)
        # The masks lie in the window (the image's pixels), as the boxes do, up to the
        # pixel of rounding at the edges of boxes clipped to it.
        inside = b["masks"][y1 : window[2], x1 : window[3]]
        assert inside.any() and inside.sum() >= 0.95 * b["masks"].sum()


def test_get_anchors_are_normalised_y1_x1_y2_x2(model):
    anchors = model.get_anchors((128, 128, 3))
    from mrcnn.modeling.anchors import anchors_for_config

    pixels, _ = anchors_for_config(model.config, (128, 128))
    assert anchors.shape == pixels.shape and anchors.dtype == np.float32
    np.testing.assert_allclose(
        utils.denorm_boxes(anchors, (128, 128)), np.round(pixels.numpy()[:, [1, 0, 3, 2]])
    )


def test_unmold_detections_maps_back_to_the_original_image(model):
    # One detection covering the window's left half: in a 90 x 120 image, scale 128/120.
    shape = (128, 128, 3)
    window = (16, 0, 112, 128)
    box_pixels = np.array([[16, 0, 112, 64]])
    normalised = utils.norm_boxes(box_pixels, shape)
    detections = np.zeros((3, 6), np.float32)
    detections[0] = [*normalised[0], 2, 0.9]
    masks = np.zeros((3, 28, 28, 3), np.float32)
    masks[0, :, :, 2] = 1.0
    boxes, class_ids, scores, full = model.unmold_detections(
        detections, masks, (90, 120, 3), shape, window
    )
    np.testing.assert_array_equal(boxes, [[0, 0, 90, 60]])
    np.testing.assert_array_equal(class_ids, [2])
    np.testing.assert_allclose(scores, [0.9])
    assert full.shape == (90, 120, 1)
    assert full[5:85, 5:55, 0].all() and not full[:, 62:, 0].any()


def test_set_trainable_takes_presets_and_matterport_layer_regexes(model):
    net_regex = model.set_trainable("heads", verbose=0)
    keras_regex = model.set_trainable(r"(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)", verbose=0)
    assert net_regex == keras_regex and not any(n.startswith("backbone") for n in keras_regex)
    res4_up = model.set_trainable(
        r"(res4.*)|(bn4.*)|(res5.*)|(bn5.*)|(mrcnn\_.*)|(rpn\_.*)|(fpn\_.*)", verbose=0
    )
    assert res4_up == model.set_trainable("4+", verbose=0)
    assert any(n.startswith("backbone.body.layer3") for n in res4_up)
    assert not any(n.startswith("backbone.body.layer2") for n in res4_up)
    assert len(model.set_trainable(".*", verbose=0)) == len(list(model.net.parameters()))
    trainable = {id(p) for p in model.net.parameters() if p.requires_grad}
    layers = model.get_trainable_layers()
    assert all(any(True for _ in layer.parameters(recurse=False)) for layer in layers)
    assert {id(p) for layer in layers for p in layer.parameters(recurse=False)} >= trainable
    assert model.find_trainable_layer(layers[0]) is layers[0]


def test_set_log_dir_continues_a_run_folder(tmp_path, model):
    run = tmp_path / "tiny20260101T120000"
    run.mkdir()
    model.set_log_dir(str(run / "mrcnn_tiny_0007.pt"))
    assert model.epoch == 7 and model.log_dir == run
    model.set_log_dir()
    assert model.epoch == 0 and model.log_dir is None


def test_run_graph_stages_agree_with_detect(model):
    image = _image(2)
    out = model.run_graph(
        [image],
        [
            ("rpn_class", "rpn_class"),
            ("rpn_bbox", "rpn_bbox"),
            ("proposals", "ROI"),
            ("c4", "res4f_out"),
            ("p6", "fpn_p6"),
            ("probs", "mrcnn_class"),
            ("deltas", "mrcnn_bbox"),
            ("detections", "mrcnn_detection"),
            ("masks", "mrcnn_mask"),
        ],
    )
    assert list(out) == [
        "rpn_class",
        "rpn_bbox",
        "proposals",
        "c4",
        "p6",
        "probs",
        "deltas",
        "detections",
        "masks",
    ]
    anchors = model.get_anchors((128, 128, 3))
    assert out["rpn_class"].shape == (1, len(anchors), 2)
    np.testing.assert_allclose(out["rpn_class"].sum(-1), 1, atol=1e-6)
    assert out["rpn_bbox"].shape == (1, len(anchors), 4)
    cfg = model.config
    assert out["proposals"].shape == (1, cfg.POST_NMS_ROIS_INFERENCE, 4)
    assert out["c4"].shape == (1, 8, 8, 1024) and out["p6"].shape == (1, 2, 2, 256)
    assert out["probs"].shape == (1, cfg.POST_NMS_ROIS_INFERENCE, cfg.NUM_CLASSES)
    assert out["deltas"].shape == (1, cfg.POST_NMS_ROIS_INFERENCE, cfg.NUM_CLASSES, 4)
    assert out["masks"].shape == (1, cfg.DETECTION_MAX_INSTANCES, 28, 28, cfg.NUM_CLASSES)
    # The RPN deltas are the network's, reordered to (dy, dx, log dh, log dw).
    molded, _, _ = model.mold_inputs([image])
    with torch.no_grad():
        features = model.net.features(torch.from_numpy(molded).permute(0, 3, 1, 2))
        _, deltas = model.net.rpn_outputs(features)
    np.testing.assert_allclose(out["rpn_bbox"][0], deltas[0].numpy()[:, [1, 0, 3, 2]], atol=1e-5)
    r = model.detect([image])[0]
    n = len(r["class_ids"])
    detections = out["detections"][0]
    np.testing.assert_array_equal(detections[:n, 4], r["class_ids"])
    np.testing.assert_allclose(detections[:n, 5], r["scores"], rtol=1e-5)
    assert not detections[n:].any()
    # Boxes back in original pixels: the molded window starts 16 rows down, scale 128/120.
    boxes = utils.denorm_boxes(detections[:n, :4], (128, 128)).astype(float)
    boxes = (boxes - [16, 0, 16, 0]) * 120 / 128
    np.testing.assert_allclose(boxes, r["rois"], atol=1.5)


def test_run_graph_with_metas_takes_the_images_as_molded(model):
    """With image_metas, Matterport's run_graph fed the images to the network as they were (the
    inspect_model notebooks pass load_image_gt's image and meta): no second molding, so its
    stages line up with get_anchors of that image's shape."""
    molded, metas, _ = model.mold_inputs([_image(2)])
    stages = [("rpn_class", "rpn_class"), ("input", "input_image"), ("proposals", "ROI")]
    again = model.run_graph(molded, stages, image_metas=metas)
    np.testing.assert_array_equal(again["input"], molded)
    direct = model.run_graph([_image(2)], stages)
    np.testing.assert_allclose(again["rpn_class"], direct["rpn_class"], atol=1e-6)
    np.testing.assert_allclose(again["proposals"], direct["proposals"], atol=1e-6)
    # A 192 x 128 input, which molding (IMAGE_MAX_DIM 128) would shrink, keeps its size.
    big = np.zeros((1, 192, 128, 3), dtype=np.float32)
    meta = modellib.compose_image_meta(
        0, (192, 128, 3), (192, 128, 3), (0, 0, 192, 128), 1.0, np.zeros(model.config.NUM_CLASSES)
    )
    out = model.run_graph(big, [("rpn_class", "rpn_class")], image_metas=meta[None])
    assert out["rpn_class"].shape[1] == len(model.get_anchors((192, 128, 3)))


def test_run_graph_unknown_stage_lists_the_known_ones(model):
    with pytest.raises(KeyError, match="known stages: .*ROI"):
        model.run_graph([_image()], [("x", "mrcnn_nonsense")])


def test_get_imagenet_weights_names_the_backbone(model, monkeypatch):
    from mrcnn.weights import loading as weights

    asked = []
    monkeypatch.setattr(
        weights, "pretrained_file", lambda name: asked.append(name) or f"/cache/{name}.pth"
    )
    assert model.get_imagenet_weights() == "/cache/imagenet-resnet50.pth"
    assert asked == ["imagenet-resnet50"]


def _host_names() -> set[str]:
    from mrcnn.compat.methods import MatterportHost

    return set(MatterportHost.__annotations__) | {
        name for name in vars(MatterportHost) if not name.startswith("_")
    }


def test_the_facade_provides_everything_the_matterport_mixin_uses():
    """The written contract (MatterportHost) holds for the facade: each name is there."""
    model = tiny_model()
    missing = [name for name in sorted(_host_names()) if not hasattr(model, name)]
    assert not missing, f"MaskRCNN lacks what MatterportMethods needs: {missing}"


def test_the_matterport_mixin_uses_only_its_host_contract():
    """MatterportMethods reads nothing of the facade but what MatterportHost lists: no private
    name, nothing unlisted (a new use must be added to the contract first)."""
    import ast
    import inspect

    from mrcnn.compat import methods

    tree = ast.parse(inspect.getsource(methods.MatterportMethods))
    own = {
        node.name
        for node in tree.body[0].body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    } | set(methods.MatterportMethods.__annotations__)
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    }
    outside = sorted(used - own - _host_names())
    assert not outside, f"MatterportMethods uses names outside MatterportHost: {outside}"
