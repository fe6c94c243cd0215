"""Where a figure from :mod:`mrcnn.visualize` goes when the caller does not say: Matterport's way.

Matterport's ``visualize`` functions drew on pyplot and called ``plt.show()`` whenever they made
their own figure (no ``ax`` given). From a script with a GUI backend that opened a window; in a
notebook the figure appeared in the cell's output, also from inside a loop or the middle of a
cell. The modules that draw the figures here (:mod:`mrcnn.drawing.figures`,
:mod:`mrcnn.drawing.dataset_figures`, :mod:`mrcnn.drawing.network_figures`) build them headless and
return
them, which a notebook shows only when the figure is the cell's last value, and a script never.
:func:`matterport_display` gives the names of ``mrcnn.visualize`` Matterport's behaviour back:

- ``show=None`` (the default): a figure of its own (no ``ax``) is shown at once in a notebook
  kernel, and in a window where pyplot runs an interactive (GUI) backend; headless (Agg, a
  server, CI) nothing is shown. A figure drawn into the caller's ``ax`` is the caller's to show,
  and one written to a file (``path=``, which Matterport's functions did not have) is not shown:
  a script that writes many figures does not stop at a window for each.
- ``show=True``: shown as above, wherever it can be; ``show=False``: never.

The figure is still returned. In a notebook it is shown once: the returned figure does not show
itself a second time when it is also the cell's last value, neither when this module showed it
nor when pyplot's inline backend shows it at the cell's end (a caller's ``plt.subplots`` axes).
"""

from __future__ import annotations

import functools
import inspect
import io
import sys
from collections.abc import Callable
from typing import Any

from matplotlib.figure import Figure

#: The display modes :func:`display_mode` chooses between.
NOWHERE, NOTEBOOK, WINDOW = "nowhere", "notebook", "window"

#: Output formats in which an already shown figure is left out of the cell's result.
_IMAGE_FORMATS = ("image/png", "image/jpeg", "image/svg+xml", "application/pdf")


class ShownFigure(Figure):
    """A figure already shown in the notebook's output (see :func:`show_in_notebook`)."""


def display_mode(show: bool | None, ax: Any = None, path: Any = None) -> str:
    """Where to show a figure: :data:`NOTEBOOK`, :data:`WINDOW` or :data:`NOWHERE`."""
    if show is False or (show is None and (ax is not None or path is not None)):
        return NOWHERE
    if in_notebook_kernel():
        return NOTEBOOK
    if show or interactive_backend():
        return WINDOW
    return NOWHERE


def in_notebook_kernel() -> bool:
    """Whether this code runs in a Jupyter kernel (Jupyter, Colab, VS Code notebooks)."""
    if "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and hasattr(shell, "kernel")


def interactive_backend() -> bool:
    """Whether pyplot would open a window: its backend is one of matplotlib's GUI backends."""
    import matplotlib
    from matplotlib.backends import BackendFilter, backend_registry

    interactive = backend_registry.list_builtin(BackendFilter.INTERACTIVE)
    return matplotlib.get_backend().lower() in {name.lower() for name in interactive}


def show_in_notebook(figure: Figure) -> Figure:
    """Put ``figure`` in the running cell's output now, as a PNG, and mark it shown."""
    from IPython.display import Image, display

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    display(Image(data=buffer.getvalue()))
    _leave_shown_figures_out_of_results()
    figure.__class__ = ShownFigure  # same layout, so the swap is safe; it only changes display
    return figure


def pyplot_shows_at_cell_end(figure: Figure) -> bool:
    """Whether the notebook's pyplot backend puts ``figure`` in the cell's output by itself.

    matplotlib's inline backend shows the open pyplot figures when the cell ends, so a figure
    the caller made with ``plt.subplots`` and passed as ``ax`` is shown there. A figure made
    with ``Figure()`` is not pyplot's and shows only as a cell's value; after ``plt.ioff()``
    the backend waits for ``plt.show()``.
    """
    if not in_notebook_kernel() or figure.canvas.manager is None:  # (before importing pyplot)
        return False
    import matplotlib
    import matplotlib.pyplot as plt

    inline = "inline" in matplotlib.get_backend().lower() and matplotlib.is_interactive()
    return inline and plt.fignum_exists(figure.number)


class PyplotFigure(Figure):
    """A caller's pyplot figure that the inline backend shows when the cell ends."""


def leave_to_pyplot(figure: Figure) -> Figure:
    """Keep ``figure`` out of the cell's result until the cell ends, where pyplot shows it.

    The result is displayed while the cell runs and pyplot's figures after it (a
    ``post_execute`` callback), both through the same formatters; so the figure's class is put
    back by a callback that runs before pyplot's.
    """
    _leave_shown_figures_out_of_results()
    callbacks = sys.modules["IPython"].get_ipython().events.callbacks["post_execute"]
    if _give_figures_back_to_pyplot not in callbacks:
        callbacks.insert(0, _give_figures_back_to_pyplot)
    if not isinstance(figure, PyplotFigure):  # a second call into the same figure's axes
        _waiting_for_pyplot.append((figure, type(figure)))
        figure.__class__ = PyplotFigure
    return figure


_waiting_for_pyplot: list[tuple[Figure, type]] = []


def _give_figures_back_to_pyplot() -> None:
    for figure, figure_class in _waiting_for_pyplot:
        figure.__class__ = figure_class
    _waiting_for_pyplot.clear()


@functools.cache
def _leave_shown_figures_out_of_results() -> None:
    formatters = sys.modules["IPython"].get_ipython().display_formatter.formatters
    for mime in _IMAGE_FORMATS:
        if mime in formatters:
            formatters[mime].for_type(ShownFigure, lambda figure: None)
            formatters[mime].for_type(PyplotFigure, lambda figure: None)


def matterport_display(draw: Callable[..., Figure]) -> Callable[..., Figure]:
    """``draw`` (a function with ``show`` and, optionally, ``ax`` or ``**figure_options``
    arguments that returns a Figure) with ``show`` defaulting to Matterport's behaviour."""
    signature = inspect.signature(draw)

    @functools.wraps(draw)
    def shown(*args, **kwargs) -> Figure:
        arguments = signature.bind_partial(*args, **kwargs).arguments
        options = {**arguments.get("figure_options", {}), **arguments}
        mode = display_mode(kwargs.pop("show", None), options.get("ax"), options.get("path"))
        figure = draw(*args, show=mode == WINDOW, **kwargs)
        if mode == NOTEBOOK:
            return show_in_notebook(figure)
        # Matterport's functions returned None: a caller's pyplot figure showed once, at the end
        return leave_to_pyplot(figure) if pyplot_shows_at_cell_end(figure) else figure

    shown.__doc__ = (draw.__doc__ or "") + (
        "\n\n    In ``mrcnn.visualize``, ``show=None`` shows the figure as Matterport did"
        " (:mod:`mrcnn.drawing.display`)."
    )
    return shown
