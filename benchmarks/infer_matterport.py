"""CPU inference of a Matterport R-101 1024x1024 model: ours (loading its .h5) against
Matterport's Keras implementation in the same run.

The model is the seeded random-weight R-101 / 81-class / 1024 reference of the equivalence test
(its .h5 rebuilt from tests/fixtures/matterport with numpy + h5py); the image is a 1024x1024
crop of a balloon photo (needs no resize), or a synthetic photo-like image without the dataset.
Our side: ``MaskRCNN(...).load_weights(h5)`` then ``detect``. Keras side: when a python with
TensorFlow is given (--keras-python or $MRCNN_KERAS_PYTHON, e.g. /work/tfenv/bin/python, plus
the port's checkout, --port or $MRCNN_MATTERPORT_PORT), ``tools.matterport_reference.keras_timing``
runs in that python as a subprocess kept alive, so this script never imports TensorFlow.

Timing: after a warm-up on each side, the two sides take turns, --pairs times (which side goes
first alternates); a turn is --repeats ``detect`` calls back to back, and its figure the
fastest. A shared host's speed drifts by up to 2x within seconds, so each pair's ratio compares
turns next to each other in time; the figure is the median of the pair ratios (also printed:
each side's median and fastest turn, and after each pair the host's current bf16
3x3-convolution GFLOP/s, which shows which speed the host was at). The target is ours <= 0.4 x
Keras, each in the same precision; bf16 is TensorFlow's oneDNN auto mixed precision.

    .venv/bin/python -m benchmarks.infer_matterport [--pairs 8] [--repeats 2] [--threads 2] \
        [--precision fp32 --precision bf16] \
        [--keras-python /work/tfenv/bin/python --port /work/refsrc]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from benchmarks._common import measure_bf16_as_asked
from benchmarks.infer_cpu import conv_throughput
from mrcnn.config import Config
from mrcnn.model import MaskRCNN
from mrcnn.modeling.precision import cpu_has_native_bf16
from mrcnn.testing import photo_like_image
from tools.matterport_reference.h5_models import manifest_from_json, write_matterport_h5

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "matterport"
#: The balloon dataset beside the checkout (never committed).
BALLOON = REPO.parent / "shared" / "data" / "balloon"
MODEL = FIXTURES / "r101_c81_1024.npz"
PHOTO = FIXTURES / "r101_c81_1024__balloon_14898532020_crop1024.npz"
TARGET_RATIO = 0.4
#: The host-speed probe: bf16 where the CPU has it natively.
CONV_DTYPE = torch.bfloat16 if cpu_has_native_bf16() else torch.float32
CONV_NAME = "bf16" if CONV_DTYPE == torch.bfloat16 else "fp32"


def reference_model(directory: Path) -> tuple[Path, dict]:
    """The R-101 / 81-class / 1024 reference .h5 written from its seed, and its Config overrides."""
    with np.load(MODEL) as model:
        overrides = json.loads(str(model["config_json"]))
        path = write_matterport_h5(
            directory / "r101_c81_1024.h5",
            manifest_from_json(str(model["manifest_json"])),
            int(model["seed"]),
            json.loads(str(model["output_scales_json"])),
            float(model["background_logit"]),
            class_logit_projection=model["class_logit_projection"],
        )
    return path, overrides


def benchmark_image() -> tuple[np.ndarray, str]:
    """uint8 [1024, 1024, 3]: the fixture's balloon crop, or a synthetic photo-like image."""
    with np.load(PHOTO) as case:
        photo, crop = str(case["photo_file"]), case["photo_crop"].tolist()
    path = BALLOON / "val" / photo
    if path.is_file():
        y, x, h, w = crop
        image = np.asarray(Image.open(path).convert("RGB"))[y : y + h, x : x + w]
        return np.ascontiguousarray(image), f"balloon val {photo} cropped to 1024x1024"
    return photo_like_image(
        1024, 1024
    ), "synthetic photo-like 1024x1024 image (balloon data absent)"


