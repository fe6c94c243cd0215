"""Mutation score of the test suite on the core modules, with cosmic-ray.

For each core module (table MODULES below) this script copies the repository's files into a
temporary folder, lets cosmic-ray plant one mutant at a time in that copy (the working tree is
never touched), runs the module's fast tests against each mutant, and prints the share of
mutants killed per module. Timeouts count as killed (the mutant changed behaviour); mutants
cosmic-ray could not test ("incompetent", "no test") are counted apart and left out of the
share. Mutants outside the functions a row names (e.g. the matching part of evaluation) are not
generated into the score at all.

    python -m tools.test_quality.mutation --list
    python -m tools.test_quality.mutation --module boxes           # every mutant of one module
    python -m tools.test_quality.mutation --sample 40 --seed 0 --jobs 2   # a seeded sample each
    python -m tools.test_quality.mutation --module losses --survivors  # each survivor's diff

Each mutant's tests run in a fork of tools.test_quality.mutation_runner, a process that has already
imported torch and the other libraries but never mrcnn, so the mutated code is imported afresh
while the 3 s torch import is paid once per copy (``--fresh-processes`` runs a new pytest process
per mutant instead, as cosmic-ray does by default; both give the same verdicts). A full run of
every module takes about an hour on 2 cores; ``--sample N`` tests N mutants per module drawn with
``--seed`` and says so in the table.
cosmic-ray is a test-only dependency (the ``test`` extra), never a runtime one.
"""

from __future__ import annotations

import argparse
import ast
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from tools.test_quality.planted_bugs import copy_tracked_files

ROOT = Path(__file__).resolve().parents[2]
#: Run as ``python -m RUNNER`` in the copy (cwd and PYTHONPATH: the copy).
RUNNER = "tools.test_quality.mutation_runner"


@dataclass(frozen=True)
class Target:
    path: str  # the module mutated, relative to the repository root
    tests: tuple[str, ...]  # the fast test files (or node ids) that guard it
    functions: tuple[str, ...] = ()  # mutate only these top-level functions/classes; () = all


# The core modules and the tests that guard each. When a module moves (evaluation.py is being
# split into mrcnn/evaluation/, with matching in its own module), change its row here: point
# `path` at the new file and drop `functions` if the file holds only what is measured.
MODULES: dict[str, Target] = {
    "boxes": Target("mrcnn/structures/boxes.py", ("tests/structures/test_boxes.py",)),
    "anchors": Target("mrcnn/modeling/anchors.py", ("tests/modeling/test_anchors.py",)),
    "proposals": Target("mrcnn/modeling/proposals.py", ("tests/modeling/test_proposals.py",)),
    "roi_align": Target("mrcnn/modeling/roi_align.py", ("tests/modeling/test_roi_align.py",)),
    "conv_fusion": Target("mrcnn/modeling/conv_fusion.py", ("tests/modeling/test_conv_fusion.py",)),
    "targets": Target("mrcnn/modeling/targets.py", ("tests/modeling/test_targets.py",)),
    "losses": Target("mrcnn/modeling/losses.py", ("tests/modeling/test_losses.py",)),
    "detection": Target("mrcnn/modeling/detection.py", ("tests/modeling/test_detection.py",)),
    "evaluation_matching": Target(
        "mrcnn/evaluation/matching.py",
        (
            "tests/evaluation/test_matching.py",
            "tests/evaluation/test_overlaps.py",
            "tests/evaluation/test_ap.py",
        ),
    ),
    "image_molding": Target(
        "mrcnn/structures/image.py",
        ("tests/structures/test_image_molding.py", "tests/structures/test_image.py"),
        functions=(
            "normalization",
            "apply_plan",
            "mold_image",
            "_bilinear_taps",
            "_bilinear_resize_uint8",
            "inference_plan",
            "batch_input_shape",
            "same_input_groups",
            "mold_batch",
            "unmold_boxes",
            "expanded_paste_boxes",
            "paste_masks",
            "paste_masks_looped",
            "paste_masks_vectorised",
            "_resize_taps",
            "pasted_patches",
        ),
    ),
    "weights": Target(
        "mrcnn/weights/loading.py",
        ("tests/weights/test_selection.py", "tests/weights/test_loading.py"),
    ),
}

