"""Issue 12: every Config attribute is checked for type and range when the config is built, so a
bad ``--set`` is one line at once, not a traceback or a NaN at step 1."""

from __future__ import annotations

import pytest

from mrcnn.cli import main
from mrcnn.config import COMPUTED_ATTRIBUTES, Config, TorchvisionCocoConfig
from mrcnn.config_checks import RULES


def test_every_attribute_has_a_rule():
    attributes = {k for k in dir(Config) if k.isupper()} - set(COMPUTED_ATTRIBUTES)
    assert attributes == set(RULES)


@pytest.mark.parametrize("key", sorted(RULES))
def test_every_rule_refuses_a_value_of_the_wrong_kind(key):
    with pytest.raises(ValueError, match=rf"^invalid Config: {key}=\[\[1(\.0)?\]\]: "):
        Config.from_overrides({key: [[1]]})


def test_defaults_and_presets_pass():
    Config()
    TorchvisionCocoConfig()


@pytest.mark.parametrize(
    "setting, needle",
    [
        ("IMAGE_MAX_DIM=abc", "IMAGE_MAX_DIM='abc': must be a whole number >= 1"),
        ("RPN_ANCHOR_SCALES=32", "RPN_ANCHOR_SCALES=32: must be a list of 5 positive numbers"),
        ("NUM_CLASSES=2.5", "NUM_CLASSES=2.5: must be a whole number >= 1"),
        (
            "DETECTION_MIN_CONFIDENCE=1.5",
            "DETECTION_MIN_CONFIDENCE=1.5: must be a number in [0, 1]",
        ),
        ("IMAGE_MAX_DIM=-128", "IMAGE_MAX_DIM=-128: must be a whole number >= 1"),
        ("LEARNING_RATE=nan", "LEARNING_RATE='nan': must be a finite number > 0"),
        ("LEARNING_RATE=1e400", "LEARNING_RATE=inf: must be a finite number > 0"),
        ("OPTIMIZER=adam", "OPTIMIZER='adam': use one of 'sgd', 'adamw'"),
        ("AMP=fp8", "AMP='fp8': use None (float32), 'bf16'"),
        ("DEVICE=gpu", "DEVICE='gpu': use 'cuda'"),
        ("DEVICE=tpu7", "DEVICE='tpu7': use 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("USE_MINI_MASK=yes", "USE_MINI_MASK='yes': must be True or False"),
        ("LOSS_WEIGHTS={'rpn_loss': 1}", "LOSS_WEIGHTS={'rpn_loss': 1}: must map rpn_class_loss"),
    ],
)
def test_cli_refuses_bad_settings_in_one_line_before_any_work(setting, needle, tmp_path, capsys):
    logs = tmp_path / "logs"
    argv = ["train", "--dataset", "shapes:4:64", "--weights", "none", "--logs", str(logs)]
    assert main([*argv, "--set", setting]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and needle in err, err
    assert not logs.exists()  # no empty run folder left behind


def test_cli_device_gpu_says_cuda(tmp_path, capsys):
    argv = ["train", "--dataset", "shapes:4:64", "--weights", "none", "--logs", str(tmp_path)]
    assert main([*argv, "--device", "gpu"]) == 1
    assert "DEVICE='gpu': use 'cuda'" in capsys.readouterr().err


def test_cli_learning_rate_flag_is_checked_with_the_config(tmp_path, capsys):
    argv = ["train", "--dataset", "shapes:4:64", "--weights", "none", "--logs", str(tmp_path)]
    assert main([*argv, "--learning-rate", "nan"]) == 1
    assert "LEARNING_RATE='nan': must be a finite number > 0" in capsys.readouterr().err


def test_library_train_refuses_a_non_finite_learning_rate(tmp_path):
    from mrcnn.model import MaskRCNN
    from tests.helpers.training import config, shapes

    model = MaskRCNN("training", config(), tmp_path)
    with pytest.raises(ValueError, match="learning_rate=nan: must be a finite number > 0"):
        model.train(shapes(2), None, float("nan"), epochs=1, layers="heads")
    assert not any(tmp_path.iterdir())
