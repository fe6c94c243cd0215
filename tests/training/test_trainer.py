"""The training loop: layer freezing, a short run whose loss falls, resume, NaN guard, checks."""

from __future__ import annotations

import copy
import json
import logging
import re

import pytest
import torch

from mrcnn.model import MaskRCNN
from mrcnn.training import trainer as trainer_module
from mrcnn.training.layers import LAYER_PRESETS, build_optimizer, set_trainable, warmup_factor
from mrcnn.training.trainer import DatasetMismatch, TrainingDiverged
from tests.helpers.training import config, conv_output_dtypes, shapes


def _snapshot(net):
    return {name: p.detach().clone() for name, p in net.named_parameters()}


def test_layer_presets_select_the_documented_layers(tmp_path):
    net = MaskRCNN("training", config(), tmp_path).net
    names = set(set_trainable(net, "heads"))
    assert any(n.startswith("rpn.") for n in names) and any(n.startswith("fpn.") for n in names)
    assert not any(n.startswith("backbone.") for n in names)
    names = set(set_trainable(net, "4+"))
    assert any(n.startswith("backbone.body.layer3.") for n in names)
    assert not any(n.startswith("backbone.body.layer2.") for n in names)
    assert set(set_trainable(net, "all")) == {n for n, _ in net.named_parameters()}
    assert set(set_trainable(net, r"^mask_head\.")) == {
        n for n, _ in net.named_parameters() if n.startswith("mask_head.")
    }
    with pytest.raises(ValueError, match="matches no parameter"):
        set_trainable(net, "^nothing")
    assert set(LAYER_PRESETS) == {"heads", "2+", "3+", "4+", "5+", "all"}


def test_optimizer_skips_decay_on_biases_and_norms(tmp_path):
    net = MaskRCNN("training", config(), tmp_path).net
    set_trainable(net, "all")
    decay, no_decay = build_optimizer(net, 0.1, 0.9, 1e-4).param_groups
    assert decay["weight_decay"] == 1e-4 and no_decay["weight_decay"] == 0.0
    assert all(p.ndim > 1 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert warmup_factor(0, 4) == 0.25 and warmup_factor(3, 4) == 1.0 and warmup_factor(9, 0) == 1


def test_frozen_layers_unchanged_trainable_changed(tmp_path):
    model = MaskRCNN("training", config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=0), tmp_path)
    before = _snapshot(model.net)
    model.train(shapes(2), None, learning_rate=0.02, epochs=1, layers="heads")
    after = _snapshot(model.net)
    for name in before:
        same = torch.equal(before[name], after[name])
        if re.match(LAYER_PRESETS["heads"], name):
            if name.startswith(("box_head.fc", "rpn.conv", "mask_head.convs.0")):
                assert not same, f"{name} did not change"
        else:
            assert same, f"frozen {name} changed"


def test_two_epoch_run_loss_falls_and_writes_run_folder(tmp_path):
    torch.manual_seed(0)
    cfg = config(STEPS_PER_EPOCH=4, WORKERS=1, WARMUP_STEPS=2, LEARNING_RATE=0.02)
    model = MaskRCNN("training", cfg, tmp_path)
    model.train(shapes(12), shapes(2, "val"), cfg.LEARNING_RATE, epochs=2, layers="all")
    run = model.log_dir
    assert run.parent == tmp_path and re.fullmatch(r"tiny\d{8}T\d{6}", run.name)
    assert (run / "mrcnn_tiny_0001.pt").is_file() and (run / "mrcnn_tiny_0002.pt").is_file()
    assert json.loads((run / "config.json").read_text())["NUM_CLASSES"] == 4
    assert list(run.glob("events.out.tfevents.*"))
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in lines if "loss" in r]
    assert len(steps) == 8 and {"lr", "seconds", "mrcnn_mask_loss"} <= set(steps[0])
    assert any("val_loss" in r for r in lines)
    first = sum(r["loss"] for r in steps[:2]) / 2
    last = sum(r["loss"] for r in steps[-2:]) / 2
    assert last < first, f"loss did not fall: {first:.3f} -> {last:.3f}"
    assert model.epoch == 2 and model.global_step == 8