PYTEST_FAST = ("-x", "-q", "-p", "no:cacheprovider", "-m", "not slow")


@dataclass
class Tally:
    """Outcomes of the mutants tested in one module."""

    killed: int = 0
    timeouts: int = 0  # also counted in killed
    survived: int = 0
    untested: int = 0  # cosmic-ray could not run the tests on it (incompetent / no test)
    generated: int = 0  # mutants in the measured functions, before sampling
    annotations: int = 0  # mutants inside type annotations: equivalent, never tested
    survivors: list[str] = field(default_factory=list)  # "line: operator\n diff"

    @property
    def tested(self) -> int:
        return self.killed + self.survived

    @property
    def share(self) -> float:
        """Per cent of the tested mutants killed (timeouts included)."""
        return 100 * self.killed / self.tested if self.tested else float("nan")

    def merge(self, other: Tally) -> None:
        self.killed += other.killed
        self.timeouts += other.timeouts
        self.survived += other.survived
        self.untested += other.untested
        self.survivors += other.survivors


def measured_lines(source: Path, functions: tuple[str, ...]) -> set[int] | None:
    """Line numbers (1-based) of the named top-level definitions; None means every line."""
    if not functions:
        return None
    tree = ast.parse(source.read_text())
    found = {
        node.name: node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
    }
    missing = sorted(set(functions) - set(found))
    if missing:
        raise SystemExit(
            f"{source}: no top-level definition named {', '.join(missing)}; "
            f"update MODULES in {__file__}"
        )
    lines: set[int] = set()
    for name in functions:
        node = found[name]
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        lines.update(range(first, node.end_lineno + 1))
    return lines


