"""The tables of ``benchmarks/planted_bugs.py`` and ``benchmarks/mutation.py`` stay current: every
planted case names a test that exists and a snippet found exactly once in its file, and every
mutation row names a module, its top-level functions and its test files as they are. Code moves
would otherwise make the scripts stop at a stale row, or silently measure less, long after."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from mutation import MODULES  # noqa: E402
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


@pytest.mark.parametrize("name", MODULES)
def test_mutation_row_names_a_module_its_functions_and_tests_as_they_are(name):
    target = MODULES[name]
    tree = ast.parse((ROOT / target.path).read_text())
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert set(target.functions) <= defined, set(target.functions) - defined
    for test in target.tests:
        assert (ROOT / test.split("::")[0]).is_file(), test
