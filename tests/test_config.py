"""Config: overrides, validation, display, to_dict, load_config and the torchvision preset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mrcnn.config import Config, TorchvisionCocoConfig, load_config, parse_overrides


class SmallConfig(Config):
    NAME = "small"
    NUM_CLASSES = 3
    BACKBONE = "resnet50"


# ------------------------------------------------------------------ from_overrides
def test_from_overrides_dict_keeps_base_and_replaces_values():
    cfg = SmallConfig.from_overrides({"IMAGES_PER_GPU": 4, "detection_min_confidence": 0.25})
    assert isinstance(cfg, SmallConfig)
    assert cfg.IMAGES_PER_GPU == 4
    assert cfg.DETECTION_MIN_CONFIDENCE == 0.25
    assert cfg.NAME == "small" and cfg.NUM_CLASSES == 3
    # computed attributes follow their inputs
    assert cfg.BATCH_SIZE == 4 * cfg.GPU_COUNT
    # the base class is untouched
    assert SmallConfig.IMAGES_PER_GPU == 2
    assert SmallConfig().IMAGES_PER_GPU == 2


def test_from_overrides_key_value_strings_parse_python_literals():
    cfg = Config.from_overrides(
        [
            "IMAGES_PER_GPU=3",
            "LEARNING_RATE=1e-3",
            "RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128]",
            "USE_MINI_MASK=false",
            "TRAIN_BN=True",
            "BACKBONE=resnet50",
            "NAME = my_run",
            "STD_PIXEL=None",
        ]
    )
    assert cfg.IMAGES_PER_GPU == 3 and isinstance(cfg.IMAGES_PER_GPU, int)
    assert cfg.LEARNING_RATE == pytest.approx(0.001)
    assert list(cfg.RPN_ANCHOR_SCALES) == [8, 16, 32, 64, 128]
    assert cfg.USE_MINI_MASK is False
    assert cfg.TRAIN_BN is True
    assert cfg.BACKBONE == "resnet50"
    assert cfg.NAME == "my_run"
    assert cfg.STD_PIXEL is None


def test_parse_overrides_value_may_contain_equals_and_keys_are_uppercased():
    assert parse_overrides(["name=a=b"]) == {"NAME": "a=b"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["IMAGES_PER_GPU"])


def test_unknown_key_refused_with_hint():
    with pytest.raises(ValueError) as info:
        Config.from_overrides({"DETECTION_MIN_CONF": 0.5})
    message = str(info.value)
    assert "DETECTION_MIN_CONF" in message
    assert "DETECTION_MIN_CONFIDENCE" in message  # the hint lists the close keys
    with pytest.raises(ValueError, match="unknown config key 'FOO'"):
        Config.from_overrides(["FOO=1"])


@pytest.mark.parametrize("key", ["BATCH_SIZE", "IMAGE_SHAPE"])
def test_computed_keys_refused(key):
    with pytest.raises(ValueError, match=f"{key} is computed"):
        Config.from_overrides({key: 4})


def test_assigning_batch_size_sets_images_per_gpu_as_matterports_scripts_do():
    cfg = Config()  # Matterport's train_shapes notebook: config.BATCH_SIZE = 1 after creating it
    cfg.BATCH_SIZE = 1
    assert cfg.IMAGES_PER_GPU == 1 and cfg.BATCH_SIZE == 1
    cfg.GPU_COUNT = 2
    cfg.BATCH_SIZE = 6
    assert cfg.IMAGES_PER_GPU == 3
    with pytest.raises(ValueError, match="BATCH_SIZE = 5 does not divide over GPU_COUNT = 2"):
        cfg.BATCH_SIZE = 5
    for bad in (0, -2, 1.5, "2", True):
        with pytest.raises(ValueError, match="positive whole number"):
            cfg.BATCH_SIZE = bad
    assert cfg.IMAGES_PER_GPU == 3


def test_numpy_arrays_stay_arrays():
    cfg = Config.from_overrides(["MEAN_PIXEL=[1, 2, 3]", "BBOX_STD_DEV=[1, 1, 1, 1]"])
    assert isinstance(cfg.MEAN_PIXEL, np.ndarray)
    assert cfg.MEAN_PIXEL.dtype == Config.MEAN_PIXEL.dtype
    np.testing.assert_array_equal(cfg.MEAN_PIXEL, [1, 2, 3])
    assert isinstance(cfg.BBOX_STD_DEV, np.ndarray)
    # arithmetic like the network does keeps working
    np.testing.assert_array_equal(cfg.BBOX_STD_DEV * 2, [2, 2, 2, 2])


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "overrides, needle",
    [
        ({"BACKBONE": "resnet152"}, "BACKBONE='resnet152'"),
        ({"IMAGE_RESIZE_MODE": "stretch"}, "IMAGE_RESIZE_MODE='stretch'"),
        ({"RPN_ANCHOR_SCALES": (32, 64, 128, 256)}, "RPN_ANCHOR_SCALES=(32, 64, 128, 256): must"),
        ({"NUM_CLASSES": 0}, "NUM_CLASSES=0"),
        ({"ROI_LEVEL_ROUNDING": "ceil"}, "ROI_LEVEL_ROUNDING"),
        ({"ROI_ALIGN_SAMPLING_RATIO": 0}, "ROI_ALIGN_SAMPLING_RATIO=0"),
        ({"DETECTION_CLASS_MODE": "best"}, "DETECTION_CLASS_MODE"),
        ({"IMAGE_MAX_DIM": 100}, "IMAGE_MAX_DIM=100"),
        ({"IMAGES_PER_GPU": 0}, "IMAGES_PER_GPU=0"),
        ({"MEAN_PIXEL": [1.0, 2.0]}, "MEAN_PIXEL has 2 values"),
        ({"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 100}, "multiple of 64 for pad64"),
    ],
)
def test_validation_errors(overrides, needle):
    with pytest.raises(ValueError) as info:
        Config.from_overrides(overrides)
    assert needle in str(info.value)


def test_validation_runs_for_subclasses():
    class Bad(Config):
        BACKBONE = "vgg"

    with pytest.raises(ValueError, match="invalid Bad: BACKBONE='vgg'"):
        Bad()


def test_validation_reports_every_error_at_once():
    with pytest.raises(ValueError) as info:
        Config.from_overrides({"BACKBONE": "x", "IMAGE_RESIZE_MODE": "y"})
    assert "BACKBONE" in str(info.value) and "IMAGE_RESIZE_MODE" in str(info.value)


# ------------------------------------------------------------------ display, to_dict
def test_computed_attributes():
    cfg = Config.from_overrides({"IMAGES_PER_GPU": 3, "GPU_COUNT": 2, "IMAGE_MAX_DIM": 512})
    assert cfg.BATCH_SIZE == 6
    np.testing.assert_array_equal(cfg.IMAGE_SHAPE, [512, 512, 3])
    crop = Config.from_overrides({"IMAGE_RESIZE_MODE": "crop", "IMAGE_MIN_DIM": 256})
    np.testing.assert_array_equal(crop.IMAGE_SHAPE, [256, 256, 3])


def test_to_dict_plain_values():
    d = SmallConfig().to_dict()
    assert d["NAME"] == "small"
    assert d["BATCH_SIZE"] == 2
    assert d["IMAGE_SHAPE"] == [1024, 1024, 3]
    assert d["MEAN_PIXEL"] == pytest.approx([123.7, 116.8, 103.9])
    assert isinstance(d["RPN_ANCHOR_SCALES"], list)
    assert all(k.isupper() for k in d)
    json.dumps(d)  # plain values only


def test_display_prints_every_value(capsys):
    cfg = SmallConfig()
    cfg.display()
    out = capsys.readouterr().out
    assert "Configurations:" in out
    for key in ("NAME", "NUM_CLASSES", "BATCH_SIZE", "IMAGE_SHAPE", "BACKBONE_STRIDES"):
        assert key in out
    line = next(line for line in out.splitlines() if line.startswith("NUM_CLASSES"))
    assert line.split()[-1] == "3"


# ------------------------------------------------------------------ load_config
CONFIG_MODULE = """
from mrcnn.config import Config


