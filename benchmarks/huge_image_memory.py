"""Peak memory of ``mrcnn detect`` and ``mrcnn splash`` on one huge photo (issue 12).

Writes a 12000 x 9000 JPEG (108 megapixels, 324 MB as RGB), a checkpoint of a small random
ResNet-18 model that returns 100 detections per image (DETECTION_MIN_CONFIDENCE 0; random boxes,
many of them large), then runs each command in its own process and prints that process's peak
resident memory. The baseline, measured in the same run, is a process that only decodes the
photo (``mrcnn.structures.image.read_image``). Target: every command under 3 GB.

    python -m benchmarks.huge_image_memory [--width 12000 --height 9000] [--keep-freed-memory off]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

#: A small network: the memory that matters here scales with the image, not the model.
SMALL = {
    "NAME": "huge_bench",
    "BACKBONE": "resnet18",
    "NUM_CLASSES": 3,
    "IMAGE_RESIZE_MODE": "square",
    "IMAGE_MIN_DIM": 512,
    "IMAGE_MAX_DIM": 512,
    "PRE_NMS_LIMIT": 2000,
    "POST_NMS_ROIS_INFERENCE": 300,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 128,
    "TOP_DOWN_PYRAMID_SIZE": 64,
    "MASK_HEAD_CHANNELS": 64,
    "DETECTION_MIN_CONFIDENCE": 0.0,
    "DETECTION_NMS_THRESHOLD": 0.95,
    "DETECTION_MAX_INSTANCES": 100,
    "IMAGES_PER_GPU": 1,
    "DEVICE": "cpu",
}

#: Run in a child process: the command, then its own peak RSS (MiB) as the last line.
_CHILD = """
import resource, sys
from mrcnn.cli import main
if sys.argv[1] == "decode":
    from mrcnn.structures.image import read_image
    read_image(sys.argv[2]); code = 0
else:
    code = main(sys.argv[1:])
print("PEAK_MIB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, code)
"""


def write_photo(path: Path, width: int, height: int) -> None:
    """A smooth colour field with blobs (compresses like a photo, decodes at full size)."""
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:, :, 0] = (x * 0.7 + y * 0.3).astype(np.uint8)
    image[:, :, 1] = (255 - y).astype(np.uint8)
    image[:, :, 2] = ((x + y) % 256).astype(np.uint8)
    rng = np.random.default_rng(0)
    for _ in range(40):
        centre = (int(rng.integers(width)), int(rng.integers(height)))
        radius = int(rng.integers(100, max(101, min(width, height) // 6)))
        cv2.circle(image, centre, radius, tuple(int(c) for c in rng.integers(0, 256, 3)), -1)
    cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def write_checkpoint(path: Path) -> None:
    import torch

    from mrcnn.config import Config
    from mrcnn.model import MaskRCNN
    from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_payload

    torch.manual_seed(0)
    model = MaskRCNN("inference", Config.from_overrides(SMALL))
    atomic_torch_save(checkpoint_payload(model.net.state_dict(), model.config, 1), path)


def measure(argv: list[str]) -> tuple[float, float, int]:
    """(peak RSS MiB, seconds, exit code) of one child process."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *argv], capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    last = [line for line in done.stdout.splitlines() if line.startswith("PEAK_MIB")]
    if not last:
        raise SystemExit(f"{argv[0]} failed:\n{done.stderr[-2000:]}")
    _, peak, code = last[-1].split()
    return float(peak), seconds, int(code)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.huge_image_memory", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--width", type=int, default=12000)
    parser.add_argument("--height", type=int, default=9000)
    parser.add_argument(
        "--keep-freed-memory",
        choices=("on", "off"),
        default="on",
        help="CPU_KEEP_FREED_MEMORY for the commands (on: the default config's)",
    )
    args = parser.parse_args()
    keep = ["--set", f"CPU_KEEP_FREED_MEMORY={args.keep_freed_memory == 'on'}"]
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        photo, weights = work / "huge.jpg", work / "small.pt"
        write_photo(photo, args.width, args.height)
        write_checkpoint(weights)
        megapixels = args.width * args.height / 1e6
        rgb_mib = args.width * args.height * 3 / 2**20
        print(f"photo {args.width} x {args.height} ({megapixels:.0f} MP, RGB {rgb_mib:.0f} MiB)")
        print("model: random ResNet-18, 512 px input, 100 detections per image\n")
        runs = {
            "decode only (baseline)": ["decode", str(photo)],
            "mrcnn detect": ["detect", "--weights", str(weights), "--input", str(photo)]
            + ["--output", str(work / "out"), *keep],
            "mrcnn splash (gray)": ["splash", "--weights", str(weights), "--image", str(photo)]
            + ["--output", str(work / "gray.png"), *keep],
            "mrcnn splash (dim, feather 4)": ["splash", "--weights", str(weights)]
            + ["--image", str(photo), "--effect", "dim", "--feather", "4"]
            + ["--output", str(work / "dim.png"), *keep],
        }
        print(f"{'process':32} {'peak RSS':>10} {'x baseline':>10} {'seconds':>8}")
        baseline = None
        for name, argv in runs.items():
            peak, seconds, code = measure(argv)
            baseline = baseline or peak
            status = "" if code == 0 else f"  (exit {code})"
            print(
                f"{name:32} {peak / 1024:>8.2f} GB {peak / baseline:>10.2f} {seconds:>8.1f}"
                + status
            )
        detections = json.loads((work / "out" / "detections.json").read_text())
        print(f"\ndetections written by mrcnn detect: {len(detections)}")


if __name__ == "__main__":
    main()
