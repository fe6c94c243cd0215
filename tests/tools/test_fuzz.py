"""Fuzzing of the dataset loaders and ``--set`` parsing (issue 12): generated VIA 1.x/2.x and
COCO files, mask folders, label images and KEY=VALUE lists either load (and every loaded image's
masks read) or fail with one of the errors the CLI reports as one line. A few hundred examples
here; ``python -m tools.test_quality.fuzz`` runs tens of thousands."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tools.test_quality.fuzz_targets import (
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

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def workspace():
    space = Workspace()
    yield space
    space.close()


def test_via_files(workspace):
    @SETTINGS
    @given(via_document, st.booleans(), st.sampled_from([None, "name", "type"]))
    def check(document, raw, class_attribute):
        text = str(document) if raw else document  # raw: not even JSON
        run_via(workspace, text, raw, class_attribute)

    check()


def test_coco_files(workspace):
    @SETTINGS
    @given(coco_document, st.booleans())
    def check(document, raw):
        run_coco(workspace, str(document) if raw else document, raw)

    check()


def test_mask_folders(workspace):
    @SETTINGS
    @given(mask_folders)
    def check(folders):
        run_mask_folders(workspace, folders)

    check()


def test_label_images(workspace):
    @SETTINGS
    @given(label_pairs, class_maps)
    def check(pairs, class_map):
        run_labels(workspace, pairs, class_map)

    check()


@SETTINGS
@given(set_items)
def test_set_parsing(items):
    run_set(items)
