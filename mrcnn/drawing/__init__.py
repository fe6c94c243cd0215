"""Pictures: instances drawn on images (:mod:`~mrcnn.drawing.render`), Matterport-style figures
(:mod:`~mrcnn.drawing.figures`, :mod:`~mrcnn.drawing.network_figures`,
:mod:`~mrcnn.drawing.dataset_figures`) and how a figure is shown (:mod:`~mrcnn.drawing.display`)."""
