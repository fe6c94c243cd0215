"""``mrcnn demo`` on a quiet machine and on one with other CPU-bound work (issue 30).

The demo trains a fixed number of epochs, so a slow or busy machine takes longer but should
reach the same quality; its time cap is only a safety limit. This runs the demo as a user does
(``python -m mrcnn demo``, a fresh process) first alone (the baseline) and then beside
``--busy`` processes that each spin one core (``python -c "while 1: pass"``), and prints for
each: wall time, epochs trained, seconds per step, mask mAP@0.5 and the load average::

    python -m benchmarks.demo_loaded [--busy 1] [--skip-baseline] [--train-seconds S]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mrcnn.demo import DEMO_TARGET_MAP50, ShapesDemoConfig
from mrcnn.modeling.precision import cpu_flags


def run_demo_process(out: Path, train_seconds: float | None) -> tuple[int, float, str]:
    """Run ``python -m mrcnn demo`` into ``out``; return (exit code, seconds, the last line of
    its standard output: the mAP, or what it says when the model is not trained enough)."""
    command = [sys.executable, "-m", "mrcnn", "demo", "--out", str(out), "--quiet"]
    if train_seconds is not None:
        command += ["--train-seconds", str(train_seconds)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    return done.returncode, time.perf_counter() - start, lines[-1] if lines else ""


def measure(label: str, busy: int, train_seconds: float | None) -> dict:
    """One demo run beside ``busy`` spinning processes."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(busy)]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            code, seconds, last = run_demo_process(Path(tmp) / "demo", train_seconds)
            load = os.getloadavg()[0]
            report_file = Path(tmp) / "demo" / "report.json"
            report = json.loads(report_file.read_text()) if report_file.exists() else {}
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    epochs = len(report.get("epochs", []))
    train = report.get("seconds", {}).get("train", float("nan"))
    steps = max(1, epochs * ShapesDemoConfig.STEPS_PER_EPOCH)
    return {
        "label": label,
        "exit": code,
        "seconds": seconds,
        "epochs": f"{epochs} of {report.get('epochs_planned', '?')}",
        "step_seconds": train / steps,
        "map50": report.get("map50", float("nan")),
        "load": load,
        "last": last,
    }


def print_table(rows: list[dict]) -> None:
    print("| run | exit | wall s | epochs | s/step | mask mAP@0.5 | load avg (1 min) |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['label']} | {r['exit']} | {r['seconds']:.0f} | {r['epochs']} | "
            f"{r['step_seconds']:.2f} | {r['map50']:.3f} | {r['load']:.1f} |"
        )
    for r in rows:
        print(f"{r['label']}: last line: {r['last']}")
    if len(rows) == 2:
        print(f"loaded / quiet wall time: {rows[1]['seconds'] / rows[0]['seconds']:.2f}")
    good = all(r["map50"] >= DEMO_TARGET_MAP50 for r in rows)
    print(f"every run reached mask mAP@0.5 >= {DEMO_TARGET_MAP50}: {good}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, default=1, help="spinning processes (default 1)")
    parser.add_argument("--skip-baseline", action="store_true", help="no quiet run")
    parser.add_argument(
        "--train-seconds", type=float, default=None, help="the demo's cap (default its own)"
    )
    args = parser.parse_args(argv)
    flags = " ".join(sorted(cpu_flags() & {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}))
    print(f"cpus: {os.cpu_count()}; flags: {flags or 'none of avx2/avx512/amx'}")
    rows = [] if args.skip_baseline else [measure("quiet", 0, args.train_seconds)]
    rows.append(measure(f"beside {args.busy} spinning process(es)", args.busy, args.train_seconds))
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
