"""The inspection notebooks run headless, top to bottom, on the generated shapes dataset."""

from __future__ import annotations

import time

import pytest

from tests.helpers.paths import REPO

nbformat = pytest.importorskip("nbformat", reason="notebook tests need nbformat (test extra)")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need nbclient (test extra)")
pytest.importorskip("ipykernel", reason="notebook tests need ipykernel (test extra)")

NOTEBOOKS = REPO / "samples" / "notebooks"
#: Each notebook must finish well within a minute on two CPU cores.
BUDGET_SECONDS = 60


@pytest.mark.parametrize("name", ["inspect_data", "inspect_model"])
def test_notebook_runs_headless(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    assert any("DATASET_PATH = None" in cell.source for cell in notebook.cells[:3])
    client = nbclient.NotebookClient(
        notebook,
        timeout=BUDGET_SECONDS,  # per cell; the whole notebook is held to it below
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    start = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - start
    assert elapsed < BUDGET_SECONDS, f"{name} took {elapsed:.0f} s (budget {BUDGET_SECONDS} s)"
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 4


@pytest.mark.parametrize("name", ["inspect_data", "inspect_model"])
def test_notebook_is_stored_without_outputs(name: str) -> None:
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
