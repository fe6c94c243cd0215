"""The Matterport equivalence cases on the CPU with every convolution computed from TF32 inputs.

On a CUDA GPU of the Ampere generation or later, PyTorch lets cuDNN run float32 convolutions in
TF32 by default: inputs and weights keep 10 of float32's 23 mantissa bits. On an H100 the
equivalence test (tests/modeling/test_matterport_equivalence.py, whose reference is Keras on a
CPU in float32) then paired too few detections in 5 of its 8 cases. This script asks whether TF32
rounding alone explains that: it runs the cases on the CPU, once in float32 and once with the
input and weight of every convolution rounded to TF32 (round to nearest), and prints how many
Keras detections each run pairs under the test's rules (tests/helpers/matterport_cases.py).
From the repository root:

    .venv/bin/python -m tools.matterport_reference.tf32_on_cpu [CASE ...]

CASE is a fixture stem under tests/fixtures/matterport (default: the three fast crop cases).
It needs the balloon photos the fixtures name (../shared/data/balloon/val).
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mrcnn.model import MaskRCNN
from tests.helpers.matterport_cases import (
    MATTERPORT_FIXTURES,
    load_case,
    load_photo,
    matterport_config,
    pair_detections,
    write_case_h5,
)

FAST_CROP_CASES = (
    "r50_c2_512__balloon_410488422_crop512",
    "r50_c2_512__balloon_3825919971_crop512",
    "r50_c4_512__balloon_5555705118_crop512",
)

#: float32 bits below TF32's 10 mantissa bits, and half of their range (round to nearest).
TF32_DROPPED_BITS = 0x1FFF
TF32_HALF = 0x1000


def to_tf32(tensor: torch.Tensor) -> torch.Tensor:
    """A float32 tensor rounded to the nearest TF32 value (same shape, strides and dtype)."""
    bits = tensor.view(torch.int32)
    return ((bits + TF32_HALF) & ~TF32_DROPPED_BITS).view(torch.float32)


class TF32Convolutions(TorchDispatchMode):
    """Rounds the input and the weight (not the bias) of every convolution operator to TF32."""

    def __init__(self) -> None:
        super().__init__()
        self.operators: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if "convolution" in str(func):
            self.operators.add(str(func))
            args = (to_tf32(args[0]), to_tf32(args[1]), *args[2:])
        return func(*args, **(kwargs or {}))


def paired(stem: str, tf32: bool) -> tuple[int, int, int, set[str]]:
    """(Keras detections paired, Keras detections, ours, convolution operators rounded)."""
    case = load_case(MATTERPORT_FIXTURES / f"{stem}.npz")
    image = load_photo(case)
    rounding = TF32Convolutions()
    with tempfile.TemporaryDirectory() as folder:
        config = matterport_config(case)
        config.DEVICE = "cpu"
        model = MaskRCNN("inference", config, folder)
        model.load_weights(str(write_case_h5(case, Path(folder))), by_name=True)
        with rounding if tf32 else contextlib.nullcontext():
            ours = model.detect([image])[0]
    pairs = pair_detections(case, ours)
    return int(np.sum(pairs >= 0)), len(pairs), len(ours["scores"]), rounding.operators


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.matterport_reference.tf32_on_cpu", description=__doc__.splitlines()[0]
    )
    parser.add_argument("cases", nargs="*", default=FAST_CROP_CASES)
    args = parser.parse_args()
    for stem in args.cases:
        for tf32 in (False, True):
            good, keras, ours, operators = paired(stem, tf32)
            label = "TF32 convolutions" if tf32 else "float32"
            print(f"{stem}, {label}: {good} of {keras} Keras detections paired ({ours} ours)")
            if tf32:
                print(f"  rounded: {', '.join(sorted(operators)) or 'NO convolution seen'}")


if __name__ == "__main__":
    main()
