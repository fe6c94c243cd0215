"""CPU_KEEP_FREED_MEMORY: ``MaskRCNN.detect`` with freed memory kept against glibc's default.

Two worker processes, each with the same model loaded (R-50 FPN in torchvision's layout,
random weights, TorchvisionCocoConfig with every detection kept: 100 instances masked and
pasted) and the same 800 x 1066 photo-like image; one keeps freed memory (the default), the
other gives it back to the system as glibc does unasked (``CPU_KEEP_FREED_MEMORY = False``).
They take turns, one detect each per round, after --warmup rounds, so that both see the same
machine; each reports its wall time, the page faults and the system CPU time of that detect.

    .venv/bin/python -m benchmarks.cpu_memory [--rounds 8] [--warmup 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
from pathlib import Path

from benchmarks._common import isa_line

CONTENDERS = {"kept (the default)": True, "given back (glibc's default)": False}


def _worker(connection, weights: str, keep: bool, threads: int) -> None:
    """Load the model, then one timed detect per message until None comes."""
    import resource
    import time

    import torch

    from mrcnn.config import TorchvisionCocoConfig
    from mrcnn.model import MaskRCNN
    from mrcnn.testing import photo_like_image

    torch.set_num_threads(threads)
    overrides = {"DETECTION_MIN_CONFIDENCE": 0.0, "DEVICE": "cpu", "CPU_KEEP_FREED_MEMORY": keep}
    model = MaskRCNN("inference", TorchvisionCocoConfig.from_overrides(overrides))
    model.load_weights(weights)
    image = photo_like_image(800, 1066)
    connection.send("ready")
    while connection.recv() is not None:
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        found = len(model.detect([image])[0]["scores"])
        seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
        faults, system = after.ru_minflt - before.ru_minflt, after.ru_stime - before.ru_stime
        connection.send((1000 * seconds, faults, system, found))


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.cpu_memory", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    from mrcnn.testing import randomised_torchvision_maskrcnn

    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "r50.pt"
        torch.save(randomised_torchvision_maskrcnn(box_score_thresh=0.0).state_dict(), weights)
        workers = {}
        for name, keep in CONTENDERS.items():
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_worker, args=(theirs, str(weights), keep, args.threads)
            )
            process.start()
            workers[name] = (ours, process)
        for ours, _ in workers.values():
            ours.recv()
        records = {name: [] for name in workers}
        for round_ in range(args.warmup + args.rounds):
            for name, (ours, _) in workers.items():  # one process at a time
                ours.send("go")
                if round_ >= args.warmup:
                    records[name].append(ours.recv())
                else:
                    ours.recv()
        for ours, process in workers.values():
            ours.send(None)
            process.join()
    print(f"{isa_line()}; torch {torch.__version__}")
    print(f"R-50 FPN, 800 x 1066, 100 detections, {args.threads} threads, {args.rounds} rounds")
    medians = {}
    for name, rows in records.items():
        ms, faults, system, found = zip(*rows, strict=True)
        medians[name] = statistics.median(ms)
        print(
            f"  {name:30} median {medians[name]:6.0f} ms (fastest {min(ms):.0f}), page faults "
            f"median {statistics.median(faults):8.0f}, system CPU {statistics.median(system):.2f} "
            f"s, {found[0]} detections"
        )
    kept, given = medians.values()
    print(f"  kept / given back: {kept / given:.3f}")


if __name__ == "__main__":
    main()