def test_resume_continues_epochs_run_folder_and_optimizer(tmp_path, monkeypatch):
    cfg = config(VALIDATION_STEPS=0)
    assert cfg.WARMUP_STEPS == 2  # a fresh run would start at half the learning rate
    first = MaskRCNN("training", cfg, tmp_path)
    first.train(shapes(4), None, 0.01, epochs=1, layers="heads")
    saved = torch.load(first.find_last(), weights_only=True)["optimizer"]
    assert saved["state"], "the checkpoint should hold momentum buffers"

    from mrcnn.training import trainer

    seen = []
    real_step = trainer.Trainer._step

    def step(self, batch, epoch, index):
        if not seen:  # the optimiser as resumed, before any update
            seen.append(copy.deepcopy(self.optimizer.state_dict()))
        values = real_step(self, batch, epoch, index)
        seen.append(self.optimizer.param_groups[0]["lr"])
        return values

    monkeypatch.setattr(trainer.Trainer, "_step", step)
    second = MaskRCNN("training", cfg, tmp_path)
    second.load_weights("last")
    assert second.epoch == 1 and second.global_step == 2
    second.train(shapes(4), None, 0.01, epochs=2, layers="heads")
    restored, first_lr = seen[0], seen[1]
    assert restored["state"].keys() == saved["state"].keys()
    for index, buffers in saved["state"].items():
        torch.testing.assert_close(restored["state"][index], buffers, rtol=0, atol=0)
    assert first_lr == 0.01, f"warm-up ran again on resume: first lr {first_lr}"
    assert second.log_dir == first.log_dir
    assert (first.log_dir / "mrcnn_tiny_0002.pt").is_file()
    resumed = torch.load(second.find_last(), weights_only=True)
    assert resumed["epoch"] == 2 and resumed["step"] == 4


def test_calling_train_again_continues_the_epoch_count(tmp_path):
    model = MaskRCNN("training", config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=1), tmp_path)
    model.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    model.train(shapes(2), None, 0.001, epochs=2, layers="all")
    names = sorted(p.name for p in model.log_dir.glob("*.pt"))
    assert names == ["mrcnn_tiny_0001.pt", "mrcnn_tiny_0002.pt"]


def test_nan_loss_stops_with_step_and_keeps_checkpoint(tmp_path, monkeypatch):
    model = MaskRCNN("training", config(VALIDATION_STEPS=0, STEPS_PER_EPOCH=1), tmp_path)
    model.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    good = model.find_last()
    good_bytes = open(good, "rb").read()

    from mrcnn.training import trainer

    real = trainer.training_losses

    def poisoned(*args, **kwargs):
        losses = real(*args, **kwargs)
        losses["rpn_bbox_loss"] = losses["rpn_bbox_loss"] * float("nan")
        return losses

    monkeypatch.setattr(trainer, "training_losses", poisoned)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, step 1 .*rpn_bbox_loss=nan"):
        model.train(shapes(2), None, 0.01, epochs=2, layers="heads")
    assert open(good, "rb").read() == good_bytes
    assert model.find_last() == good and model.epoch == 1


def test_class_count_mismatch_is_refused_before_training(tmp_path):
    model = MaskRCNN("training", config(NUM_CLASSES=3), tmp_path)
    with pytest.raises(DatasetMismatch, match=r"4 classes.*NUM_CLASSES = 3"):
        model.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    assert not list(tmp_path.iterdir())


def test_inference_model_cannot_train(tmp_path):
    model = MaskRCNN("inference", config(), tmp_path)
    with pytest.raises(ValueError, match="mode='training'"):
        model.train(shapes(2), None, 0.01, epochs=1, layers="heads")


def test_cli_train_help(capsys):
    from mrcnn.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--dataset" in text and "--layers" in text and "--weights" in text


