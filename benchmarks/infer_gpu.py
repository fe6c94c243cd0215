"""GPU inference: our network against torchvision's Mask R-CNN, same weights, same inputs.

On one CUDA device, float32 (PyTorch's default TF32 settings for both), 800x1066 photo-like
images, both models keeping every detection (score threshold 0, 100 instances per image).
Prints ms/image for one image and for a batch of ``--batch`` images (medians of ``--repeats``
synchronised runs after a warm-up, the two models alternating run by run), each model's peak
GPU memory, and whether the detections agree: in float32 as sets (infer_cpu's comparison; TF32
rounding reorders random weights' near-tied scores) and exactly in a float64 run of both. Both
deliver what a user gets: full-resolution masks copied back to host memory.

    python benchmarks/infer_gpu.py [--repeats 10] [--batch 8] [--device cuda]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from infer_cpu import (  # noqa: E402
    HEIGHT,
    WIDTH,
    compare,
    float64_agreement,
    our_result,
    torchvision_result,
)

from mrcnn.testing import photo_like_image, randomised_torchvision_maskrcnn  # noqa: E402


def torchvision_detector(state: dict, device: torch.device):
    """images -> list of result dicts, torchvision's model."""
    model = randomised_torchvision_maskrcnn(box_score_thresh=0.0)
    model.load_state_dict(state)
    model.to(device)

    def detect(images: list[np.ndarray]) -> list[dict]:
        tensors = [torch.from_numpy(i).to(device).permute(2, 0, 1).float() / 255 for i in images]
        with torch.inference_mode():
            outs = model(tensors)
        return [torchvision_result(o) for o in outs]

    return detect


def our_detector(weights: Path, device: torch.device, batch: int):
    """images -> list of result dicts, our model with TorchvisionCocoConfig."""
    from mrcnn.config import TorchvisionCocoConfig
    from mrcnn.model import MaskRCNN

    config = TorchvisionCocoConfig.from_overrides(
        {"DETECTION_MIN_CONFIDENCE": 0.0, "DEVICE": str(device), "IMAGES_PER_GPU": batch}
    )
    model = MaskRCNN("inference", config)
    model.load_weights(str(weights))

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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("infer_gpu: no CUDA device here; see infer_cpu.py for the CPU benchmark")
        return 2
    device = torch.device(args.device)
    state = randomised_torchvision_maskrcnn().state_dict()
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "weights.pth"
        torch.save(state, weights)
        detectors = {
            "torchvision": torchvision_detector(state, device),
            "ours": our_detector(weights, device, args.batch),
        }
        agreement64 = float64_agreement(weights, str(device))
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
        f"float32, median of {args.repeats}"
    )
    for n in (1, args.batch):
        ours = statistics.median(times["ours", n]) * 1000
        theirs = statistics.median(times["torchvision", n]) * 1000
        print(
            f"batch {n}: torchvision {theirs:7.1f} ms/image, ours {ours:7.1f} ms/image, "
            f"ratio ours/torchvision {ours / theirs:.2f}"
        )
    print(
        f"peak GPU memory, batch of {args.batch}: torchvision {memory['torchvision']:.0f} MiB, "
        f"ours {memory['ours']:.0f} MiB, ratio {memory['ours'] / memory['torchvision']:.2f}"
    )
    print(
        "detections in float32 (TF32 convolutions):",
        compare(results["ours"], results["torchvision"]),
    )
    print("detections in float32 without TF32:", compare(strict["ours"], strict["torchvision"]))
    print("detections in float64:", agreement64)
    return 0


if __name__ == "__main__":
    sys.exit(main())
