"""Shared pieces of the benchmarks: measurements (models and images: mrcnn.testing)."""

from __future__ import annotations

import os
import resource
import sys

#: The CPU flags that decide which kernels run.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


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


def isa_line() -> str:
    """ "CPU flags: ..." (those of :data:`ISA_FLAGS` this CPU has), and "; oneDNN held to X"
    when ONEDNN_MAX_CPU_ISA caps the kernels of PyTorch's and OpenVINO's oneDNN (an AVX2 run
    on an AVX-512 CPU; ONNX Runtime's MLAS ignores it)."""
    from mrcnn.modeling.precision import cpu_flags

    flags = cpu_flags()
    present = [flag for flag in ISA_FLAGS if flag in flags]
    line = f"CPU flags: {' '.join(present) or 'none of ' + ' '.join(ISA_FLAGS)}"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    if cap:
        line += f"; oneDNN held to {cap} (ONEDNN_MAX_CPU_ISA: torch's and OpenVINO's kernels)"
    return line
