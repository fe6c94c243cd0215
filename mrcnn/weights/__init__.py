"""Weights in and out: loading other projects' formats (:mod:`~mrcnn.weights.loading`,
:mod:`~mrcnn.weights.formats`), Matterport's Keras ``.h5`` (:mod:`~mrcnn.weights.keras_h5`,
:mod:`~mrcnn.weights.keras_mapping`, :mod:`~mrcnn.weights.convert`), our checkpoints and run
folders (:mod:`~mrcnn.weights.checkpoint`) and what a ``--weights`` value names
(:mod:`~mrcnn.weights.resolve`).

The face re-exports only :class:`WeightsError`, so that importing a run-folder helper does not
load the Keras chain.
"""

from __future__ import annotations

from mrcnn.weights.formats import WeightsError

__all__ = ["WeightsError"]
