"""mrcnn.structures.transfer.to_host on the CPU (its pinned-memory path is in test_cuda.py)."""

from __future__ import annotations

import numpy as np
import torch

from mrcnn.structures.transfer import to_host


def test_a_cpu_tensor_comes_back_without_a_copy():
    tensor = torch.rand(800, 1066) > 0.5
    array = to_host(tensor)
    assert array.dtype == np.bool_ and array.shape == (800, 1066)
    assert np.shares_memory(array, tensor.numpy())
