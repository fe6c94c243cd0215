"""Inference precision: float32, or bfloat16/float16 for the convolutions and matrix products.

``INFERENCE_PRECISION = "bf16"`` runs the backbone, FPN, RPN and heads under autocast, with the
folded convolution weights cast once and cached (see :mod:`mrcnn.modeling.backbone`). Box decoding,
NMS, coordinates and mask pasting stay in float32: :func:`decoding_dtype` casts the stage
outputs back before any coordinate arithmetic.

bf16 is only fast where the CPU computes it natively, and the AVX512_BF16 flag alone does not
promise that: on a Xeon that shows AVX512_BF16 but no AMX (a virtual machine hiding the tile
unit, say), oneDNN's bf16 convolutions took 1.75 times float32's time, and ``detect`` 1.57
times. So AMX-BF16 is trusted; AVX512_BF16 without AMX is measured once, on one convolution in
both precisions (:func:`bf16_conv_time_ratio`, about 0.1 s); and :func:`autocast_dtype` keeps
float32, saying why once, where bf16 would not be faster.
"""

from __future__ import annotations

import contextlib
import logging
import time
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: INFERENCE_PRECISION value -> autocast dtype (None: no autocast).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: The flag of AMX's bf16 tile unit: bf16 convolutions run several times faster than float32.
AMX_BF16_FLAG = "amx_bf16"

#: CPU flags (/proc/cpuinfo) meaning native bf16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", AMX_BF16_FLAG)

#: bf16 without AMX is used where its probe convolution takes at most this share of float32's
#: time: the network's casts and float32 stages eat a smaller gain.
BF16_KEEP_RATIO = 0.8


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags, from /proc/cpuinfo (empty where it cannot be read)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512_BF16 or AMX-BF16), from its flags."""
    return any(flag in cpu_flags() for flag in BF16_CPU_FLAGS)


@lru_cache(maxsize=1)
def bf16_conv_time_ratio(repeats: int = 5) -> float:
    """bf16 time / float32 time of one 3x3, 128-channel convolution on a 64x64 map.

    Channels-last, as the network runs them, on the threads torch uses now; the fastest of
    ``repeats`` runs of each, interleaved so that a change in load hits both.
    """
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, 128, 64, 64, generator=generator).to(memory_format=torch.channels_last)
    w = torch.randn(128, 128, 3, 3, generator=generator).to(memory_format=torch.channels_last)
    inputs = {dtype: (x.to(dtype), w.to(dtype)) for dtype in (torch.float32, torch.bfloat16)}
    best = dict.fromkeys(inputs, float("inf"))
    # (autocast off: a caller's autocast would turn the float32 runs into bf16 ones)
    with torch.inference_mode(), torch.autocast("cpu", enabled=False):
        for turn in range(repeats + 2):  # the first two build oneDNN's kernels
            for dtype, (xi, wi) in inputs.items():
                start = time.perf_counter()
                torch.nn.functional.conv2d(xi, wi, padding=1)
                if turn >= 2:
                    best[dtype] = min(best[dtype], time.perf_counter() - start)
    return best[torch.bfloat16] / best[torch.float32]


def cpu_bf16_shortfall() -> str | None:
    """Why bf16 would not be faster than float32 on this CPU, or None where it is."""
    if not cpu_has_native_bf16():
        return (
            "this CPU has no native bf16 (no avx512_bf16 or amx_bf16 flag), where bf16 is "
            "slower than fp32"
        )
    if AMX_BF16_FLAG in cpu_flags():
        return None
    ratio = bf16_conv_time_ratio()
    if ratio <= BF16_KEEP_RATIO:
        return None
    return (
        f"this CPU has avx512_bf16 but no AMX, and a bf16 convolution took {ratio:.2f} times "
        f"fp32's time here, where bf16 needs at most {BF16_KEEP_RATIO}"
    )


@lru_cache(maxsize=8)
def autocast_dtype(precision: str, device_type: str) -> torch.dtype | None:
    """The autocast dtype for INFERENCE_PRECISION on a device type, or None for float32.

    Falls back to float32, with one warning per process, for bf16 on a CPU where it would not
    be faster (:func:`cpu_bf16_shortfall`) and for fp16 on a CPU (no fast fp16 kernels).
    """
    dtype = PRECISIONS[precision]
    shortfall = cpu_bf16_shortfall() if dtype is torch.bfloat16 and device_type == "cpu" else None
    if shortfall is not None:
        log.warning(f"INFERENCE_PRECISION=bf16: {shortfall}; running in fp32")
        return None
    if dtype is torch.float16 and device_type == "cpu":
        log.warning("INFERENCE_PRECISION=fp16 is for CUDA GPUs; running in fp32 on the CPU")
        return None
    return dtype


def inference_autocast(precision: str, device: torch.device, param_dtype: torch.dtype):
    """A context running the network in ``precision`` (a no-op for fp32, or when the network
    itself is float64, which asks for exact arithmetic)."""
    dtype = autocast_dtype(precision, device.type)
    if dtype is None or param_dtype == torch.float64:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def decoding_dtype(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in float32 when it is half precision; float32/float64 pass unchanged."""
    if tensor.dtype in (torch.bfloat16, torch.float16):
        return tensor.float()
    return tensor
