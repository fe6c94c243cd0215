"""Inference precision: float32, or bfloat16/float16 for the convolutions and matrix products.

``INFERENCE_PRECISION = "bf16"`` runs the backbone, FPN, RPN and heads under autocast, with the
folded convolution weights cast once and cached (see :mod:`mrcnn.model.backbone`). Box decoding,
NMS, coordinates and mask pasting stay in float32: :func:`decoding_dtype` casts the stage
outputs back before any coordinate arithmetic.

bf16 is only fast where the CPU has native bf16 instructions (AVX512_BF16 or AMX); elsewhere
:func:`autocast_dtype` says so once and keeps float32.
"""

from __future__ import annotations

import contextlib
import logging
from functools import lru_cache
from pathlib import Path

import torch

log = logging.getLogger(__name__)

#: INFERENCE_PRECISION value -> autocast dtype (None: no autocast).
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

#: CPU flags (/proc/cpuinfo) meaning native bf16 arithmetic.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512_BF16 or AMX-BF16), from its flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return any(flag in flags for flag in BF16_CPU_FLAGS)


@lru_cache(maxsize=8)
def autocast_dtype(precision: str, device_type: str) -> torch.dtype | None:
    """The autocast dtype for INFERENCE_PRECISION on a device type, or None for float32.

    Falls back to float32, with one warning per process, for bf16 on a CPU without native bf16
    (emulated bf16 is slower than float32) and for fp16 on a CPU (no fast fp16 kernels).
    """
    dtype = PRECISIONS[precision]
    if dtype is torch.bfloat16 and device_type == "cpu" and not cpu_has_native_bf16():
        log.warning(
            "INFERENCE_PRECISION=bf16: this CPU has no native bf16 (no avx512_bf16 or amx_bf16 "
            "flag), where bf16 is slower than fp32; running in fp32"
        )
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