def load_ours(h5: Path, overrides: dict, threads: int, precision: str, logs: str) -> MaskRCNN:
    """Our model with the reference .h5 loaded, at INFERENCE_PRECISION ``precision``."""
    if threads:
        torch.set_num_threads(threads)
    config = type(
        "BenchmarkConfig",
        (Config,),
        dict(
            overrides,
            NAME="bench",
            GPU_COUNT=1,
            IMAGES_PER_GPU=1,
            INFERENCE_PRECISION=precision,
        ),
    )()
    model = MaskRCNN(mode="inference", config=config, model_dir=logs)
    model.load_weights(str(h5), by_name=True)
    return model


def time_ours(model: MaskRCNN, image: np.ndarray) -> tuple[float, int]:
    """(ms of one detect, detections)."""
    start = time.perf_counter()
    result = model.detect([image])[0]
    return (time.perf_counter() - start) * 1000, len(result["scores"])


class KerasWorker:
    """``tools.matterport_reference.keras_timing --serve`` in the side environment, run from
    the repository root: loads the model once, warms up, then times one detect per :meth:`run`."""

    def __init__(
        self,
        python: str,
        port: str,
        h5: Path,
        overrides: dict,
        image_path: Path,
        threads: int,
        precision: str,
    ) -> None:
        command = [
            python, "-m", "tools.matterport_reference.keras_timing",
            "--port", str(Path(port).resolve()), "--h5", str(h5),
            "--config-json", json.dumps(overrides),
            "--image", str(image_path), "--threads", str(threads), "--precision", precision,
            "--serve",
        ]  # fmt: skip
        env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
        self.python = python
        # stderr goes to a file: a pipe nobody reads until the end could fill and stall the
        # long-lived worker.
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
            cwd=REPO,
        )
        self._read_line(lambda line: line.strip() == "ready")  # the port prints its config first

    def _read_line(self, wanted) -> str:
        """The next stdout line for which ``wanted(line)`` holds, skipping others."""
        line = self.process.stdout.readline()
        while line and not wanted(line):
            line = self.process.stdout.readline()
        if not line:
            self.process.kill()
            self.process.wait()
            self.stderr.seek(0)
            tail = "\n".join(self.stderr.read().strip().splitlines()[-5:])
            raise SystemExit(f"error: the Keras side failed ({self.python}):\n{tail}")
        return line

    def run(self) -> tuple[float, int]:
        """(ms of one Keras detect, detections)."""
        self.process.stdin.write("run\n")
        self.process.stdin.flush()
        answer = json.loads(self._read_line(lambda line: line.startswith("{")))
        return answer["ms"], answer["detections"]

    def close(self) -> None:
        with contextlib.suppress(BrokenPipeError):
            self.process.stdin.close()
        self.process.wait(timeout=60)
        self.stderr.close()


