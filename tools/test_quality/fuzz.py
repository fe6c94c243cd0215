"""Fuzz the dataset loaders and ``--set`` parsing with many more examples than the test suite.

The targets and strategies are those of ``tests/tools/test_fuzz.py``
(``tools/test_quality/fuzz_targets.py``): generated VIA 1.x/2.x and COCO files, mask folders,
label images and KEY=VALUE lists must load (with every loaded image's masks read) or fail with an
error the CLI reports as one line. Prints the examples run per target and in total; a failure
prints hypothesis's minimal example and exits non-zero.

    python -m tools.test_quality.fuzz [--examples 20000] [--seed 0]
"""

from __future__ import annotations

import argparse
import sys
import time

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tools.test_quality.fuzz_targets import (
    COUNTS,
    DEPTH,
    Workspace,
    class_maps,
    coco_document,
    label_pairs,
    mask_folders,
    run_coco,
    run_labels,
    run_mask_folders,
    run_set,
    run_via,
    set_items,
    via_document,
)


def targets(workspace: Workspace):
    """(name, share of the examples, hypothesis test) per target."""

    @given(via_document, st.booleans(), st.sampled_from([None, "name", "type"]))
    def via(document, raw, class_attribute):
        run_via(workspace, str(document) if raw else document, raw, class_attribute)

    @given(coco_document, st.booleans())
    def coco(document, raw):
        run_coco(workspace, str(document) if raw else document, raw)

    @given(mask_folders)
    def masks(folders):
        run_mask_folders(workspace, folders)

    @given(label_pairs, class_maps)
    def labels(pairs, class_map):
        run_labels(workspace, pairs, class_map)

    @given(set_items)
    def set_parsing(items):
        run_set(items)

    return [("via", 0.25, via), ("coco", 0.25, coco), ("masks", 0.15, masks)] + [
        ("labels", 0.15, labels),
        ("--set", 0.20, set_parsing),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.test_quality.fuzz", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--examples", type=int, default=20000, help="total examples (20000)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    workspace = Workspace()
    start = time.perf_counter()
    try:
        for name, share, test in targets(workspace):
            tick = time.perf_counter()
            configured = settings(
                max_examples=max(1, round(args.examples * share)),
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            DEPTH.clear()
            seed(args.seed)(configured(test))()
            depth = ", ".join(f"{k} {v}" for k, v in DEPTH.items()) or "-"
            print(
                f"{name:8} {COUNTS[name]:>7} examples  {time.perf_counter() - tick:7.1f} s  "
                f"({depth})"
            )
    finally:
        workspace.close()
    total = sum(COUNTS.values())
    print(f"{'total':8} {total:>7} examples  {time.perf_counter() - start:7.1f} s; no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
