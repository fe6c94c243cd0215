"""How many torch threads to use on a CPU that other programs are also using.

torch's CPU kernels split each operation over all cores and wait for the slowest thread. When
another program keeps a core busy, the thread that shares that core runs a fraction of the time
and every operation waits for it: on a 2-core machine beside one spinning process a training
step of the demo took 1.67 s with 2 threads and 0.80 s with 1 (0.57 s with 2 threads alone;
benchmarks/RESULTS.md, "demo_loaded"). So long CPU work (training epochs, the demo's stages)
measures what other programs use just before it starts and leaves them their cores.

Linux only (it reads ``/proc/stat``); elsewhere torch's thread count is left as it is.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: How long the other programs' CPU use is sampled, seconds: 10 clock ticks of 10 ms per core,
#: enough to tell a busy core from an idle one, and short because training samples each epoch.
SAMPLE_SECONDS = 0.1
PROC_STAT = Path("/proc/stat")


def cpu_jiffies(stat_file: Path = PROC_STAT) -> tuple[int, int] | None:
    """(busy, total) clock ticks of all CPUs since boot, from ``/proc/stat``; None if unknown."""
    try:
        first = stat_file.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if not first or first[0] != "cpu":
        return None
    values = [int(v) for v in first[1:9]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def busy_cores_of_others(seconds: float = SAMPLE_SECONDS) -> float | None:
    """Cores that other programs kept busy over the next ``seconds`` (this process's own
    threads left out), e.g. 1.0 beside one spinning process; None where it cannot be read."""
    start, own_start = cpu_jiffies(), _own_seconds()
    if start is None:
        return None
    time.sleep(seconds)
    end, own_end = cpu_jiffies(), _own_seconds()
    if end is None or end[1] <= start[1]:
        return None
    cores = os.cpu_count() or 1
    busy_share = (end[0] - start[0]) / (end[1] - start[1])  # of all cores
    own_cores = (own_end - own_start) / seconds
    return max(0.0, busy_share * cores - own_cores)


def threads_beside(others_busy: float, cores: int, most: int) -> int:
    """Threads to use when other programs keep ``others_busy`` of ``cores`` busy: the cores
    they leave (rounded to the nearest whole core), at least 1 and at most ``most``."""
    free = cores - int(others_busy + 0.5)
    return max(1, min(most, free))


class CpuThreads:
    """Chooses torch's thread count before each stretch of CPU work, and restores it.

    Args:
        most: the most threads to use (torch's count when this object was made: its default
            is the number of physical cores).
        enabled: False leaves the thread count alone (a config that sets ``CPU_THREADS``, or
            work on a GPU).
    """

    def __init__(self, most: int | None = None, enabled: bool = True) -> None:
        self.most = most or torch.get_num_threads()
        self.enabled = enabled
        self.original = torch.get_num_threads()

    def adapt(self) -> int:
        """Measure the other programs' use, set torch's thread count for what they leave, say
        so in one line when it changes; return the count."""
        current = torch.get_num_threads()
        if not self.enabled:
            return current
        others = busy_cores_of_others()
        if others is None:
            return current
        cores = os.cpu_count() or 1
        chosen = threads_beside(others, cores, self.most)
        if chosen != current:
            torch.set_num_threads(chosen)
            log.warning(
                "other programs are using %.1f of the %d CPU cores: %d torch thread%s (was %d)",
                others,
                cores,
                chosen,
                "" if chosen == 1 else "s",
                current,
            )
        return chosen

    def restore(self) -> None:
        """Put back the thread count found when this object was made."""
        if self.enabled and torch.get_num_threads() != self.original:
            torch.set_num_threads(self.original)


def _own_seconds() -> float:
    """CPU seconds this process (all its threads) has used."""
    times = os.times()
    return times.user + times.system
