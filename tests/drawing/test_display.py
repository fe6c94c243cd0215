"""mrcnn.visualize shows its figures as Matterport's did (mrcnn.drawing.display): at once in a
notebook cell, also from a loop, without a second copy when the figure is the cell's last value;
in a window from a script with a GUI backend; nowhere headless. mrcnn.drawing.figures only returns
them."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from mrcnn import visualize
from mrcnn.drawing import display as figure_display
from mrcnn.drawing import figures
from mrcnn.drawing.display import NOTEBOOK, NOWHERE, WINDOW, display_mode

IMAGE = np.full((24, 32, 3), 90, np.uint8)
MASKS = np.zeros((24, 32, 1), bool)
MASKS[4:12, 5:20, 0] = True


def _instances(module, **kwargs) -> Figure:
    return module.display_instances(IMAGE, None, MASKS, [1], ["BG", "thing"], **kwargs)


@pytest.mark.parametrize(
    ("show", "ax", "kernel", "gui", "expected"),
    [
        (None, None, True, False, NOTEBOOK),
        (None, None, False, True, WINDOW),
        (None, None, False, False, NOWHERE),  # headless script: Agg
        (None, "ax", True, True, NOWHERE),  # drawn into the caller's axes: the caller's figure
        (True, "ax", True, False, NOTEBOOK),
        (True, None, False, False, WINDOW),
        (False, None, True, True, NOWHERE),
    ],
)
def test_display_mode(monkeypatch, show, ax, kernel, gui, expected):
    monkeypatch.setattr(figure_display, "in_notebook_kernel", lambda: kernel)
    monkeypatch.setattr(figure_display, "interactive_backend", lambda: gui)
    assert display_mode(show, ax) == expected
    # written to a file: shown only when asked (a script writing many figures never waits)
    assert display_mode(show, ax, "out.png") == (expected if show else NOWHERE)


def test_a_script_with_a_gui_backend_gets_a_window(monkeypatch, tmp_path):
    import matplotlib.pyplot as plt

    shown = []
    monkeypatch.setattr(figure_display, "interactive_backend", lambda: True)
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(True))
    figure = _instances(visualize)
    assert shown == [True] and isinstance(figure, Figure)
    plt.close(figure)
    visualize.draw_rois(IMAGE, np.array([[2, 3, 10, 12]]), np.array([[2, 3, 11, 12]]), None,
                        np.array([1]), ["BG", "thing"])  # fmt: skip
    assert len(shown) == 2  # its figure options reach draw_boxes
    plt.close("all")
    _instances(visualize, show=False)
    fig, ax = plt.subplots()
    _instances(visualize, ax=ax)  # the caller's axes: the caller shows them
    _instances(figures)  # the library's own function never shows
    assert len(shown) == 2
    visualize.draw_rois(IMAGE, np.array([[2, 3, 10, 12]]), np.array([[2, 3, 11, 12]]), None,
                        np.array([1]), ["BG", "thing"], path=tmp_path / "rois.png")  # fmt: skip
    _instances(visualize, path=tmp_path / "instances.png")  # a file was asked for: no window
    assert len(shown) == 2 and (tmp_path / "rois.png").exists()
    plt.close("all")


def test_headless_scripts_show_nothing_and_get_the_figure(monkeypatch):
    monkeypatch.setattr(figure_display, "interactive_backend", lambda: False)
    figure = _instances(visualize)
    assert type(figure) is Figure and figure.axes


NOTEBOOK_CELLS = [
    "%matplotlib inline\nimport numpy as np\nfrom mrcnn import visualize\n"
    "from mrcnn.drawing import figures\n"
    "image = np.full((24, 32, 3), 90, np.uint8)\nmasks = np.zeros((24, 32, 1), bool)\n"
    "masks[4:12, 5:20, 0] = True",
    # Matterport's train_shapes notebook: one figure per loop pass, none is the cell's value
    "for i in range(2):\n    visualize.display_top_masks(image, masks, [1], ['BG', 'thing'])\n"
    "print('after the loop')",
    # the cell's last value: shown once, not twice
    "visualize.display_instances(image, None, masks, [1], ['BG', 'thing'])",
    # the figure is still there to save
    "fig = visualize.display_images([image])\nfig.savefig('saved.png')\n"
    "type(fig).__mro__[1].__name__",
    # the library's function: only as the cell's value, as before
    "figures.display_instances(image, None, masks, [1], ['BG', 'thing'])\nNone",
    # Matterport's inspect notebooks: the caller's pyplot axes, the call as the cell's value;
    # pyplot shows the figure at the cell's end, so the returned figure must not show again
    "import matplotlib.pyplot as plt\n_, ax = plt.subplots(1)\n"
    "visualize.display_instances(image, None, masks, [1], ['BG', 'thing'], ax=ax)",
    # two calls into one pyplot figure, neither the cell's value: pyplot shows it once
    "fig, axes = plt.subplots(1, 2)\nfor ax in axes:\n"
    "    visualize.display_instances(image, None, masks, [1], ['BG', 'thing'], ax=ax)",
    # and gives it back as it was
    "type(fig).__name__",
    # a caller's Figure() that pyplot does not manage: shown once, as the cell's value
    "from matplotlib.figure import Figure\nax = Figure().subplots()\n"
    "visualize.display_instances(image, None, masks, [1], ['BG', 'thing'], ax=ax)",
]


def test_a_notebook_shows_each_figure_once(tmp_path):
    nbformat = pytest.importorskip("nbformat", reason="needs nbformat (test extra)")
    nbclient = pytest.importorskip("nbclient", reason="needs nbclient (test extra)")
    pytest.importorskip("ipykernel", reason="needs ipykernel (test extra)")
    cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    notebook = nbformat.v4.new_notebook(cells=cells)
    client = nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()
    images = [
        sum("image/png" in output.get("data", {}) for output in cell.outputs)
        for cell in notebook.cells
    ]
    assert images == [0, 2, 1, 1, 0, 1, 1, 0, 1]
    assert (tmp_path / "saved.png").stat().st_size > 0
    assert "'Figure'" in notebook.cells[3].outputs[-1]["data"]["text/plain"]
    assert "'Figure'" in notebook.cells[7].outputs[-1]["data"]["text/plain"]
