"""Weights: format detection, conversion, loading rules, checkpoints and pretrained downloads."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
import torch
import torchvision
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead

from mrcnn.config import Config
from mrcnn.model import MaskRCNN
from mrcnn.modeling.anchors import pyramid_anchors
from mrcnn.testing import randomise_batchnorm
from mrcnn.weights import loading as weights_lib
from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_name, checkpoint_payload
from mrcnn.weights.loading import (
    WeightsError,
    detect_format,
    load_into_network,
    load_state_dict_file,
    pretrained_file,
    to_network_state,
)

HIDDEN = 32  # box head width of every network here (torchvision's is 1024)
CLASS_SPECIFIC = [
    "box_head.class_logits.weight",
    "box_head.class_logits.bias",
    "box_head.deltas.weight",
    "box_head.deltas.bias",
    "mask_head.logits.weight",
    "mask_head.logits.bias",
]


class CocoLikeConfig(Config):
    """torchvision's layer shapes (91 classes, its anchor order) with a narrow box head."""

    NAME = "coco_like"
    BACKBONE = "resnet50"
    NUM_CLASSES = 91
    FPN_CLASSIF_FC_LAYERS_SIZE = HIDDEN
    RPN_ANCHOR_RATIOS = [2.0, 1.0, 0.5]
    IMAGE_MIN_DIM = 32
    IMAGE_MAX_DIM = 64
    DEVICE = "cpu"


def make_model(mode: str = "inference", **overrides) -> MaskRCNN:
    torch.manual_seed(1)
    return MaskRCNN(mode, CocoLikeConfig.from_overrides(overrides), model_dir="unused")


def old_torchvision_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename to the key names of the published COCO file (torchvision before 0.13)."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue  # the published file has frozen BatchNorm
        key = key.replace("rpn.head.conv.0.0.", "rpn.head.conv.")
        key = re.sub(
            r"^roi_heads\.mask_head\.(\d)\.0\.",
            lambda m: f"roi_heads.mask_head.mask_fcn{int(m.group(1)) + 1}.",
            key,
        )
        key = re.sub(
            r"^backbone\.fpn\.(inner|layer)_blocks\.(\d)\.0\.", r"backbone.fpn.\1_blocks.\2.", key
        )
        out[key] = value
    return out


@pytest.fixture(scope="module")
def tv():
    """A randomised torchvision Mask R-CNN (with a narrow box head)."""
    torch.manual_seed(0)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=91
    )
    model.roi_heads.box_head = TwoMLPHead(256 * 7 * 7, HIDDEN)
    model.roi_heads.box_predictor = FastRCNNPredictor(HIDDEN, 91)
    with torch.no_grad():
        randomise_batchnorm(model, 1)
        for name, parameter in model.named_parameters():
            if name.endswith("bias") and not name.startswith("backbone.body"):
                parameter.normal_(0, 0.1)
    return model.eval()


@pytest.fixture(scope="module")
def tv_file(tv, module_tmp) -> Path:
    path = module_tmp.mktemp("tv") / "maskrcnn_old_keys.pth"
    state = old_torchvision_names(tv.state_dict())
    assert "roi_heads.mask_head.mask_fcn1.weight" in state and "rpn.head.conv.weight" in state
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def resnet_file(module_tmp) -> Path:
    torch.manual_seed(2)
    resnet = torchvision.models.resnet50(weights=None)
    with torch.no_grad():
        randomise_batchnorm(resnet, 3)
    path = module_tmp.mktemp("resnet") / "resnet50.pth"
    torch.save(resnet.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def model_a(tv_file):
    """torchvision's anchor order, 91 classes: everything in the file fits."""
    model = make_model()
    notes = model.load_weights(str(tv_file))
    return model, notes


@pytest.fixture(scope="module")
def model_c():
    """3 classes, in training mode (which may start from partial weights); loaded by the tests
    that use it."""
    return make_model("training", NUM_CLASSES=3)


def state_of(model: MaskRCNN) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.net.state_dict().items()}


