"""GPU inference: our network against torchvision's Mask R-CNN, same weights, same inputs.

On one CUDA device, float32 (PyTorch's default TF32 settings for both) or, with ``--precision
fp16|bf16``, both models under autocast to that type (ours through INFERENCE_PRECISION), on
800x1066 photo-like images, both models keeping every detection (score threshold 0, 100
instances per image).
Prints ms/image for one image and for a batch of ``--batch`` images (medians of ``--repeats``
synchronised runs after a warm-up, the two models alternating run by run), each model's peak
GPU memory, and whether the detections agree: in float32 as sets (infer_cpu's comparison; TF32
rounding reorders random weights' near-tied scores) and exactly in a float64 run of both. Both
deliver what a user gets: full-resolution masks copied back to host memory.

A third detector, "torchvision, pinned copy", is torchvision's model with its masks copied
to the host the way ours are (through pinned memory, ``mrcnn.structures.transfer.to_host``)
instead of by ``.cpu()``: it separates what our network does from what that copy does.

With ``--breakdown`` it also times the stages of one batch: for ours molding, the network,
pasting the masks on the device (the vectorised pasting GPUs get, and the per-instance loop the
CPU uses) and copying them to the host; for torchvision its model call (which pastes float
masks) and thresholding and copying them. ``--profile`` prints the CUDA kernels that took the
most time in one batch of each model.

    python -m benchmarks.infer_gpu [--repeats 10] [--batch 8] [--device cuda]
        [--precision fp32|fp16|bf16] [--skip-float64] [--breakdown] [--profile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.infer_cpu import (
    HEIGHT,
    WIDTH,
    compare,
    float64_agreement,
    our_result,
    torchvision_result,
)
from mrcnn.testing import photo_like_image, randomised_torchvision_maskrcnn

AUTOCAST = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def torchvision_model(state: dict, device: torch.device):
    model = randomised_torchvision_maskrcnn(box_score_thresh=0.0)
    model.load_state_dict(state)
    return model.to(device)


def torchvision_detector(
    state: dict, device: torch.device, precision: str = "fp32", pinned: bool = False
):
    """images -> list of result dicts, torchvision's model (under autocast unless fp32).

    ``pinned``: its masks come to the host through pinned memory, as ours do (``to_host``),
    rather than by ``.cpu()``, the copy its users write."""
    from mrcnn.structures.transfer import to_host

    model = torchvision_model(state, device)
    dtype = AUTOCAST[precision]

    def result(out: dict) -> dict:
        return torchvision_result(out, to_host) if pinned else torchvision_result(out)

    def detect(images: list[np.ndarray]) -> list[dict]:
        tensors = [torch.from_numpy(i).to(device).permute(2, 0, 1).float() / 255 for i in images]
        with torch.inference_mode(), torch.autocast(device.type, dtype, enabled=bool(dtype)):
            outs = model(tensors)
        return [result(o) for o in outs]

    return detect


def our_model(weights: Path, device: torch.device, batch: int, precision: str = "fp32"):
    """Our model with TorchvisionCocoConfig, keeping every detection."""
    from mrcnn.config import TorchvisionCocoConfig
    from mrcnn.model import MaskRCNN

    config = TorchvisionCocoConfig.from_overrides(
        {
            "DETECTION_MIN_CONFIDENCE": 0.0,
            "DEVICE": str(device),
            "IMAGES_PER_GPU": batch,
            "INFERENCE_PRECISION": precision,
        }
    )
    model = MaskRCNN("inference", config)
    model.load_weights(str(weights))
    return model


def our_detector(weights: Path, device: torch.device, batch: int, precision: str = "fp32"):
    """images -> list of result dicts, our model."""
    model = our_model(weights, device, batch, precision)

    def detect(images: list[np.ndarray]) -> list[dict]:
        return [our_result(r) for r in model.detect(images)]

    return detect


def timed(detect, images: list[np.ndarray]) -> float:
    """Seconds for one synchronised call."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    detect(images)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def peak_memory_mib(detect, images: list[np.ndarray]) -> float:
    """Peak GPU memory allocated during one call, beyond what was held before it."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    detect(images)
    torch.cuda.synchronize()
    return (torch.cuda.max_memory_allocated() - before) / 2**20


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.infer_gpu", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--precision", choices=tuple(AUTOCAST), default="fp32")
    parser.add_argument("--skip-float64", action="store_true", help="no float64 agreement run")
    parser.add_argument("--breakdown", action="store_true", help="time the stages of a batch")
    parser.add_argument("--profile", action="store_true", help="top CUDA kernels of a batch")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("infer_gpu: no CUDA device here; see benchmarks.infer_cpu for the CPU benchmark")
        return 2
    device = torch.device(args.device)
    state = randomised_torchvision_maskrcnn().state_dict()
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "weights.pth"
        torch.save(state, weights)
        detectors = {
            "torchvision": torchvision_detector(state, device, args.precision),
            "ours": our_detector(weights, device, args.batch, args.precision),
            "torchvision, pinned copy": torchvision_detector(
                state, device, args.precision, pinned=True
            ),
        }
        skipped = "not run (--skip-float64)"
        agreement64 = skipped if args.skip_float64 else float64_agreement(weights, str(device))
        if args.breakdown or args.profile:
            from benchmarks.gpu_breakdown import breakdown, profile

            model = our_model(weights, device, args.batch, args.precision)
            reference = torchvision_model(state, device)
            batch = [photo_like_image(HEIGHT, WIDTH, seed=s) for s in range(args.batch)]
            if args.breakdown:
                breakdown(model, reference, batch, AUTOCAST[args.precision], args.repeats)
            if args.profile:
                profile(model, reference, batch, AUTOCAST[args.precision])
            del model, reference
    single = [photo_like_image(HEIGHT, WIDTH)]
    batch = [photo_like_image(HEIGHT, WIDTH, seed=s) for s in range(args.batch)]
    results = {name: detect(single)[0] for name, detect in detectors.items()}  # warm-up
    for detect in detectors.values():
        detect(batch)
    times = {(name, n): [] for name in detectors for n in (1, args.batch)}
    for _ in range(args.repeats):
        for name, detect in detectors.items():
            times[name, 1].append(timed(detect, single))
            times[name, args.batch].append(timed(detect, batch) / args.batch)
    memory = {name: peak_memory_mib(detect, batch) for name, detect in detectors.items()}
    torch.backends.cudnn.allow_tf32 = False
    strict = {name: detect(single)[0] for name, detect in detectors.items()}
    torch.backends.cudnn.allow_tf32 = True
    print(
        f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, input {WIDTH}x{HEIGHT} "
        f"{args.precision} (autocast for both unless fp32), median of {args.repeats}"
    )
    for n in (1, args.batch):
        ours = statistics.median(times["ours", n]) * 1000
        for baseline in ("torchvision", "torchvision, pinned copy"):
            theirs = statistics.median(times[baseline, n]) * 1000
            print(
                f"batch {n}: {baseline} {theirs:7.1f} ms/image ({1000 / theirs:5.1f} images/s), "
                f"ours {ours:7.1f} ms/image ({1000 / ours:5.1f} images/s), ratio "
                f"{ours / theirs:.2f} (ours {theirs / ours:.2f} x its images/s)"
            )
    print(
        f"peak GPU memory, batch of {args.batch}: torchvision {memory['torchvision']:.0f} MiB, "
        f"ours {memory['ours']:.0f} MiB, ratio {memory['ours'] / memory['torchvision']:.2f}"
    )
    label = "float32 (TF32 convolutions)" if args.precision == "fp32" else args.precision
    print(f"detections in {label}:", compare(results["ours"], results["torchvision"]))
    label = "float32 without TF32" if args.precision == "fp32" else f"{args.precision}, no TF32"
    print(f"detections in {label}:", compare(strict["ours"], strict["torchvision"]))
    print("detections in float64:", agreement64)
    return 0


if __name__ == "__main__":
    sys.exit(main())
