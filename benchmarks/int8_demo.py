"""int8 on the trained demo model: accuracy against fp32 on the demo's 50 validation scenes, and
time per scene of each backend, in one process.

The int8 graph is made as ``mrcnn export --int8`` makes it (:func:`mrcnn.deploy.int8.
make_int8_graph`): calibrated on the first ``--calibrate`` scenes of the demo's training set
(the user's own training images), checked on the demo's validation set (50 scenes, seed 0, as
``make demo`` generates them). Then torch fp32, OpenVINO fp32 and OpenVINO int8 detect every
validation scene, in turns (the order rotates each round), ``--repeats`` rounds after a warm-up.

    make demo   # trains the model: demo_output/logs/shapes_demo*/mrcnn_shapes_demo_*.pt
    .venv/bin/python -m benchmarks.int8_demo --model demo_output/logs/.../mrcnn_shapes_demo_0010.pt
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.infer_cpu_peers import machine_line, time_turns
from mrcnn.datasets import ShapesDataset
from mrcnn.demo import DEMO_IMAGE_SIZE
from mrcnn.deploy.int8 import make_int8_graph
from mrcnn.deploy.openvino_backend import OpenVinoMaskRCNN
from mrcnn.model import MaskRCNN


def demo_scenes(count: int, subset: str) -> ShapesDataset:
    """The demo's generated scenes (seed 0) of ``subset``."""
    scenes = ShapesDataset()
    scenes.load_shapes(count, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE, seed=0, subset=subset)
    scenes.prepare()
    return scenes


def time_backends(runners: dict, images: list, repeats: int) -> dict[str, list[float]]:
    """name -> ms per scene of each round (every scene detected once a round), timed in turns
    as :func:`benchmarks.infer_cpu_peers.time_turns` does."""

    def every_scene(runner):
        return lambda: [runner.detect([image]) for image in images]

    runs = {name: (every_scene(runner), None) for name, runner in runners.items()}
    times, _ = time_turns(runs, repeats)
    return {name: [ms / len(images) for ms in values] for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.int8_demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--model", required=True, help="the demo's trained checkpoint")
    parser.add_argument(
        "--calibrate", type=int, default=100, help="training scenes to calibrate on"
    )
    parser.add_argument("--val", type=int, default=50, help="validation scenes (the demo's 50)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(machine_line(args.threads))
    model = MaskRCNN.from_checkpoint(args.model, ["DEVICE=cpu"])
    val = demo_scenes(args.val, "val")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        size = (DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE)
        start = time.perf_counter()
        _, report = make_int8_graph(
            model, demo_scenes(args.calibrate, "train"), cache, size, check=val, progress=False
        )
        print(f"made in {time.perf_counter() - start:.0f} s (fp32 export included)")
        print("\n".join(report.lines()))
        runners = {
            "torch fp32": model,
            "openvino fp32": OpenVinoMaskRCNN(model, cache, "fp32", say=print),
            "openvino int8": OpenVinoMaskRCNN(model, cache, "int8", say=print),
        }
        images = [val.load_image(i) for i in val.image_ids]
        times = time_backends(runners, images, args.repeats)
    base = statistics.median(times["torch fp32"])
    for name, values in times.items():
        median = statistics.median(values)
        print(
            f"  {name:14} median {median:6.1f} ms/scene, fastest {min(values):6.1f}; "
            f"/ torch fp32 {median / base:.2f}"
        )


if __name__ == "__main__":
    main()
