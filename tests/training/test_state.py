"""The training state (one object behind model.epoch / log_dir / ...), the run logger and the
training checks of the config (OPTIMIZER, AMP)."""

from __future__ import annotations

import json

import pytest

from mrcnn.model import MaskRCNN
from mrcnn.training.run_log import RunLogger
from mrcnn.training.state import TrainingState
from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_payload
from tests.helpers.training import config, shapes


def test_matterport_attributes_read_and_write_the_training_state(tmp_path):
    model = MaskRCNN("training", config(), tmp_path)
    assert model.training_state == TrainingState()
    model.epoch, model.global_step, model.log_dir = 3, 12, str(tmp_path)
    model.checkpoint_path, model.checkpoint_extras = tmp_path / "a.pt", {"layers": "all"}
    state = model.training_state
    assert (state.epoch, state.step, state.log_dir) == (3, 12, tmp_path)
    assert state.checkpoint_path == str(tmp_path / "a.pt") and state.extras == {"layers": "all"}
    model.start_new_run()
    assert model.training_state == TrainingState() and model.log_dir is None


def test_loading_a_checkpoint_restores_its_training_state(tmp_path):
    saved = MaskRCNN("training", config(), tmp_path)
    path = tmp_path / "tiny.pt"
    atomic_torch_save(checkpoint_payload(saved.net.state_dict(), saved.config, 7, step=70), path)
    model = MaskRCNN("inference", config(), tmp_path)
    model.load_weights(path)
    assert (model.epoch, model.global_step) == (7, 70)
    assert model.checkpoint_path == str(path) and model.training_state.extras["step"] == 70


def test_training_advances_the_models_state_object(tmp_path):
    model = MaskRCNN("training", config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=1), tmp_path)
    state = model.training_state
    model.train(shapes(2), shapes(2, "val"), 0.01, epochs=1, layers="heads")
    assert model.training_state is state
    assert (state.epoch, state.step) == (1, 1) and state.log_dir == model.log_dir
    assert state.checkpoint_path == str(state.log_dir / "mrcnn_tiny_0001.pt")
    text = (state.log_dir / "metrics.jsonl").read_text()
    lines = [json.loads(line) for line in text.splitlines()]
    assert [sorted(r)[:2] for r in lines] == [["epoch", "loss"], ["epoch", "step"]]
    assert lines[-1]["step"] == 1 and "val_loss" in lines[-1]


def test_run_logger_writes_one_metrics_file_and_nothing_when_disabled(tmp_path):
    log = RunLogger(tmp_path)
    log.step(1, 1, {"loss": 1.5}, lr=0.1, seconds=0.5, images=2)
    log.validation(1, 1, {})  # no validation: no line
    log.validation(1, 1, {"val_loss": 2.0})
    log.close()
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines == [
        {"step": 1, "epoch": 1, "loss": 1.5, "lr": 0.1, "seconds": 0.5, "skipped_images": 0},
        {"step": 1, "epoch": 1, "val_loss": 2.0, "val_skipped_images": 0},
    ]
    assert list(tmp_path.glob("events.out.tfevents.*"))
    quiet = tmp_path / "quiet"
    quiet.mkdir()
    silent = RunLogger(quiet, enabled=False)
    silent.step(1, 1, {"loss": 1.0}, lr=0.1, seconds=1.0, images=1)
    silent.validation(1, 1, {"val_loss": 1.0})
    silent.close()
    assert list(quiet.iterdir()) == []


def test_fp16_on_the_cpu_is_refused_by_training_only(tmp_path):
    cfg = config(AMP="fp16", DEVICE="cpu", STEPS_PER_EPOCH=1, VALIDATION_STEPS=0)
    MaskRCNN("inference", cfg, tmp_path)  # inference ignores AMP
    model = MaskRCNN("training", cfg, tmp_path)
    with pytest.raises(ValueError, match="AMP='fp16' needs a GPU; on the CPU use AMP='bf16'"):
        model.train(shapes(2), None, 0.01, epochs=1, layers="heads")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("OPTIMIZER", "adam", "OPTIMIZER='adam': use one of 'sgd', 'adamw'"),
        ("AMP", "fp8", "AMP='fp8': use None"),
        ("AMP", "fp16", "AMP='fp16' needs a GPU"),
    ],
)
def test_training_rechecks_optimizer_and_amp_changed_after_the_config_was_built(
    tmp_path, key, value, message
):
    cfg = config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=0, DEVICE="cpu")
    model = MaskRCNN("training", cfg, tmp_path)
    setattr(cfg, key, value)  # Matterport's scripts set attributes on a built config
    with pytest.raises(ValueError, match=message):
        model.train(shapes(2), None, 0.01, epochs=1, layers="heads")
    assert not any(tmp_path.iterdir())
