"""Choosing which tensors of a state dict load into a network, on a small stand-in network
(no Mask R-CNN to build, so these run in milliseconds): exclusions, shape and name mismatches,
class-specific layers, and what is left at its initialisation."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mrcnn import conventions
from mrcnn.config import Config
from mrcnn.weights.completeness import require_complete, uninitialised_parts
from mrcnn.weights.loading import (
    WeightsError,
    adopt_flavour,
    detect_format,
    load_selected,
    load_state_dict_file,
    select_for_network,
    trained_conventions,
    translate_exclude,
)


def _net() -> nn.Module:
    """Top-level parts named as in MaskRCNNNet; box_head.class_logits is class-specific."""
    torch.manual_seed(0)
    net = nn.Module()
    net.backbone = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    net.fpn = nn.Sequential(*(nn.Conv2d(4, 4, 1) for _ in range(7)))
    net.box_head = nn.Module()
    net.box_head.class_logits = nn.Linear(4, 3)
    return net


def _state(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v + 1 for k, v in net.state_dict().items()}


def test_eight_mismatches_show_the_first_five_and_count_the_rest():
    net = _net()
    state = _state(net)
    for index in range(7):
        state[f"fpn.{index}.weight"] = torch.zeros(2, 4, 1, 1)
    state["fpn.0.bias"] = torch.zeros(2)  # 8 mismatches in all (8 - 5 = 3, unlike 8 ^ 5)
    with pytest.raises(WeightsError) as info:
        select_for_network(net, state, source="w.pt")
    message = str(info.value)
    assert message.startswith(
        "w.pt does not fit this network: fpn.0.weight (2, 4, 1, 1) vs (4, 4, 1, 1); "
        "fpn.0.bias (2,) vs (4,); fpn.1.weight"
    )
    assert "fpn.3.weight" in message and "fpn.4.weight" not in message
    assert " and 3 more. Check BACKBONE" in message
    state = {k: v for k, v in state.items() if not k.startswith("fpn.") or k.endswith("bias")}
    state["fpn.0.weight"] = torch.zeros(2, 4, 1, 1)
    with pytest.raises(WeightsError) as info:
        select_for_network(net, state)
    assert "more" not in str(info.value)


def test_selection_skips_excluded_batch_counters_and_other_class_counts_with_a_note():
    net = _net()
    state = _state(net)
    state["box_head.class_logits.weight"] = torch.zeros(5, 4)  # 5 classes, not 3
    state["box_head.class_logits.bias"] = torch.zeros(5)
    state["backbone.9.num_batches_tracked"] = torch.tensor(3)  # not in this network
    selected, notes = select_for_network(net, state, exclude=["fpn.3.", r"fpn\.[56]\.bias"])
    assert notes == [
        f"skipped {key}: shape {shape} in weights vs {here} here (NUM_CLASSES differs); "
        "it keeps its init"
        for key, shape, here in [
            ("box_head.class_logits.weight", (5, 4), (3, 4)),
            ("box_head.class_logits.bias", (5,), (3,)),
        ]
    ]
    dropped = {
        "fpn.3.weight",
        "fpn.3.bias",
        "fpn.5.bias",
        "fpn.6.bias",
        "box_head.class_logits.weight",
        "box_head.class_logits.bias",
        "backbone.9.num_batches_tracked",
    }
    assert set(selected) == set(state) - dropped
    assert all(selected[k] is state[k] for k in selected)
    # "class-specific" drops those layers silently, whatever their shape
    selected, notes = select_for_network(net, _state(net), exclude="class-specific")
    assert notes == [] and not any(k.startswith("box_head.") for k in selected)


def test_what_loading_leaves_at_its_init_is_named_and_refused_for_inference():
    net = _net()
    state = _state(net)
    selected, _ = select_for_network(net, state, exclude=["box_head.", "fpn.0."])
    assert uninitialised_parts(net, selected) == {"box_head": 2, "fpn": 2}
    with pytest.raises(WeightsError, match=r"^w\.pt leaves box_head \(2 tensors\), fpn \(2 "):
        require_complete(net, selected, source="w.pt")
    notes = load_selected(net, selected, source="w.pt")
    assert notes == ["4 tensors not in w.pt keep their init (box_head, fpn)"]
    after = net.state_dict()
    assert torch.equal(after["fpn.1.weight"], state["fpn.1.weight"])
    assert not torch.equal(after["fpn.0.weight"], state["fpn.0.weight"])
    selected, _ = select_for_network(net, _state(net))
    require_complete(net, selected)  # nothing left out: no error
    assert load_selected(net, selected) == []
    # a batch counter missing from the weights is not a part left at its init
    del selected["backbone.1.num_batches_tracked"]
    assert uninitialised_parts(net, selected) == {}


def test_trained_conventions_come_from_the_checkpoint_config_or_torchvision():
    ours = {"fpn.0.weight": torch.zeros(1)}
    saved = {"MEAN_PIXEL": [1.0, 2.0, 3.0], "RPN_ANCHOR_ROUND": False, "NAME": "x"}
    assert trained_conventions(ours, {"format": "mrcnn", "config": saved}) == {
        "MEAN_PIXEL": [1.0, 2.0, 3.0],
        "RPN_ANCHOR_ROUND": False,
    }
    assert trained_conventions(ours, {"format": "other", "config": saved}) is None
    assert trained_conventions(ours, {"format": "mrcnn"}) is None  # a plain state dict
    torchvision = {"roi_heads.box_predictor.cls_score.weight": torch.zeros(1)}
    torchvision["backbone.body.conv1.weight"] = torch.zeros(1)
    assert trained_conventions(torchvision, {}) == conventions.TORCHVISION


@pytest.mark.parametrize("count, more", [(5, ""), (6, " and 1 more")])
def test_five_mismatches_are_all_shown_and_a_sixth_is_counted(count, more):
    net = _net()
    state = _state(net)
    for index in range(count):
        state[f"fpn.{index}.weight"] = torch.zeros(2, 4, 1, 1)
    with pytest.raises(WeightsError) as info:
        select_for_network(net, state, source="w.pt")
    assert f"fpn.{min(count, 5) - 1}.weight (2, 4, 1, 1)" in str(info.value)
    assert f"(4, 4, 1, 1){more}. Check BACKBONE" in str(info.value)


def test_a_damaged_safetensors_file_is_named(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(WeightsError, match=r"cannot read .*model\.safetensors as safetensors: "):
        load_state_dict_file(path)


def test_layouts_are_told_apart_by_their_keys_and_an_unknown_one_lists_five():
    # conv1 without layer4 is not a ResNet (and nothing else either)
    with pytest.raises(WeightsError) as info:
        detect_format({f"{name}.weight": torch.zeros(1) for name in "conv1 a b c d e".split()})
    assert str(info.value) == (
        "unrecognised weights layout (first keys: a.weight, b.weight, c.weight, conv1.weight, "
        "d.weight)"
    )
    with pytest.raises(WeightsError):
        detect_format({"layer4.0.conv1.weight": torch.zeros(1)})  # layer4 without conv1


def test_matterport_layer_names_in_exclude_become_the_parameters_built_from_them():
    extras = {
        "keras_sources": {
            "box_head.class_logits.weight": ["mrcnn_class_logits"],
            "box_head.class_logits.bias": ["mrcnn_class_logits"],
            "rpn.conv.weight": ["rpn_conv_shared"],
        }
    }
    # mrcnn_bbox holds no weights in Keras; a name of ours passes through
    exclude = ["mrcnn_class_logits", "mrcnn_bbox", "mask_head.logits.weight"]
    assert translate_exclude(exclude, extras) == [
        "mask_head.logits.weight",
        "box_head.class_logits.weight",
        "box_head.class_logits.bias",
    ]
    assert translate_exclude("rpn_conv_shared", extras) == ["rpn.conv.weight"]
    assert translate_exclude(exclude, {}) == exclude  # other formats: unchanged


def test_weights_of_the_other_flavour_switch_an_ordinary_config_with_a_note():
    config = Config.from_overrides({"NAME": "x", "NUM_CLASSES": 2, "DEVICE": "cpu"})
    notes = adopt_flavour(config, {"NETWORK_FLAVOUR": "matterport"}, "model.h5")
    assert config.NETWORK_FLAVOUR == "matterport"
    assert notes and "matterport" in " ".join(notes)
    assert adopt_flavour(config, {"NETWORK_FLAVOUR": "matterport"}, "model.h5") == []
    assert adopt_flavour(config, None, "model.h5") == []


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty: the download or copy did not finish; fetch it again"),
        (b"\x89HDF\r\n\x1a\n" + bytes(56), "is an HDF5 file (Keras .h5?): rename it to .h5"),
        (
            b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64,
            "is a text file (it starts with 'version https://git-lfs.github.com/spec/'), "
            "not weights",
        ),
        (b"\x00\xff\x10garbage" * 8, "cannot read "),
    ],
    ids=["empty", "hdf5", "text", "binary"],
)
def test_an_unreadable_weights_file_says_what_it_is(tmp_path, content, message):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(WeightsError) as info:
        load_state_dict_file(path)
    if message == "cannot read ":
        assert str(info.value).startswith(f"cannot read {path} as PyTorch weights (")
    else:
        assert str(info.value).startswith(f"{path} {message}")


def test_a_pickled_object_is_named_by_its_global(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"model": conventions.ConventionsError}, path)  # pickled by its global name
    with pytest.raises(WeightsError) as info:
        load_state_dict_file(path)
    assert str(info.value).startswith(
        f"{path} holds a pickled Python object (mrcnn.conventions.ConventionsError), not a"
    )


def test_pretrained_weights_are_cached_under_the_urls_file_name(tmp_path, monkeypatch):
    from mrcnn.weights import loading as weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "new" / "hub"))
    fetched = []

    def download(url, target, hash_prefix=None, progress=True):
        fetched.append(url)
        Path(target).write_bytes(b"weights")

    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    first, second = list(weights.PRETRAINED)[:2]
    checkpoints = tmp_path / "new" / "hub" / "checkpoints"
    for name in (first, second):  # the folder made for the first, then already there
        path = weights.pretrained_file(name, progress=False)
        assert path == checkpoints / weights.PRETRAINED[name].split("/")[-1]
        assert path.read_bytes() == b"weights"
    assert fetched == [weights.PRETRAINED[first], weights.PRETRAINED[second]]
    assert weights.pretrained_file(first, progress=False).parent == checkpoints
    assert len(fetched) == 2  # cached: not fetched again


def test_a_tensor_of_the_wrong_shape_is_named_with_both_shapes():
    """Issue 31, rule 13: a file made for this config whose class-specific tensor has another
    shape was reported as "leaves box_head ... uninitialised"; name the tensor and both shapes."""
    net = _net()
    state = _state(net)
    state["box_head.class_logits.weight"] = torch.zeros(5, 4)
    selected, notes = select_for_network(net, state, source="w.pt")
    assert notes and "box_head.class_logits.weight" in notes[0]
    config = SimpleNamespace(NUM_CLASSES=3)
    wrong = r"tensor box_head.class_logits.weight is \(5, 4\) in the file, \(3, 4\) here"
    with pytest.raises(WeightsError, match=wrong):
        require_complete(net, selected, "w.pt", config, {"NUM_CLASSES": 3}, state)
    # made for another config: that is what the message says, as before
    with pytest.raises(WeightsError, match="was made for NUM_CLASSES = 5"):
        require_complete(net, selected, "w.pt", config, {"NUM_CLASSES": 5}, state)


def _resnet_net(blocks: int) -> nn.Module:
    """A network whose backbone.body.layer3 has ``blocks`` residual blocks (ResNet-50: 6,
    ResNet-101: 23), as MaskRCNNNet names them, plus an FPN conv."""
    net = nn.Module()
    net.backbone = nn.Module()
    net.backbone.body = nn.Module()
    net.backbone.body.layer2 = nn.Sequential(*(nn.Conv2d(2, 2, 1) for _ in range(4)))
    net.backbone.body.layer3 = nn.Sequential(*(nn.Conv2d(2, 2, 1) for _ in range(blocks)))
    net.fpn = nn.Conv2d(2, 2, 1)
    return net


def test_deeper_resnet_blocks_are_skipped_with_a_note_and_other_strangers_still_refused():
    """ResNet-101 weights into a ResNet-50 (Matterport's nucleus.py: --weights=coco into its
    resnet50 config): the 17 extra stage-4 blocks are skipped with one note, every block both
    have is loaded (in training; for detection it is a wrong BACKBONE and refused). A tensor of
    any other part the network lacks still stops the load."""
    deep, shallow = _resnet_net(23), _resnet_net(6)
    with pytest.raises(WeightsError, match=r"layer3\.6\.weight \(not in this network\)"):
        select_for_network(shallow, _state(deep))  # detection: a wrong BACKBONE
    selected, notes = select_for_network(
        shallow, _state(deep), source="coco.h5", skip_deeper_blocks=True
    )
    assert set(selected) == set(shallow.state_dict())
    assert notes == [
        "skipped 34 tensors of coco.h5's deeper ResNet (layer3.6-22): this network's BACKBONE "
        "has fewer blocks; the blocks both have are loaded"
    ]
    strange = _state(deep) | {"backbone.body.layer9.0.weight": torch.zeros(1)}
    with pytest.raises(WeightsError, match=r"layer9\.0\.weight \(not in this network\)"):
        select_for_network(shallow, strange, skip_deeper_blocks=True)
    # The other way round nothing is skipped: the deeper network's extra blocks keep their init.
    selected, notes = select_for_network(deep, _state(shallow), skip_deeper_blocks=True)
    assert notes == [] and len(selected) == len(shallow.state_dict())