def test_cli_train_refuses_class_mismatch(tmp_path, capsys):
    from mrcnn.cli import main

    code = main(
        ["train", "--dataset", "shapes:4:64", "--weights", "none", "--logs", str(tmp_path)]
        + ["--set", "NUM_CLASSES=2", "--set", "BACKBONE=resnet50", "--epochs", "1"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "4 classes" in err and "NUM_CLASSES = 2" in err and "--set NUM_CLASSES=4" in err


def test_bf16_training_where_bf16_is_slower_says_so_and_trains_in_bf16(
    tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(trainer_module, "cpu_bf16_shortfall", lambda: "it took 1.86 times")
    model = MaskRCNN(
        "training", config(AMP="bf16", STEPS_PER_EPOCH=1, VALIDATION_STEPS=0), tmp_path
    )
    with caplog.at_level(logging.WARNING, logger=trainer_module.__name__):
        with conv_output_dtypes(model.net) as dtypes:
            model.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    assert dtypes == {torch.bfloat16}, dtypes
    said = [r.getMessage() for r in caplog.records if "AMP='bf16'" in r.getMessage()]
    assert said == ["AMP='bf16' trains as asked, but slower than AMP=None here: it took 1.86 times"]


def test_bf16_autocast_step_on_cpu(tmp_path):
    model = MaskRCNN(
        "training", config(AMP="bf16", STEPS_PER_EPOCH=1, VALIDATION_STEPS=0), tmp_path
    )
    with conv_output_dtypes(model.net) as dtypes:
        model.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    # Every convolution of the step (backbone, FPN, RPN, mask head) ran in bfloat16.
    assert dtypes == {torch.bfloat16}, dtypes
    record = json.loads((model.log_dir / "metrics.jsonl").read_text().splitlines()[0])
    assert all(record[name] == record[name] for name in ("loss", "mrcnn_mask_loss"))  # not NaN


def _random_frozen_bn_warnings(caplog) -> list[str]:
    from mrcnn import maskrcnn

    note = maskrcnn.RANDOM_FROZEN_BN_NOTE
    return [r.getMessage() for r in caplog.records if r.getMessage() == note]


def test_training_random_weights_with_frozen_batchnorm_warns_once(tmp_path, caplog):
    """A Python user whose frozen BatchNorm never got weights gets the advice
    from_checkpoint("none") gives, once; a model whose BatchNorm was loaded does not."""
    from mrcnn.testing import randomise_batchnorm

    settings = {"TRAIN_BN": False, "STEPS_PER_EPOCH": 1, "VALIDATION_STEPS": 0}
    model = MaskRCNN("training", config(**settings), tmp_path / "random")
    with caplog.at_level(logging.WARNING):
        model.train(shapes(2), None, 0.01, epochs=1, layers="heads")
        model.train(shapes(2), None, 0.01, epochs=2, layers="heads")
    assert len(_random_frozen_bn_warnings(caplog)) == 1
    resumed = MaskRCNN("training", config(**settings), tmp_path / "random")
    resumed.load_weights(model.find_last())  # loaded, but its BatchNorm is still the identity
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        resumed.train(shapes(2), None, 0.01, epochs=3, layers="heads")
    assert len(_random_frozen_bn_warnings(caplog)) == 1

    randomise_batchnorm(model.net.backbone, seed=3)  # as trained statistics would be
    by_state_dict = MaskRCNN("training", config(**settings), tmp_path / "state_dict")
    by_state_dict.net.load_state_dict(model.net.state_dict())
    unfrozen = MaskRCNN("training", config(**{**settings, "TRAIN_BN": True}), tmp_path / "bn")
    notes = []
    noted = MaskRCNN.from_checkpoint(
        "none", ["TRAIN_BN=False"], config=type(model.config), mode="training",
        model_dir=tmp_path / "noted", on_note=notes.append,
    )  # fmt: skip
    noted.config.STEPS_PER_EPOCH, noted.config.VALIDATION_STEPS = 1, 0
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        for quiet in (by_state_dict, unfrozen, noted):
            quiet.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    assert _random_frozen_bn_warnings(caplog) == []
    assert sum("TRAIN_BN = True" in note for note in notes) == 1
