"""Where one batch's time goes on a GPU: stage timings and the busiest kernels.

Used by ``python -m benchmarks.infer_gpu --breakdown`` and ``--profile``; each stage calls the
functions ``MaskRCNN.detect`` calls, one at a time, with a device synchronisation around each.
"""

from __future__ import annotations

import statistics
import time

import numpy as np
import torch

from mrcnn.structures.transfer import to_host


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(run, device: torch.device, repeats: int):
    """(median ms of ``repeats`` synchronised calls after one warm-up, the last result)."""
    result = run()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        result = run()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def _our_stages(model, images: list[np.ndarray], repeats: int) -> dict[str, float]:
    from mrcnn.modeling.precision import inference_autocast
    from mrcnn.structures.image import (
        mold_batch,
        paste_masks_looped,
        paste_masks_vectorised,
        unmold_boxes,
    )

    config, device, dtype = model.config, model.device, model.dtype
    times: dict[str, float] = {}
    model.net.eval()
    with torch.inference_mode():
        times["detect (all of it)"], _ = _timed(lambda: model.detect(images), device, repeats)
        times["mold"], (batch, metas) = _timed(
            lambda: mold_batch(images, config, dtype, device), device, repeats
        )
        windows = torch.tensor([m.window for m in metas], dtype=dtype, device=device)

        def network():
            with inference_autocast(config.INFERENCE_PRECISION, device, dtype):
                return model.net(batch, windows)

        times["network"], found = _timed(network, device, repeats)
        inputs = []
        for i, meta in enumerate(metas):
            selected = found["image_index"] == i
            boxes = unmold_boxes(found["boxes"][selected], meta).float()
            inputs.append((found["masks"][selected].float(), boxes, meta.original_shape))
        pasted = None
        for name, paste in (("looped", paste_masks_looped), ("vectorised", paste_masks_vectorised)):
            times[f"paste, {name}"], pasted = _timed(
                lambda paste=paste: [paste(*args) for args in inputs], device, repeats
            )
        times["copy to host"], _ = _timed(
            lambda: [p.cpu().numpy() for p in pasted], device, repeats
        )
        times["copy to pinned host memory"], _ = _timed(
            lambda: [to_host(p) for p in pasted], device, repeats
        )
    return times


def _torchvision_stages(reference, images, dtype, device, repeats: int) -> dict[str, float]:
    tensors = [torch.from_numpy(i).to(device).permute(2, 0, 1).float() / 255 for i in images]
    times: dict[str, float] = {}
    with torch.inference_mode():

        def run():
            with torch.autocast(device.type, dtype, enabled=bool(dtype)):
                return reference(tensors)

        times["model (pastes float masks)"], outs = _timed(run, device, repeats)
        bools = [o["masks"][:, 0] > 0.5 for o in outs]
        times["threshold"], _ = _timed(
            lambda: [o["masks"][:, 0] > 0.5 for o in outs], device, repeats
        )
        times["copy to host"], _ = _timed(lambda: [b.cpu().numpy() for b in bools], device, repeats)
        times["copy to pinned host memory"], _ = _timed(
            lambda: [to_host(b) for b in bools], device, repeats
        )
    return times


def breakdown(model, reference, images: list[np.ndarray], dtype, repeats: int) -> None:
    """Print each stage's median ms for the batch ``images`` (and per image), both models."""
    device = model.device
    count = len(images)
    print(f"stages of one batch of {count} (median of {repeats}, synchronised after each):")
    for name, times in (
        ("ours", _our_stages(model, images, repeats)),
        ("torchvision", _torchvision_stages(reference, images, dtype, device, repeats)),
    ):
        for stage, ms in times.items():
            print(f"  {name:11s} {stage:28s} {ms:8.1f} ms  {ms / count:7.2f} ms/image")


def profile(model, reference, images: list[np.ndarray], dtype, rows: int = 18) -> None:
    """Print the kernels (and host operators) that took the most time in one batch of each."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    device = model.device
    tensors = [torch.from_numpy(i).to(device).permute(2, 0, 1).float() / 255 for i in images]

    def theirs():
        with torch.autocast(device.type, dtype, enabled=bool(dtype)):
            return reference(tensors)

    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    for name, run in (("ours", lambda: model.detect(images)), ("torchvision", theirs)):
        with torch.inference_mode():
            run()
            _sync(device)
            with profiler(activities=activities) as recorded:
                run()
                _sync(device)
        print(f"profile of one batch, {name}:")
        table = recorded.key_averages().table(sort_by=key, row_limit=rows, max_name_column_width=50)
        print(table)
