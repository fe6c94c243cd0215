"""Shared pieces of the benchmarks: measurements (models and images: mrcnn.testing)."""

from __future__ import annotations

import resource
import sys


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def measure_bf16_as_asked() -> str:
    """Make INFERENCE_PRECISION="bf16" run in bf16 in this process, also on a CPU where mrcnn
    keeps float32 because bf16 would be slower there: a benchmark of bf16 measures bf16.

    Returns the line for the report saying what mrcnn itself does on this CPU.
    """
    from mrcnn.modeling import precision

    shortfall = precision.cpu_bf16_shortfall()
    precision.cpu_bf16_shortfall = lambda: None
    precision.autocast_dtype.cache_clear()
    if shortfall is None:
        return "bf16 on this CPU: mrcnn uses it when asked"
    return f"bf16 on this CPU: mrcnn keeps fp32 when asked ({shortfall}); forced here to time it"