# ------------------------------------------------------------------ format detection
def test_detect_format_three_formats(tv, model_c):
    assert detect_format(tv.state_dict()) == "torchvision-maskrcnn"
    assert detect_format(old_torchvision_names(tv.state_dict())) == "torchvision-maskrcnn"
    resnet_keys = {"conv1.weight": torch.zeros(1), "layer4.0.conv1.weight": torch.zeros(1)}
    assert detect_format(resnet_keys) == "torchvision-resnet"
    assert detect_format(model_c.net.state_dict()) == "mrcnn"
    assert detect_format({"mask_head.logits.weight": torch.zeros(1)}) == "mrcnn"
    with pytest.raises(WeightsError, match="unrecognised weights layout.*classifier.weight"):
        detect_format({"classifier.weight": torch.zeros(1)})


# ------------------------------------------------------------------ torchvision Mask R-CNN
def test_torchvision_old_key_names_load_completely(tv, model_a):
    model, notes = model_a
    # nothing skipped, nothing left at its init; only torchvision's conventions adopted
    assert [n for n in notes if " -> " not in n] == []
    assert any(n.startswith("STD_PIXEL: None -> ") for n in notes)
    ours = model.net.state_dict()
    theirs = tv.state_dict()
    pairs = {
        "backbone.body.conv1.weight": "backbone.body.conv1.weight",
        "backbone.body.bn1.running_var": "backbone.body.bn1.running_var",
        "backbone.body.layer3.5.bn3.bias": "backbone.body.layer3.5.bn3.bias",
        "fpn.lateral.0.weight": "backbone.fpn.inner_blocks.0.0.weight",
        "fpn.lateral.3.bias": "backbone.fpn.inner_blocks.3.0.bias",
        "fpn.output.2.weight": "backbone.fpn.layer_blocks.2.0.weight",
        "rpn.conv.weight": "rpn.head.conv.0.0.weight",
        "rpn.conv.bias": "rpn.head.conv.0.0.bias",
        "box_head.fc6.weight": "roi_heads.box_head.fc6.weight",
        "box_head.fc7.bias": "roi_heads.box_head.fc7.bias",
        "box_head.class_logits.weight": "roi_heads.box_predictor.cls_score.weight",
        "box_head.deltas.bias": "roi_heads.box_predictor.bbox_pred.bias",
        "mask_head.convs.0.weight": "roi_heads.mask_head.0.0.weight",
        "mask_head.convs.3.bias": "roi_heads.mask_head.3.0.bias",
        "mask_head.deconv.weight": "roi_heads.mask_predictor.conv5_mask.weight",
        "mask_head.logits.bias": "roi_heads.mask_predictor.mask_fcn_logits.bias",
    }
    for our_key, their_key in pairs.items():
        torch.testing.assert_close(ours[our_key], theirs[their_key], rtol=0, atol=0)


