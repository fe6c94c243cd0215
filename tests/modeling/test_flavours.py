"""The network's flavour (NETWORK_FLAVOUR) is an object chosen once, not a flag tested per call."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
import torch

import mrcnn
from mrcnn.config import Config
from mrcnn.modeling import flavours, network
from mrcnn.modeling.backbone import ResNetBackbone
from mrcnn.modeling.flavours import FLAVOURS, MatterportFlavour, TorchvisionFlavour
from mrcnn.modeling.matterport import MatterportResNetBackbone
from mrcnn.modeling.network import MaskRCNNNet

MRCNN = Path(mrcnn.__file__).parent


class TinyConfig(Config):
    NAME = "tiny"
    BACKBONE = "resnet50"
    NUM_CLASSES = 3
    FPN_CLASSIF_FC_LAYERS_SIZE = 16
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 32
    IMAGE_MAX_DIM = 64
    PRE_NMS_LIMIT = 200
    POST_NMS_ROIS_INFERENCE = 20
    DETECTION_MIN_CONFIDENCE = 0.0
    DETECTION_MAX_INSTANCES = 4
    DEVICE = "cpu"


def tiny_config(flavour: str) -> TinyConfig:
    return TinyConfig.from_overrides({"NETWORK_FLAVOUR": flavour})


EXPECTED = {
    "torchvision": (TorchvisionFlavour, ResNetBackbone, 256),
    "matterport": (MatterportFlavour, MatterportResNetBackbone, 512),
}


def test_the_registry_names_each_flavour():
    assert {name: cls for name, cls in FLAVOURS.items()} == {
        "torchvision": TorchvisionFlavour,
        "matterport": MatterportFlavour,
    }
    assert all(cls.name == name for name, cls in FLAVOURS.items())
    with pytest.raises(ValueError, match="NETWORK_FLAVOUR"):
        flavours.flavour_for(type("Odd", (), {"NETWORK_FLAVOUR": "keras"})())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_network_holds_the_flavour_its_config_names(name):
    flavour_class, backbone_class, rpn_hidden = EXPECTED[name]
    net = MaskRCNNNet(tiny_config(name))
    assert type(net.flavour) is flavour_class and net.flavour.name == name
    assert type(net.backbone) is backbone_class
    assert net.rpn.conv.out_channels == rpn_hidden
    assert net.matterport == (name == "matterport")
    assert net.flavour.settings == net.settings
    with pytest.raises(AttributeError):
        net.matterport = name != "matterport"  # read-only: the flavour says it


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_flavour_is_chosen_once_and_keeps_its_class(name, monkeypatch):
    chosen = []
    choose = network.flavour_for
    monkeypatch.setattr(network, "flavour_for", lambda *a, **k: chosen.append(1) or choose(*a, **k))
    config = tiny_config(name)
    torch.manual_seed(0)
    net = MaskRCNNNet(config).eval()
    assert len(chosen) == 1
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 50
    windows = torch.tensor([[0.0, 0.0, 64.0, 64.0], [8.0, 4.0, 56.0, 60.0]])
    with torch.no_grad():
        found = net(images, windows)
        net.refine_rois(
            found["boxes"],
            torch.zeros_like(found["boxes"]),
            found["image_index"],
            windows,
            (64, 64),
        )
    assert len(chosen) == 1, "the flavour must be chosen when the network is built, not per call"
    # configure() re-reads the stage values into the same flavour; the layers stay the flavour's.
    flavour_class = EXPECTED[name][0]
    config.NETWORK_FLAVOUR = "torchvision" if name == "matterport" else "matterport"
    config.DETECTION_MIN_CONFIDENCE = 0.25
    net.configure()
    assert type(net.flavour) is flavour_class and len(chosen) == 1
    assert net.flavour.settings.min_confidence == 0.25 == net.settings.min_confidence


def _flag_tests(source: str) -> list[str]:
    """The conditions in ``source`` that test the flavour as a flag: ``x.matterport``,
    ``x.is_matterport``, ``uses_matterport(...)``, ``getattr(x, "matterport")``, a flavour's
    ``.name`` or NETWORK_FLAVOUR."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, (ast.If, ast.IfExp, ast.While, ast.Assert, ast.BoolOp)):
            continue
        tests = node.values if isinstance(node, ast.BoolOp) else [node.test]
        for test in tests:
            for part in ast.walk(test):
                flag = (
                    isinstance(part, ast.Attribute)
                    and part.attr in ("matterport", "is_matterport", "NETWORK_FLAVOUR")
                    or isinstance(part, ast.Attribute)
                    and part.attr == "name"
                    and "flavour" in ast.unparse(part.value)
                    or isinstance(part, ast.Name)
                    and part.id == "uses_matterport"
                    or isinstance(part, ast.Constant)
                    and part.value in ("matterport", "NETWORK_FLAVOUR")
                )
                if flag:
                    found.append(f"line {test.lineno}: {ast.unparse(test)}")
    return found


def test_the_network_tests_no_flavour_flag():
    source = inspect.getsource(network)
    assert _flag_tests(source) == []
    tree = ast.parse(source)
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert "matterport" not in imported and "mrcnn.modeling.matterport" not in imported


@pytest.mark.parametrize("path", ["maskrcnn.py", "deploy/graph.py"])
def test_the_network_users_ask_the_flavour(path):
    assert _flag_tests((MRCNN / path).read_text()) == []


def test_the_flag_finder_finds_flags():
    planted = (
        "if self.matterport:\n    pass\n"
        "x = 512 if net.is_matterport else 256\n"
        "if getattr(net, 'matterport', False):\n    pass\n"
        "if uses_matterport(config):\n    pass\n"
        "if self.flavour.name == 'torchvision':\n    pass\n"
    )
    assert len(_flag_tests(planted)) == 5
