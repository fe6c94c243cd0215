"""The epoch line's validation interval (VALIDATION_BOOTSTRAP, issue 33): off by default, the
bootstrap of the validation batches' mean loss when set, on the printed line and in
metrics.jsonl."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

from mrcnn.model import MaskRCNN
from mrcnn.training.run_log import epoch_summary, val_loss_interval
from tests.helpers.training import config, shapes


def test_the_interval_is_the_bootstrap_of_the_batch_mean():
    losses = [1.0, 2.0, 1.5, 3.0, 2.5]
    assert val_loss_interval(losses, 0) is None and val_loss_interval([], 100) is None
    interval = val_loss_interval(losses, 2000)
    assert interval.low < np.mean(losses) < interval.high
    assert interval == val_loss_interval(losses, 2000)  # a fixed seed
    # About mean +- 1.96 s / sqrt(n) with the plug-in s (closed form of the bootstrap's spread).
    half = 1.96 * np.std(losses) / np.sqrt(len(losses))
    assert interval.high - interval.low == pytest.approx(2 * half, rel=0.2)


def test_the_epoch_line_shows_the_interval_beside_val_loss():
    values = {"loss": 2.0, "val_loss": 1.5, "val_mrcnn_mask_loss": 0.25}
    assert (
        epoch_summary(values, None, 3) == "loss 2.0000, val_loss 1.5000, val_mrcnn_mask_loss 0.2500"
    )
    interval = val_loss_interval([1.0, 2.0, 1.5], 100)
    line = epoch_summary(values, interval, 3)
    assert f"val_loss 1.5000 (95% interval {interval} over 3 batches), val_mrcnn" in line


def test_validation_bootstrap_puts_the_interval_on_the_epoch_line(tmp_path, capsys):
    torch.manual_seed(0)
    cfg = config(STEPS_PER_EPOCH=1, VALIDATION_STEPS=3, VALIDATION_BOOTSTRAP=200)
    model = MaskRCNN("training", cfg, tmp_path)
    model.train(shapes(4), shapes(3, "val"), cfg.LEARNING_RATE, epochs=1, layers="heads")
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("epoch 1:"))
    found = re.search(r"val_loss ([\d.]+) \(95% interval \[([\d.]+), ([\d.]+)\] over 3 batch", line)
    assert found, line
    value, low, high = map(float, found.groups())
    assert low <= value <= high and low < high
    records = [json.loads(x) for x in (model.log_dir / "metrics.jsonl").read_text().splitlines()]
    val = next(r for r in records if "val_loss" in r)
    assert val["val_loss_ci_low"] == pytest.approx(low, abs=1e-4)
    assert val["val_loss_ci_high"] == pytest.approx(high, abs=1e-4)