def test_torchvision_heads_compute_the_same(tv, model_a):
    net = model_a[0].net
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        channels = (256, 512, 1024, 2048)
        c = [
            torch.randn(1, ch, 8 // 2**i, 8 // 2**i, generator=generator)
            for i, ch in enumerate(channels)
        ]
        theirs = tv.backbone.fpn({str(i): x for i, x in enumerate(c)})
        for ours, their in zip(net.fpn(c), theirs.values(), strict=True):
            torch.testing.assert_close(ours, their)
        pooled = torch.randn(3, 256, 7, 7, generator=generator)
        logits, deltas = net.box_head(pooled)
        scores, boxes = tv.roi_heads.box_predictor(tv.roi_heads.box_head(pooled))
        torch.testing.assert_close(logits, scores)
        torch.testing.assert_close(deltas.reshape(3, -1), boxes)
        pooled = torch.randn(2, 256, 14, 14, generator=generator)
        masks = tv.roi_heads.mask_predictor(tv.roi_heads.mask_head(pooled))
        torch.testing.assert_close(net.mask_head(pooled), masks)


def test_new_key_names_convert_like_old_ones(tv):
    config = CocoLikeConfig()
    new, notes_new = to_network_state(tv.state_dict(), config)
    old, notes_old = to_network_state(old_torchvision_names(tv.state_dict()), config)
    assert notes_new == notes_old == []
    new = {k: v for k, v in new.items() if not k.endswith("num_batches_tracked")}
    assert new.keys() == old.keys()
    for key in new:
        assert torch.equal(new[key], old[key]), key


RPN_FEATURE_SIZES = (8, 4, 2, 1, 1)  # a 32 x 32 input


def rpn_outputs(net, features):
    with torch.no_grad():
        return net.rpn_outputs(features)


def test_rpn_anchor_reordering(tv, tv_file, model_a):
    generator = torch.Generator().manual_seed(6)
    features = [torch.randn(1, 256, s, s, generator=generator) for s in RPN_FEATURE_SIZES]
    # torchvision's own head: channels in its anchor order (w/h 2, 1, 0.5)
    with torch.no_grad():
        logits, boxes = tv.rpn.head(features)
    tv_objectness = torch.cat([x.permute(0, 2, 3, 1).reshape(1, -1) for x in logits], dim=1)
    tv_deltas = torch.cat(
        [x.view(1, 3, 4, *x.shape[-2:]).permute(0, 3, 4, 1, 2).reshape(1, -1, 4) for x in boxes],
        dim=1,
    )
    same_order, _ = model_a
    objectness_a, deltas_a = rpn_outputs(same_order.net, features)
    torch.testing.assert_close(objectness_a, tv_objectness)
    torch.testing.assert_close(deltas_a, tv_deltas)

    matterport_order = make_model(RPN_ANCHOR_RATIOS=[0.5, 1, 2])
    notes = matterport_order.load_weights(str(tv_file))
    assert [n for n in notes if " -> " not in n] == []
    objectness_b, deltas_b = rpn_outputs(matterport_order.net, features)
    # anchor (location, ratio) of B is anchor (location, reversed ratio) of A
    anchors_a, _ = pyramid_anchors(
        (32, 32), (32, 64, 128, 256, 512), [2.0, 1.0, 0.5], (4, 8, 16, 32, 64)
    )
    anchors_b, _ = pyramid_anchors(
        (32, 32), (32, 64, 128, 256, 512), [0.5, 1.0, 2.0], (4, 8, 16, 32, 64)
    )
    torch.testing.assert_close(anchors_b.view(-1, 3, 4).flip(1), anchors_a.view(-1, 3, 4))
    torch.testing.assert_close(objectness_b.view(1, -1, 3).flip(-1), objectness_a.view(1, -1, 3))
    torch.testing.assert_close(deltas_b.view(1, -1, 3, 4).flip(2), deltas_a.view(1, -1, 3, 4))
    assert not torch.equal(objectness_b, objectness_a)


def test_rpn_with_other_ratio_set_is_skipped_with_a_note(tv):
    config = CocoLikeConfig.from_overrides({"RPN_ANCHOR_RATIOS": [0.5, 1.0]})
    state, notes = to_network_state(tv.state_dict(), config)
    for key in ("rpn.objectness.weight", "rpn.objectness.bias", "rpn.deltas.weight"):
        assert key not in state
        assert any(key in note and "RPN_ANCHOR_RATIOS" in note for note in notes)
    assert "rpn.conv.weight" in state


def test_other_num_classes_skips_class_specific_layers_with_a_note(tv, tv_file, model_c):
    before = state_of(model_c)
    notes = model_c.load_weights(str(tv_file))
    after = model_c.net.state_dict()
    for key in CLASS_SPECIFIC:
        assert torch.equal(after[key], before[key]), key
        assert any(f"skipped {key}" in note and "NUM_CLASSES" in note for note in notes), key
    torch.testing.assert_close(
        after["box_head.fc6.weight"], tv.state_dict()["roi_heads.box_head.fc6.weight"]
    )
    torch.testing.assert_close(
        after["backbone.body.conv1.weight"], tv.state_dict()["backbone.body.conv1.weight"]
    )


def test_exclude_class_specific(tv, model_a):
    net = model_a[0].net
    saved = {k: v.clone() for k, v in net.state_dict().items() if k in CLASS_SPECIFIC}
    state, _ = to_network_state(tv.state_dict(), CocoLikeConfig())
    try:
        with torch.no_grad():
            for key in CLASS_SPECIFIC:
                net.state_dict()[key].zero_()
        notes = load_into_network(net, state, ["class-specific"], "tv.pth")
        own = net.state_dict()
        for key in CLASS_SPECIFIC:
            assert (own[key] == 0).all(), key
        assert any(
            "6 tensors not in tv.pth keep their init (box_head, mask_head)" in n for n in notes
        )
        assert not any("skipped" in n for n in notes)
    finally:
        with torch.no_grad():
            for key, value in saved.items():
                net.state_dict()[key].copy_(value)


def test_exclude_prefixes_and_regular_expressions(model_c):
    net = model_c.net
    before = {
        k: v.clone()
        for k, v in net.state_dict().items()
        if k.startswith(("mask_head.", "rpn.", "fpn.output.0."))
    }
    state = {k: v + 1 for k, v in before.items()}
    load_into_network(net, state, ["mask_head.", r"rpn\.(objectness|deltas)\."])
    after = net.state_dict()
    assert torch.equal(after["mask_head.convs.0.weight"], before["mask_head.convs.0.weight"])
    assert torch.equal(after["rpn.deltas.bias"], before["rpn.deltas.bias"])
    assert torch.equal(after["rpn.conv.bias"], before["rpn.conv.bias"] + 1)
    assert torch.equal(after["fpn.output.0.bias"], before["fpn.output.0.bias"] + 1)
    load_into_network(net, before)
    assert torch.equal(net.state_dict()["rpn.conv.bias"], before["rpn.conv.bias"])


def test_shape_mismatch_elsewhere_raises_naming_the_key(model_c):
    state = state_of(model_c)
    state["fpn.lateral.2.weight"] = state["fpn.lateral.2.weight"][:100]
    with pytest.raises(WeightsError) as info:
        load_into_network(model_c.net, state, source="bad.pt")
    message = str(info.value)
    assert "bad.pt" in message and "fpn.lateral.2.weight" in message
    assert "(100, 1024, 1, 1) vs (256, 1024, 1, 1)" in message


def test_unknown_key_and_nothing_matching_raise(model_c):
    state = state_of(model_c)
    state["rpn.extra.weight"] = torch.zeros(3)
    with pytest.raises(WeightsError, match=r"rpn\.extra\.weight \(not in this network\)"):
        load_into_network(model_c.net, state)
    with pytest.raises(WeightsError, match="no tensor matched"):
        load_into_network(model_c.net, {"fpn.output.0.bias": torch.zeros(256)}, ["fpn."])


# ------------------------------------------------------------------ ImageNet ResNet
def test_torchvision_resnet50_state_dict_loads_backbone_only(resnet_file, model_c):
    before = state_of(model_c)
    notes = model_c.load_weights(str(resnet_file))
    assert any("backbone only" in n for n in notes)
    assert any("keep their init (box_head, fpn, mask_head, rpn)" in n for n in notes)
    file_state = torch.load(resnet_file, weights_only=True)
    after = model_c.net.state_dict()
    for key in (
        "conv1.weight",
        "bn1.running_mean",
        "layer4.2.bn3.weight",
        "layer2.0.downsample.0.weight",
    ):
        torch.testing.assert_close(after[f"backbone.body.{key}"], file_state[key], rtol=0, atol=0)
    for key in ("fpn.lateral.0.weight", "rpn.conv.weight", "box_head.fc6.weight"):
        assert torch.equal(after[key], before[key])


# ------------------------------------------------------------------ file safety and formats
class Marker:
    """Unpickling this would create a file: proof that no pickled code runs."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_pickled_object_is_refused_without_running_it(tmp_path, model_c):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save({"model": Marker(marker)}, path)
    expected = r"evil.pt holds a pickled Python object \(.+\), not a state dict; loading it would"
    with pytest.raises(WeightsError, match=expected):
        model_c.load_weights(str(path))
    assert not marker.exists()


def test_non_state_dict_files_are_refused(tmp_path):
    path = tmp_path / "numbers.pt"
    torch.save({"a": 1, "b": [1, 2]}, path)
    with pytest.raises(WeightsError, match="does not hold a state dict"):
        load_state_dict_file(path)
    with pytest.raises(WeightsError, match="not found"):
        load_state_dict_file(tmp_path / "missing.pt")
    (tmp_path / "mask_rcnn_coco.h5").write_bytes(b"\x89HDF")
    with pytest.raises(WeightsError, match="h5"):
        load_state_dict_file(tmp_path / "mask_rcnn_coco.h5")


def test_state_dict_wrapped_in_state_dict_key(tmp_path):
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"conv1.weight": torch.ones(2)}, "epoch": 3}, path)
    state, extras = load_state_dict_file(path)
    assert list(state) == ["conv1.weight"] and extras == {}


def test_safetensors_file_loads(tmp_path, model_c):
    from safetensors.torch import save_file

    # safetensors stores row-major tensors only (the network's convs may be channels-last)
    state = {k: (v + 0.5).contiguous() for k, v in model_c.net.state_dict().items()}
    path = tmp_path / "model.safetensors"
    save_file(state, str(path))
    notes = model_c.load_weights(str(path))
    assert len(notes) == 1 and "records no conventions" in notes[0]
    after = model_c.net.state_dict()
    for key in ("backbone.body.conv1.weight", "rpn.deltas.bias", "mask_head.logits.weight"):
        assert torch.equal(after[key], state[key])


def test_own_checkpoint_loads_and_sets_epoch(tmp_path, model_c):
    state = {k: v * 2 for k, v in model_c.net.state_dict().items()}
    payload = checkpoint_payload(state, model_c.config, epoch=7, optimizer={"lr": 0.01})
    path = atomic_torch_save(payload, tmp_path / "run" / checkpoint_name("coco_like", 7))
    assert path.name == "mrcnn_coco_like_0007.pt"
    assert sorted(os.listdir(path.parent)) == ["mrcnn_coco_like_0007.pt"]  # no temporary left
    model_c.epoch = 0
    notes = model_c.load_weights(str(path))
    assert notes == []
    assert model_c.epoch == 7
    assert model_c.checkpoint_extras["config"]["NUM_CLASSES"] == 3
    assert model_c.checkpoint_extras["optimizer"] == {"lr": 0.01}
    assert "model" not in model_c.checkpoint_extras
    assert torch.equal(
        model_c.net.state_dict()["fpn.output.1.weight"], state["fpn.output.1.weight"]
    )


# ------------------------------------------------------------------ find_last
def write_checkpoint(folder: Path, name: str, epoch: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / checkpoint_name(name, epoch)
    path.write_bytes(b"")
    return path


def test_find_last_picks_the_newest_run_and_epoch(tmp_path, model_c):
    logs = tmp_path / "logs"
    write_checkpoint(logs / "coco_like20240101T1200", "coco_like", 30)
    write_checkpoint(logs / "coco_like20240301T0900", "coco_like", 2)
    write_checkpoint(logs / "coco_like20240301T0900", "coco_like", 10)
    newest = write_checkpoint(logs / "coco_like20240301T0900", "coco_like", 9)
    newest = newest.with_name(checkpoint_name("coco_like", 10))
    (logs / "coco_like20240501T0000").mkdir()  # a newer run without checkpoints
    write_checkpoint(logs / "other20250101T0000", "other", 50)  # another config
    (logs / "coco_like20240601T0000.txt").write_text("")  # not a folder
    model_c.model_dir = logs
    assert Path(model_c.find_last()) == newest
    from mrcnn.weights.checkpoint import find_last

    assert find_last(logs) == logs / "other20250101T0000" / "mrcnn_other_0050.pt"


def test_find_last_raises_naming_the_folder(tmp_path, model_c):
    logs = tmp_path / "empty_logs"
    logs.mkdir()
    model_c.model_dir = logs
    with pytest.raises(FileNotFoundError) as info:
        model_c.find_last()
    assert str(logs.resolve()) in str(info.value) and "coco_like" in str(info.value)
    model_c.model_dir = tmp_path / "does_not_exist"
    with pytest.raises(FileNotFoundError, match="does_not_exist"):
        model_c.load_weights("last")


def test_load_weights_last(tmp_path, model_c):
    state = {k: v.clone() for k, v in model_c.net.state_dict().items()}
    run = tmp_path / "logs" / "coco_like20240101T1200"
    atomic_torch_save(
        checkpoint_payload(state, model_c.config, 4), run / checkpoint_name("coco_like", 4)
    )
    model_c.model_dir = tmp_path / "logs"
    model_c.load_weights("last")
    assert model_c.epoch == 4


# ------------------------------------------------------------------ pretrained downloads
@pytest.fixture
def torch_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "torch_home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    for variable in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
    return home


def published(tmp_path: Path, data: bytes, prefix: str | None = None) -> str:
    digest = hashlib.sha256(data).hexdigest()
    source = tmp_path / "published" / f"coco_test-{prefix or digest[:8]}.pth"
    source.parent.mkdir(exist_ok=True)
    source.write_bytes(data)
    return source.as_uri()


def test_pretrained_file_downloads_into_torch_home_and_verifies(tmp_path, torch_home, monkeypatch):
    data = b"not really weights " * 50
    url = published(tmp_path, data)
    monkeypatch.setitem(weights_lib.PRETRAINED, "coco", url)
    path = pretrained_file("coco", progress=False)
    assert path == torch_home / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    assert path.read_bytes() == data


def test_pretrained_file_wrong_hash_leaves_no_file(tmp_path, torch_home, monkeypatch):
    data = b"tampered"
    wrong = "0" * 8 if not hashlib.sha256(data).hexdigest().startswith("0") else "f" * 8
    monkeypatch.setitem(weights_lib.PRETRAINED, "coco", published(tmp_path, data, wrong))
    with pytest.raises(WeightsError, match="checksum"):
        pretrained_file("coco", progress=False)
    folder = torch_home / "hub" / "checkpoints"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_pretrained_file_unreachable_url(torch_home, monkeypatch):
    url = "http://127.0.0.1:9/x-12345678.pth"
    monkeypatch.setitem(weights_lib.PRETRAINED, "coco", url)
    with pytest.raises(WeightsError) as info:
        pretrained_file("coco", progress=False)
    target = torch_home / "hub" / "checkpoints" / "x-12345678.pth"
    assert url in str(info.value) and str(target) in str(info.value)
    assert not target.exists()


def test_pretrained_file_uses_the_cache(torch_home, monkeypatch):
    monkeypatch.setitem(weights_lib.PRETRAINED, "coco", "file:///nonexistent/cached-12345678.pth")
    target = torch_home / "hub" / "checkpoints" / "cached-12345678.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"cached")
    assert pretrained_file("coco") == target
    with pytest.raises(WeightsError, match="unknown pretrained weights 'cocoa'.*coco"):
        pretrained_file("cocoa")


def test_load_weights_coco_from_the_cache(torch_home, tv_file, model_a):
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / weights_lib.PRETRAINED["coco"].rsplit("/", 1)[-1]).symlink_to(tv_file)
    del model_a  # a training model: only training may start with class layers at their init
    model = make_model("training")
    notes = model.load_weights("coco", exclude=["class-specific"])
    assert any(n.endswith("adopted from the coco weights") for n in notes)
    assert [n for n in notes if " -> " not in n] == [
        "6 tensors not in "
        + str(folder / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth")
        + " keep their init (box_head, mask_head)"
    ]


def test_load_weights_coco_refuses_resnet101(torch_home):
    # the check needs only the config; a resnet50 network saves building a resnet101
    model = make_model()
    model.config = CocoLikeConfig.from_overrides({"BACKBONE": "resnet101"})
    with pytest.raises(WeightsError, match="BACKBONE='resnet50'.*'resnet101'"):
        model.load_weights("coco")


def test_load_weights_imagenet_from_the_cache(torch_home, resnet_file, model_c):
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "resnet50-0676ba61.pth").symlink_to(resnet_file)
    notes = model_c.load_weights("imagenet")
    assert any("backbone only" in n for n in notes)


def test_exclude_given_as_a_single_string(model_c):
    net = model_c.net
    before = {k: v.clone() for k, v in net.state_dict().items() if k.startswith("rpn.")}
    state = {k: v + 1 for k, v in before.items()}
    kept = net.state_dict()["mask_head.logits.bias"].clone()
    state["mask_head.logits.bias"] = kept + 7.0
    try:
        load_into_network(net, state, "mask_head.")
        assert torch.equal(net.state_dict()["rpn.conv.bias"], before["rpn.conv.bias"] + 1)
        # The excluded tensor kept its value; a string is one pattern, not its characters.
        assert torch.equal(net.state_dict()["mask_head.logits.bias"], kept)
    finally:
        load_into_network(net, {**before, "mask_head.logits.bias": kept})


# ------------------------------------------------------------------ partial weights in inference
def test_inference_refuses_weights_that_leave_layers_random(tv_file, resnet_file):
    """Issue 12: a detector with a random backbone or random heads gives dozens of random
    detections; in inference such weights are refused, naming the parts left at their init."""
    model = make_model(NUM_CLASSES=3)  # the class-specific layers of tv_file do not fit
    before = state_of(model)
    with pytest.raises(WeightsError, match=r"leaves box_head \(4 tensors\), mask_head.*train"):
        model.load_weights(str(tv_file))
    with pytest.raises(WeightsError, match=r"leaves .*fpn.*uninitialised"):
        model.load_weights(str(resnet_file))  # backbone only
    after = model.net.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before.items())  # nothing half-loaded
    full = make_model()
    with pytest.raises(WeightsError, match="box_head"):
        full.load_weights(str(tv_file), exclude=["class-specific"])
    notes = full.load_weights(str(tv_file))  # complete weights still load
    assert [n for n in notes if " -> " not in n] == []  # only conventions adopted


@pytest.mark.parametrize(
    "make, said",
    [
        (lambda p: p.mkdir(), "is a folder, not a file"),
        (lambda p: p.symlink_to(p.with_name("gone.pt")), "is a broken symbolic link (to "),
        (lambda p: p.symlink_to(p), "is a loop of symbolic links"),
        (lambda p: None, "weights file not found"),
    ],
    ids=["folder", "broken-link", "link-loop", "missing"],
)
def test_a_weights_path_that_is_no_file_says_what_it_is(tmp_path, make, said):
    """Issue 31, rule 13: all four were "not found"."""
    path = tmp_path / "w.pt"
    make(path)
    with pytest.raises(WeightsError, match=re.escape(said)):
        load_state_dict_file(path)
    h5 = tmp_path / "k.h5"  # Matterport's files are read by their own reader: same messages
    make(h5)
    with pytest.raises(WeightsError, match=re.escape(said.replace("(to ", ""))):
        load_state_dict_file(h5)
