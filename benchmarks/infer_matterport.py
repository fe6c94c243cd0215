"""CPU inference of a Matterport R-101 1024x1024 model: ours (loading its .h5) against
Matterport's Keras implementation in the same run.

The model is the seeded random-weight R-101 / 81-class / 1024 reference of the equivalence test
(its .h5 rebuilt from tests/fixtures/matterport with numpy + h5py); the image is a 1024x1024
crop of a balloon photo (needs no resize), or a synthetic photo-like image without the dataset.
Our side: ``MaskRCNN(...).load_weights(h5)`` then ``detect``. Keras side: when a python with
TensorFlow is given (--keras-python or $MRCNN_KERAS_PYTHON, e.g. /work/tfenv/bin/python, plus
the port's checkout, --port or $MRCNN_MATTERPORT_PORT), tools/matterport_reference/keras_timing.py
runs in that python as a subprocess, so this script never imports TensorFlow. Prints ms/image
(median of --repeats after a warm-up) for each and the ratio; the target is ours <= 0.4 x Keras.

    .venv/bin/python benchmarks/infer_matterport.py [--repeats 3] [--rounds 3] \
        [--threads 2] [--precision fp32 --precision bf16] \
        [--keras-python /work/tfenv/bin/python --port /work/refsrc]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from _fixtures_data import BALLOON  # noqa: E402
from _matterport_h5 import manifest_from_json, write_matterport_h5  # noqa: E402
from PIL import Image  # noqa: E402

from mrcnn.config import Config  # noqa: E402
from mrcnn.model import MaskRCNN  # noqa: E402
from mrcnn.testing import photo_like_image  # noqa: E402

FIXTURES = REPO / "tests" / "fixtures" / "matterport"
MODEL = FIXTURES / "r101_c81_1024.npz"
PHOTO = FIXTURES / "r101_c81_1024__balloon_14898532020_crop1024.npz"
TARGET_RATIO = 0.4


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


def time_ours(model: MaskRCNN, image: np.ndarray, repeats: int) -> tuple[float, int]:
    """(median ms per detect over ``repeats`` after a warm-up, detections)."""
    result = model.detect([image])[0]  # warm-up
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = model.detect([image])[0]
        runs.append((time.perf_counter() - start) * 1000)
    return statistics.median(runs), len(result["scores"])


def time_keras(
    python: str,
    port: str,
    h5: Path,
    overrides: dict,
    image_path: Path,
    repeats: int,
    threads: int,
    precision: str,
) -> dict:
    """Runs keras_timing.py in the side environment; returns its JSON line."""
    command = [
        python,
        str(REPO / "tools" / "matterport_reference" / "keras_timing.py"),
        "--port", port, "--h5", str(h5), "--config-json", json.dumps(overrides),
        "--image", str(image_path), "--repeats", str(repeats), "--threads", str(threads),
        "--precision", precision,
    ]  # fmt: skip
    env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"error: the Keras side failed ({python}):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="CPU threads for both (0: each library's default)"
    )
    parser.add_argument(
        "--keras-python",
        default=os.environ.get("MRCNN_KERAS_PYTHON"),
        help="a python with TensorFlow",
    )
    parser.add_argument(
        "--port",
        default=os.environ.get("MRCNN_MATTERPORT_PORT"),
        help="checkout of Ben-Sicat/mrcnn_tf2",
    )
    parser.add_argument("--keras-only", action="store_true", help="time only the Keras side")
    parser.add_argument(
        "--precision",
        action="append",
        choices=("fp32", "bf16"),
        help="our INFERENCE_PRECISION, and Keras's (bf16: TensorFlow's oneDNN auto mixed "
        "precision); repeat to time several (default fp32)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time the two sides alternately this many times; each round's ratio compares "
        "runs next to each other in time (a shared host's speed drifts), and the median "
        "round is the figure",
    )
    args = parser.parse_args()

    image, described = benchmark_image()
    print(
        f"image: {described}; R-101, 81 classes, IMAGE_MAX_DIM 1024; "
        f"median of {args.repeats} after a warm-up, {args.rounds} round(s)"
    )
    precisions = args.precision or ["fp32"]
    keras_on = bool(args.keras_python and args.port)
    if not keras_on:
        print(
            "Keras: not run (give --keras-python and --port, "
            "or MRCNN_KERAS_PYTHON and MRCNN_MATTERPORT_PORT)"
        )
    # Keras in each precision asked for, so that each of ours meets its like; fp32 always,
    # since the target is stated against Matterport as its users run it.
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
        for round_number in range(1, args.rounds + 1):
            for precision in keras_precisions:
                timed = time_keras(
                    args.keras_python, args.port, h5, overrides, image_path, args.repeats,
                    args.threads, precision,
                )  # fmt: skip
                keras_ms[precision].append(timed["ms_per_image"])
                print(
                    f"[round {round_number}] Keras (Matterport, TF2 port, {precision}): "
                    f"{timed['ms_per_image']:7.0f} ms/image, {timed['detections']} detections",
                    flush=True,
                )
            for precision, model in models.items():
                ms, n = time_ours(model, image, args.repeats)
                ours_ms[precision].append(ms)
                print(
                    f"[round {round_number}] ours (mrcnn, PyTorch, {precision}): "
                    f"{ms:7.0f} ms/image, {n} detections",
                    flush=True,
                )
        summarise(ours_ms, keras_ms)


def summarise(ours_ms: dict[str, list[float]], keras_ms: dict[str, list[float]]) -> None:
    """Median ms of each side and precision, and each ratio's median over the rounds."""
    for precision, runs in keras_ms.items():
        print(f"Keras {precision}: median {statistics.median(runs):7.0f} ms/image")
    for precision, runs in ours_ms.items():
        print(f"ours {precision}: median {statistics.median(runs):7.0f} ms/image")
        for against in dict.fromkeys([precision, "fp32"]):
            if against in keras_ms:
                ratios = [o / k for o, k in zip(runs, keras_ms[against], strict=True)]
                print_ratio(precision, against, ratios)


def print_ratio(ours: str, theirs: str, ratios: list[float]) -> None:
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    print(
        f"ratio ours {ours} / Keras {theirs}: {ratio:.2f} ({verdict} <= {TARGET_RATIO}); "
        f"rounds: {rounds}"
    )


if __name__ == "__main__":
    main()
