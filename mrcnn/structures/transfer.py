"""Copies of device tensors into host memory, fast for the large ones (full-image masks)."""

from __future__ import annotations

import numpy as np
import torch

#: Tensors of at least this many bytes come back from a GPU through pinned host memory.
PINNED_COPY_BYTES = 1 << 20


def to_host(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` as a numpy array (shape and dtype kept); no copy for a CPU tensor.

    A large tensor on a CUDA device is copied into pinned (page-locked) host memory, which the
    returned array then holds. Measured on an H100 machine, one 800 x 1066 image's 100 bool
    masks (85 MB) took 68.6 ms to copy into ordinary memory (each new page faulted in on the
    way) and 1.7 ms into pinned memory. PyTorch's pinned-memory cache takes the block back when
    the array is freed, for the next image. Where no more memory can be page-locked (results of
    hundreds of images held at once), the copy goes to ordinary memory instead.
    """
    if tensor.device.type != "cuda" or tensor.numel() * tensor.element_size() < PINNED_COPY_BYTES:
        return tensor.cpu().numpy()
    try:
        host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
    except RuntimeError:  # cudaHostAlloc failed: slower, but the result still arrives
        return tensor.cpu().numpy()
    host.copy_(tensor)
    return host.numpy()


def float_array(tensor: torch.Tensor) -> np.ndarray:
    """``tensor`` detached, as float32 (half precision widened), in a host numpy array: for
    inspecting a network's intermediate outputs."""
    return tensor.detach().float().cpu().numpy()
