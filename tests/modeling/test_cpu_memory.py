"""mrcnn.modeling.cpu_memory: freed memory kept in the process (CPU_KEEP_FREED_MEMORY)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from mrcnn.modeling import cpu_memory
from tests.helpers.tiny_model import tiny_model

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

#: Rounds of detect-sized allocations (40 and 48 MB, then 40 more), page faults per round.
ROUNDS = """
import resource, sys, torch
from mrcnn.modeling.cpu_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    before = faults()
    a, b = torch.ones(10 * 2**20), torch.ones(12 * 2**20)
    c = a + 1
    del a, b, c
    print(faults() - before)
"""


def _faults_per_round(mode: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True
    )
    return [int(line) for line in done.stdout.split()]


@pytest.mark.skipif(not GLIBC, reason="malloc's thresholds are glibc's (Linux)")
def test_kept_memory_is_not_paged_in_again():
    given_back = _faults_per_round("default")
    kept = _faults_per_round("keep")
    # Without it, every round maps fresh pages (about 32,000 faults for 128 MB); with it, the
    # last rounds reuse the pages the process kept (the first ones settle its heap: up to
    # six rounds here, and an odd round may still map a few megabytes): four such rounds
    # together page in less than a quarter of one round without it.
    assert min(given_back[-4:]) > 10_000, given_back
    assert sum(kept[-4:]) < 0.25 * min(given_back[-4:]), (kept, given_back)


def test_only_glibc_is_touched(monkeypatch):
    monkeypatch.setattr(cpu_memory.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert cpu_memory._set_thresholds() is False
    monkeypatch.setattr(cpu_memory.platform, "system", lambda: "Darwin")
    assert cpu_memory._set_thresholds() is False


def test_the_config_decides_whether_a_model_keeps_freed_memory(monkeypatch):
    calls = []
    monkeypatch.setattr("mrcnn.maskrcnn.keep_freed_memory", lambda: calls.append(1) or True)

    tiny_model()
    assert calls == [1]
    tiny_model(CPU_KEEP_FREED_MEMORY=False)
    assert calls == [1]