def annotation_spans(source: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) (line, column) of every type annotation. With ``from __future__ import
    annotations`` they are never evaluated, so a mutant inside one is equivalent by design."""
    tree = ast.parse(source.read_text())
    if not any(
        isinstance(n, ast.ImportFrom)
        and n.module == "__future__"
        and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    ):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            found.append(node.annotation)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return [
        ((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in found if n is not None
    ]


def cosmic_ray(copy: Path, *args: str, timeout: float | None = None) -> None:
    """Run one cosmic-ray command in the copy, niced (the machine is shared)."""
    command = ["nice", "-n", "10", sys.executable, "-m", "cosmic_ray.cli", *args]
    environment = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, cwd=copy, env=environment, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"cosmic-ray {args[0]} failed in {copy}:\n{done.stderr[-3000:]}")


def test_command(target: Target, runner: Runner | None = None, timeout: float = 0) -> str:
    """The command cosmic-ray runs per mutant: a fresh pytest process, or a request to the
    preloaded runner (same pytest arguments, run in a fork that imports mrcnn afresh)."""
    pytest_args = [*PYTEST_FAST, *target.tests]
    if runner is None:
        return shlex.join([sys.executable, "-m", "pytest", *pytest_args])
    request = [sys.executable, "-m", RUNNER, "run", str(runner.socket), f"{timeout:.0f}", "--"]
    return shlex.join([*request, *pytest_args])


class Runner:
    """tools.test_quality.mutation_runner serving one copy of the repository (see its
    docstring)."""

    def __init__(self, copy: Path) -> None:
        self.copy = copy
        self.socket = copy / "runner.sock"
        self.process = subprocess.Popen(
            ["nice", "-n", "10", sys.executable, "-m", RUNNER, "serve", str(self.socket)],
            cwd=copy,
            env=copy_environment(copy),
            stdout=subprocess.DEVNULL,
        )

    def close(self) -> None:
        if self.process.poll() is None:
            subprocess.run(
                [sys.executable, "-m", RUNNER, "stop", str(self.socket)],
                cwd=self.copy,
                env=copy_environment(self.copy),
                check=False,
            )
            self.process.wait(timeout=30)


def copy_environment(copy: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}


def baseline_seconds(copy: Path, target: Target, runner: Runner | None) -> float:
    """Run the module's tests once on the real code, the way the mutants will be tested: they
    must pass; returns their time."""
    start = time.perf_counter()
    done = subprocess.run(
        ["nice", "-n", "10", *shlex.split(test_command(target, runner, timeout=600))],
        cwd=copy,
        env=copy_environment(copy),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"the tests of {target.path} fail on the real code; fix them first:\n"
            f"{done.stdout[-3000:]}"
        )
    return time.perf_counter() - start


def write_config(copy: Path, target: Target, timeout: float, runner: Runner | None) -> Path:
    config = copy / "cosmic-ray.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "{target.path}"\n'
        f"timeout = {timeout:.0f}\n"
        "excluded-modules = []\n"
        f"test-command = {test_command(target, runner, timeout)!r}\n"
        "[cosmic-ray.distributor]\n"
        'name = "local"\n'
    )
    return config


def mutant_key(item) -> tuple:
    mutation = item.mutations[0]
    return (mutation.operator_name, mutation.occurrence, tuple(mutation.start_pos))


def choose_mutants(
    session: Path, lines: set[int] | None, annotations, sample: int | None, seed: int, shard
) -> tuple[int, int]:
    """Mark every mutant that is not ours to test as skipped in the session; returns the
    number of mutants in the measured lines (before sampling) and how many of those lie in
    type annotations (equivalent, not tested)."""
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session), WorkDB.Mode.open) as db:
        # job ids are random uuids: order by what the mutant is, so a seed picks the same ones
        items = sorted(db.work_items, key=mutant_key)
        measured = [w for w in items if lines is None or w.mutations[0].start_pos[0] in lines]
        in_annotation = [w for w in measured if inside(w.mutations[0].start_pos, annotations)]
        measured = [w for w in measured if w not in in_annotation]
        chosen = measured
        if sample is not None and sample < len(measured):
            chosen = random.Random(seed).sample(measured, sample)
        index, count = shard
        chosen = sorted(chosen, key=mutant_key)
        mine = {w.job_id for k, w in enumerate(chosen) if k % count == index}
        others = [w.job_id for w in items if w.job_id not in mine]
        db.set_multiple_results(
            others, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="not measured")
        )
    return len(measured), len(in_annotation)


def inside(position, spans) -> bool:
    return any(start <= tuple(position) < end for start, end in spans)


def read_tally(session: Path) -> Tally:
    from cosmic_ray.work_db import WorkDB, use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    tally = Tally()
    with use_db(str(session), WorkDB.Mode.open) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                continue
            if result.test_outcome == TestOutcome.KILLED:
                tally.killed += 1
                tally.timeouts += result.output == "timeout"
            elif result.test_outcome == TestOutcome.SURVIVED:
                tally.survived += 1
                mutation = item.mutations[0]
                tally.survivors.append(
                    f"line {mutation.start_pos[0]}: {mutation.operator_name}\n{result.diff}"
                )
            else:
                tally.untested += 1
    return tally


def run_shard(
    name: str, target: Target, sample: int | None, seed: int, shard, preload: bool
) -> Tally:
    """Test one shard of one module's mutants in a fresh copy of the repository."""
    with tempfile.TemporaryDirectory(prefix=f"mutation_{name}_") as folder:
        copy = Path(folder)
        copy_tracked_files(copy)
        runner = Runner(copy) if preload else None
        try:
            return test_mutants(copy, target, sample, seed, shard, runner)
        finally:
            if runner is not None:
                runner.close()