class FileConfig(Config):
    NAME = "from_file"
    NUM_CLASSES = 5
    BACKBONE = "resnet50"


NOT_A_CONFIG = 1
"""


def test_load_config_none_is_base():
    cfg = load_config(None, ["IMAGES_PER_GPU=1"])
    assert isinstance(cfg, Config) and cfg.IMAGES_PER_GPU == 1


def test_load_config_module_class():
    cfg = load_config("mrcnn.config:TorchvisionCocoConfig", ["NUM_CLASSES=4"])
    assert isinstance(cfg, TorchvisionCocoConfig)
    assert cfg.NUM_CLASSES == 4
    assert cfg.IMAGE_RESIZE_MODE == "shortest_side"


def test_load_config_py_file(tmp_path):
    path = tmp_path / "my_config.py"
    path.write_text(CONFIG_MODULE)
    cfg = load_config(f"{path}:FileConfig", ["IMAGES_PER_GPU=1"])
    assert cfg.NAME == "from_file" and cfg.NUM_CLASSES == 5 and cfg.IMAGES_PER_GPU == 1
    with pytest.raises(ValueError, match="not a Config subclass"):
        load_config(f"{path}:NOT_A_CONFIG")
    with pytest.raises(ValueError, match="not a Config subclass"):
        load_config(f"{path}:Missing")


def test_load_config_yaml_with_module_base(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(
        "BASE: mrcnn.config:TorchvisionCocoConfig\n"
        "name: yaml_run\n"
        "NUM_CLASSES: 2\n"
        "RPN_BBOX_STD_DEV: [0.5, 0.5, 1, 1]\n"
        "TRAIN_BN: true\n"
    )
    cfg = load_config(str(path), ["NUM_CLASSES=7"])
    assert isinstance(cfg, TorchvisionCocoConfig)
    assert cfg.NAME == "yaml_run"
    assert cfg.NUM_CLASSES == 7  # command-line overrides come last
    assert isinstance(cfg.RPN_BBOX_STD_DEV, np.ndarray)
    np.testing.assert_array_equal(cfg.RPN_BBOX_STD_DEV, [0.5, 0.5, 1, 1])
    assert cfg.TRAIN_BN is True


def test_load_config_yaml_with_file_base(tmp_path):
    module = tmp_path / "my_config.py"
    module.write_text(CONFIG_MODULE)
    path = tmp_path / "cfg.yml"
    path.write_text(f"BASE: {module}:FileConfig\nIMAGES_PER_GPU: 1\nMEAN_PIXEL: [1, 2, 3]\n")
    cfg = load_config(str(path), ["NAME=cli"])
    assert type(cfg).__mro__[1].__name__ == "FileConfig"
    assert cfg.NUM_CLASSES == 5 and cfg.IMAGES_PER_GPU == 1 and cfg.NAME == "cli"
    assert isinstance(cfg.MEAN_PIXEL, np.ndarray)


def test_load_config_json_without_base(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"NAME": "json_run", "IMAGES_PER_GPU": 1}))
    cfg = load_config(str(path))
    assert type(cfg).__mro__[1] is Config
    assert cfg.NAME == "json_run" and cfg.IMAGES_PER_GPU == 1


def test_load_config_yaml_unknown_key_and_non_mapping(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("DETECTION_MIN_CONF: 0.5\n")
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(str(path))
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_config(str(path))


def test_load_config_bad_spec():
    with pytest.raises(ValueError, match="module:ClassName"):
        load_config("no_colon_here")


# ------------------------------------------------------------------ presets
def test_torchvision_coco_config_values():
    cfg = TorchvisionCocoConfig()
    assert cfg.NUM_CLASSES == 91
    assert cfg.BACKBONE == "resnet50"
    assert cfg.IMAGE_RESIZE_MODE == "shortest_side"
    assert (cfg.IMAGE_MIN_DIM, cfg.IMAGE_MAX_DIM) == (800, 1333)
    np.testing.assert_allclose(cfg.MEAN_PIXEL, [123.675, 116.28, 103.53])
    np.testing.assert_allclose(cfg.STD_PIXEL, [58.395, 57.12, 57.375])
    assert list(cfg.RPN_ANCHOR_RATIOS) == [2.0, 1.0, 0.5]
    assert tuple(cfg.RPN_ANCHOR_SCALES) == (32, 64, 128, 256, 512)
    assert cfg.RPN_ANCHOR_ROUND is True
    assert cfg.RPN_PROPOSALS_PER_LEVEL is True
    assert cfg.PRE_NMS_LIMIT == 1000 and cfg.POST_NMS_ROIS_INFERENCE == 1000
    assert cfg.RPN_NMS_THRESHOLD == 0.7
    np.testing.assert_array_equal(cfg.RPN_BBOX_STD_DEV, [1, 1, 1, 1])
    np.testing.assert_allclose(cfg.BBOX_STD_DEV, [0.1, 0.1, 0.2, 0.2])
    assert cfg.ROI_LEVEL_ROUNDING == "floor"
    assert cfg.ROI_ALIGN_ALIGNED is False and cfg.ROI_ALIGN_SAMPLING_RATIO == 2
    assert cfg.DETECTION_CLASS_MODE == "all_classes"
    assert cfg.DETECTION_MIN_CONFIDENCE == 0.05
    assert cfg.DETECTION_NMS_THRESHOLD == 0.5
    assert cfg.DETECTION_MAX_INSTANCES == 100
    assert cfg.POOL_SIZE == 7 and cfg.MASK_POOL_SIZE == 14
    assert cfg.FPN_CLASSIF_FC_LAYERS_SIZE == 1024 and cfg.TOP_DOWN_PYRAMID_SIZE == 256


def test_matterport_defaults():
    cfg = Config()
    assert cfg.BACKBONE == "resnet101"
    assert list(cfg.BACKBONE_STRIDES) == [4, 8, 16, 32, 64]
    assert list(cfg.RPN_ANCHOR_RATIOS) == [0.5, 1, 2]
    assert cfg.RPN_ANCHOR_ROUND is False and cfg.RPN_PROPOSALS_PER_LEVEL is False
    assert cfg.ROI_LEVEL_ROUNDING == "round"
    assert cfg.DETECTION_CLASS_MODE == "top_class"
    assert cfg.IMAGE_RESIZE_MODE == "square"
    assert (cfg.IMAGE_MIN_DIM, cfg.IMAGE_MAX_DIM) == (800, 1024)
    assert cfg.STD_PIXEL is None
