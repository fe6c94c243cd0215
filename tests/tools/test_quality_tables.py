"""The tables of ``tools/test_quality/planted_bugs.py`` and ``tools/test_quality/mutation.py``
stay current: every planted case names a test that exists and a snippet found exactly once in its
file, and every mutation row names a module, its top-level functions and its test files as they
are. Code moves would otherwise make the tools stop at a stale row, or silently measure less, long
after."""

from __future__ import annotations

import ast

import pytest

from tests.helpers.paths import REPO as ROOT
from tools.test_quality.mutation import MODULES
from tools.test_quality.planted_bugs import CASES


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