def test_mutants(copy: Path, target: Target, sample, seed: int, shard, runner) -> Tally:
    seconds = baseline_seconds(copy, target, runner)
    # A fresh process spends most of its time importing torch; the preloaded runner does not,
    # so its floor is lower. Timeouts are several times the real code's time either way.
    config = write_config(copy, target, max(30.0 if runner is None else 15.0, 3 * seconds), runner)
    session = copy / "session.sqlite"
    cosmic_ray(copy, "init", str(config), str(session))
    source = copy / target.path
    lines = measured_lines(source, target.functions)
    generated, equivalent = choose_mutants(
        session, lines, annotation_spans(source), sample, seed, shard
    )
    cosmic_ray(copy, "exec", str(config), str(session))
    if runner is not None and runner.process.poll() is not None:
        raise SystemExit(f"the mutation runner of {copy} died during the run: no verdict holds")
    tally = read_tally(session)
    tally.generated, tally.annotations = generated, equivalent
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.test_quality.mutation", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--module",
        action="append",
        choices=sorted(MODULES),
        default=[],
        help="measure only this module (repeatable); default: all",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="copies tested at once (modules, or shares of one module's mutants); default 1",
    )
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        help="test a seeded random sample of N mutants per module, not all",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    parser.add_argument(
        "--fresh-processes",
        dest="preload",
        action="store_false",
        help="test each mutant in a fresh pytest process (slow: imports torch every time) "
        "instead of a fork of the preloaded runner, tools.test_quality.mutation_runner",
    )
    parser.add_argument("--list", action="store_true", help="list modules and their tests")
    args = parser.parse_args(argv)
    names = args.module or list(MODULES)
    if args.list:
        for name in names:
            target = MODULES[name]
            print(f"{name:<20} {target.path:<26} {' '.join(target.tests)}")
        return 0
    # Each module's mutants are split into shards so that --jobs copies work at once.
    shards_per_module = max(1, args.jobs // len(names))
    units = [(n, (k, shards_per_module)) for n in names for k in range(shards_per_module)]
    what = f"a seeded sample of up to {args.sample} mutants per module (seed {args.seed})"
    print(f"cosmic-ray mutation score, {what if args.sample else 'every mutant'}", flush=True)
    start = time.perf_counter()
    rows: dict[str, str] = {}
    below = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            pool.submit(
                run_shard, name, MODULES[name], args.sample, args.seed, shard, args.preload
            ): name
            for name, shard in units
        }
        tallies: dict[str, Tally] = {}
        pending = {name: shards_per_module for name in names}
        for future in as_completed(futures):
            name, result = futures[future], future.result()
            first = Tally(generated=result.generated, annotations=result.annotations)
            tallies.setdefault(name, first).merge(result)
            pending[name] -= 1
            if pending[name] == 0:  # report each module as soon as it is done
                rows[name] = table_row(name, tallies[name])
                below += [name] if not tallies[name].share >= 85 else []
                print(HEADER + "\n" + rows[name], flush=True)
                if args.survivors:
                    for survivor in tallies[name].survivors:
                        print(f"--- {name} ({MODULES[name].path}) {survivor}", flush=True)
    minutes = (time.perf_counter() - start) / 60
    print(f"\nall modules, {minutes:.1f} min with --jobs {args.jobs}:\n{HEADER}")
    print("\n".join(rows[name] for name in names))
    print("below 85%: " + (", ".join(below) if below else "none"))
    return 1 if below else 0


HEADER = (
    f"{'module':<20} {'mutants':>7} {'in hints':>8} {'tested':>6} {'killed':>6} "
    f"{'timeout':>7} {'survived':>8} {'untested':>8} {'killed %':>8}"
)


def table_row(name: str, t: Tally) -> str:
    return (
        f"{name:<20} {t.generated:>7} {t.annotations:>8} {t.tested:>6} {t.killed:>6} "
        f"{t.timeouts:>7} {t.survived:>8} {t.untested:>8} {t.share:>7.1f}%"
    )


if __name__ == "__main__":
    sys.exit(main())