def add_keras_arguments(parser: argparse.ArgumentParser) -> None:
    """--keras-python and --port: the TensorFlow side environment that runs Matterport's Keras
    code (tools/matterport_reference/README.md)."""
    parser.add_argument(
        "--keras-python",
        default=os.environ.get("MRCNN_KERAS_PYTHON"),
        help="a python with TensorFlow (default $MRCNN_KERAS_PYTHON)",
    )
    parser.add_argument(
        "--port",
        default=os.environ.get("MRCNN_MATTERPORT_PORT"),
        help="checkout of Ben-Sicat/mrcnn_tf2, the Keras code (default $MRCNN_MATTERPORT_PORT)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.infer_matterport",
        description=" ".join(__doc__.split("\n\n")[0].split()),
    )
    parser.add_argument(
        "--pairs", type=int, default=8, help="turns per side, alternating (default 8)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=2,
        help="detects per side in each turn, back to back; the turn's figure is the fastest "
        "(default 2)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for both (0: each library's default)"
    )
    add_keras_arguments(parser)
    parser.add_argument("--keras-only", action="store_true", help="time only the Keras side")
    parser.add_argument(
        "--precision",
        action="append",
        choices=("fp32", "bf16"),
        help="our INFERENCE_PRECISION, and Keras's (bf16: TensorFlow's oneDNN auto mixed "
        "precision); repeat to time several (default fp32)",
    )
    args = parser.parse_args()
    if args.pairs < 1 or args.repeats < 1:
        parser.error(f"--pairs {args.pairs} --repeats {args.repeats}: give at least 1 each")

    image, described = benchmark_image()
    print(
        f"image: {described}; R-101, 81 classes, IMAGE_MAX_DIM 1024; "
        f"{args.pairs} turns per side after a warm-up, the two sides alternating, "
        f"fastest of {args.repeats} detects per turn"
    )
    precisions = args.precision or ["fp32"]
    if "bf16" in precisions:
        print(measure_bf16_as_asked())
    keras_on = bool(args.keras_python and args.port)
    if not keras_on:
        print(
            "Keras: not run (give --keras-python and --port, "
            "or MRCNN_KERAS_PYTHON and MRCNN_MATTERPORT_PORT)"
        )
    # Keras in each precision asked for, so that each of ours meets its like; fp32 always,
    # since Matterport's users run it so.
    keras_precisions = list(dict.fromkeys(["fp32", *precisions])) if keras_on else []
    keras_ms: dict[str, list[float]] = {p: [] for p in keras_precisions}
    ours_ms: dict[str, list[float]] = {p: [] for p in precisions}
    with tempfile.TemporaryDirectory() as tmp:
        h5, overrides = reference_model(Path(tmp))
        image_path = Path(tmp) / "image.npy"
        np.save(image_path, image)
        models = {} if args.keras_only else {
            p: load_ours(h5, overrides, args.threads, p, tmp) for p in precisions
        }  # fmt: skip
        for model in models.values():
            model.detect([image])  # warm-up: oneDNN primitives, folded weights, anchors
        workers = {
            p: KerasWorker(args.keras_python, args.port, h5, overrides, image_path, args.threads, p)
            for p in keras_precisions
        }
        host_rates: list[float] = []
        try:
            for pair in range(1, args.pairs + 1):
                for precision in dict.fromkeys([*keras_precisions, *precisions]):
                    sides = [("Keras (Matterport, TF2 port)", workers.get(precision), keras_ms),
                             ("ours (mrcnn, PyTorch)", models.get(precision), ours_ms)]  # fmt: skip
                    if pair % 2 == 0:
                        sides.reverse()
                    for name, side, times in sides:
                        if side is None:
                            continue
                        time.sleep(0.2)  # let the other side's threads go idle
                        runs = [
                            side.run() if isinstance(side, KerasWorker) else time_ours(side, image)
                            for _ in range(args.repeats)
                        ]
                        ms, n = min(run[0] for run in runs), runs[-1][1]
                        times[precision].append(ms)
                        print(
                            f"[{pair}] {name}, {precision}: {ms:7.0f} ms, {n} detections",
                            flush=True,
                        )
                host_rates.append(conv_throughput(torch.get_num_threads(), CONV_DTYPE))
                print(f"[{pair}] host {CONV_NAME} 3x3 conv: {host_rates[-1]:.0f} GFLOP/s")
        finally:
            for worker in workers.values():
                worker.close()
        summarise(ours_ms, keras_ms)
        rates = ", ".join(f"{r:.0f}" for r in host_rates)
        print(f"host {CONV_NAME} 3x3 conv GFLOP/s after each pair: {rates}")


def summarise(ours_ms: dict[str, list[float]], keras_ms: dict[str, list[float]]) -> None:
    """Each side's median and fastest run, and each ratio's median over the pairs."""
    for side, runs_by_precision in (("Keras", keras_ms), ("ours", ours_ms)):
        for precision, runs in runs_by_precision.items():
            print(
                f"{side} {precision}: median {statistics.median(runs):7.0f} ms/image, "
                f"fastest {min(runs):7.0f}"
            )
    for precision, runs in ours_ms.items():
        for against in dict.fromkeys([precision, "fp32"]):
            if against in keras_ms:
                ratios = [o / k for o, k in zip(runs, keras_ms[against], strict=True)]
                print_ratio(precision, against, ratios, min(runs) / min(keras_ms[against]))


def print_ratio(ours: str, theirs: str, ratios: list[float], fastest: float) -> None:
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    pairs = ", ".join(f"{r:.2f}" for r in ratios)
    print(
        f"ratio ours {ours} / Keras {theirs}: {ratio:.2f} ({verdict} <= {TARGET_RATIO}; "
        f"fastest against fastest {fastest:.2f}); pairs: {pairs}"
    )


if __name__ == "__main__":
    main()
