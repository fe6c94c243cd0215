"""Training and the demo leave other programs their cores (issue 30: the demo on a busy machine)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

from mrcnn.modeling import cpu_threads
from mrcnn.modeling.cpu_threads import CpuThreads, busy_cores_of_others, cpu_jiffies, threads_beside

#: These tests read the machine's load and set torch's threads: they run alone (Makefile).
pytestmark = pytest.mark.serial


def test_threads_are_the_cores_others_leave_at_least_one_at_most_the_default():
    assert threads_beside(0.05, cores=2, most=2) == 2
    assert threads_beside(1.0, cores=2, most=2) == 1
    assert threads_beside(0.6, cores=2, most=2) == 1  # rounded to the nearest core
    assert threads_beside(0.4, cores=2, most=2) == 2
    assert threads_beside(3.0, cores=2, most=2) == 1  # never 0
    assert threads_beside(2.0, cores=16, most=8) == 8  # never more than torch's default


def test_proc_stat_gives_busy_and_total_ticks(tmp_path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal
    stat.write_text("cpu  100 0 50 800 20 5 5 0 0 0\ncpu0 50 0 25 400 10 2 3 0 0 0\n")
    assert cpu_jiffies(stat) == (160, 980)
    stat.write_text("intr 1 2 3\n")
    assert cpu_jiffies(stat) is None
    assert cpu_jiffies(tmp_path / "missing") is None


@pytest.mark.skipif(cpu_jiffies() is None, reason="needs Linux's /proc/stat")
def test_a_spinning_process_is_seen_and_a_thread_is_left_to_it(monkeypatch, caplog):
    spinner = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    original = torch.get_num_threads()
    try:
        assert busy_cores_of_others() >= 0.6  # one core, less what the scheduler takes back
        threads = CpuThreads(most=os.cpu_count())
        monkeypatch.setattr(cpu_threads.os, "cpu_count", lambda: 2)  # as on CI's 2 cores
        with caplog.at_level(logging.WARNING, logger=cpu_threads.__name__):
            assert threads.adapt() == 1 and torch.get_num_threads() == 1
        assert "other programs are using" in caplog.text and "1 torch thread (was" in caplog.text
        threads.restore()
        assert torch.get_num_threads() == original
    finally:
        spinner.kill()
        spinner.wait()
        torch.set_num_threads(original)


def test_a_fixed_thread_count_is_left_alone(monkeypatch):
    monkeypatch.setattr(cpu_threads, "busy_cores_of_others", lambda: 5.0)
    original = torch.get_num_threads()
    assert CpuThreads(enabled=False).adapt() == original == torch.get_num_threads()


def test_training_adapts_each_epoch_and_restores_the_count(tmp_path, monkeypatch):
    from mrcnn.model import MaskRCNN
    from tests.helpers.training import TinyConfig, shapes

    calls = []
    monkeypatch.setattr(cpu_threads, "busy_cores_of_others", lambda: calls.append(1) or 99.0)
    original = torch.get_num_threads()
    seen = []
    config = TinyConfig.from_overrides({"STEPS_PER_EPOCH": 1, "VALIDATION_STEPS": 0})
    model = MaskRCNN("training", config, tmp_path)
    from mrcnn.training import trainer

    real_step = trainer.Trainer._step

    def step(self, *args):
        seen.append(torch.get_num_threads())
        return real_step(self, *args)

    monkeypatch.setattr(trainer.Trainer, "_step", step)
    model.train(shapes(4), None, 0.01, epochs=2, layers="heads")
    assert len(calls) == 2 and seen == [1, 1]  # every core busy elsewhere: one thread
    assert torch.get_num_threads() == original
