"""``benchmarks/planted_bugs.py`` stays runnable: every case names a test that exists and a
snippet that occurs exactly once in its file (code moves would otherwise make the script stop at
the first stale case, long after the move)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from planted_bugs import CASES  # noqa: E402


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.test.split('::')[-1]}:{c.bug}")
def test_case_plants_a_snippet_found_once_in_its_file(case):
    text = (ROOT / case.path).read_text()
    assert text.count(case.old) == 1, f"{case.path}: snippet for {case.bug!r} is stale"
    assert case.new != case.old


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.test.split('::')[-1]}:{c.bug}")
def test_case_names_a_test_that_exists(case):
    path, _, name = case.test.partition("::")
    function = name.split("[")[0]
    assert f"def {function}(" in (ROOT / path).read_text(), f"{case.test} not found"
